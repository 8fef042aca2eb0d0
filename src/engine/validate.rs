//! Validators: cheap checks that run on a pattern's candidate before it is
//! redacted.
//!
//! Regexes describe the *shape* of a value; validators decide whether a
//! candidate of the right shape really is one. They are what lets a 16-digit
//! order number that fails Luhn, or a hex word like `dead::beef`, survive.
//! Every validator is a pure function of the candidate and its immediate
//! neighbourhood in the scanned text, allocation free, and linear in the
//! candidate's length.

use std::net::Ipv6Addr;

/// A validator as named in a rule file (`validator = "luhn"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validator {
    /// Luhn (mod 10) checksum over the candidate's digits, 12–19 digits.
    Luhn,
    /// A payment card: Luhn, 13–19 digits, and a known issuer prefix
    /// (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay).
    Card,
    /// IBAN: known country length and ISO 7064 mod-97 check digits.
    Iban,
    /// IPv4 dotted quad that is not part of a longer dotted number
    /// (`1.2.3.4.5`, OIDs, four-part versions glued to more parts).
    Ipv4,
    /// IPv6 address (parsed by the standard library) with at least three
    /// groups, not glued to further hex or colons (so `Foo::bar` and
    /// `12:34:56` never count).
    Ipv6,
    /// A phone number: 8 to 15 digits in the candidate.
    Phone,
    /// Token-like: looks machine generated rather than like a word. At
    /// least 8 characters, and either letters and digits mixed, or an upper
    /// case letter after the first position next to lower case ones.
    Token,
    /// Shannon entropy of the candidate, in bits per character, at least
    /// the given threshold.
    Entropy(f64),
}

impl Validator {
    /// Parses the name used in rule files. `entropy` takes its threshold
    /// from the rule's `min_entropy` (default 3.0).
    pub fn from_name(name: &str, min_entropy: Option<f64>) -> Option<Validator> {
        Some(match name {
            "luhn" => Validator::Luhn,
            "card" => Validator::Card,
            "iban" => Validator::Iban,
            "ipv4" => Validator::Ipv4,
            "ipv6" => Validator::Ipv6,
            "phone" => Validator::Phone,
            "token" => Validator::Token,
            "entropy" => Validator::Entropy(min_entropy.unwrap_or(3.0)),
            _ => return None,
        })
    }

    /// The names accepted by [`Validator::from_name`], for error messages.
    pub const NAMES: &'static [&'static str] = &[
        "luhn", "card", "iban", "ipv4", "ipv6", "phone", "token", "entropy",
    ];

    /// Checks the candidate `hay[start..end]`.
    pub fn check(&self, hay: &str, start: usize, end: usize) -> bool {
        let cand = &hay[start..end];
        match *self {
            Validator::Luhn => luhn(cand, 12, 19),
            Validator::Card => card(cand),
            Validator::Iban => iban(cand),
            Validator::Ipv4 => ipv4(hay, start, end),
            Validator::Ipv6 => ipv6(hay, start, end),
            Validator::Phone => {
                let n = cand.bytes().filter(u8::is_ascii_digit).count();
                (8..=15).contains(&n)
            }
            Validator::Token => token_like(cand),
            Validator::Entropy(min) => shannon_entropy(cand) >= min,
        }
    }
}

/// Luhn checksum over the ASCII digits of `s` (separators ignored).
pub fn luhn(s: &str, min_digits: usize, max_digits: usize) -> bool {
    let mut sum = 0u32;
    let mut n = 0usize;
    for b in s.bytes().rev() {
        if !b.is_ascii_digit() {
            continue;
        }
        let mut d = u32::from(b - b'0');
        if n % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        n += 1;
    }
    n >= min_digits && n <= max_digits && sum.is_multiple_of(10)
}

fn card(s: &str) -> bool {
    let mut digits = [0u8; 19];
    let mut n = 0;
    for b in s.bytes().filter(u8::is_ascii_digit) {
        if n == digits.len() {
            return false;
        }
        digits[n] = b - b'0';
        n += 1;
    }
    if !(13..=19).contains(&n) {
        return false;
    }
    let d = &digits[..n];
    let p2 = u32::from(d[0]) * 10 + u32::from(d[1]);
    let p3 = p2 * 10 + u32::from(d[2]);
    let p4 = p3 * 10 + u32::from(d[3]);
    let issuer = match d[0] {
        4 => true,                        // Visa
        5 => (51..=55).contains(&p2),     // Mastercard
        2 => (2221..=2720).contains(&p4), // Mastercard 2-series
        3 => {
            matches!(p2, 34 | 37 | 36 | 38 | 39)
                || (300..=305).contains(&p3)
                || (3528..=3589).contains(&p4)
        }
        6 => p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || p2 == 62,
        _ => false,
    };
    issuer && luhn(s, 13, 19)
}

