//! Checksums and structural rules that separate real identifiers from look-alike digit runs.
//! Pure functions over the candidate's characters; separators are ignored where the format
//! allows them.

/// The digits of `s`, ignoring spaces, dashes and dots.
fn digits(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '0'..='9' => out.push(c as u8 - b'0'),
            ' ' | '-' | '.' => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Luhn (mod 10) over digits, the check digit last.
///
/// ```
/// use sentinel_dataflows::guard::validators::luhn;
/// assert!(luhn(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]));
/// assert!(!luhn(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]));
/// ```
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// A payment card number: 12-19 digits (separators consistent), Luhn-valid, and a known brand
/// prefix (Visa, Mastercard incl. the 2221-2720 range, Amex, Discover, Diners, JCB, Maestro,
/// UnionPay).
pub fn credit_card(s: &str) -> bool {
    let Some(d) = digits(s) else { return false };
    if !(12..=19).contains(&d.len()) || !luhn(&d) {
        return false;
    }
    if d.iter().all(|&x| x == d[0]) {
        return false;
    }
    let prefix = |n: usize| d[..n].iter().fold(0u32, |acc, &x| acc * 10 + u32::from(x));
    match d[0] {
        4..=6 => true, // Visa; Mastercard 51-55 and Maestro 50, 56-58; Discover, UnionPay
        2 => (2221..=2720).contains(&prefix(4)), // Mastercard 2-series
        3 => matches!(prefix(2), 30 | 34..=39), // Diners, JCB, Amex
        1 => d.len() == 15, // UATP
        _ => false,
    }
}

/// A US Social Security number: 9 digits, area not 000, 666 or 9xx, group not 00, serial
/// not 0000, and not one of the numbers known from advertisements.
pub fn us_ssn(s: &str) -> bool {
    let Some(d) = digits(s) else { return false };
    if d.len() != 9 {
        return false;
    }
    let n = |a: usize, b: usize| d[a..b].iter().fold(0u32, |acc, &x| acc * 10 + u32::from(x));
    let (area, group, serial) = (n(0, 3), n(3, 5), n(5, 9));
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return false;
    }
    // Repeated digits are placeholders, not numbers.
    if d.iter().all(|&x| x == d[0]) {
        return false;
    }
    !matches!(n(0, 9), 78_051_120 | 219_099_999 | 457_555_462 | 123_456_789)
}

/// IBAN lengths per country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

