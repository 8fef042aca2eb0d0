//! redactd: a log-pipeline redaction agent.
//!
//! The crate is laid out as the pipeline it implements:
//!
//! ```text
//! sources/ ──▶ decode/ ──▶ engine/ (rules, redact, verify) ──▶ buffer ──▶ sinks/
//!    ▲         (pipeline: batches, workers, input order)          │   └─▶ dlq
//!    └──────────────── acknowledgements (checkpoints) ◀───────────┘
//! ```
//!
//! - [`sources`]: where lines come from (stdin, tailed files), line
//!   splitting, checkpoints.
//! - [`decode`]: JSON tokenizing (and later container-log envelopes).
//! - [`engine`]: the rule format, the compiled ruleset, redaction and verify.
//! - [`pipeline`]: the engine stage shared by `filter` and `run`.
//! - [`buffer`], [`sinks`], [`dlq`]: per-sink buffers, outputs, dead letters.
//! - [`agent`]: `redactd run`, wiring the above with acknowledgements,
//!   reload and shutdown; [`config`] and [`metrics`] beside it.
//! - [`cli`]: the command line: `filter` (the default), `scan`, `rules`,
//!   `run`, `validate`.

pub mod agent;
pub mod buffer;
pub mod cli;
pub mod config;
pub mod decode;
pub mod dlq;
pub mod engine;
pub mod exactly_once;
pub mod fsutil;
pub mod kafka;
pub mod metrics;
pub mod pipeline;
pub mod sinks;
pub mod sources;