/// IBAN lengths by country (ISO 13616 registry).
fn iban_length(cc: &[u8]) -> Option<usize> {
    Some(match cc {
        b"AD" => 24,
        b"AE" => 23,
        b"AL" => 28,
        b"AT" => 20,
        b"AZ" => 28,
        b"BA" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BR" => 29,
        b"BY" => 28,
        b"CH" => 21,
        b"CR" => 22,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DK" => 18,
        b"DO" => 28,
        b"EE" => 20,
        b"EG" => 29,
        b"ES" => 24,
        b"FI" => 18,
        b"FO" => 18,
        b"FR" => 27,
        b"GB" => 22,
        b"GE" => 22,
        b"GI" => 23,
        b"GL" => 18,
        b"GR" => 27,
        b"GT" => 28,
        b"HR" => 21,
        b"HU" => 28,
        b"IE" => 22,
        b"IL" => 23,
        b"IQ" => 23,
        b"IS" => 26,
        b"IT" => 27,
        b"JO" => 30,
        b"KW" => 30,
        b"KZ" => 20,
        b"LB" => 28,
        b"LC" => 32,
        b"LI" => 21,
        b"LT" => 20,
        b"LU" => 20,
        b"LV" => 21,
        b"MC" => 27,
        b"MD" => 24,
        b"ME" => 22,
        b"MK" => 19,
        b"MR" => 27,
        b"MT" => 31,
        b"MU" => 30,
        b"NL" => 18,
        b"NO" => 15,
        b"PK" => 24,
        b"PL" => 28,
        b"PS" => 29,
        b"PT" => 25,
        b"QA" => 29,
        b"RO" => 24,
        b"RS" => 22,
        b"SA" => 24,
        b"SC" => 31,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"ST" => 25,
        b"SV" => 28,
        b"TL" => 23,
        b"TN" => 24,
        b"TR" => 26,
        b"UA" => 29,
        b"VA" => 22,
        b"VG" => 24,
        b"XK" => 20,
        _ => return None,
    })
}

fn iban(s: &str) -> bool {
    let mut buf = [0u8; 34];
    let mut n = 0;
    for b in s.bytes().filter(|b| *b != b' ') {
        if n == buf.len() || !b.is_ascii_alphanumeric() {
            return false;
        }
        buf[n] = b.to_ascii_uppercase();
        n += 1;
    }
    let v = &buf[..n];
    if n < 15 || iban_length(&v[..2]) != Some(n) {
        return false;
    }
    // Move the first four characters to the end, letters become 10..35,
    // and the whole number must be 1 mod 97. Computed digit by digit.
    let mut rem: u32 = 0;
    for &c in v[4..].iter().chain(v[..4].iter()) {
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            let x = u32::from(c - b'A') + 10;
            rem = (rem * 100 + x) % 97;
        }
    }
    rem == 1
}

fn ipv4(hay: &str, start: usize, end: usize) -> bool {
    let b = hay.as_bytes();
    // Part of a longer dotted number (1.2.3.4.5, an OID, a version with more parts)?
    let before_dot_digit = start >= 2 && b[start - 1] == b'.' && b[start - 2].is_ascii_digit();
    let after_dot_digit = end + 1 < b.len() && b[end] == b'.' && b[end + 1].is_ascii_digit();
    if before_dot_digit || after_dot_digit {
        return false;
    }
    let mut parts = 0;
    for p in hay[start..end].split('.') {
        parts += 1;
        if p.is_empty() || p.len() > 3 || (p.len() > 1 && p.starts_with('0')) {
            return false;
        }
        match p.parse::<u16>() {
            Ok(v) if v <= 255 => {}
            _ => return false,
        }
    }
    parts == 4
}

