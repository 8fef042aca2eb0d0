//! redactd: a log-pipeline redaction agent.
//!
//! The crate is laid out as the pipeline it implements:
//!
//! ```text
//! sources/ ──▶ decode/ ──▶ engine/ (rules, redact, verify) ──▶ stdout
//! ```
//!
//! - [`sources`]: where lines come from, and how they are split.
//! - [`decode`]: JSON tokenizing (and later container-log envelopes).
//! - [`engine`]: the rule format, the compiled ruleset, redaction and verify.
//! - [`cli`]: the command line: `filter` (the default), `scan`, `rules`.

pub mod agent;
pub mod buffer;
pub mod cli;
pub mod config;
pub mod decode;
pub mod dlq;
pub mod engine;
pub mod fsutil;
pub mod metrics;
pub mod pipeline;
pub mod sinks;
pub mod sources;
