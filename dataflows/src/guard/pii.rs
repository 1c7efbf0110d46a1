//! PII, PCI and PHI in text: candidates from one pass of a single multi-pattern automaton (the
//! match says which pattern fired), confirmed by validators (checksums, number ranges),
//! confidence adjusted by context words nearby. Findings carry a redacted snippet only; the raw
//! value never leaves the scanner.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use regex_automata::meta::{Cache, Regex};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind, PatternID, PatternSet};
use serde::Serialize;

pub use crate::model::PiiKind;

use super::validators;

/// One finding: kind, byte span in the scanned text, confidence in 0..1, and a redacted snippet.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PiiFinding {
    /// Kind.
    pub kind: PiiKind,
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset just past the last character.
    pub end: usize,
    /// Confidence, 0..1.
    pub confidence: f32,
    /// The value with all but its last few characters masked.
    pub redacted: String,
}

struct Rule {
    kind: PiiKind,
    validate: fn(&str) -> bool,
    /// Confidence of a validated match with no context.
    base: f32,
    /// Words near the match that make it more likely (case-insensitive, within 40 bytes before).
    context: &'static [&'static str],
}

/// The PII scanner: build once, share, call [`PiiScanner::scan`] per text.
///
/// ```
/// use sentinel_dataflows::guard::{PiiKind, PiiScanner};
/// let scanner = PiiScanner::new();
/// let found = scanner.scan("card 4111 1111 1111 1111, mail jo@example.com");
/// let kinds: Vec<PiiKind> = found.iter().map(|f| f.kind).collect();
/// assert_eq!(kinds, vec![PiiKind::CreditCard, PiiKind::EmailAddress]);
/// assert!(!found[0].redacted.contains("4111 1111"));
/// ```
pub struct PiiScanner {
    /// Every rule's pattern, in rule order (earlier rules win at the same position).
    automaton: Regex,
    /// The same patterns reporting every one that matches, to find at once which others
    /// could take a position whose first candidate failed its validator.
    all_matches: Regex,
    rules: Vec<Rule>,
    /// Tells this scanner's per-thread search caches from another scanner's.
    id: usize,
}