fn ipv6(hay: &str, start: usize, end: usize) -> bool {
    let b = hay.as_bytes();
    let glued = |c: u8| c.is_ascii_hexdigit() || c == b':';
    if (start > 0 && glued(b[start - 1])) || (end < b.len() && glued(b[end])) {
        return false;
    }
    let cand = &hay[start..end];
    match hex_groups(cand.as_bytes()) {
        HexGroups::Address(n) => n >= 3,
        HexGroups::Invalid => false,
        // A dotted IPv4 tail (`::ffff:10.0.0.1`) or anything else: the
        // standard library's parser.
        HexGroups::OtherBytes => {
            let groups = cand.split(':').filter(|g| !g.is_empty()).count();
            groups >= 3 && cand.parse::<Ipv6Addr>().is_ok()
        }
    }
}

/// What [`hex_groups`] makes of a candidate.
#[derive(Debug, PartialEq, Eq)]
enum HexGroups {
    /// An IPv6 address in hex groups and colons, with this many groups.
    Address(usize),
    /// Hex digits and colons, but not an address.
    Invalid,
    /// A byte that is neither a hex digit nor a colon.
    OtherBytes,
}

/// The number of groups of an IPv6 address written in hex groups and
/// colons only: what `Ipv6Addr`'s parser says of such text (the test
/// `hex_groups_agrees_with_the_standard_parser` holds it to that), for
/// less. Why by hand: ipv6 is the most frequent hit in the shared corpus,
/// and its check was half the cost of redacting an address (callgrind:
/// 2,100 of 5,400 instructions a value, 1,260 of them the standard
/// parser's; 810 with this). The byte check and the search for `::` are
/// one loop, not two passes and a `memmem` searcher built per call
/// (callgrind, 3,000 corpus JSON lines with the library: `rule_hits`
/// 74.9M -> 74.3M instructions, ~200 a line).
fn hex_groups(c: &[u8]) -> HexGroups {
    // One `::` at most, standing for at least one zero group.
    let mut double = None;
    for (i, &b) in c.iter().enumerate() {
        if b == b':' {
            if double.is_none() && c.get(i + 1) == Some(&b':') {
                double = Some(i);
            }
        } else if !b.is_ascii_hexdigit() {
            return HexGroups::OtherBytes;
        }
    }
    match groups_of(c, double) {
        Some(n) => HexGroups::Address(n),
        None => HexGroups::Invalid,
    }
}

/// The groups of `c` (hex digits and colons) around its first `::` at
/// `double`, `None` when they do not make an address.
fn groups_of(c: &[u8], double: Option<usize>) -> Option<usize> {
    let (head, tail) = match double {
        Some(p) => (&c[..p], &c[p + 2..]),
        None => (c, &c[c.len()..]),
    };
    let groups = |part: &[u8]| -> Option<usize> {
        if part.is_empty() {
            return Some(0);
        }
        let mut n = 0;
        for g in part.split(|&b| b == b':') {
            if g.is_empty() || g.len() > 4 {
                return None;
            }
            n += 1;
        }
        Some(n)
    };
    let (h, t) = (groups(head)?, groups(tail)?);
    match double {
        Some(_) if h + t <= 7 => Some(h + t),
        None if h == 8 => Some(8),
        _ => None,
    }
}

/// Machine-generated rather than a word. See [`Validator::Token`].
pub fn token_like(s: &str) -> bool {
    if s.len() < 8 {
        return false;
    }
    let (mut digit, mut alpha, mut lower, mut inner_upper) = (false, false, false, false);
    for (i, c) in s.bytes().enumerate() {
        if c.is_ascii_digit() {
            digit = true;
        } else if c.is_ascii_lowercase() {
            alpha = true;
            lower = true;
        } else if c.is_ascii_uppercase() {
            alpha = true;
            if i > 0 {
                inner_upper = true;
            }
        }
    }
    (digit && alpha) || (lower && inner_upper)
}

