//! The stdin filter, end to end: the real binary on realistic and nasty input.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

#[test]
fn the_issue_example_keeps_json_keys_and_removes_all_four_values() {
    let input = r#"{"user":{"email":"ann@example.com"},"password":"hunter2","msg":"paid with 4111 1111 1111 1111 from 10.1.2.3"}"#;
    let out = redact(&format!("{input}\n"));
    for secret in [
        "ann@example.com",
        "hunter2",
        "4111 1111 1111 1111",
        "10.1.2.3",
    ] {
        assert!(!out.contains(secret), "{secret} survived in {out}");
    }
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(input).unwrap(),
        serde_json::from_str(out.trim_end()).unwrap(),
    );
    let (mut ka, mut kb) = (vec![], vec![]);
    key_paths(&a, "", &mut ka);
    key_paths(&b, "", &mut kb);
    assert_eq!(ka, kb, "same keys in the same order");
}

#[test]
fn a_line_with_nothing_to_redact_comes_back_byte_for_byte() {
    let input = concat!(
        "{ \"level\" : \"info\",\t\"n\": 1.50e3, \"ok\":true, \"path\":\"/api/v1/items\", \"nested\": {\"a\": [1, 2, {\"b\": null}]} }\n",
        "plain text line with   odd spacing and no secrets\n",
        "\n",
        "[1,2,3]\n"
    );
    assert_eq!(redact(input), input);
}

#[test]
fn untouched_parts_of_a_redacted_json_line_keep_their_exact_bytes() {
    let input = "{ \"a\" : 1.50e3 ,  \"email\":  \"ann@example.com\" , \"z\" : [ true ] }\n";
    assert_eq!(
        redact(input),
        "{ \"a\" : 1.50e3 ,  \"email\":  \"[REDACTED:email]\" , \"z\" : [ true ] }\n"
    );
}

#[test]
fn field_name_rules_apply_at_any_depth_case_and_separator_insensitive() {
    let input = r#"{"a":{"b":{"Set_Cookie":"sid=1","X-Api-Key":"k","DB-PASSWORD":"p","client_secret":{"v":"s","n":5}}}}"#;
    let out = redact(&format!("{input}\n"));
    let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
    let b = &v["a"]["b"];
    assert!(b["Set_Cookie"].as_str().unwrap().starts_with("[REDACTED"));
    assert!(b["X-Api-Key"].as_str().unwrap().starts_with("[REDACTED"));
    assert!(b["DB-PASSWORD"].as_str().unwrap().starts_with("[REDACTED"));
    assert!(
        b["client_secret"]["v"]
            .as_str()
            .unwrap()
            .starts_with("[REDACTED"),
        "subtree under a secret key"
    );
    assert!(
        b["client_secret"]["n"]
            .as_str()
            .unwrap()
            .starts_with("[REDACTED"),
        "numbers too"
    );
}

#[test]
fn a_card_number_stored_as_a_json_number_is_caught() {
    let out = redact("{\"card\":4111111111111111,\"qty\":3}\n");
    assert!(!out.contains("4111111111111111"));
    let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!(v["qty"], 3);
}

