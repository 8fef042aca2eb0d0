//! Golden files: `fixtures/golden/<name>` redacted with the built-in rules
//! must equal `fixtures/golden/<name>.out`. Reviewing a rule change means
//! reviewing the diff of these files; regenerate them with
//! `REDACTD_BLESS=1 cargo test --test golden`.

mod common;

use common::*;

#[test]
fn golden_fixtures_redact_to_their_expected_output() {
    let dir = fixture("golden");
    let bless = std::env::var_os("REDACTD_BLESS").is_some();
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x != "out"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 5, "golden fixtures missing");
    for input in inputs {
        let expected_path = input.with_file_name(format!(
            "{}.out",
            input.file_name().unwrap().to_str().unwrap()
        ));
        let got = redact(&std::fs::read_to_string(&input).unwrap());
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        assert_eq!(
            got,
            want,
            "{} differs from {}",
            input.display(),
            expected_path.display()
        );
    }
}
