//! Property tests of the engine (proptest): for generated JSON objects and
//! text lines, structure is kept, planted values never survive, and
//! redaction is idempotent.

mod common;

use common::key_paths;
use proptest::prelude::*;
use redactd::engine::{CompileOptions, Ruleset, Scratch, Stats, spec::builtin_sources};
use std::sync::OnceLock;

fn rules() -> &'static Ruleset {
    static RS: OnceLock<Ruleset> = OnceLock::new();
    RS.get_or_init(|| {
        Ruleset::compile(&builtin_sources(), &CompileOptions::default()).expect("built-in rules")
    })
}

fn redact(line: &str) -> String {
    let rs = rules();
    let mut sc = Scratch::new(rs);
    let mut st = Stats::new(rs);
    let (out, _) = rs.redact_line(line.as_bytes(), &mut sc, &mut st);
    String::from_utf8(out.to_vec()).expect("output is UTF-8 for UTF-8 input")
}

/// Values of built-in types that must never survive.
const PLANTED: &[&str] = &[
    "ann.lee42@example.com",
    "AKIAQWERTYUIOPASDFGH",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "4111 1111 1111 1111",
    "5555-5555-5555-4444",
    "10.20.30.40",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "sk_live_51HqLyjWDarjtT1zdp7dcXYZabcdefghijkl",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
    "078-05-1120",
    "DE89370400440532013000",
    "2001:db8:1a:2b::5",
];

fn json_value(depth: u32) -> BoxedStrategy<serde_json::Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i32>().prop_map(|n| serde_json::json!(n)),
        (-1e6f64..1e6).prop_map(|f| serde_json::json!(f)),
        "[ -~é😀\\\\\"\n\t]{0,24}".prop_map(serde_json::Value::String),
        Just(serde_json::Value::Null),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        3 => leaf,
        1 => prop::collection::vec(json_value(depth - 1), 0..4).prop_map(serde_json::Value::Array),
        1 => prop::collection::vec(("[a-z_]{1,10}", json_value(depth - 1)), 0..5).prop_map(|kv| {
            let mut m = serde_json::Map::new();
            for (k, v) in kv {
                m.insert(k, v);
            }
            serde_json::Value::Object(m)
        }),
    ]
    .boxed()
}

fn json_object() -> impl Strategy<Value = serde_json::Map<String, serde_json::Value>> {
    prop::collection::vec(("[a-z_]{1,10}", json_value(3)), 1..8)
        .prop_map(|kv| kv.into_iter().collect())
}

/// Puts `value` into a message string somewhere in the object (at any depth
/// reachable through objects).
fn plant(obj: &mut serde_json::Map<String, serde_json::Value>, path_seed: usize, value: &str) {
    let mut cur = obj;
    let mut seed = path_seed;
    loop {
        let next = cur
            .iter()
            .map(|(k, v)| (k.clone(), v.is_object()))
            .filter(|(_, o)| *o)
            .map(|(k, _)| k)
            .nth(seed % 3);
        match next {
            Some(k) if seed % 2 == 1 => {
                seed /= 2;
                cur = cur
                    .get_mut(&k)
                    .and_then(|v| v.as_object_mut())
                    .expect("object");
            }
            _ => break,
        }
    }
    cur.insert(
        "zz_msg".into(),
        serde_json::Value::String(format!("note: {value} seen")),
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn json_output_parses_with_the_same_keys_and_no_planted_value(
        mut obj in json_object(), which in 0..PLANTED.len(), seed in any::<usize>(), compact in any::<bool>()
    ) {
        plant(&mut obj, seed, PLANTED[which]);
        let v = serde_json::Value::Object(obj);
        let line = if compact { serde_json::to_string(&v).unwrap() } else { serde_json::to_string_pretty(&v).unwrap().replace('\n', " ") };
        let out = redact(&line);
        let parsed: serde_json::Value = serde_json::from_str(&out).map_err(|e| TestCaseError::fail(format!("{e}: {out}")))?;
        let (mut a, mut b) = (vec![], vec![]);
        key_paths(&v, "", &mut a);
        key_paths(&parsed, "", &mut b);
        prop_assert_eq!(a, b);
        prop_assert!(!out.contains(PLANTED[which]), "{} survived in {}", PLANTED[which], out);
        prop_assert_eq!(redact(&out), out.clone(), "idempotent");
    }

    #[test]
    fn text_lines_lose_the_planted_value_and_keep_the_other_words(
        words in prop::collection::vec("[a-z]{3,9}", 1..12), which in 0..PLANTED.len(), at in any::<usize>()
    ) {
        let mut w: Vec<String> = words.clone();
        let pos = at % (w.len() + 1);
        w.insert(pos, PLANTED[which].to_string());
        let line = w.join(" ");
        let out = redact(&line);
        prop_assert!(!out.contains(PLANTED[which]), "{} survived in {}", PLANTED[which], out);
        for word in &words {
            prop_assert!(out.contains(word.as_str()), "{} lost from {} -> {}", word, line, out);
        }
        prop_assert_eq!(redact(&out), out.clone(), "idempotent");
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_keep_one_line(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let rs = rules();
        let mut sc = Scratch::new(rs);
        let mut st = Stats::new(rs);
        let line: Vec<u8> = bytes.into_iter().filter(|b| *b != b'\n').collect();
        let (out, _) = rs.redact_line(&line, &mut sc, &mut st);
        prop_assert!(!out.contains(&b'\n'));
    }
}
