//! What the Kafka source, sink and dead-letter topic share: building a
//! librdkafka client config (with secrets read from the environment or
//! files, never written in the agent's config), and a client context that
//! turns librdkafka's logs, errors and statistics into our logs, readiness
//! and metrics.
//!
//! Why `rdkafka` (librdkafka, bundled and statically linked): it is the
//! client the Kafka ecosystem tests against (idempotence, transactions,
//! consumer groups with cooperative rebalancing, SASL/TLS), and it ships a
//! mock cluster that speaks the real protocol, which our tests use.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;

/// Errors building a Kafka client. Never holds a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum KafkaConfigError {
    #[error("librdkafka property {key:?}: environment variable {var} is not set")]
    MissingEnv { key: String, var: String },
    #[error("librdkafka property {key:?}: cannot read {path}: {error}")]
    File {
        key: String,
        path: String,
        error: std::io::Error,
    },
    #[error("librdkafka property {key:?} is set by redactd itself ({why})")]
    Reserved { key: String, why: &'static str },
    #[error("{0}")]
    Client(String),
}

/// Resolves `${env:NAME}` and `${file:/path}` (whole value) in a
/// pass-through property, so passwords and keys stay out of the config
/// file. A file's trailing newline is dropped.
pub fn resolve(key: &str, value: &str) -> Result<String, KafkaConfigError> {
    if let Some(var) = value
        .strip_prefix("${env:")
        .and_then(|v| v.strip_suffix('}'))
    {
        return std::env::var(var).map_err(|_| KafkaConfigError::MissingEnv {
            key: key.into(),
            var: var.into(),
        });
    }
    if let Some(path) = value
        .strip_prefix("${file:")
        .and_then(|v| v.strip_suffix('}'))
    {
        let mut s = std::fs::read_to_string(path).map_err(|e| KafkaConfigError::File {
            key: key.into(),
            path: path.into(),
            error: e,
        })?;
        while s.ends_with('\n') || s.ends_with('\r') {
            s.pop();
        }
        return Ok(s);
    }
    Ok(value.to_string())
}

/// A librdkafka config: our settings first, then the user's pass-through
/// properties (TLS, SASL, tuning), except those in `reserved`, which the
/// agent's guarantees depend on.
pub fn client_config(
    brokers: &str,
    ours: &[(&str, &str)],
    user: &BTreeMap<String, String>,
    reserved: &[(&str, &'static str)],
) -> Result<ClientConfig, KafkaConfigError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c.set("statistics.interval.ms", "1000");
    for (k, v) in ours {
        c.set(*k, *v);
    }
    for (k, v) in user {
        if let Some((_, why)) = reserved.iter().find(|(r, _)| r == k) {
            return Err(KafkaConfigError::Reserved {
                key: k.clone(),
                why,
            });
        }
        c.set(k, resolve(k, v)?);
    }
    // librdkafka's own debug contexts can include message contents; our
    // log level stays at what librdkafka logs without `debug`.
    c.set_log_level(RDKafkaLogLevel::Warning);
    Ok(c)
}

/// Live state of one Kafka client, shared with the agent's metrics thread.
#[derive(Debug, Default)]
pub struct ClientState {
    /// Some broker is up (from statistics, refreshed every second).
    pub brokers_up: AtomicBool,
    /// A statistics report arrived at least once.
    pub seen_stats: AtomicBool,
    /// Fatal client error (the client must be rebuilt).
    pub fatal: AtomicBool,
    /// Consumer lag per (topic, partition), from statistics; -1 unknown.
    pub lag: Mutex<HashMap<(String, i32), i64>>,
    /// Errors reported by librdkafka (counted, not logged one by one).
    pub errors: AtomicU64,
}

impl ClientState {
    /// For `/readyz`.
    pub fn health(&self) -> &'static str {
        if self.fatal.load(Ordering::Relaxed) {
            "fatal_error"
        } else if !self.seen_stats.load(Ordering::Relaxed) {
            "connecting"
        } else if self.brokers_up.load(Ordering::Relaxed) {
            "ok"
        } else {
            "brokers_down"
        }
    }
}

