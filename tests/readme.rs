//! The README's rule example is a real rule file: it must lint and pass its
//! own tests, so the documentation cannot drift from the format.

mod common;

use common::*;

#[test]
fn readme_rule_example_lints_and_passes_its_tests() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Rule format")
        .nth(1)
        .expect("README has a Rule format section");
    let example = section
        .split("```toml")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a toml example");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("example.toml");
    std::fs::write(&f, example).unwrap();
    let f = f.to_str().unwrap();
    let lint = run(&["rules", "lint", "--no-default-rules", f], b"");
    assert!(
        lint.status.success() && stdout(&lint).contains("0 errors, 0 warnings"),
        "{}",
        stdout(&lint)
    );
    let test = run(&["rules", "test", "--no-default-rules", f], b"");
    assert!(test.status.success(), "{}", stdout(&test));
    assert!(
        stdout(&test).contains("2 cases: 2 passed, 0 failed"),
        "{}",
        stdout(&test)
    );
}
