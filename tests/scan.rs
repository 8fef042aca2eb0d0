//! `redactd scan`: an audit that reports where, never what.

mod common;

use common::*;

#[test]
fn scan_reports_file_line_column_and_rule_and_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    std::fs::write(&f, "clean line\nuser ann@example.com logged in\n{\"k\":\"v\",\"token\":\"ghp_abcdefghijklmnopqrstuvwxyz0123456789\"}\n").unwrap();
    std::fs::write(dir.path().join("clean.log"), "nothing here\n").unwrap();
    let o = run(&["scan", dir.path().to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let p = f.display().to_string();
    assert!(out.contains(&format!("{p}:2:6: email [pii]")), "{out}");
    assert!(
        out.contains(&format!("{p}:3:")) && out.contains("[credential]"),
        "{out}"
    );
    assert!(
        !out.contains("ann@example.com")
            && !out.contains("ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
        "{out}"
    );
    assert!(
        stderr(&o).contains("scanned 2 files, 4 lines"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn scan_of_clean_files_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), "version 1.2.3 deployed\n").unwrap();
    let o = run(&["scan", dir.path().to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(o.stdout.is_empty());
}

#[test]
fn scan_of_a_missing_file_is_an_error() {
    let o = run(&["scan", "/nonexistent/redactd-test.log"], b"");
    assert_eq!(o.status.code(), Some(2));
}
