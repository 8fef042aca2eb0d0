//! The shipped deployment files cannot rot: every manifest under
//! `deploy/kubernetes/` parses, the DaemonSet has what a node collector
//! needs (probes, host paths, security context, scrape annotations) and
//! agrees with the config it mounts, that config passes `redactd validate`,
//! its rule file passes `redactd rules test`, and the Dockerfile builds
//! with the same script CI builds and tests with.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Every document of every manifest, as JSON values.
fn manifests() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = fs::read_dir(repo("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            if !v.is_null() {
                out.push((f.file_name().unwrap().to_string_lossy().into_owned(), v));
            }
        }
    }
    out
}

fn find<'a>(all: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    all.iter()
        .map(|(_, v)| v)
        .find(|v| v["kind"] == kind && v["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"))
}

/// Writes a ConfigMap's agent.toml with its absolute paths moved into `dir`
/// (and the files it names created there), then runs `redactd validate`.
fn validate_configmap_config(cm: &Value, rules: &Value, dir: &Path) -> (bool, String) {
    let mut text = str_of(&cm["data"]["agent.toml"], "agent.toml").to_string();
    let rules_dir = dir.join("rules");
    fs::create_dir_all(&rules_dir).unwrap();
    if let Some(map) = rules["data"].as_object() {
        for (name, body) in map {
            fs::write(rules_dir.join(name), str_of(body, name)).unwrap();
        }
    }
    fs::create_dir_all(dir.join("secret")).unwrap();
    fs::write(dir.join("secret/hash-key"), "k8s-test-key\n").unwrap();
    for (from, to) in [
        ("/var/lib/redactd", dir.join("data")),
        ("/etc/redactd/rules", rules_dir.clone()),
        ("/etc/redactd/secret/hash-key", dir.join("secret/hash-key")),
    ] {
        text = text.replace(from, to.to_str().unwrap());
    }
    let cfg = dir.join("agent.toml");
    fs::write(&cfg, text).unwrap();
    let o = run(&["validate", "--config", cfg.to_str().unwrap()], b"");
    (o.status.success(), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn every_manifest_parses_and_the_kustomization_lists_existing_files() {
    let all = manifests();
    assert!(all.len() >= 5, "{} documents", all.len());
    for (f, v) in &all {
        assert!(
            v["kind"].is_string() && v["apiVersion"].is_string(),
            "{f}: {v}"
        );
    }
    let k = all
        .iter()
        .find(|(_, v)| v["kind"] == "Kustomization")
        .map(|(_, v)| v)
        .expect("kustomization.yaml");
    for r in k["resources"].as_array().unwrap() {
        assert!(
            repo("deploy/kubernetes")
                .join(str_of(r, "resource"))
                .exists(),
            "{r}"
        );
    }
}

#[test]
fn the_daemonset_config_validates_and_its_rules_pass_their_tests() {
    let all = manifests();
    let cm = find(&all, "ConfigMap", "redactd-config");
    let rules = find(&all, "ConfigMap", "redactd-rules");
    let d = tempfile::tempdir().unwrap();
    let (ok, out) = validate_configmap_config(cm, rules, d.path());
    assert!(ok, "redactd validate failed: {out}");
    // The site rules are really loaded: two more than the built-in set.
    assert!(out.contains("config ok: 1 sources, 1 sinks"), "{out}");
    let rules_in = |s: &str| -> usize {
        s.split(", ")
            .last()
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let cfg = d.path().join("agent.toml");
    let without: String = fs::read_to_string(&cfg)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("paths ="))
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg2 = d.path().join("builtin-only.toml");
    fs::write(&cfg2, without).unwrap();
    let o = run(&["validate", "--config", cfg2.to_str().unwrap()], b"");
    assert_eq!(
        rules_in(out.trim()),
        rules_in(stdout(&o).trim()) + 2,
        "{out} vs {}",
        stdout(&o)
    );
    let rule_file = d.path().join("rules/custom.toml");
    let o = run(
        &[
            "rules",
            "test",
            "--no-default-rules",
            rule_file.to_str().unwrap(),
        ],
        b"",
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("2 rules"), "{}", stdout(&o));
}

#[test]
fn the_daemonset_has_probes_host_paths_a_locked_down_container_and_scrape_annotations() {
    let all = manifests();
    let ds = find(&all, "DaemonSet", "redactd");
    let cm = find(&all, "ConfigMap", "redactd-config");
    let (cfg, metrics_port, grace_ms) = ports_of(cm);
    let data_dir = cfg["data_dir"].as_str().unwrap();

    let pod = &ds["spec"]["template"];
    let spec = &pod["spec"];
    let c = &spec["containers"][0];
    check_pod(pod, metrics_port, grace_ms);
    // Runs on every node.
    assert!(
        spec["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["operator"] == "Exists" && t.get("key").is_none()),
        "tolerations must match every taint"
    );
    // Host paths: /var/log read-only, the data dir writable and on the host
    // (so checkpoints survive the pod), the config where args point.
    let volumes = spec["volumes"].as_array().unwrap();
    let mounts = c["volumeMounts"].as_array().unwrap();
    let mount_of = |path: &str| {
        mounts
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("nothing mounted at {path}"))
    };
    let volume_of = |m: &Value| {
        volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap_or_else(|| panic!("no volume {}", m["name"]))
            .clone()
    };
    let varlog = mount_of("/var/log");
    assert_eq!(varlog["readOnly"], true);
    assert_eq!(volume_of(varlog)["hostPath"]["path"], "/var/log");
    let data = mount_of(data_dir);
    assert_ne!(data["readOnly"], true);
    assert_eq!(volume_of(data)["hostPath"]["path"], data_dir);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| str_of(a, "arg"))
        .collect();
    assert_eq!(args[..2], ["run", "--config"]);
    let cfg_mount = mount_of(args[2]);
    assert_eq!(volume_of(cfg_mount)["configMap"]["name"], "redactd-config");
    // Every other mount is read-only.
    for m in mounts {
        if m["mountPath"] != data_dir {
            assert_eq!(m["readOnly"], true, "{m}");
        }
    }
    // The source reads the kubelet's symlinks.
    assert_eq!(
        cfg["sources"][0]["include"][0].as_str(),
        Some("/var/log/containers/*.log")
    );
}

/// What every workload needs: scrape annotations and a metrics port that
/// match the config, probes on /healthz and /readyz, requests and limits, a
/// grace period longer than the agent's drain, a locked-down container.
fn check_pod(pod: &Value, metrics_port: u64, grace_ms: u64) {
    let spec = &pod["spec"];
    let c = &spec["containers"][0];
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], metrics_port.to_string());
    assert_eq!(ann["prometheus.io/path"], "/metrics");
    let port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("metrics port");
    assert_eq!(port["containerPort"].as_u64(), Some(metrics_port));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
    for kind in ["requests", "limits"] {
        let r = &c["resources"][kind];
        assert!(
            r["cpu"].is_string() && r["memory"].is_string(),
            "resources.{kind}"
        );
    }
    let tgps = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        tgps * 1000 > grace_ms,
        "terminationGracePeriodSeconds {tgps} <= grace_period_ms"
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(sc["capabilities"].get("add").is_none());
    let seccomp = if sc["seccompProfile"].is_null() {
        &spec["securityContext"]["seccompProfile"]
    } else {
        &sc["seccompProfile"]
    };
    assert_eq!(seccomp["type"], "RuntimeDefault");
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert!(spec.get("hostNetwork").is_none() && spec.get("hostPID").is_none());
}

