//! `redactd run` and `redactd validate`: load the config and the rules it
//! names, then run (or only check) the agent.

use std::io::Write;

use anyhow::{Context, Result};

use super::{RuleArgs, RunArgs, load_ruleset};
use crate::config::AgentConfig;
use crate::engine::Ruleset;

fn load(args: &RunArgs) -> Result<(AgentConfig, Ruleset, RuleArgs)> {
    let cfg = match &args.config {
        Some(p) => AgentConfig::load(p)?,
        None => AgentConfig::default_config(),
    };
    let rule_args = RuleArgs {
        rules: cfg.rules.paths.clone(),
        no_default_rules: cfg.rules.no_default_rules,
        hash_key_env: cfg.rules.hash_key_env.clone(),
        hash_key_file: cfg.rules.hash_key_file.clone(),
        time_budget_ms: cfg.rules.time_budget_ms,
    };
    let rs = load_ruleset(&rule_args, &[])?;
    Ok((cfg, rs, rule_args))
}

pub fn run(args: &RunArgs) -> Result<i32> {
    // The agent's own logs: JSON lines on stderr, level from RUST_LOG
    // (default info). They carry ids, paths and counts, never log content.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let ctl = crate::agent::Control::install().context("signal handling")?;
    let (cfg, rs, rule_args) = load(args)?;
    let loader: crate::agent::RuleLoader =
        Box::new(move || load_ruleset(&rule_args, &[]).map_err(|e| format!("{e:#}")));
    crate::agent::run(cfg, rs, loader, ctl).context("agent")?;
    Ok(0)
}

pub fn validate(args: &RunArgs) -> Result<i32> {
    let (cfg, rs, _) = load(args)?;
    writeln!(
        std::io::stdout().lock(),
        "config ok: {} sources, {} sinks, {} rules",
        cfg.sources.len(),
        cfg.sinks.len(),
        rs.rules().len()
    )?;
    Ok(0)
}