#[test]
fn json_inside_a_string_and_url_encoded_values_are_redacted() {
    let inner = r#"{\"auth\":{\"token\":\"ghp_abcdefghijklmnopqrstuvwxyz0123456789\"}}"#;
    let input = format!("{{\"body\":\"{inner}\",\"q\":\"a=1&email=ann%40example.com\"}}\n");
    let out = redact(&input);
    assert!(
        !out.contains("ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
        "{out}"
    );
    assert!(
        !out.contains("ann%40example.com") && !out.contains("ann@example.com"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
    let body: serde_json::Value =
        serde_json::from_str(v["body"].as_str().unwrap()).expect("embedded JSON stays JSON");
    assert!(
        body["auth"]["token"]
            .as_str()
            .unwrap()
            .starts_with("[REDACTED")
    );
}

#[test]
fn json_held_in_strings_is_redacted_as_deep_as_the_walk_decodes_it_escapes_and_all() {
    // Each line's only secret is in JSON inside a string (inside a
    // string), spelled with escapes that only the inner level decodes:
    // nothing else in the line sends it to the walk.
    let inner = |v: serde_json::Value| serde_json::json!({ "m": v.to_string() });
    let lines = [
        // `pass\u0077ord` is `password` one level down.
        serde_json::json!({ "m": r#"{"pass\u0077ord": "hunter2"}"# }),
        // A card number with its first digit escaped.
        serde_json::json!({ "m": r#"{"n": "card \u0034111111111111111"}"# }),
        // A field name two and three levels down.
        inner(serde_json::json!({ "i": serde_json::json!({ "password": "hunter2" }).to_string() })),
        inner(inner(
            serde_json::json!({ "i": serde_json::json!({ "password": "hunter2" }).to_string() }),
        )),
    ];
    for line in lines {
        let line = line.to_string();
        let out = redact(&format!("{line}\n"));
        assert!(
            !out.contains("hunter2") && !out.contains("111111111111111"),
            "{line} -> {out}"
        );
        serde_json::from_str::<serde_json::Value>(out.trim_end()).expect("still JSON");
    }
}

#[test]
fn a_key_that_holds_a_secret_is_redacted_and_stays_unique_in_its_object() {
    let input = concat!(
        r#"{"quota":{"ann@example.com":5,"bob@example.com":7,"n":1},"#,
        r#""sessions":{"10.1.2.3":{"user":"x"}},"AKIAQWERTYUIOPASDFGH":"k","#,
        r#""password":{"carl@example.com":"pw"},"task":1,"path":"/a"}"#,
        "\n"
    );
    let out = redact(input);
    for secret in [
        "ann@example.com",
        "bob@example.com",
        "10.1.2.3",
        "AKIAQWERTYUIOPASDFGH",
        "carl@example.com",
        "\"pw\"",
    ] {
        assert!(!out.contains(secret), "{secret} in {out}");
    }
    let v: serde_json::Value = serde_json::from_str(out.trim_end()).expect("still JSON");
    let quota = v["quota"].as_object().unwrap();
    assert_eq!(quota.len(), 3, "two redacted keys stay two keys: {out}");
    assert_eq!(quota["[REDACTED:email]"], 5);
    assert_eq!(quota["[REDACTED:email] #2"], 7);
    // Ordinary names (holding a keyword: `task` has `sk`, `path` has `pat`)
    // are kept as they are.
    assert_eq!(v["task"], 1);
    assert_eq!(v["path"], "/a");
    assert_eq!(v.as_object().unwrap().len(), 6);
}

#[test]
fn plain_text_kinds_are_redacted_in_place() {
    let lines = [
        (
            r#"2001:db8::1 - - [14/May/2024:08:00:01 +0000] "GET /login?user=jo&password=Tr0ub4dor HTTP/1.1" 200 5"#,
            "Tr0ub4dor",
        ),
        (
            "ts=2024-05-14T08:00:01Z level=warn msg=\"retry\" api_key=Xk9vQ2mLp8RtZ4wY7nB3",
            "Xk9vQ2mLp8RtZ4wY7nB3",
        ),
        (
            r"java.sql.SQLException: login failed for jdbc:postgresql://db:5432/app?user=app&password=S3cr3tPw\n\tat org.postgresql.Driver.connect(Driver.java:1)",
            "S3cr3tPw",
        ),
        (
            "proxy http://svc:hunter2pass@proxy.internal:3128 unreachable",
            "hunter2pass",
        ),
    ];
    for (line, secret) in lines {
        let out = redact(&format!("{line}\n"));
        assert!(!out.contains(secret), "{secret} survived: {out}");
        assert!(out.contains("[REDACTED:"), "{out}");
    }
}

#[test]
fn invalid_utf8_is_redacted_lossily_and_counted() {
    let mut input = b"bad \xff\xfe bytes ann@example.com\n".to_vec();
    input.extend_from_slice(b"next line\n");
    let o = run(&["--stats"], &input);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(!out.contains("ann@example.com"));
    assert_eq!(out.lines().count(), 2);
    assert!(
        out.starts_with("bad \u{FFFD}\u{FFFD} bytes [REDACTED:email]"),
        "{out}"
    );
    assert!(
        stderr(&o).contains("decode/invalid_utf8=1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn truncated_json_is_redacted_as_text_and_counted() {
    let o = run(
        &["--stats"],
        b"{\"user\":\"ann@example.com\",\"password\":\"hunter2\",\"msg\":\"tru\n",
    );
    let out = stdout(&o);
    assert!(
        !out.contains("ann@example.com") && !out.contains("hunter2"),
        "{out}"
    );
    let err = stderr(&o);
    assert!(err.contains("decode/malformed_json=1"), "{err}");
    // The structured walk found the e-mail before it hit the truncation;
    // its count is undone, so each value counts once (text pass only).
    assert!(err.contains("redactions=2"), "{err}");
}

#[test]
fn over_long_lines_are_redacted_in_pieces_and_line_count_is_kept() {
    let mut line = String::new();
    while line.len() < 200_000 {
        line.push_str("padding words here ann@example.com AKIAABCDEFGHIJKLMNOP more ");
    }
    let input = format!("{line}\nshort ann@example.com\n");
    let o = run(&["--stats", "--max-line-bytes", "4096"], input.as_bytes());
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 2);
    assert!(!out.contains("ann@example.com") && !out.contains("AKIAABCDEFGHIJKLMNOP"));
    assert!(
        stderr(&o).contains("decode/oversize_line=1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_ten_megabyte_line_is_handled_whole_by_default() {
    let mut line = "x".repeat(10 * 1024 * 1024);
    line.push_str(" ghp_abcdefghijklmnopqrstuvwxyz0123456789");
    let o = run(&["--stats"], format!("{line}\n").as_bytes());
    let out = stdout(&o);
    assert!(out.ends_with(" [REDACTED:github-pat]\n"));
    assert!(stderr(&o).contains("decode/oversize_line=0"));
}

#[test]
fn deeply_nested_json_does_not_crash_and_is_redacted() {
    let depth = 10_000;
    let input = format!(
        "{}\"ann@example.com\"{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let o = run(&[], input.as_bytes());
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(!out.contains("ann@example.com"));
    assert_eq!(
        out.len(),
        input.len() - "ann@example.com".len() + "[REDACTED:email]".len()
    );
}

#[test]
fn crlf_nul_bytes_and_a_missing_final_newline_are_preserved() {
    let out = redact("a ann@example.com\r\nb\0c\nlast ann@example.com");
    assert_eq!(out, "a [REDACTED:email]\r\nb\0c\nlast [REDACTED:email]");
}

#[test]
fn output_is_flushed_per_line_when_input_is_slow() {
    let mut child = Command::new(bin())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // If a line never arrives, kill the process so the read below fails
    // instead of hanging the suite.
    let pid = child.id().to_string();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog_done = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        if !watchdog_done.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
    });
    for i in 0..3 {
        writeln!(stdin, "event {i} from ann@example.com").unwrap();
        stdin.flush().unwrap();
        // The pipe stays open: the line must arrive without EOF.
        let got = lines.next().unwrap().unwrap();
        assert_eq!(got, format!("event {i} from [REDACTED:email]"));
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    done.store(true, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn hash_action_is_stable_with_a_key_and_differs_across_keys() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("hash.toml");
    std::fs::write(
        &rules,
        r#"
[[rules]]
id = "user-hash"
category = "pii"
keys = ["user_id"]
action = "hash"
[[rules.tests]]
hit = '{"user_id":"u-123"}'
[[rules.tests]]
miss = '{"id":"u-123"}'
"#,
    )
    .unwrap();
    let args = [
        "--no-default-rules",
        "--rules",
        rules.to_str().unwrap(),
        "--hash-key-env",
        "K",
    ];
    let input = b"{\"user_id\":\"u-123\"}\n{\"user_id\":\"u-123\"}\n{\"user_id\":\"u-456\"}\n";
    let a = stdout(&run_env(&args, input, &[("K", "key-one")]));
    let b = stdout(&run_env(&args, input, &[("K", "key-two")]));
    let la: Vec<&str> = a.lines().collect();
    assert!(la[0].starts_with("{\"user_id\":\"[HASH:user-hash:"), "{a}");
    assert_eq!(la[0], la[1], "same value, same token");
    assert_ne!(la[0], la[2]);
    assert_ne!(
        a.lines().next(),
        b.lines().next(),
        "another key, another token"
    );
    assert!(!a.contains("u-123"));
    let o = run_env(&args, input, &[]);
    assert!(
        !o.status.success(),
        "a named but missing key variable is an error"
    );
}

#[test]
fn drop_action_removes_the_member_and_its_comma() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("drop.toml");
    std::fs::write(
        &rules,
        r#"
[[rules]]
id = "drop-debug"
category = "credential"
keys = ["debug_dump"]
action = "drop"
[[rules.tests]]
hit = '{"a":1,"debug_dump":{"x":[1,2]}}'
[[rules.tests]]
miss = '{"a":1}'
"#,
    )
    .unwrap();
    let args = ["--no-default-rules", "--rules", rules.to_str().unwrap()];
    let cases = [
        (
            r#"{"a":1,"debug_dump":{"x":[1,2]},"b":2}"#,
            r#"{"a":1,"b":2}"#,
        ),
        (r#"{"a":1,"debug_dump":"x"}"#, r#"{"a":1}"#),
        (r#"{"debug_dump":"x","b":2}"#, r#"{"b":2}"#),
        (r#"{"debug_dump":"x"}"#, r#"{}"#),
        (
            r#"{"a":1,"debug_dump":1,"debug_dump":2,"b":{"debug_dump":[]}}"#,
            r#"{"a":1,"b":{}}"#,
        ),
    ];
    for (input, want) in cases {
        let out = stdout(&run(&args, format!("{input}\n").as_bytes()));
        assert_eq!(out.trim_end(), want, "for {input}");
        serde_json::from_str::<serde_json::Value>(&out).expect("still JSON");
    }
}

#[test]
fn redacting_twice_equals_redacting_once() {
    let input = std::fs::read_to_string(fixture("labelled/corpus.log")).unwrap();
    let once = redact(&input);
    let twice = redact(&once);
    assert_eq!(once, twice);
}

#[test]
fn a_broken_rule_file_is_a_clear_error_before_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bad.toml");
    std::fs::write(
        &rules,
        "[[rules]]\nid = \"x\"\ncategory = \"secret\"\npattern = '(unclosed'\n",
    )
    .unwrap();
    let o = run(&["--rules", rules.to_str().unwrap()], b"ann@example.com\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        o.stdout.is_empty(),
        "nothing forwarded when rules are broken"
    );
    let err = stderr(&o);
    assert!(
        err.contains("bad.toml:4") && err.contains("invalid pattern"),
        "{err}"
    );
}

#[test]
fn stats_report_counts_without_content() {
    let o = run(&["--stats"], b"ann@example.com and 10.1.2.3\nclean\n");
    let err = stderr(&o);
    assert!(
        err.contains("lines=2 redacted_lines=1 redactions=2"),
        "{err}"
    );
    assert!(err.contains("rule email hits=1") && err.contains("rule ipv4 hits=1"));
    assert!(!err.contains("ann@example.com") && !err.contains("10.1.2.3"));
}

#[test]
fn the_skip_the_parse_fast_path_never_hides_a_value() {
    // Each line has exactly one sensitive value, hidden from a naive scan of
    // the raw bytes by an escape, a nesting or a value type.
    let cases = [
        (r#"{"m":"ann\u0040example.com"}"#, "example.com"),
        (r#"{"m":"x\nAKIAABCDEFGHIJKLMNOP"}"#, "AKIAABCDEFGHIJKLMNOP"),
        (r#"{"q":"ann%40example.com"}"#, "ann%40example.com"),
        (r#"{"password":{"inner":"hunter2"}}"#, "hunter2"),
        (r#"{"pin":1234}"#, "1234"),
        (r#"{"Pass\u0077ord":"hunter2"}"#, "hunter2"),
        (
            r#"{"a":"AKIA is a prefix only","b":"key AKIAABCDEFGHIJKLMNOP"}"#,
            "AKIAABCDEFGHIJKLMNOP",
        ),
        (
            r#"{"AWS_SECRET_ACCESS_KEY":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#,
            "wJalrXUtnFEMI",
        ),
        (
            r#"{"body":"{\"token\":\"s3cr3tT0ken99\"}"}"#,
            "s3cr3tT0ken99",
        ),
    ];
    for (line, secret) in cases {
        let out = redact(&format!("{line}\n"));
        assert!(!out.contains(secret), "{secret} survived: {line} -> {out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
    }
}

#[test]
fn parallel_workers_keep_input_order_and_output_identical_to_one_thread() {
    let mut input = std::fs::read_to_string(fixture("labelled/corpus.log")).unwrap();
    // Over-long lines (pieces) interleaved with normal ones, and a final
    // line without newline.
    let long = "word ann@example.com ".repeat(400);
    for _ in 0..5 {
        input.push_str(&long);
        input.push('\n');
        input.push_str("short line 10.1.2.3\n");
    }
    input.push_str("tail without newline ann@example.com");
    let args = |t: &'static str| ["--threads", t, "--max-line-bytes", "2048", "--stats"];
    let one = run(&args("1"), input.as_bytes());
    for t in ["2", "3", "8"] {
        let many = run(&args(t), input.as_bytes());
        assert!(many.status.success());
        assert_eq!(stdout(&one), stdout(&many), "--threads {t}");
        assert_eq!(stderr(&one), stderr(&many), "same stats with --threads {t}");
    }
}

/// Workers and the writer hand their buffers back for reuse (the filter's
/// `Spares`); over many batches, of lengths that go up and down, a reused
/// buffer must never carry bytes of the batch it held before.
#[test]
fn parallel_workers_reusing_buffers_over_many_batches_match_one_thread() {
    let mut input = String::new();
    let mut i = 0usize;
    while input.len() < 3 << 20 {
        // Runs of long lines, then of short ones: batches of very different
        // sizes follow each other.
        let pad = if (i / 500).is_multiple_of(2) { 700 } else { 20 };
        match i % 3 {
            0 => input.push_str(&format!(
                "{{\"n\":{i},\"email\":\"u{i}@example.com\",\"pad\":\"{}\"}}\n",
                "x".repeat(pad)
            )),
            1 => input.push_str(&format!(
                "line {i} from 10.0.{}.{} {}\n",
                i % 250,
                i % 7,
                "y".repeat(pad)
            )),
            _ => input.push_str(&format!("clean line {i}\n")),
        }
        i += 1;
    }
    let one = run(&["--threads", "1"], input.as_bytes());
    assert!(one.status.success());
    assert_eq!(stdout(&one).lines().count(), i);
    for t in ["2", "3"] {
        let many = run(&["--threads", t], input.as_bytes());
        assert!(many.status.success());
        assert!(
            stdout(&one) == stdout(&many),
            "--threads {t} differs from one thread"
        );
    }
}

/// Found by fuzzing (`fuzz/corpus/engine_line/regression-marker-under-secret-key`):
/// a control character made the line invalid JSON, a text rule masked the
/// password, and the second pass (now valid JSON) masked the mask again
/// under the field rule's name.
#[test]
fn a_value_masked_by_a_text_rule_is_not_masked_again_by_a_field_rule() {
    let input = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/engine_line/regression-marker-under-secret-key"),
    )
    .unwrap();
    let once = run(&[], &input);
    assert!(!stdout(&once).contains("hunter2"));
    let twice = run(&[], &once.stdout);
    assert_eq!(stdout(&once), stdout(&twice));
}

#[test]
fn logfmt_quoted_values_under_field_name_rules_are_masked_whole() {
    let input = concat!(
        "level=info msg=\"login ok\" password=\"correct horse battery\" user=bob\n",
        "ts=1 api_token=\"abc def ghi\" client_secret=\"a\\\"b c\" n=3\n",
        "{\"msg\":\"retry password=\\\"x y z\\\" done\"}\n",
        "note=\"no secrets here\" key_id=12\n",
    );
    let out = stdout(&run(&[], input.as_bytes()));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "level=info msg=\"login ok\" password=\"[REDACTED:secret-fields]\" user=bob"
    );
    assert_eq!(
        lines[1],
        "ts=1 api_token=\"[REDACTED:secret-fields]\" client_secret=\"[REDACTED:secret-fields]\" n=3"
    );
    assert_eq!(
        lines[2],
        "{\"msg\":\"retry password=\\\"[REDACTED:secret-fields]\\\" done\"}"
    );
    assert_eq!(lines[3], "note=\"no secrets here\" key_id=12");
    for planted in ["horse", "battery", "def ghi", "a\\\"b", "y z"] {
        assert!(!out.contains(planted), "{planted} survived: {out}");
    }
    // Idempotent: the masked line is left as it is.
    assert_eq!(stdout(&run(&[], out.as_bytes())), out);
}

/// At least `len` bytes of short words and spaces, the keyword `x1` among
/// them: the text the rules of [`slow_rules`] search slowly.
fn slow_text(len: usize) -> String {
    let words = ["ab", "cdef", "x1", "qq9", "zz", "Mm7"];
    let mut text = String::new();
    let mut i = 0usize;
    while text.len() < len {
        text.push_str(words[i % words.len()]);
        text.push(' ');
        i = i.wrapping_mul(31).wrapping_add(7) % 1009;
    }
    text
}

/// A rule file with `n` copies of a rule that scans word-and-space text
/// slowly (counted repetition over `\w+\s+`: linear, but with a large
/// constant) and a keyword every test line carries.
fn slow_rules(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let mut toml = String::new();
    for i in 0..n {
        toml.push_str(&format!(
            "[[rules]]\nid = \"slow-{i:02}\"\ncategory = \"secret\"\n\
             pattern = '(?i)(?:\\w+\\s+){{1,100}}\\w*zzqq'\nkeywords = [\"x1\"]\n\
             [[rules.tests]]\nhit = \"x1 ab zzqq\"\n[[rules.tests]]\nmiss = \"ab\"\n\n"
        ));
    }
    let p = dir.join(format!("slow-{n}.toml"));
    std::fs::write(&p, toml).unwrap();
    p
}

#[test]
fn a_slow_rule_set_cannot_hold_a_line_past_its_time_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut line = slow_text(64 * 1024);
    line.push_str("password=hunter2\n");
    let one = slow_rules(dir.path(), 1);
    let many = slow_rules(dir.path(), 20);
    let timed = |rules: &std::path::Path, budget: &str| {
        let t = std::time::Instant::now();
        let o = run(
            &[
                "--no-default-rules",
                "--rules",
                rules.to_str().unwrap(),
                "--time-budget-ms",
                budget,
                "--stats",
            ],
            line.as_bytes(),
        );
        (t.elapsed(), o)
    };
    // What one copy of the rule costs on this line, on this machine.
    let (t1, o1) = timed(&one, "0");
    assert_eq!(stdout(&o1), line, "the rule matches nothing here");
    // Twenty copies without a budget would take ~20 × t1; with a budget far
    // below t1 the line is cut off after the first rule.
    let (t20, o20) = timed(&many, "20");
    let out = stdout(&o20);
    assert_eq!(out, "[REDACTED:time-budget]\n", "fails closed: {out}");
    let err = stderr(&o20);
    assert!(err.contains("engine/time_budget=1"), "counted once: {err}");
    assert!(
        t20 < t1 * 4 + std::time::Duration::from_millis(500),
        "budget did not bound the line: one rule {t1:?}, twenty under a budget {t20:?}"
    );
    assert!(!err.contains("hunter2"));
}

#[test]
fn a_line_of_many_short_values_is_held_to_its_time_budget_too() {
    // Values under 4 KiB are not timed one by one (the clock is read
    // every few KiB searched), so a line of many of them must still stop
    // at its budget: 400 values of 2 KB of slow-rule text, twenty slow
    // rules at a few ms per search each.
    let dir = tempfile::tempdir().unwrap();
    let value = slow_text(2000);
    let members: Vec<String> = (0..400).map(|k| format!("\"m{k}\":\"{value}\"")).collect();
    let line = format!("{{{}}}\n", members.join(","));
    let many = slow_rules(dir.path(), 20);
    let o = run(
        &[
            "--no-default-rules",
            "--rules",
            many.to_str().unwrap(),
            "--time-budget-ms",
            "1",
            "--stats",
        ],
        line.as_bytes(),
    );
    let out = stdout(&o);
    let v: serde_json::Value = serde_json::from_str(&out).expect("still one JSON line");
    let masked = v
        .as_object()
        .unwrap()
        .values()
        .filter(|x| x.as_str() == Some("[REDACTED:time-budget]"))
        .count();
    // 400 × 20 searches of 2 KB take far longer than 1 ms: all but the
    // first few values are cut off unsearched (pacing the clock by values,
    // every 16th, let 31 through), and the line is counted once.
    assert!(masked >= 396, "only {masked} of 400 values cut off");
    let err = stderr(&o);
    assert!(err.contains("engine/time_budget=1"), "counted once: {err}");
}

#[test]
fn lines_within_their_budget_are_untouched_by_it() {
    // A 2 MB line with the built-in rules, well inside 5 s per MiB even in
    // a debug build on a loaded machine. (The default, 1 s per MiB, is
    // four times the worst adversarial cost of a built-in rule in release:
    // tests/redos.rs.)
    let mut line = "user=ann@example.com token=ghp_".to_string();
    line.push_str(&"a".repeat(36));
    line.push(' ');
    while line.len() < 2 << 20 {
        line.push_str("GET /api/v1/orders?id=42 200 12ms ");
    }
    line.push('\n');
    let o = run(&["--stats", "--time-budget-ms", "5000"], line.as_bytes());
    let err = stderr(&o);
    assert!(err.contains("engine/time_budget=0"), "{err}");
    let out = stdout(&o);
    assert!(out.contains("[REDACTED:email]") && !out.contains("ann@example.com"));
    assert!(!out.contains("time-budget"));
}