/// The metrics port and drain time a ConfigMap's agent.toml sets.
fn ports_of(cm: &Value) -> (toml::Value, u64, u64) {
    let cfg: toml::Value = toml::from_str(str_of(&cm["data"]["agent.toml"], "agent.toml")).unwrap();
    let port = cfg["metrics"]["address"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let grace = cfg["shutdown"]["grace_period_ms"].as_integer().unwrap() as u64;
    (cfg, port, grace)
}

#[test]
fn the_kafka_stream_processor_validates_runs_as_non_root_and_has_probes() {
    let all = manifests();
    let cm = find(&all, "ConfigMap", "redactd-kafka-config");
    let ss = find(&all, "StatefulSet", "redactd-kafka");
    let (cfg, port, grace) = ports_of(cm);
    check_pod(&ss["spec"]["template"], port, grace);
    let sc = &ss["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(cfg["sinks"][0]["delivery"].as_str(), Some("exactly_once"));
    let d = tempfile::tempdir().unwrap();
    let text = str_of(&cm["data"]["agent.toml"], "agent.toml")
        .replace("/var/lib/redactd", d.path().to_str().unwrap());
    let p = d.path().join("agent.toml");
    fs::write(&p, text).unwrap();
    let o = run(&["validate", "--config", p.to_str().unwrap()], b"");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    // The shipped example of the same mode validates too.
    let o = run(
        &[
            "validate",
            "--config",
            repo("examples/kafka-stream.toml").to_str().unwrap(),
        ],
        b"",
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn the_dockerfile_builds_with_the_script_ci_builds_and_tests_with() {
    let dockerfile = fs::read_to_string(repo("Dockerfile")).unwrap();
    let test_sh = fs::read_to_string(repo("scripts/test.sh")).unwrap();
    let build = fs::read_to_string(repo("scripts/build-release.sh")).unwrap();
    let cargo_toml = fs::read_to_string(repo("Cargo.toml")).unwrap();
    let run_lines: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("RUN "))
        .collect();
    assert!(
        run_lines
            .iter()
            .any(|l| l.contains("sh scripts/build-release.sh")),
        "the Dockerfile must build with scripts/build-release.sh"
    );
    assert!(
        !dockerfile.contains("cargo build"),
        "a second build command in the Dockerfile"
    );
    assert!(test_sh.contains("sh scripts/build-release.sh"));
    assert!(test_sh.contains("REDACTD_BIN=\"$PWD/target/release/redactd\""));
    assert!(build.contains("cargo build --release --locked --bin redactd"));
    assert!(dockerfile.contains("target/release/redactd"));
    let profile: toml::Value = toml::from_str(&cargo_toml).unwrap();
    let rel = &profile["profile"]["release"];
    assert_eq!(rel["lto"].as_str(), Some("fat"));
    assert_eq!(rel["codegen-units"].as_integer(), Some(1));
    // The runtime image: non-root by default, no shell, data dir a volume.
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(runtime.starts_with("gcr.io/distroless/"), "{runtime}");
    assert!(runtime.contains("USER 65532:65532"));
    assert!(runtime.contains("VOLUME [\"/var/lib/redactd\"]"));
    // The toolchain in the image is the one CI uses.
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&rustc.stdout);
    let minor = version
        .split_whitespace()
        .nth(1)
        .unwrap()
        .rsplit_once('.')
        .unwrap()
        .0;
    assert!(
        dockerfile.contains(&format!("FROM rust:{minor}-")),
        "image toolchain differs from {version}"
    );
}
