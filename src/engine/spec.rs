//! The rule file format: what people write and review.
//!
//! A rule file is TOML with one `[[rules]]` block per rule and that rule's
//! `[[rules.tests]]` right below it. This module only *reads* files into
//! [`RuleSpec`]s, keeping byte spans so that every later error (a bad
//! pattern, a duplicate id) can point at `file:line`. Compiling the specs
//! into something that runs is [`super::ruleset`]'s job.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

use super::RuleError;

/// One rule file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// What kind of data a rule protects. Used in reports and `rules list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Tokens and keys issued by a provider (cloud keys, API tokens).
    Secret,
    /// Things people type or systems assemble: passwords, auth headers,
    /// connection strings, session cookies.
    Credential,
    /// Personal data: e-mail, phone, card numbers, national ids, addresses.
    Pii,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Secret => "secret",
            Category::Credential => "credential",
            Category::Pii => "pii",
        }
    }
}

/// The regex engine a pattern is compiled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PatternEngine {
    /// Rust `regex`: linear time, no look-around. The default, and the only
    /// engine whose rules can join the one-pass multi-pattern prefilter.
    #[default]
    Regex,
    /// `fancy-regex`: look-around and backreferences, backtracking. Needs
    /// `backtrack_limit`; a rule that hits it fails closed.
    Fancy,
}

/// What happens to a value a rule found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Replace with `[REDACTED:<id>]` (or the rule's `replacement`).
    #[default]
    Mask,
    /// Replace with `[HASH:<id>:<16 hex>]`, a keyed HMAC-SHA256 of the value:
    /// equal values give equal tokens, so events can still be correlated.
    Hash,
    /// Keep the last `keep_last` characters: `[REDACTED:<id>:…1111]`.
    Partial,
    /// Remove the JSON member entirely; in text it masks.
    Drop,
}

/// Which part of a match is the secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum GroupSpec {
    Index(usize),
    Name(String),
}

/// One rule as written in a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub category: Category,
    pub pattern: Option<Spanned<String>>,
    #[serde(default)]
    pub engine: PatternEngine,
    pub backtrack_limit: Option<usize>,
    pub group: Option<GroupSpec>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub keywords_case_sensitive: bool,
    #[serde(default)]
    pub keys: Vec<String>,
    pub validator: Option<Spanned<String>>,
    pub min_entropy: Option<f64>,
    #[serde(default)]
    pub action: ActionKind,
    pub keep_last: Option<usize>,
    pub replacement: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub tests: Vec<TestSpec>,
}

fn yes() -> bool {
    true
}

/// A rule's own test case: `hit` must be redacted by the rule, `miss` must
/// come out untouched. `output` pins the exact redacted line of a `hit`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    pub hit: Option<String>,
    pub miss: Option<String>,
    pub output: Option<String>,
}

/// A rule file's text and where it came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// Shown in messages: a path, or `builtin:rules/<name>.toml`.
    pub name: String,
    pub text: String,
}

impl Source {
    /// Reads a rule file, or every `*.toml` in a directory (sorted by name,
    /// so rule order, and with it tie-breaking priority, is stable).
    pub fn read_path(path: &Path) -> Result<Vec<Source>, RuleError> {
        let io = |e: std::io::Error, p: &Path| RuleError::Io {
            path: p.display().to_string(),
            error: e,
        };
        let meta = std::fs::metadata(path).map_err(|e| io(e, path))?;
        let mut files: Vec<PathBuf> = Vec::new();
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).map_err(|e| io(e, path))? {
                let p = entry.map_err(|e| io(e, path))?.path();
                if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
                    files.push(p);
                }
            }
            files.sort();
        } else {
            files.push(path.to_path_buf());
        }
        files
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).map_err(|e| io(e, &p))?;
                Ok(Source {
                    name: p.display().to_string(),
                    text,
                })
            })
            .collect()
    }

    /// Whether this is one of the built-in rule files, name and text as
    /// compiled into the binary (and so as the test suite checked them).
    pub fn is_builtin(&self) -> bool {
        BUILTIN_RULE_FILES
            .iter()
            .any(|(name, text)| self.text == *text && self.name == format!("builtin:rules/{name}"))
    }

    /// 1-based line of a byte offset, for `file:line` messages.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        1 + memchr::memchr_iter(b'\n', &self.text.as_bytes()[..end]).count()
    }

    /// Line starts, for many `line_of` questions on one file (a file of
    /// 100,000 rules asks one per rule: counting from the start each time
    /// would be quadratic).
    pub fn line_index(&self) -> LineIndex {
        LineIndex(memchr::memchr_iter(b'\n', self.text.as_bytes()).collect())
    }

    /// Parses the file. TOML errors already carry line and column.
    pub fn parse(&self) -> Result<RuleFile, RuleError> {
        toml::from_str(&self.text).map_err(|e| RuleError::Syntax {
            file: self.name.clone(),
            line: e.span().map(|s| self.line_of(s.start)).unwrap_or(0),
            message: e.message().to_string(),
        })
    }
}

/// Offsets of a file's newlines; see [`Source::line_index`].
pub struct LineIndex(Vec<usize>);

impl LineIndex {
    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        1 + self.0.partition_point(|&nl| nl < offset)
    }
}

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// The built-in library, compiled into the binary from `rules/*.toml`.
pub fn builtin_sources() -> Vec<Source> {
    BUILTIN_RULE_FILES
        .iter()
        .map(|(name, text)| Source {
            name: format!("builtin:rules/{name}"),
            text: (*text).to_string(),
        })
        .collect()
}