/// Shannon entropy in bits per byte.
pub fn shannon_entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let len = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(val: Validator, s: &str) -> bool {
        val.check(s, 0, s.len())
    }

    #[test]
    fn luhn_accepts_test_cards_and_rejects_off_by_one() {
        assert!(v(Validator::Luhn, "4111 1111 1111 1111"));
        assert!(v(Validator::Luhn, "378282246310005"));
        assert!(!v(Validator::Luhn, "4111111111111112"));
        assert!(!v(Validator::Luhn, "0000000000"), "too short");
    }

    #[test]
    fn card_needs_a_known_issuer_prefix() {
        assert!(v(Validator::Card, "5555-5555-5555-4444"));
        assert!(v(Validator::Card, "6011111111111117"));
        // Luhn-valid but issuer 9: an order number, not a card.
        assert!(luhn("9000000000000001", 12, 19));
        assert!(!v(Validator::Card, "9000000000000001"));
    }

    #[test]
    fn iban_checks_length_and_mod97() {
        assert!(v(Validator::Iban, "DE89370400440532013000"));
        assert!(v(Validator::Iban, "GB82 WEST 1234 5698 7654 32"));
        assert!(!v(Validator::Iban, "DE89370400440532013001"));
        assert!(!v(Validator::Iban, "XX89370400440532013000"));
    }

    #[test]
    fn ipv4_rejects_longer_dotted_numbers_and_bad_octets() {
        assert!(v(Validator::Ipv4, "10.1.2.3"));
        assert!(!v(Validator::Ipv4, "256.1.2.3"));
        assert!(!Validator::Ipv4.check("v1.2.3.4.5", 1, 8));
        assert!(!v(Validator::Ipv4, "01.2.3.4"));
    }

    #[test]
    fn hex_groups_agrees_with_the_standard_parser() {
        // Every string of up to 7 characters over a small alphabet, and
        // random longer ones: valid exactly when `Ipv6Addr` parses it.
        let alphabet = b"0a:F";
        let mut cases: Vec<Vec<u8>> = vec![Vec::new()];
        let mut frontier = cases.clone();
        for _ in 0..7 {
            frontier = frontier
                .iter()
                .flat_map(|p| alphabet.iter().map(move |&c| [p.as_slice(), &[c]].concat()))
                .collect();
            cases.extend(frontier.iter().cloned());
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            let len = (x % 40) as usize;
            let mut s = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly hex digits, some colons, few enough for addresses.
                s.push(match x % 7 {
                    0 | 1 => b':',
                    2 => b'f',
                    3 => b'A',
                    _ => b'0' + (x % 10) as u8,
                });
            }
            x = x.wrapping_add(1);
            cases.push(s);
        }
        cases.extend(
            [
                "::",
                "::1",
                "1::",
                "1:2:3:4:5:6:7:8",
                "1:2:3:4:5:6:7::",
                "::2:3:4:5:6:7:8",
                "1:2:3:4:5:6:7:8::",
                "1::2:3:4:5:6:7:8",
                ":::",
                "1:::2",
                "1::2::3",
                ":1::",
                "12345::",
                "ffff:FFFF::0000:1",
                "1:2:3:4:5:6:7",
                "1:2:3:4:5:6:7:8:9",
            ]
            .map(|s| s.as_bytes().to_vec()),
        );
        let mut valid = 0;
        for c in &cases {
            let text = std::str::from_utf8(c).unwrap();
            let std_ok = text.parse::<Ipv6Addr>().is_ok();
            let ours = match hex_groups(c) {
                HexGroups::Address(n) => Some(n),
                HexGroups::Invalid => None,
                HexGroups::OtherBytes => panic!("{text:?} is hex digits and colons"),
            };
            assert_eq!(ours.is_some(), std_ok, "{text:?}");
            if let Some(n) = ours {
                valid += 1;
                assert_eq!(
                    n,
                    text.split(':').filter(|g| !g.is_empty()).count(),
                    "{text:?}"
                );
            }
        }
        assert!(valid > 1000, "only {valid} valid addresses among the cases");
    }

    #[test]
    fn ipv6_needs_three_groups_and_no_glue() {
        assert!(v(Validator::Ipv6, "2001:db8:1a:2b::5"));
        assert!(v(Validator::Ipv6, "fe80::1:2:3"));
        assert!(!v(Validator::Ipv6, "dead::beef"));
        assert!(!v(Validator::Ipv6, "12:34:56"));
    }

    #[test]
    fn token_like_separates_words_from_tokens() {
        assert!(token_like("a8f3kQ2mZ9"));
        assert!(token_like("hunter2xy"));
        assert!(!token_like("authentication"));
        assert!(!token_like("Authentication"));
        assert!(!token_like("abc1"));
    }

    #[test]
    fn entropy_is_zero_for_repeats_and_high_for_random() {
        assert_eq!(shannon_entropy("aaaaaaaa"), 0.0);
        assert!(shannon_entropy("q8Zr1Lx0Pm3Kd7Wv") > 3.5);
    }
}
