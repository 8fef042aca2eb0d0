//! Agent configuration (`redactd run --config agent.toml`).
//!
//! Typed and strict: unknown keys are errors, every error names the file and
//! line. Defaults make the empty config a working agent: stdin to stdout with
//! the built-in rules.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Errors from reading or checking a config file. Never holds log content.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Where checkpoints live. Default `/var/lib/redactd`, or
    /// `$REDACTD_DATA_DIR`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub rules: RulesConfig,
    #[serde(default = "default_sources")]
    pub sources: Vec<SourceConfig>,
    #[serde(default = "default_sinks")]
    pub sinks: Vec<SinkConfig>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
}

/// Where events go that no sink will ever take. Always on: without it a
/// permanent rejection would have to either block forever or lose data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// JSON-lines file; default `<data_dir>/dead-letter.jsonl`.
    pub path: Option<PathBuf>,
    /// A Kafka topic instead of the file: one message per event, the
    /// redacted payload as value, reason/stage/rules/origin as headers.
    pub topic: Option<String>,
    /// Brokers for `topic`.
    pub brokers: Option<String>,
    #[serde(default)]
    pub librdkafka: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Rule files or directories added to (or replacing) the built-in rules.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    #[serde(default)]
    pub no_default_rules: bool,
    /// Environment variable with the key for `hash` actions.
    pub hash_key_env: Option<String>,
    /// File with the key for `hash` actions.
    pub hash_key_file: Option<PathBuf>,
    /// Time one event may spend in the rules, per MiB for larger events;
    /// values not searched in time are masked. 0: no limit; default 1000.
    pub time_budget_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    Stdin {
        #[serde(default = "default_stdin_id")]
        id: String,
    },
    File(Box<FileSourceConfig>),
    Kafka(Box<KafkaSourceConfig>),
}

/// A Kafka consumer in a consumer group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    pub id: String,
    /// `host:port,host:port`.
    pub brokers: String,
    /// Topic names; an entry starting with `^` is a regular expression.
    pub topics: Vec<String>,
    pub group_id: String,
    /// Where a group without committed offsets starts.
    #[serde(default)]
    pub start_at: KafkaStart,
    /// A message larger than this goes to the dead-letter path (redacted in
    /// pieces), not to the sinks.
    #[serde(default = "default_max_line")]
    pub max_message_bytes: usize,
    /// Redact message keys too (default: keys are kept as they are, since
    /// they decide partitioning downstream).
    #[serde(default)]
    pub redact_key: bool,
    /// How often delivered offsets are committed (also on rebalance and
    /// shutdown).
    #[serde(default = "default_commit_ms")]
    pub commit_interval_ms: u64,
    /// librdkafka properties passed through (TLS, SASL, tuning); a value
    /// `${env:NAME}` or `${file:/path}` is read from there.
    #[serde(default)]
    pub librdkafka: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaStart {
    #[default]
    Earliest,
    Latest,
}

/// Delivery guarantee of a Kafka sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaDelivery {
    #[default]
    AtLeastOnce,
    /// Kafka transactions: output and consumed offsets commit together.
    /// Needs exactly one Kafka source and this as the only sink.
    ExactlyOnce,
}