/// Search state for one scanner on one thread, so no scan goes through a shared pool.
struct Scratch {
    scanner: usize,
    first: Cache,
    all: Cache,
    set: PatternSet,
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

static NEXT_SCANNER_ID: AtomicUsize = AtomicUsize::new(0);

impl Default for PiiScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl PiiScanner {
    /// Compiles the patterns.
    pub fn new() -> Self {
        let mut patterns: Vec<&'static str> = Vec::new();
        let mut rule = |kind, pattern: &'static str, validate: fn(&str) -> bool, base, context| {
            patterns.push(pattern);
            Rule {
                kind,
                validate,
                base,
                context,
            }
        };
        let rules = vec![
            rule(
                PiiKind::CreditCard,
                r"\b(?:\d[ -]?){11,18}\d\b",
                validators::credit_card,
                0.85,
                &["card", "credit", "visa", "mastercard", "amex", "payment", "cc"],
            ),
            rule(
                PiiKind::UsSsn,
                r"\b\d{3}[- .]?\d{2}[- .]?\d{4}\b",
                ssn_candidate,
                0.6,
                &["ssn", "social security", "social"],
            ),
            rule(
                PiiKind::EmailAddress,
                r"[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])",
                |_| true,
                0.9,
                &["email", "mail", "contact"],
            ),
            // A run of address characters holding two colons or three dots (so words like
            // "face", versions like "2.3.1" and times like "12:30" are not candidates), with an
            // optional zone and prefix length; `ip_span` decides what part of it, if any, is an
            // address.
            rule(
                PiiKind::IpAddress,
                r"(?:[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:|[0-9A-Fa-f:]*\.[0-9A-Fa-f:]*\.[0-9A-Fa-f:]*\.)[0-9A-Fa-f:.]*(?:%[0-9A-Za-z]+)?(?:/[0-9]+)?",
                |_| true,
                0.7,
                &["ip", "address", "host", "server"],
            ),
            rule(
                PiiKind::IbanCode,
                r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{1,4}){2,8}\b",
                validators::iban,
                0.9,
                &["iban", "account", "bank", "transfer"],
            ),
            rule(
                PiiKind::UsNpi,
                r"\b[12]\d{9}\b",
                validators::us_npi,
                0.4,
                &["npi", "provider"],
            ),
            rule(
                PiiKind::UsMbi,
                r"\b[1-9][A-Za-z][A-Za-z0-9]\d-?[A-Za-z][A-Za-z0-9]\d-?[A-Za-z]{2}\d{2}\b",
                validators::us_mbi,
                0.6,
                &["mbi", "medicare", "beneficiary"],
            ),
            rule(
                PiiKind::PhoneNumber,
                r"(?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,4}\)[ .\-]?)?\d[\d .\-]{5,16}\d\b",
                validators::phone_number,
                0.5,
                &[
                    "phone", "call", "tel", "mobile", "cell", "fax", "whatsapp", "number", "contact", "reach",
                ],
            ),
            rule(
                PiiKind::CryptoAddress,
                r"\b(?:[13][1-9A-HJ-NP-Za-km-z]{25,34}|(?:bc1|tb1)[02-9ac-hj-np-z]{11,71})\b",
                validators::crypto_address,
                0.9,
                &["wallet", "bitcoin", "btc", "address", "send"],
            ),
            rule(
                PiiKind::CryptoAddress,
                r"\b0x[0-9a-fA-F]{40}\b",
                |_| true,
                0.5,
                &["wallet", "eth", "ethereum", "address", "send"],
            ),
            // Secrets. Issuer formats first; the entropy rule last, as a catch-all.
            rule(
                PiiKind::AwsAccessKey,
                r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
                |_| true,
                0.9,
                &["aws", "key", "access"],
            ),
            rule(
                PiiKind::GithubToken,
                r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{50,255})\b",
                |_| true,
                0.95,
                &["github", "token"],
            ),
            rule(
                PiiKind::SlackToken,
                r"\bxox[abposr]-[0-9A-Za-z-]{10,250}",
                |_| true,
                0.9,
                &["slack", "token"],
            ),
            rule(
                PiiKind::PrivateKey,
                r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
                |_| true,
                1.0,
                &[],
            ),
            rule(
                PiiKind::Jwt,
                r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
                validators::jwt,
                0.9,
                &["token", "bearer", "authorization"],
            ),
            rule(
                PiiKind::HighEntropySecret,
                r"\b[A-Za-z0-9_\-+/]{24,}={0,2}",
                validators::high_entropy_secret,
                0.5,
                &["key", "secret", "token", "password", "passwd", "api"],
            ),
        ];
        // ASCII classes and word boundaries: a Unicode `\b` makes the lazy DFA give up at the
        // first non-ASCII byte (a curly quote, an emoji) and hand the text to the PikeVM, 100x
        // slower. Every value here is ASCII, so nothing is lost; a value glued to a non-ASCII
        // letter now counts as standing apart.
        let build = |kind| {
            Regex::builder()
                .syntax(syntax::Config::new().unicode(false))
                .configure(Regex::config().match_kind(kind))
                .build_many(&patterns)
                .expect("valid PII patterns")
        };
        let automaton = build(MatchKind::LeftmostFirst);
        let all_matches = build(MatchKind::All);
        PiiScanner {
            automaton,
            all_matches,
            rules,
            id: NEXT_SCANNER_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Every validated finding in `text`, in order of position. Where the first pattern to match
    /// at a position fails its validator, the others are tried anchored at the same position.
    pub fn scan(&self, text: &str) -> Vec<PiiFinding> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let scratch = match &mut *scratch {
                Some(s) if s.scanner == self.id => s,
                other => other.insert(Scratch {
                    scanner: self.id,
                    first: self.automaton.create_cache(),
                    all: self.all_matches.create_cache(),
                    set: PatternSet::new(self.rules.len()),
                }),
            };
            self.scan_with(text, scratch)
        })
    }

    fn scan_with(&self, text: &str, scratch: &mut Scratch) -> Vec<PiiFinding> {
        let mut found = Vec::new();
        let mut pos = 0;
        while pos < text.len() {
            let Some(m) = self
                .automaton
                .search_with(&mut scratch.first, &Input::new(text).range(pos..))
            else {
                break;
            };
            let first = m.pattern().as_usize();
            let mut hit = confirm(&self.rules[first], text, m.start(), m.end()).map(|span| (first, span));
            if hit.is_none() {
                scratch.set.clear();
                let here = Input::new(text).range(m.start()..).anchored(Anchored::Yes);
                self.all_matches
                    .which_overlapping_matches_with(&mut scratch.all, &here, &mut scratch.set);
                hit = scratch
                    .set
                    .iter()
                    .map(|p| p.as_usize())
                    .filter(|i| *i != first)
                    .find_map(|i| {
                        let input = Input::new(text)
                            .range(m.start()..)
                            .anchored(Anchored::Pattern(PatternID::must(i)));
                        let other = self.automaton.search_with(&mut scratch.first, &input)?;
                        confirm(&self.rules[i], text, other.start(), other.end()).map(|span| (i, span))
                    });
            }
            match hit {
                Some((i, (start, end))) => {
                    let rule = &self.rules[i];
                    let confidence = if context_near(text, start, rule.context) {
                        (rule.base + 0.3).min(1.0)
                    } else {
                        rule.base
                    };
                    found.push(PiiFinding {
                        kind: rule.kind,
                        start,
                        end,
                        confidence,
                        redacted: redact(&text[start..end]),
                    });
                    pos = end.max(m.start() + 1);
                }
                // A rejected run of address or token characters is rejected whole (its inner
                // addresses and token pieces were already looked for; retrying inside a long
                // hyphenated run rescans it once per word); anything else may still start one
                // character on,
                // but not inside a number: no number-shaped value starts mid-number, and
                // retrying at every digit of a long one rescans it once per digit.
                None if matches!(self.rules[first].kind, PiiKind::IpAddress | PiiKind::HighEntropySecret) => {
                    pos = m.end().max(m.start() + 1)
                }
                None => {
                    let bytes = text.as_bytes();
                    pos = m.start() + 1;
                    while pos < bytes.len() && bytes[pos].is_ascii_digit() && bytes[pos - 1].is_ascii_digit() {
                        pos += 1;
                    }
                }
            }
            while !text.is_char_boundary(pos) {
                pos += 1;
            }
        }
        found
    }
}

