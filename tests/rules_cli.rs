//! `redactd rules test|lint|list` on the built-in library and on broken files.

mod common;

use common::*;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn builtin_library_passes_its_own_tests_with_enough_rules() {
    let o = run(&["rules", "test"], b"");
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    let last = out.lines().last().unwrap();
    assert!(last.contains(" 0 failed"), "{last}");
    let list = stdout(&run(&["rules", "list"], b""));
    let secret_ids = list
        .lines()
        .filter(|l| {
            let cat = l.split_whitespace().nth(1).unwrap_or("");
            cat == "secret" || cat == "credential"
        })
        .count();
    assert!(
        secret_ids >= 120,
        "only {secret_ids} secret/credential rules"
    );
    for pii in [
        "email",
        "phone-e164",
        "credit-card",
        "us-ssn",
        "iban",
        "ipv4",
        "ipv6",
    ] {
        assert!(
            list.lines().any(|l| l.starts_with(&format!("{pii} "))),
            "missing {pii}"
        );
    }
}

#[test]
fn builtin_library_lints_clean() {
    let o = run(&["rules", "lint"], b"");
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(" 0 errors, 0 warnings"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn lint_reports_each_problem_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        &dir,
        "bad.toml",
        r#"[[rules]]
id = "dup"
category = "secret"
pattern = 'abc'

[[rules]]
id = "dup"
category = "secret"
pattern = 'def'

[[rules]]
id = "empty"
category = "secret"
pattern = 'x*'

[[rules]]
id = "fancy-unbounded"
category = "secret"
engine = "fancy"
pattern = '(?<=k=)\w+'

[[rules]]
id = "bad-validator"
category = "pii"
pattern = 'x'
validator = "luhnn"
"#,
    );
    let o = run(&["rules", "lint", "--no-default-rules", &f], b"");
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("bad.toml:7: rule \"dup\": duplicate rule id (first defined at"),
        "{out}"
    );
    assert!(
        out.contains("bad.toml:14: rule \"empty\": pattern matches the empty string"),
        "{out}"
    );
    assert!(
        out.contains(
            "bad.toml:20: rule \"fancy-unbounded\": engine = \"fancy\" needs backtrack_limit"
        ),
        "{out}"
    );
    assert!(
        out.contains("bad.toml:26: rule \"bad-validator\": unknown validator \"luhnn\""),
        "{out}"
    );
}

#[test]
fn lint_rejects_invalid_patterns_and_toml_syntax_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        &dir,
        "re.toml",
        "[[rules]]\nid = \"r\"\ncategory = \"secret\"\n\npattern = '[a-'\n",
    );
    let out = stdout(&run(&["rules", "lint", "--no-default-rules", &f], b""));
    assert!(
        out.contains("re.toml:5: rule \"r\": invalid pattern"),
        "{out}"
    );
    let g = write(
        &dir,
        "syntax.toml",
        "[[rules]]\nid = \"r\"\ncategory = \"secret\"\npattern = 'x'\nunknown_field = 1\n",
    );
    let out = stdout(&run(&["rules", "lint", "--no-default-rules", &g], b""));
    assert!(
        out.contains("syntax.toml:5:") && out.contains("unknown field"),
        "{out}"
    );
}

#[test]
fn lint_requires_hit_and_miss_tests_and_warns_on_nested_quantifiers_in_fancy_rules() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        &dir,
        "t.toml",
        r#"[[rules]]
id = "no-tests"
category = "secret"
pattern = 'tok_[a-z]{8}'
keywords = ["tok_"]

[[rules]]
id = "redos"
category = "secret"
engine = "fancy"
backtrack_limit = 1000
pattern = '(a+)+b'
keywords = ["a"]
[[rules.tests]]
hit = "aab"
[[rules.tests]]
miss = "c"
"#,
    );
    let out = stdout(&run(&["rules", "lint", "--no-default-rules", &f], b""));
    assert!(
        out.contains("rule \"no-tests\": needs at least one `hit` and one `miss`"),
        "{out}"
    );
    assert!(
        out.contains("warning:") && out.contains("rule \"redos\": nested unbounded quantifiers"),
        "{out}"
    );
}

#[test]
fn rules_test_fails_on_a_wrong_case_and_names_rule_and_case() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        &dir,
        "u.toml",
        r#"[[rules]]
id = "acme-key"
category = "secret"
pattern = '\bacme_[a-z0-9]{16}\b'
keywords = ["acme_"]
[[rules.tests]]
hit = "key acme_0123456789abcdef here"
output = "key [REDACTED:acme-key] here"
[[rules.tests]]
miss = "acme_0123456789abcdef"
"#,
    );
    let o = run(&["rules", "test", "--no-default-rules", &f], b"");
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out.contains("u.toml:2: rule \"acme-key\": test 2: miss case was changed"),
        "{out}"
    );
    assert!(out.contains("2 cases: 1 passed, 1 failed"), "{out}");
}

#[test]
fn fancy_rules_that_hit_their_backtrack_limit_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        &dir,
        "f.toml",
        r#"[[rules]]
id = "slow"
category = "secret"
engine = "fancy"
backtrack_limit = 1000
pattern = '((a|aa)+)\1b'
keywords = ["a"]
[[rules.tests]]
hit = "aab"
[[rules.tests]]
miss = "c"
"#,
    );
    let input = format!("{} and ann@example.com\n", "a".repeat(40));
    let o = run(&["--stats", "--rules", &f], input.as_bytes());
    let out = stdout(&o);
    assert_eq!(out, "[REDACTED:slow:error]\n", "the whole value is masked");
    assert!(stderr(&o).contains("engine/rule_error=1"), "{}", stderr(&o));
}

#[test]
fn list_shows_id_category_and_action() {
    let out = stdout(&run(&["rules", "list"], b""));
    assert!(out.lines().next().unwrap().starts_with("ID"));
    let card = out.lines().find(|l| l.starts_with("credit-card ")).unwrap();
    assert!(
        card.contains(" pii ") && card.contains(" partial "),
        "{card}"
    );
}

#[test]
fn rules_list_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    // More output than a pipe holds (64 KiB), so the writer meets the
    // closed pipe.
    let dir = tempfile::tempdir().unwrap();
    let mut many = String::new();
    for i in 0..1000 {
        many.push_str(&format!(
            "[[rules]]\nid = \"r{i}\"\ncategory = \"secret\"\ndescription = \"{}\"\npattern = 'zq{i}x'\n\
             [[rules.tests]]\nhit = \"zq{i}x\"\n[[rules.tests]]\nmiss = \"a\"\n",
            "d".repeat(200)
        ));
    }
    let path = write(&dir, "many.toml", &many);
    let mut child = std::process::Command::new(bin())
        .args(["rules", "list", &path])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader goes away after one line (`| head -1`).
    let out = child.wait_with_output().unwrap();
    assert!(first.starts_with("ID"), "{first}");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("internal error"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
