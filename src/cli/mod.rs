//! The command line. The one place where errors become messages (`anyhow`)
//! and exit codes.
//!
//! Exit codes: 0 success; 1 `scan` found something, or `rules test`/`lint`
//! failed; 2 bad usage, unreadable or invalid rules, or an I/O error.

mod agent;
mod filter;
mod rules;
mod scan;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::engine::{ActionKind, CompileOptions, Ruleset, Source, spec::builtin_sources};

/// Default longest line handled whole: 16 MiB. Longer lines are redacted in
/// pieces, as text, and counted.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "redactd",
    version,
    about = "Removes secrets and personal data from log lines.",
    long_about = "Removes secrets and personal data from log lines.\n\nWith no command, reads lines from stdin and writes them redacted to stdout (the same as `redactd filter`).",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    filter: FilterArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Redact stdin to stdout, line by line (the default command).
    Filter(FilterArgs),
    /// Report values the rules would redact in existing files; changes nothing.
    /// Exit status 1 when anything was found.
    Scan(ScanArgs),
    /// Run the agent: sources -> redaction -> sinks, with checkpoints and
    /// metrics. Without --config: stdin to stdout on the built-in rules.
    Run(RunArgs),
    /// Check an agent config and the rules it names, without starting.
    Validate(RunArgs),
    /// Work with rule files: test, lint, list.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand, Debug)]
enum RulesCommand {
    /// Run every rule's test cases (built-in and user rules).
    Test(RulePathArgs),
    /// Check rule files: patterns, ids, tests, limits.
    Lint(RulePathArgs),
    /// Show each rule's id, category and action.
    List(RulePathArgs),
}

/// Which rules to load.
#[derive(Args, Debug, Clone, Default)]
pub struct RuleArgs {
    /// A rule file or a directory of `*.toml` rule files; repeatable. Added
    /// to the built-in rules.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Do not load the built-in rules.
    #[arg(long)]
    pub no_default_rules: bool,
    /// Environment variable holding the key for `hash` actions.
    #[arg(long, value_name = "VAR")]
    pub hash_key_env: Option<String>,
    /// File holding the key for `hash` actions (trailing newline ignored).
    #[arg(long, value_name = "PATH", conflicts_with = "hash_key_env")]
    pub hash_key_file: Option<PathBuf>,
    /// Time one line may spend in the rules (per MiB for longer lines);
    /// values not searched in time are masked as
    /// `[REDACTED:time-budget]`. 0: no limit. [default: 1000]
    #[arg(long, value_name = "MS")]
    pub time_budget_ms: Option<u64>,
}

/// The per-line time budget when none is configured: far above what any
/// built-in rule needs (the worst adversarial input costs 0.25 s/MiB), low
/// enough that a pathological user rule cannot hold a worker for long.
pub const DEFAULT_TIME_BUDGET_MS: u64 = 1000;

#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Print per-rule hit counts and failure counts to stderr at exit.
    #[arg(long)]
    pub stats: bool,
    /// Longest line handled whole; longer lines are redacted in pieces.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE_BYTES, value_parser = parse_max_line)]
    pub max_line_bytes: usize,
    /// Worker threads redacting in parallel (output order is kept); 0 means
    /// one per available core.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
}

/// Line limits from 1 KiB to 1 GiB: positions inside a line are 32-bit.
fn parse_max_line(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if (1024..=1 << 30).contains(&n) {
        Ok(n)
    } else {
        Err("must be between 1024 and 1073741824".into())
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The agent config (TOML).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Files or directories (searched recursively) to scan.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Longest line handled whole; longer lines are scanned in pieces.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE_BYTES, value_parser = parse_max_line)]
    pub max_line_bytes: usize,
}

#[derive(Args, Debug)]
pub struct RulePathArgs {
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Extra rule files or directories (same as --rules).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Entry point used by `main`.
pub fn main() -> i32 {
    install_panic_hook();
    let cli = Cli::parse();
    let result = match cli.command {
        None => filter::run(&cli.filter),
        Some(Command::Filter(a)) => filter::run(&a),
        Some(Command::Scan(a)) => scan::run(&a),
        Some(Command::Run(a)) => agent::run(&a),
        Some(Command::Validate(a)) => agent::validate(&a),
        Some(Command::Rules { command }) => match command {
            RulesCommand::Test(a) => rules::test(&a),
            RulesCommand::Lint(a) => rules::lint(&a),
            RulesCommand::List(a) => rules::list(&a),
        },
    };
    match result {
        Ok(code) => code,
        // `redactd rules list | head`: the reader has what it wanted.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(is_broken_pipe) =>
        {
            0
        }
        Err(e) => {
            eprintln!("redactd: error: {e:#}");
            2
        }
    }
}

/// A panic message could quote data; print only where it happened.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "redactd: internal error at {at} (details withheld: they could contain log content)"
        );
    }));
}

/// Reads every rule source the arguments name, built-ins first.
pub(crate) fn load_sources(args: &RuleArgs, extra: &[PathBuf]) -> Result<Vec<Source>> {
    let mut sources = if args.no_default_rules {
        Vec::new()
    } else {
        builtin_sources()
    };
    for p in args.rules.iter().chain(extra) {
        sources.extend(Source::read_path(p)?);
    }
    if sources.is_empty() {
        bail!("no rules: --no-default-rules given and no --rules PATH");
    }
    Ok(sources)
}

/// Loads and compiles the rules the arguments name.
pub(crate) fn load_ruleset(args: &RuleArgs, extra: &[PathBuf]) -> Result<Ruleset> {
    let sources = load_sources(args, extra)?;
    let hash_key = read_hash_key(args)?;
    let have_key = hash_key.is_some();
    let time_budget = match args.time_budget_ms.unwrap_or(DEFAULT_TIME_BUDGET_MS) {
        0 => None,
        ms => Some(std::time::Duration::from_millis(ms)),
    };
    let opts = CompileOptions {
        hash_key,
        time_budget,
    };
    let rs = Ruleset::compile(&sources, &opts).context("invalid rules")?;
    if !have_key && rs.rules().iter().any(|r| r.action == ActionKind::Hash) {
        eprintln!(
            "redactd: warning: rules use action \"hash\" but no key was given (--hash-key-env or --hash-key-file): using a random key, hash tokens correlate within this run only"
        );
    }
    Ok(rs)
}

fn read_hash_key(args: &RuleArgs) -> Result<Option<Vec<u8>>> {
    if let Some(var) = &args.hash_key_env {
        let v = std::env::var_os(var)
            .with_context(|| format!("--hash-key-env: environment variable {var} is not set"))?;
        if v.is_empty() {
            bail!("--hash-key-env: environment variable {var} is empty");
        }
        return Ok(Some(v.into_encoded_bytes()));
    }
    if let Some(path) = &args.hash_key_file {
        let mut v =
            std::fs::read(path).with_context(|| format!("--hash-key-file {}", path.display()))?;
        while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            v.pop();
        }
        if v.is_empty() {
            bail!("--hash-key-file {}: file is empty", path.display());
        }
        return Ok(Some(v));
    }
    Ok(None)
}

/// Whether an I/O error is the reader of our stdout going away
/// (`redactd ... | head`): a normal way to stop, not an error.
pub(crate) fn is_broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}