/// Whether one of `words` (lowercase) occurs in the 40 bytes before `start`, ignoring case.
fn context_near(text: &str, start: usize, words: &[&str]) -> bool {
    let mut from = start.saturating_sub(40);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let window = text[from..start].to_ascii_lowercase();
    words.iter().any(|w| window.contains(w))
}

/// Validates a match, trimming trailing groups of an IBAN until one validates, and the last
/// group of a card number when that group belongs to the next token (`4111 1111 1111 1111
/// 2.3.1` holds a card followed by a version).
fn confirm(rule: &Rule, text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    match rule.kind {
        PiiKind::IpAddress => return ip_span(text, start, end),
        PiiKind::HighEntropySecret => return token_span(text, start, end, rule.validate),
        _ => {}
    }
    let glued_to_next = |end: usize| {
        let rest = text.as_bytes().get(end..).unwrap_or_default();
        matches!(rest, [b'.' | b':' | b',' | b'/', d, ..] if d.is_ascii_digit())
    };
    let mut end = end;
    loop {
        let candidate = &text[start..end];
        if (rule.validate)(candidate) {
            return Some((start, end));
        }
        let trim = match rule.kind {
            PiiKind::IbanCode => true,
            PiiKind::CreditCard => glued_to_next(end),
            _ => false,
        };
        if !trim {
            return None;
        }
        // Drop the last group (and its separator) and try again.
        let cut = candidate.rfind([' ', '-'])?;
        end = start + cut;
    }
}