/// An IBAN: known country, its length, and the ISO 7064 mod-97 check. Spaces and dashes
/// between groups are allowed.
///
/// ```
/// use sentinel_dataflows::guard::validators::iban;
/// assert!(iban("GB82 WEST 1234 5698 7654 32"));
/// assert!(!iban("GB82 WEST 1234 5698 7654 33"));
/// ```
pub fn iban(s: &str) -> bool {
    let compact: Vec<u8> = s
        .bytes()
        .filter(|b| *b != b' ' && *b != b'-')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if compact.len() < 15 || !compact.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let country = std::str::from_utf8(&compact[..2]).unwrap_or("");
    match IBAN_LENGTHS.iter().find(|(c, _)| *c == country) {
        Some((_, len)) if *len == compact.len() => {}
        _ => return false,
    }
    if !compact[2..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut remainder: u32 = 0;
    for &b in compact[4..].iter().chain(&compact[..4]) {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        remainder = if v >= 10 {
            (remainder * 100 + v) % 97
        } else {
            (remainder * 10 + v) % 97
        };
    }
    remainder == 1
}

/// A US National Provider Identifier: 10 digits, Luhn-valid with the `80840` prefix.
pub fn us_npi(s: &str) -> bool {
    let Some(d) = digits(s) else { return false };
    if d.len() != 10 || !matches!(d[0], 1 | 2) {
        return false;
    }
    let mut full = vec![8, 0, 8, 4, 0];
    full.extend_from_slice(&d);
    luhn(&full)
}

/// A US Medicare Beneficiary Identifier: 11 characters, positions fixed as numeric, alphabetic
/// (no S, L, O, I, B, Z) or either; dashes after the 4th and 7th allowed.
pub fn us_mbi(s: &str) -> bool {
    let chars: Vec<u8> = s
        .bytes()
        .filter(|b| *b != b'-')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if chars.len() != 11 {
        return false;
    }
    let alpha = |b: u8| b.is_ascii_uppercase() && !b"SLOIBZ".contains(&b);
    // Per position: C = 1-9, A = letter, N = digit, E = either.
    chars.iter().zip(b"CAENAENAANN").all(|(&c, class)| match class {
        b'C' => (b'1'..=b'9').contains(&c),
        b'A' => alpha(c),
        b'N' => c.is_ascii_digit(),
        _ => alpha(c) || c.is_ascii_digit(),
    })
}

/// An IP address (v4 dotted quad, or v6 in any `std` accepted form).
pub fn ip_address(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

/// A JWT: the header segment decodes (base64url) to a JSON object naming an `alg`.
pub fn jwt(s: &str) -> bool {
    let Some(header) = s.split('.').next() else {
        return false;
    };
    base64url_decode(header).is_some_and(|h| {
        let h = String::from_utf8_lossy(&h);
        h.trim_start().starts_with('{') && h.contains("\"alg\"")
    })
}

fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' | b'+' => Some(62),
        b'_' | b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().take_while(|c| *c != b'=') {
        acc = (acc << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A random-looking token: at least 24 characters, letters and digits mixed (upper and lower
/// case, or hex with letters and digits), not a word or a repetition, and a Shannon entropy of
/// at least 3.5 bits per character (4.0 for lowercase-only).
pub fn high_entropy_secret(s: &str) -> bool {
    let s = s.trim_end_matches('=');
    if s.len() < 24 || s.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_') {
        return false;
    }
    let has_digit = s.bytes().any(|b| b.is_ascii_digit());
    let has_upper = s.bytes().any(|b| b.is_ascii_uppercase());
    let has_lower = s.bytes().any(|b| b.is_ascii_lowercase());
    if !has_digit || !(has_upper || has_lower) {
        return false;
    }
    // Identifiers with separators between words (snake_case, kebab-case) are not secrets.
    if s.split(['_', '-']).filter(|part| part.len() >= 3).count() >= 3 {
        return false;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    let floor: f64 = if has_upper && has_lower { 3.5 } else { 4.0 };
    entropy >= floor.min(n.log2() - 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_need_luhn_and_a_brand() {
        for good in [
            "4111111111111111",
            "4012-8888-8888-1881",
            "5555 5555 5555 4444",
            "2223003122003222", // Mastercard 2-series
            "371449635398431",
            "6011000400000000",
            "3528000700000000",
        ] {
            assert!(credit_card(good), "{good}");
        }
        for bad in ["4111111111111112", "1234567812345678", "0000000000000000", "41111111"] {
            assert!(!credit_card(bad), "{bad}");
        }
    }

    #[test]
    fn ssn_rejects_invalid_areas_groups_and_serials() {
        for good in ["078-05-1123", "078.05.1123", "078 05 1123", "536-90-4399"] {
            assert!(us_ssn(good), "{good}");
        }
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "078-05-1120",
            "111-11-1111",
        ] {
            assert!(!us_ssn(bad), "{bad}");
        }
    }

    #[test]
    fn iban_checks_country_length_and_mod97() {
        assert!(iban("DE89 3704 0044 0532 0130 00"));
        assert!(iban("NL91ABNA0417164300"));
        assert!(!iban("DE89 3704 0044 0532 0130 01"));
        assert!(!iban("DE89 3704 0044 0532 0130")); // wrong length
        assert!(!iban("XX89370400440532013000"));
    }

    #[test]
    fn jwt_and_entropy() {
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert!(jwt(token));
        assert!(!jwt(
            "eyJub3QtanNvbiI.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N"
        ));
        assert!(high_entropy_secret("sk_live_4eC39HqLyjWDarjtT1zdp7dc"));
        // A lowercase hex digest (a checksum, a commit) is below the floor: not flagged.
        assert!(!high_entropy_secret(
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        ));
        assert!(!high_entropy_secret("this_is_a_long_identifier_name_2024"));
        assert!(!high_entropy_secret("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1"));
        assert!(!high_entropy_secret("internationalization"));
    }

    #[test]
    fn npi_mbi_and_ip() {
        assert!(us_npi("1234567893"));
        assert!(!us_npi("1234567890"));
        assert!(us_mbi("1EG4-TE5-MK73"));
        assert!(!us_mbi("1EG4-TE5-MK7")); // too short
        assert!(!us_mbi("1SG4-TE5-MK73")); // S is never used
        assert!(ip_address("192.168.0.1") && ip_address("::1") && ip_address("2001:db8::8a2e:370:7334"));
        assert!(!ip_address("192.168.0") && !ip_address("256.1.1.1"));
    }
}
