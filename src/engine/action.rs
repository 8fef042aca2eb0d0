//! Actions: what a found value is replaced with.
//!
//! Every replacement starts with `[REDACTED:` or `[HASH:`. The matcher skips
//! candidates that start with one of these markers, which is what makes
//! redaction idempotent (redacting redacted output changes nothing) and keeps
//! `password=[REDACTED:...]` from being found again by the verify pass.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::ruleset::Rule;
use super::spec::ActionKind;

/// Prefixes of everything redactd writes in place of a value.
pub const MARKERS: [&str; 2] = ["[REDACTED", "[HASH:"];

/// Does `s` start with a redaction marker?
pub fn is_marker(s: &str) -> bool {
    MARKERS.iter().any(|m| s.starts_with(m))
}

/// Is `s` one whole redaction marker (`[REDACTED:id]`, `[HASH:id:…]`), as
/// an earlier pass wrote it? Such a value is never redacted again, so a
/// value masked by a text rule (when its line was not valid JSON) is not
/// re-masked by a field rule once the line is: redacting twice equals
/// redacting once. (Found by fuzzing: `fuzz/corpus/engine_line/`.)
pub fn is_whole_marker(s: &str) -> bool {
    is_marker(s) && s.find(']') == Some(s.len() - 1)
}

/// The key for `hash` actions. Debug never shows it.
#[derive(Clone)]
pub struct HashKey {
    key: Vec<u8>,
    /// True when no key was given and a random one was made.
    pub ephemeral: bool,
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashKey")
            .field("key", &"<hidden>")
            .field("ephemeral", &self.ephemeral)
            .finish()
    }
}

impl HashKey {
    pub fn new(key: Option<Vec<u8>>) -> HashKey {
        match key {
            Some(k) if !k.is_empty() => HashKey {
                key: k,
                ephemeral: false,
            },
            _ => {
                let mut k = vec![0u8; 32];
                // If the OS has no randomness to give, a fixed key still
                // redacts; it only makes tokens guessable by dictionary, and
                // the flag below makes the CLI say so.
                let _ = getrandom::fill(&mut k);
                HashKey {
                    key: k,
                    ephemeral: true,
                }
            }
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.key
    }

    /// First 16 hex digits of HMAC-SHA256(key, value).
    pub fn token(&self, value: &str, out: &mut String) {
        // HMAC accepts keys of any length, so this cannot fail; fall back to
        // a plain mask rather than panic if it ever did.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            out.push_str("0000000000000000");
            return;
        };
        mac.update(value.as_bytes());
        let tag = mac.finalize().into_bytes();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in &tag[..8] {
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

/// Appends the replacement for `value` found by `rule` to `out`.
pub fn render(rule: &Rule, key: &HashKey, value: &str, out: &mut String) {
    match rule.action {
        ActionKind::Mask | ActionKind::Drop => out.push_str(&rule.mask),
        ActionKind::Hash => {
            out.push_str("[HASH:");
            out.push_str(&rule.id);
            out.push(':');
            key.token(value, out);
            out.push(']');
        }
        ActionKind::Partial => {
            // Never keep more than a quarter of the value, so a short value
            // is not revealed by its own tail.
            let chars = value.chars().count();
            let keep = rule.keep_last.min(chars / 4);
            out.push_str("[REDACTED:");
            out.push_str(&rule.id);
            if keep > 0 {
                out.push_str(":…");
                let tail_start = value
                    .char_indices()
                    .nth(chars - keep)
                    .map_or(value.len(), |(i, _)| i);
                out.push_str(&value[tail_start..]);
            }
            out.push(']');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tokens_are_stable_per_key_and_differ_across_keys() {
        let k1 = HashKey::new(Some(b"k1".to_vec()));
        let k2 = HashKey::new(Some(b"k2".to_vec()));
        let (mut a, mut b, mut c) = (String::new(), String::new(), String::new());
        k1.token("ann@example.com", &mut a);
        k1.token("ann@example.com", &mut b);
        k2.token("ann@example.com", &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn missing_key_is_ephemeral_and_debug_hides_it() {
        let k = HashKey::new(None);
        assert!(k.ephemeral);
        assert!(!format!("{k:?}").contains(&format!("{:?}", k.bytes())));
    }
}