/// The random-looking token in a run of token characters at `start..end`: the whole run, or
/// else its first piece between `-`, `+` or `/` that passes on its own
/// (`api-key-Zq8vN2xLr5TbW9cYh3JkPd7F` holds a secret after a kebab-case prefix).
fn token_span(text: &str, start: usize, end: usize, validate: fn(&str) -> bool) -> Option<(usize, usize)> {
    let run = &text[start..end];
    if validate(run) {
        return Some((start, end));
    }
    let mut offset = 0;
    for piece in run.split(['-', '+', '/']) {
        if piece.len() >= 24 && piece.len() < run.len() && validate(piece) {
            return Some((start + offset, start + offset + piece.len()));
        }
        offset += piece.len() + 1;
    }
    None
}

/// SSN candidates: the same separator throughout (or none), then the number rules.
fn ssn_candidate(s: &str) -> bool {
    let seps: Vec<char> = s.chars().filter(|c| !c.is_ascii_digit()).collect();
    if seps.len() == 2 && seps[0] != seps[1] {
        return false;
    }
    validators::us_ssn(s)
}

/// The address within a run of address characters at `start..end`: the whole run (with its
/// `%zone` and a valid `/prefix`) when it stands apart from surrounding words and parses;
/// otherwise a dotted IPv4 inside it that does (`text::ffff:192.0.2.1` holds `192.0.2.1`).
fn ip_span(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let glued = |at: usize, before: bool| {
        let c = if before {
            text[..at].chars().next_back()
        } else {
            text[at..].chars().next()
        };
        c.is_some_and(char::is_alphanumeric)
    };
    let token = &text[start..end];
    let trimmed = token.trim_end_matches('.');
    let core_len = trimmed.find(['%', '/']).unwrap_or(trimmed.len());
    let core = &trimmed[..core_len];
    if !glued(start, true) && !glued(start + trimmed.len(), false) {
        if let Ok(addr) = core.parse::<std::net::IpAddr>() {
            let mut span_end = start + core_len;
            let rest = &trimmed[core_len..];
            let (zone, prefix) = match rest.split_once('/') {
                Some((zone, prefix)) => (zone, Some(prefix)),
                None => (rest, None),
            };
            if !zone.is_empty() {
                if !addr.is_ipv6() {
                    return None;
                }
                span_end += zone.len();
            }
            let max = if addr.is_ipv6() { 128 } else { 32 };
            if let Some(p) = prefix.and_then(|p| p.parse::<u32>().ok()).filter(|p| *p <= max) {
                span_end += 1 + p.to_string().len();
            }
            return Some((start, span_end));
        }
    }
    // A dotted quad inside the run (after `:`, or the first four parts of a longer dotted run).
    let bytes = trimmed.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_hexdigit()) {
            let from = start + i;
            let quad: String = trimmed[i..].split('.').take(4).collect::<Vec<_>>().join(".");
            let len = quad.len();
            if trimmed[i..].starts_with(&quad)
                && !glued(from, true)
                && quad.split('.').count() == 4
                && quad.parse::<std::net::Ipv4Addr>().is_ok()
                && !trimmed[i + len..].starts_with(|c: char| c.is_ascii_digit())
            {
                return Some((from, from + len));
            }
        }
        i += 1;
    }
    None
}