/// Client context: librdkafka's logs to `tracing`, statistics to
/// [`ClientState`]. librdkafka log lines carry broker names and error
/// texts, not message contents (we never enable its `debug` contexts).
pub struct Context {
    pub name: String,
    pub state: std::sync::Arc<ClientState>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(client = %self.name, facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(client = %self.name, facility = fac, "{log_message}")
            }
            _ => tracing::debug!(client = %self.name, facility = fac, "{log_message}"),
        }
    }

    fn stats(&self, st: Statistics) {
        let up = st
            .brokers
            .values()
            .any(|b| b.state == "UP" && b.source != "internal" && b.source != "logical");
        self.state.brokers_up.store(up, Ordering::Relaxed);
        self.state.seen_stats.store(true, Ordering::Relaxed);
        if let Ok(mut lag) = self.state.lag.lock() {
            lag.clear();
            for (topic, t) in &st.topics {
                for (p, part) in &t.partitions {
                    // -1 is librdkafka's internal "unassigned" partition.
                    if *p >= 0 && part.consumer_lag >= 0 {
                        lag.insert((topic.clone(), *p), part.consumer_lag);
                    }
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.state.errors.fetch_add(1, Ordering::Relaxed);
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.state.brokers_up.store(false, Ordering::Relaxed);
        }
        if matches!(error, KafkaError::Global(RDKafkaErrorCode::Fatal)) {
            self.state.fatal.store(true, Ordering::Relaxed);
        }
        tracing::warn!(client = %self.name, error = %error, "{reason}");
    }
}

/// Implements `ClientContext` for a context type by handing every callback
/// to its `base: Context` field (the consumer and producer contexts add
/// their own callbacks on top).
macro_rules! delegate_client_context {
    ($t:ty) => {
        impl rdkafka::client::ClientContext for $t {
            fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
                self.base.log(level, fac, msg)
            }
            fn stats(&self, st: rdkafka::statistics::Statistics) {
                self.base.stats(st)
            }
            fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
                self.base.error(error, reason)
            }
        }
    };
}
pub(crate) use delegate_client_context;

/// Whether a produce error will never succeed for this message (it goes to
/// the dead-letter path) rather than being worth a retry.
pub fn is_permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidMessage
            | C::InvalidRecord
            | C::PolicyViolation
            | C::InvalidTimestamp
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_the_environment_or_files() {
        // SAFETY-free: a variable name no other test uses.
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(
            resolve("sasl.password", &format!("${{file:{}}}", f.display())).unwrap(),
            "s3cret"
        );
        assert_eq!(resolve("acks", "all").unwrap(), "all");
        let e = resolve("sasl.password", "${env:REDACTD_TEST_SURELY_UNSET}").unwrap_err();
        assert!(e.to_string().contains("REDACTD_TEST_SURELY_UNSET"));
        assert!(!e.to_string().contains("s3cret"));
    }

    #[test]
    fn reserved_properties_are_refused() {
        let mut user = BTreeMap::new();
        user.insert("enable.auto.commit".to_string(), "true".to_string());
        let e = client_config(
            "b:9092",
            &[],
            &user,
            &[("enable.auto.commit", "offsets are committed after delivery")],
        )
        .unwrap_err();
        assert!(e.to_string().contains("enable.auto.commit"), "{e}");
    }

    #[test]
    fn size_and_validity_errors_are_permanent_timeouts_are_not() {
        assert!(is_permanent(RDKafkaErrorCode::MessageSizeTooLarge));
        assert!(!is_permanent(RDKafkaErrorCode::MessageTimedOut));
        assert!(!is_permanent(RDKafkaErrorCode::NotEnoughReplicas));
    }
}