impl SourceConfig {
    pub fn id(&self) -> &str {
        match self {
            SourceConfig::Stdin { id } => id,
            SourceConfig::File(f) => &f.id,
            SourceConfig::Kafka(k) => &k.id,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    pub id: String,
    /// Glob patterns (`/var/log/app/*.log`).
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where to start in a file never seen before, found at startup.
    /// Files that appear later are always read from the beginning.
    #[serde(default)]
    pub start_at: StartAt,
    /// How often the stat loop looks at files (milliseconds). inotify (via
    /// `notify`) wakes it sooner when it can.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// How long a rotated-away or deleted file is kept open for late writes.
    #[serde(default = "default_rotate_wait_ms")]
    pub rotate_wait_ms: u64,
    /// Longest line handled whole (bytes).
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
    /// What the lines are: plain log lines, or container-runtime envelopes
    /// (`cri`, `docker`, `auto`) that are decoded, joined and re-emitted as
    /// JSON events.
    #[serde(default)]
    pub format: LineFormat,
    /// Largest message joined from partial container records (bytes); a
    /// join past it is cut (fail closed, counted).
    #[serde(default = "default_max_line")]
    pub max_message_bytes: usize,
    /// Field names of the events a container format emits.
    #[serde(default)]
    pub fields: crate::decode::container::Fields,
    /// Kubernetes metadata from the log path, and namespace filters.
    /// Needs a container `format`.
    pub kubernetes: Option<crate::sources::kubernetes::KubernetesConfig>,
}

/// The shape of a file source's lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineFormat {
    /// Each line is one event (JSON or text).
    #[default]
    Lines,
    Cri,
    Docker,
    Auto,
}

impl LineFormat {
    /// The container envelope to decode, if any.
    pub fn container(self) -> Option<crate::decode::container::Format> {
        use crate::decode::container::Format;
        match self {
            LineFormat::Lines => None,
            LineFormat::Cri => Some(Format::Cri),
            LineFormat::Docker => Some(Format::Docker),
            LineFormat::Auto => Some(Format::Auto),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    #[default]
    Beginning,
    End,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    Stdout {
        #[serde(default = "default_stdout_id")]
        id: String,
        #[serde(default)]
        buffer: BufferConfig,
        /// Source ids this sink takes; empty means every source.
        #[serde(default)]
        inputs: Vec<String>,
    },
    File {
        id: String,
        path: PathBuf,
        /// Rotate when the file would grow past this many bytes (0: never).
        #[serde(default)]
        max_bytes: u64,
        /// fsync after each batch before acknowledging it.
        #[serde(default)]
        fsync: bool,
        #[serde(default)]
        buffer: BufferConfig,
        /// Source ids this sink takes; empty means every source.
        #[serde(default)]
        inputs: Vec<String>,
    },
    Http {
        id: String,
        /// Endpoint receiving `POST`s of NDJSON.
        url: String,
        /// `gzip` (default) or `none`.
        #[serde(default = "default_compression")]
        compression: String,
        #[serde(default = "default_http_timeout")]
        timeout_ms: u64,
        /// Extra request headers (for tokens prefer a file or env var in
        /// your deployment tooling; they are never logged).
        #[serde(default)]
        headers: std::collections::BTreeMap<String, String>,
        /// Retries before a batch goes to the dead-letter path; 0: retry
        /// until delivered (backpressure instead of dead-lettering).
        #[serde(default)]
        max_retries: u32,
        #[serde(default)]
        buffer: BufferConfig,
        /// Source ids this sink takes; empty means every source.
        #[serde(default)]
        inputs: Vec<String>,
    },
    Kafka(Box<KafkaSinkConfig>),
}

/// A Kafka producer writing each event as one message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    pub id: String,
    pub brokers: String,
    pub topic: String,
    #[serde(default)]
    pub delivery: KafkaDelivery,
    /// `none`, `gzip`, `snappy`, `lz4` (default), `zstd`.
    #[serde(default = "default_kafka_compression")]
    pub compression: String,
    /// How long librdkafka tries one message before reporting it failed
    /// (then the agent retries it with backoff, or dead-letters it).
    #[serde(default = "default_kafka_timeout_ms")]
    pub message_timeout_ms: u64,
    /// For `exactly_once`: the producer's transactional id. Must be stable
    /// per instance and unique across instances (default
    /// `redactd-<sink id>-<hostname>`), so a restarted instance fences its
    /// predecessor's open transaction.
    pub transactional_id: Option<String>,
    #[serde(default)]
    pub librdkafka: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub buffer: BufferConfig,
    #[serde(default)]
    pub inputs: Vec<String>,
}

/// A sink's buffer (see `buffer.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// `memory` (default) or `disk`.
    #[serde(rename = "type", default)]
    pub kind: BufferKind,
    /// Memory: most events waiting.
    #[serde(default = "default_buffer_events")]
    pub max_events: usize,
    /// Memory or disk: most bytes waiting.
    #[serde(default = "default_buffer_bytes")]
    pub max_bytes: u64,
    /// Memory: `block` (default; backpressure to the sources) or
    /// `drop_newest` (drop and count).
    #[serde(default)]
    pub when_full: WhenFull,
    /// Disk: `always` (default; sync before acknowledging) or `never`
    /// (survives a process crash, not a power loss).
    #[serde(default)]
    pub fsync: DiskFsync,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            kind: BufferKind::Memory,
            max_events: default_buffer_events(),
            max_bytes: default_buffer_bytes(),
            when_full: WhenFull::Block,
            fsync: DiskFsync::Always,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BufferKind {
    #[default]
    Memory,
    Disk,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    #[default]
    Block,
    DropNewest,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFsync {
    #[default]
    Always,
    Never,
}

fn default_buffer_events() -> usize {
    10_000
}
fn default_buffer_bytes() -> u64 {
    64 * 1024 * 1024
}

impl SinkConfig {
    pub fn id(&self) -> &str {
        match self {
            SinkConfig::Stdout { id, .. } => id,
            SinkConfig::File { id, .. } => id,
            SinkConfig::Http { id, .. } => id,
            SinkConfig::Kafka(k) => &k.id,
        }
    }

    pub fn buffer(&self) -> &BufferConfig {
        match self {
            SinkConfig::Stdout { buffer, .. }
            | SinkConfig::File { buffer, .. }
            | SinkConfig::Http { buffer, .. } => buffer,
            SinkConfig::Kafka(k) => &k.buffer,
        }
    }

    /// Source ids this sink takes; empty means all.
    pub fn inputs(&self) -> &[String] {
        match self {
            SinkConfig::Stdout { inputs, .. }
            | SinkConfig::File { inputs, .. }
            | SinkConfig::Http { inputs, .. } => inputs,
            SinkConfig::Kafka(k) => &k.inputs,
        }
    }

    /// Whether events of source `id` go to this sink.
    pub fn takes(&self, id: &str) -> bool {
        self.inputs().is_empty() || self.inputs().iter().any(|i| i == id)
    }

    /// Retries before dead-lettering (0: forever).
    pub fn max_retries(&self) -> u32 {
        match self {
            SinkConfig::Http { max_retries, .. } => *max_retries,
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(Default)]
pub struct MetricsConfig {
    /// `host:port` for `/metrics`, `/healthz`, `/readyz`; empty: off.
    #[serde(default)]
    pub address: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Redaction threads; 0: one per core.
    #[serde(default)]
    pub threads: usize,
    /// Batches waiting between stages (memory bound: batches are ≤ 256 KiB).
    #[serde(default = "default_queue")]
    pub queue_batches: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            threads: 0,
            queue_batches: default_queue(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long SIGTERM may take to drain (milliseconds).
    #[serde(default = "default_grace_ms")]
    pub grace_period_ms: u64,
    /// How often checkpoints are written while running (milliseconds).
    #[serde(default = "default_checkpoint_ms")]
    pub checkpoint_interval_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            grace_period_ms: default_grace_ms(),
            checkpoint_interval_ms: default_checkpoint_ms(),
        }
    }
}

impl ShutdownConfig {
    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_period_ms)
    }
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("REDACTD_DATA_DIR")
        .map_or_else(|| PathBuf::from("/var/lib/redactd"), PathBuf::from)
}
fn default_sources() -> Vec<SourceConfig> {
    vec![SourceConfig::Stdin {
        id: default_stdin_id(),
    }]
}
fn default_sinks() -> Vec<SinkConfig> {
    vec![SinkConfig::Stdout {
        id: default_stdout_id(),
        buffer: BufferConfig::default(),
        inputs: Vec::new(),
    }]
}
fn default_compression() -> String {
    "gzip".into()
}
fn default_http_timeout() -> u64 {
    10_000
}
fn default_stdin_id() -> String {
    "stdin".into()
}
fn default_stdout_id() -> String {
    "stdout".into()
}
fn default_poll_ms() -> u64 {
    250
}
fn default_rotate_wait_ms() -> u64 {
    2000
}
fn default_max_line() -> usize {
    crate::cli::DEFAULT_MAX_LINE_BYTES
}
fn default_queue() -> usize {
    8
}
fn default_grace_ms() -> u64 {
    10_000
}
fn default_commit_ms() -> u64 {
    1000
}
fn default_kafka_compression() -> String {
    "lz4".into()
}
fn default_kafka_timeout_ms() -> u64 {
    30_000
}
fn default_checkpoint_ms() -> u64 {
    1000
}

impl AgentConfig {
    /// The config used when `run` gets no `--config`: stdin to stdout.
    pub fn default_config() -> AgentConfig {
        // An empty document gives every default.
        toml::from_str("").unwrap_or_else(|_| unreachable!("the empty config is valid"))
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            path: name.clone(),
            error: e,
        })?;
        let line_of = |off: usize| {
            1 + text[..off.min(text.len())]
                .bytes()
                .filter(|b| *b == b'\n')
                .count()
        };
        let cfg: AgentConfig = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: name.clone(),
            line: e.span().map_or(0, |s| line_of(s.start)),
            message: e.message().to_string(),
        })?;
        cfg.check().map_err(|message| ConfigError::Invalid {
            path: name.clone(),
            line: 0,
            message,
        })?;
        Ok(cfg)
    }

    /// The source and sink of exactly-once mode, when the config asks for
    /// it (the check guarantees the shape).
    pub fn exactly_once(&self) -> Option<(&KafkaSourceConfig, &KafkaSinkConfig)> {
        match (&self.sources[..], &self.sinks[..]) {
            ([SourceConfig::Kafka(src)], [SinkConfig::Kafka(sink)])
                if sink.delivery == KafkaDelivery::ExactlyOnce =>
            {
                Some((src, sink))
            }
            _ => None,
        }
    }

    /// Checks what serde cannot: unique ids, usable values.
    pub fn check(&self) -> Result<(), String> {
        let mut ids = std::collections::HashSet::new();
        for s in &self.sources {
            if !ids.insert(format!("source:{}", s.id())) {
                return Err(format!("duplicate source id {:?}", s.id()));
            }
            if let SourceConfig::File(f) = s {
                if f.include.is_empty() {
                    return Err(format!(
                        "source {:?}: include needs at least one glob",
                        f.id
                    ));
                }
                for g in f.include.iter().chain(&f.exclude) {
                    glob::Pattern::new(g)
                        .map_err(|e| format!("source {:?}: bad glob {g:?}: {e}", f.id))?;
                }
                if !(1024..=1 << 30).contains(&f.max_line_bytes) {
                    return Err(format!(
                        "source {:?}: max_line_bytes must be between 1024 and 1073741824",
                        f.id
                    ));
                }
                if !(1024..=1 << 30).contains(&f.max_message_bytes) {
                    return Err(format!(
                        "source {:?}: max_message_bytes must be between 1024 and 1073741824",
                        f.id
                    ));
                }
                if let Some(k) = &f.kubernetes {
                    if f.format == LineFormat::Lines {
                        return Err(format!(
                            "source {:?}: kubernetes needs format = \"cri\", \"docker\" or \"auto\"",
                            f.id
                        ));
                    }
                    for g in k.include_namespaces.iter().chain(&k.exclude_namespaces) {
                        glob::Pattern::new(g).map_err(|e| {
                            format!("source {:?}: bad namespace glob {g:?}: {e}", f.id)
                        })?;
                    }
                }
            }
        }
        for s in &self.sources {
            if let SourceConfig::Kafka(k) = s {
                let id = &k.id;
                if k.brokers.trim().is_empty() {
                    return Err(format!("source {id:?}: brokers is empty"));
                }
                if k.topics.is_empty() || k.topics.iter().any(|t| t.trim().is_empty()) {
                    return Err(format!("source {id:?}: topics needs at least one name"));
                }
                for t in k.topics.iter().filter(|t| t.starts_with('^')) {
                    regex::Regex::new(t)
                        .map_err(|e| format!("source {id:?}: bad topic pattern {t:?}: {e}"))?;
                }
                if k.group_id.trim().is_empty() {
                    return Err(format!("source {id:?}: group_id is empty"));
                }
                if !(1024..=1 << 30).contains(&k.max_message_bytes) {
                    return Err(format!(
                        "source {id:?}: max_message_bytes must be between 1024 and 1073741824"
                    ));
                }
            }
        }
        if self
            .sources
            .iter()
            .filter(|s| matches!(s, SourceConfig::Stdin { .. }))
            .count()
            > 1
        {
            return Err("at most one stdin source".into());
        }
        for s in &self.sinks {
            if !ids.insert(format!("sink:{}", s.id())) {
                return Err(format!("duplicate sink id {:?}", s.id()));
            }
            if let SinkConfig::Http {
                id,
                url,
                compression,
                ..
            } = s
            {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "sink {id:?}: url must start with http:// or https://"
                    ));
                }
                if compression != "gzip" && compression != "none" {
                    return Err(format!(
                        "sink {id:?}: compression must be \"gzip\" or \"none\""
                    ));
                }
            }
        }
        if self.sinks.is_empty() {
            return Err("at least one sink is needed".into());
        }
        for s in &self.sinks {
            if let SinkConfig::Kafka(k) = s {
                let id = &k.id;
                if k.brokers.trim().is_empty() || k.topic.trim().is_empty() {
                    return Err(format!("sink {id:?}: brokers and topic are needed"));
                }
                if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&k.compression.as_str()) {
                    return Err(format!(
                        "sink {id:?}: compression must be none, gzip, snappy, lz4 or zstd"
                    ));
                }
                if k.delivery == KafkaDelivery::ExactlyOnce {
                    let kafka_sources = self
                        .sources
                        .iter()
                        .filter(|s| matches!(s, SourceConfig::Kafka(_)))
                        .count();
                    if kafka_sources != 1 || self.sources.len() != 1 || self.sinks.len() != 1 {
                        return Err(format!(
                            "sink {id:?}: delivery = \"exactly_once\" needs exactly one source, of type kafka, and this as the only sink"
                        ));
                    }
                    if k.buffer.kind == BufferKind::Disk {
                        return Err(format!(
                            "sink {id:?}: exactly_once commits output and offsets in one transaction; a disk buffer cannot take part (remove [sinks.buffer])"
                        ));
                    }
                }
            }
        }
        if self.dead_letter.topic.is_some()
            && self
                .dead_letter
                .brokers
                .as_deref()
                .is_none_or(|b| b.trim().is_empty())
        {
            return Err("dead_letter.topic needs dead_letter.brokers".into());
        }
        if self.dead_letter.topic.is_some() && self.dead_letter.path.is_some() {
            return Err("dead_letter: set either path (file) or topic (Kafka), not both".into());
        }
        // Routing: every input names a source, and every source reaches a
        // sink (an event no sink takes would be dropped silently).
        for s in &self.sinks {
            for i in s.inputs() {
                if !self.sources.iter().any(|src| src.id() == i) {
                    return Err(format!("sink {:?}: inputs names no source {i:?}", s.id()));
                }
            }
        }
        for src in &self.sources {
            if !self.sinks.iter().any(|s| s.takes(src.id())) {
                return Err(format!(
                    "source {:?} goes to no sink (no sink lists it in inputs)",
                    src.id()
                ));
            }
        }
        if !self.metrics.address.is_empty()
            && self
                .metrics
                .address
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(format!(
                "metrics.address {:?} is not host:port",
                self.metrics.address
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<AgentConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, s).unwrap();
        AgentConfig::load(&p)
    }

    #[test]
    fn empty_config_is_stdin_to_stdout() {
        let c = parse("").unwrap();
        assert!(matches!(c.sources[..], [SourceConfig::Stdin { .. }]));
        assert!(matches!(c.sinks[..], [SinkConfig::Stdout { .. }]));
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let e = parse("data_dir = \"/tmp/x\"\n\n[metrics]\naddress = \"127.0.0.1:9\"\nport = 1\n")
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("agent.toml:5") && m.contains("unknown field"),
            "{m}"
        );
    }

    #[test]
    fn duplicate_ids_and_bad_globs_are_rejected() {
        let e = parse("[[sinks]]\ntype=\"stdout\"\n[[sinks]]\ntype=\"stdout\"\n").unwrap_err();
        assert!(e.to_string().contains("duplicate sink id"));
        let e = parse("[[sources]]\ntype=\"file\"\nid=\"a\"\ninclude=[\"[\"]\n").unwrap_err();
        assert!(e.to_string().contains("bad glob"));
    }

    #[test]
    fn sink_inputs_must_name_sources_and_every_source_must_reach_a_sink() {
        let two = "[[sources]]\ntype=\"stdin\"\n[[sources]]\ntype=\"file\"\nid=\"f\"\ninclude=[\"/x/*.log\"]\n";
        let e = parse(&format!(
            "{two}[[sinks]]\ntype=\"stdout\"\ninputs=[\"nope\"]\n"
        ))
        .unwrap_err();
        assert!(
            e.to_string().contains("inputs names no source \"nope\""),
            "{e}"
        );
        let e = parse(&format!(
            "{two}[[sinks]]\ntype=\"stdout\"\ninputs=[\"f\"]\n"
        ))
        .unwrap_err();
        assert!(
            e.to_string().contains("source \"stdin\" goes to no sink"),
            "{e}"
        );
        let c = parse(&format!(
            "{two}[[sinks]]\ntype=\"stdout\"\ninputs=[\"f\"]\n[[sinks]]\ntype=\"file\"\nid=\"o\"\npath=\"/x/o\"\ninputs=[\"stdin\"]\n"
        ))
        .unwrap();
        assert!(c.sinks[0].takes("f") && !c.sinks[0].takes("stdin"));
        assert!(c.sinks[1].takes("stdin") && !c.sinks[1].takes("f"));
    }

    #[test]
    fn kubernetes_settings_need_a_container_format_and_valid_globs() {
        let src = "[[sources]]\ntype=\"file\"\nid=\"k\"\ninclude=[\"/var/log/containers/*.log\"]\n";
        let e = parse(&format!("{src}[sources.kubernetes]\n")).unwrap_err();
        assert!(e.to_string().contains("kubernetes needs format"), "{e}");
        let e = parse(&format!(
            "{src}format=\"cri\"\n[sources.kubernetes]\nexclude_namespaces=[\"[\"]\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("bad namespace glob"), "{e}");
        let e = parse(&format!("{src}format=\"podman\"\n")).unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
        let c = parse(&format!(
            "{src}format=\"docker\"\n[sources.fields]\nmessage=\"log\"\n[sources.kubernetes]\nfields={{namespace=\"ns\"}}\n"
        ))
        .unwrap();
        let SourceConfig::File(f) = &c.sources[0] else {
            panic!("file source expected")
        };
        assert_eq!(f.fields.message, "log");
        assert_eq!(f.kubernetes.as_ref().unwrap().fields.namespace, "ns");
    }
}