/// Masks all but the last four characters (or all of a short value).
fn redact(value: &str) -> String {
    let n = value.chars().count();
    let keep = if n > 8 { 4 } else { 0 };
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i + keep >= n || !c.is_alphanumeric() { c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(PiiKind, &str)> {
        PiiScanner::new()
            .scan(text)
            .into_iter()
            .map(|f| (f.kind, &text[f.start..f.end]))
            .collect()
    }

    #[test]
    fn finds_validated_values_and_skips_look_alikes() {
        assert_eq!(
            kinds("pay with 4012-8888-8888-1881 now"),
            vec![(PiiKind::CreditCard, "4012-8888-8888-1881")]
        );
        assert_eq!(kinds("order 4012-8888-8888-1882"), vec![]); // Luhn fails
        assert_eq!(kinds("ssn 078-05-1123."), vec![(PiiKind::UsSsn, "078-05-1123")]);
        assert_eq!(kinds("693-09.4444"), vec![]); // mixed separators
        assert_eq!(
            kinds("write to ann.lee@example.co.uk"),
            vec![(PiiKind::EmailAddress, "ann.lee@example.co.uk")]
        );
        assert_eq!(kinds("my email is info@presidio."), vec![]);
        assert_eq!(
            kinds("from 10.0.0.12 and fe80::1"),
            vec![(PiiKind::IpAddress, "10.0.0.12"), (PiiKind::IpAddress, "fe80::1")]
        );
        assert_eq!(kinds("ip 300.1.1.1"), vec![]);
        assert_eq!(
            kinds("net 10.0.0.0/8, host fe80::1%eth0"),
            vec![(PiiKind::IpAddress, "10.0.0.0/8"), (PiiKind::IpAddress, "fe80::1%eth0")]
        );
        assert_eq!(kinds("std::cout and MyClass::toString at 12:34:56"), vec![]);
        assert_eq!(kinds("text::ffff:192.0.2.1"), vec![(PiiKind::IpAddress, "192.0.2.1")]);
        assert_eq!(
            kinds("IBAN DE89 3704 0044 0532 0130 00 THANKS"),
            vec![(PiiKind::IbanCode, "DE89 3704 0044 0532 0130 00")]
        );
    }

    #[test]
    fn a_card_followed_by_a_number_token_is_still_found() {
        assert_eq!(
            kinds("card 4111 1111 1111 1111 2.3.1 release"),
            vec![(PiiKind::CreditCard, "4111 1111 1111 1111")]
        );
        // A longer digit group run is not cut down to a card that happens to pass Luhn.
        assert_eq!(kinds("ref 4111 1111 1111 1111 2 done"), vec![]);
    }

    #[test]
    fn versions_and_times_are_not_address_candidates() {
        assert_eq!(kinds("version 2.3.1 at 12:30, build 10.2"), vec![]);
        assert_eq!(kinds(&"1".repeat(5000)), vec![]);
    }

    #[test]
    fn finds_secrets() {
        let text = concat!(
            "aws AKIAIOSFODNN7EXAMPLE and ghp_abcdefghijklmnopqrstuvwxyz0123456789 ",
            "slack xoxb-123456789012-abcdefghijkl -----BEGIN RSA PRIVATE KEY----- ",
            "api_key=Zq8vN2xLr5TbW9cYh3JkPd7F"
        );
        let found: Vec<PiiKind> = kinds(text).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            found,
            vec![
                PiiKind::AwsAccessKey,
                PiiKind::GithubToken,
                PiiKind::SlackToken,
                PiiKind::PrivateKey,
                PiiKind::HighEntropySecret
            ]
        );
        assert!(kinds("please summarise the quarterly_revenue_report_for_2024 by region").is_empty());
        assert_eq!(
            kinds("use api-key-Zq8vN2xLr5TbW9cYh3JkPd7F now"),
            vec![(PiiKind::HighEntropySecret, "Zq8vN2xLr5TbW9cYh3JkPd7F")]
        );
        assert!(kinds(&"stay-vigilant-and-focused-on-the-task-".repeat(40)).is_empty());
    }

    #[test]
    fn context_raises_confidence_and_redaction_hides_the_value() {
        let s = PiiScanner::new();
        let bare = s.scan("536-90-4399")[0].confidence;
        let with = s.scan("my social security number is 536-90-4399")[0].confidence;
        assert!(with > bare);
        let f = &s.scan("card 4111111111111111")[0];
        assert_eq!(f.redacted, "************1111");
    }
}
