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

/// A phone number: international (`+` and 8 to 15 digits), North American (`(415) 555-0132`,
/// `415-555-0132`), trunk-prefixed national (`090-1234-5678`, `09-7625400`) or an 11-digit
/// mobile number starting `1[3-9]`. Dates and dotted version numbers are not phones.
///
/// ```
/// use sentinel_dataflows::guard::validators::phone_number;
/// assert!(phone_number("+44 (20) 7123 4567"));
/// assert!(phone_number("(415) 555-0132"));
/// assert!(!phone_number("2024-05-01"));
/// assert!(!phone_number("1.2.3.4.5.6"));
/// ```
pub fn phone_number(s: &str) -> bool {
    if !s.bytes().all(|b| b.is_ascii_digit() || b" +()-.".contains(&b)) {
        return false;
    }
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_digit).collect();
    let n = digits.len();
    if !(7..=15).contains(&n) || s.matches('+').count() > 1 || s[1..].contains('+') {
        return false;
    }
    let groups: Vec<&str> = s
        .split([' ', '-', '.', '(', ')', '+'])
        .filter(|g| !g.is_empty())
        .collect();
    if s.contains('.') && groups.iter().all(|g| g.len() <= 3) {
        return false;
    }
    // Dates (2024-05-01) and SSN-shaped runs (078-05-1120) are not phones.
    let shape: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if matches!(shape.as_slice(), [4, 2, 2] | [3, 2, 4]) {
        return false;
    }
    if s.starts_with('+') {
        return n >= 8;
    }
    let nanp = matches!(shape.as_slice(), [3, 3, 4] | [10]) && (b'2'..=b'9').contains(&digits[0]);
    let trunk = digits[0] == b'0' && (9..=11).contains(&n) && groups.len() >= 2;
    let mobile = n == 11 && groups.len() == 1 && digits[0] == b'1' && (b'3'..=b'9').contains(&digits[1]);
    (nanp && (groups.len() > 1 || s.starts_with('('))) || trunk || mobile
}

/// A Bitcoin address: base58check (P2PKH `1...`, P2SH `3...`) or bech32/bech32m (`bc1...`).
///
/// ```
/// use sentinel_dataflows::guard::validators::crypto_address;
/// assert!(crypto_address("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"));
/// assert!(crypto_address("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"));
/// assert!(!crypto_address("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLz"));
/// ```
pub fn crypto_address(s: &str) -> bool {
    if s.starts_with("bc1") || s.starts_with("tb1") {
        return bech32(s);
    }
    base58check(s).is_some_and(|payload| payload.len() == 21 && matches!(payload[0], 0x00 | 0x05))
}

fn base58check(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut bytes: Vec<u8> = Vec::with_capacity(32);
    for c in s.bytes() {
        let mut carry = ALPHABET.iter().position(|&a| a == c)? as u32;
        for b in bytes.iter_mut().rev() {
            carry += u32::from(*b) * 58;
            *b = carry as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.insert(0, carry as u8);
            carry >>= 8;
        }
    }
    let zeros = s.bytes().take_while(|&c| c == b'1').count();
    let mut full = vec![0u8; zeros];
    full.extend(bytes);
    if full.len() < 5 {
        return None;
    }
    let (payload, check) = full.split_at(full.len() - 4);
    (sha256(&sha256(payload))[..4] == *check).then(|| payload.to_vec())
}

fn bech32(s: &str) -> bool {
    const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let lower = s.to_ascii_lowercase();
    if lower != s && s.to_ascii_uppercase() != s {
        return false;
    }
    let Some((hrp, data)) = lower.rsplit_once('1') else {
        return false;
    };
    if data.len() < 6 {
        return false;
    }
    let mut values: Vec<u8> = hrp.bytes().map(|b| b >> 5).collect();
    values.push(0);
    values.extend(hrp.bytes().map(|b| b & 31));
    for c in data.bytes() {
        match CHARSET.iter().position(|&x| x == c) {
            Some(v) => values.push(v as u8),
            None => return false,
        }
    }
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = (chk & 0x1ff_ffff) << 5 ^ u32::from(v);
        for (i, g) in [0x3b6a_57b2u32, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3]
            .iter()
            .enumerate()
        {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    // bech32 (segwit v0) or bech32m (v1+).
    chk == 1 || chk == 0x2bc8_30a3
}

/// SHA-256, for base58check. Small and slow is fine: it runs only on address candidates.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let mut v = h;
        for i in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7]
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            let t2 = s0.wrapping_add(maj);
            v = [
                t1.wrapping_add(t2),
                v[0],
                v[1],
                v[2],
                v[3].wrapping_add(t1),
                v[4],
                v[5],
                v[6],
            ];
        }
        for (a, b) in h.iter_mut().zip(v) {
            *a = a.wrapping_add(b);
        }
    }
    let mut out = [0u8; 32];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standard_vectors() {
        let hex = |b: [u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let long = vec![b'a'; 1000];
        assert_eq!(
            hex(sha256(&long)),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }

    #[test]
    fn bitcoin_addresses_validate() {
        assert!(crypto_address("16Yeky6GMjeNkAiNcBY7ZhrLoMSgg1BoyZ"));
        assert!(crypto_address(
            "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297"
        ));
        assert!(!crypto_address("16Yeky6GMjeNkAiNcBY7ZhrLoMSgg1BoyZ2"));
        assert!(!crypto_address("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdx"));
        assert!(!crypto_address("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3"));
    }

    #[test]
    fn phone_numbers_validate() {
        for ok in [
            "+1 415 555 0132",
            "415-555-0132",
            "(415)555-0132",
            "+55 11 98456 5666",
            "090-1234-5678",
            "09-7625400",
            "13812345678",
            "+49 30 1234567",
        ] {
            assert!(phone_number(ok), "{ok}");
        }
        for bad in [
            "12345",
            "2024-05-01",
            "123-456-7890",
            "4111 1111 1111 1111 1111",
            "10.0.0.1",
            "1+2+3456789",
        ] {
            assert!(!phone_number(bad), "{bad}");
        }
    }
}
