//! Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` endpoints.
//!
//! Labels are few and bounded (`source`, `sink`, `rule`, `stage`, `kind`,
//! `reason`, `result`): ids from the config and the ruleset, never anything
//! taken from log content.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::engine::{FailureKind, Ruleset, Stats};

/// Every metric the agent exports.
pub struct Metrics {
    pub registry: Registry,
    pub events_in: IntCounterVec,
    pub bytes_in: IntCounterVec,
    pub events_out: IntCounterVec,
    pub bytes_out: IntCounterVec,
    pub redactions: IntCounterVec,
    pub compliance_checked: IntCounter,
    pub compliance_failures: IntCounter,
    pub secondary_failures: IntCounterVec,
    pub dlq_events: IntCounterVec,
    pub buffer_batches: IntGaugeVec,
    pub buffer_bytes: IntGaugeVec,
    pub buffer_dropped: IntCounterVec,
    pub buffer_corrupt: IntGaugeVec,
    pub latency: Histogram,
    pub file_lag_bytes: IntGaugeVec,
    pub file_truncations: IntCounterVec,
    pub kubernetes_events: IntCounterVec,
    pub kafka_lag: IntGaugeVec,
    pub reloads: IntCounterVec,
    pub sink_errors: IntCounterVec,
    /// Component states for `/readyz`.
    pub health: Mutex<BTreeMap<String, String>>,
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    pub fn new() -> prometheus::Result<Arc<Metrics>> {
        let r = Registry::new_custom(Some("redactd".into()), None)?;
        let compliance_checked = IntCounter::new(
            "compliance_checked_total",
            "Events whose output was verified",
        )?;
        r.register(Box::new(compliance_checked.clone()))?;
        let compliance_failures = IntCounter::new(
            "compliance_failures_total",
            "Residual sensitive matches found by verify (each masked its whole value)",
        )?;
        r.register(Box::new(compliance_failures.clone()))?;
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "processing_seconds",
                "Time from a batch being read to its delivery by a sink",
            )
            .buckets(vec![0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
        )?;
        r.register(Box::new(latency.clone()))?;
        Ok(Arc::new(Metrics {
            events_in: counter_vec(&r, "events_in_total", "Events read", &["source"])?,
            bytes_in: counter_vec(&r, "bytes_in_total", "Bytes read", &["source"])?,
            events_out: counter_vec(&r, "events_out_total", "Events delivered", &["sink"])?,
            bytes_out: counter_vec(&r, "bytes_out_total", "Bytes delivered", &["sink"])?,
            redactions: counter_vec(
                &r,
                "redactions_total",
                "Values redacted, by rule",
                &["rule"],
            )?,
            secondary_failures: counter_vec(
                &r,
                "secondary_failures_total",
                "Events the agent could not process as intended (handled fail-closed)",
                &["stage", "kind"],
            )?,
            dlq_events: counter_vec(
                &r,
                "dlq_events_total",
                "Events sent to the dead-letter path",
                &["reason"],
            )?,
            buffer_batches: gauge_vec(
                &r,
                "buffer_batches",
                "Batches waiting for a sink",
                &["sink"],
            )?,
            buffer_bytes: gauge_vec(&r, "buffer_bytes", "Bytes waiting for a sink", &["sink"])?,
            buffer_dropped: counter_vec(
                &r,
                "buffer_dropped_events_total",
                "Events dropped by a full memory buffer in drop_newest mode",
                &["sink"],
            )?,
            buffer_corrupt: gauge_vec(
                &r,
                "buffer_corrupt_records",
                "Corrupt disk-buffer records skipped since start",
                &["sink"],
            )?,
            file_lag_bytes: gauge_vec(
                &r,
                "file_lag_bytes",
                "Bytes in watched files not read yet",
                &["source"],
            )?,
            file_truncations: counter_vec(
                &r,
                "file_truncations_total",
                "Truncated files read again from 0",
                &["source"],
            )?,
            kafka_lag: gauge_vec(
                &r,
                "kafka_consumer_lag",
                "Messages in a partition not consumed yet (from librdkafka statistics)",
                &["source", "topic", "partition"],
            )?,
            kubernetes_events: counter_vec(
                &r,
                "kubernetes_events_total",
                "Container events per namespace (opt-in per source; bounded, extra namespaces count as _other)",
                &["source", "namespace"],
            )?,
            reloads: counter_vec(
                &r,
                "rule_reloads_total",
                "Rule reloads by result",
                &["result"],
            )?,
            sink_errors: counter_vec(
                &r,
                "sink_errors_total",
                "Failed sink writes (retried)",
                &["sink"],
            )?,
            compliance_checked,
            compliance_failures,
            latency,
            registry: r,
            health: Mutex::new(BTreeMap::new()),
        }))
    }

    /// Creates every rule's series (at 0), so dashboards see all rules
    /// from the start (at start and on reload).
    pub fn bind_rules(&self, rs: &Ruleset) {
        for r in rs.rules() {
            self.redactions.with_label_values(&[&r.id]);
        }
    }

    /// Adds one batch's engine counters; `rs` is the ruleset that made them
    /// (rule indices are per ruleset, and a reload may have swapped it).
    pub fn observe(&self, rs: &Ruleset, st: &Stats) {
        for (r, n) in rs.rules().iter().zip(&st.rule_hits) {
            if *n > 0 {
                self.redactions.with_label_values(&[&r.id]).inc_by(*n);
            }
        }
        self.compliance_checked.inc_by(st.compliance_checked);
        self.compliance_failures.inc_by(st.compliance_failures);
        for k in FailureKind::ALL {
            let n = st.failures(k);
            if n > 0 {
                self.secondary_failures
                    .with_label_values(&[k.stage(), k.as_str()])
                    .inc_by(n);
            }
        }
    }

    pub fn set_health(&self, component: &str, state: &str) {
        if let Ok(mut h) = self.health.lock() {
            h.insert(component.to_string(), state.to_string());
        }
    }

    fn ready(&self) -> (bool, String) {
        let h = self.health.lock().map(|h| h.clone()).unwrap_or_default();
        let ok = !h.is_empty() && h.values().all(|s| s == "ok");
        (
            ok,
            serde_json::json!({ "ready": ok, "components": h }).to_string(),
        )
    }

    fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Serves the endpoints on `addr` until the runtime stops.
pub async fn serve(addr: SocketAddr, m: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %addr, "metrics endpoint listening");
    loop {
        let (stream, _) = listener.accept().await?;
        let m = m.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(req, m.clone()));
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    m: Arc<Metrics>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, ctype, body) = match req.uri().path() {
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", m.render()),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" => {
            let (ok, body) = m.ready();
            let s = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (s, "application/json", body)
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let resp = Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"internal error"))));
    Ok(resp)
}
