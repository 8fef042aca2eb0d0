//! Kubernetes metadata read from a container log's path.
//!
//! The kubelet lays out container logs in two places, and both names carry
//! the pod's identity, so no API server call is needed (and none can fail,
//! be slow, or need RBAC):
//!
//! - `/var/log/pods/<namespace>_<pod>_<pod uid>/<container>/<restart>.log`
//!   (the files themselves; `<restart>.log.<timestamp>[.gz]` once rotated);
//! - `/var/log/containers/<pod>_<namespace>_<container>-<container id>.log`,
//!   symlinks into the first.
//!
//! [`PodMeta::from_path`] reads whichever form it is given and, for a
//! symlink, the target too, so a file found through `/var/log/containers`
//! still gets its pod uid. Pod names, namespaces and container names are
//! DNS labels or subdomains: they never contain `_`, which is what makes
//! the split unambiguous. A container name may contain `-`; the container
//! id is what follows the last one.

use std::path::Path;

use serde::Deserialize;

use crate::decode::container::json_string;

/// Where a container's log came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodMeta {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: Option<String>,
    pub container: String,
    pub container_id: Option<String>,
}

impl PodMeta {
    /// Metadata for the log file at `path` (as found, before following a
    /// symlink), or `None` if it is not in a kubelet layout.
    pub fn from_path(path: &Path) -> Option<PodMeta> {
        let own = parse(path);
        let target = std::fs::read_link(path).ok().and_then(|t| {
            let t = if t.is_relative() {
                path.parent()?.join(t)
            } else {
                t
            };
            parse(&t)
        });
        match (own, target) {
            (Some(mut a), Some(b)) => {
                a.pod_uid = a.pod_uid.or(b.pod_uid);
                a.container_id = a.container_id.or(b.container_id);
                Some(a)
            }
            (a, b) => a.or(b),
        }
    }

    /// The metadata as a JSON object with the configured field names.
    pub fn to_json(&self, f: &MetaFields) -> Vec<u8> {
        let mut out = Vec::with_capacity(200);
        let mut first = true;
        let mut put = |out: &mut Vec<u8>, name: &str, v: Option<&str>| {
            if let (false, Some(v)) = (name.is_empty(), v) {
                out.push(if first { b'{' } else { b',' });
                first = false;
                json_string(out, name);
                out.push(b':');
                json_string(out, v);
            }
        };
        put(&mut out, &f.namespace, Some(&self.namespace));
        put(&mut out, &f.pod, Some(&self.pod));
        put(&mut out, &f.pod_uid, self.pod_uid.as_deref());
        put(&mut out, &f.container, Some(&self.container));
        put(&mut out, &f.container_id, self.container_id.as_deref());
        if first {
            out.push(b'{');
        }
        out.push(b'}');
        out
    }
}

fn parse(path: &Path) -> Option<PodMeta> {
    let name = path.file_name()?.to_str()?;
    let parent = path.parent()?;
    let dir = parent.file_name()?.to_str()?;
    if dir == "containers" {
        // <pod>_<namespace>_<container>-<id>.log
        let stem = name.strip_suffix(".log")?;
        let mut it = stem.splitn(3, '_');
        let (pod, ns, rest) = (it.next()?, it.next()?, it.next()?);
        let (container, id) = rest.rsplit_once('-')?;
        if [pod, ns, container, id].iter().any(|s| s.is_empty()) {
            return None;
        }
        return Some(PodMeta {
            namespace: ns.into(),
            pod: pod.into(),
            pod_uid: None,
            container: container.into(),
            container_id: Some(id.into()),
        });
    }
    // <namespace>_<pod>_<uid>/<container>/<n>.log[.<timestamp>[.gz]]
    let pod_dir = parent.parent()?;
    if pod_dir.parent()?.file_name()? != "pods" {
        return None;
    }
    let restart = name.split('.').next()?;
    if restart.is_empty() || !restart.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut it = pod_dir.file_name()?.to_str()?.splitn(3, '_');
    let (ns, pod, uid) = (it.next()?, it.next()?, it.next()?);
    if [ns, pod, uid, dir].iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(PodMeta {
        namespace: ns.into(),
        pod: pod.into(),
        pod_uid: Some(uid.into()),
        container: dir.into(),
        container_id: None,
    })
}

/// Names of the metadata fields; an empty name leaves a field out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetaFields {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    pub container_id: String,
}

impl Default for MetaFields {
    fn default() -> MetaFields {
        MetaFields {
            namespace: "namespace".into(),
            pod: "pod".into(),
            pod_uid: "pod_uid".into(),
            container: "container".into(),
            container_id: "container_id".into(),
        }
    }
}

/// Kubernetes settings of a file source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Namespaces to read (globs); empty means all.
    #[serde(default)]
    pub include_namespaces: Vec<String>,
    /// Namespaces never read (globs); wins over `include_namespaces`.
    #[serde(default)]
    pub exclude_namespaces: Vec<String>,
    #[serde(default)]
    pub fields: MetaFields,
    /// Count events per namespace in `redactd_kubernetes_events_total`.
    /// Off by default: a label per namespace is unbounded cardinality.
    #[serde(default)]
    pub namespace_metric: bool,
    /// With `namespace_metric`: namespaces past this many share the label
    /// value `_other`, so a cluster with churning namespaces cannot blow up
    /// the metrics.
    #[serde(default = "default_max_label_values")]
    pub max_label_values: usize,
}

fn default_max_label_values() -> usize {
    100
}

impl KubernetesConfig {
    /// Whether files of `namespace` are read.
    pub fn wants(&self, namespace: &str) -> bool {
        let m = |globs: &[String]| {
            globs
                .iter()
                .filter_map(|g| glob::Pattern::new(g).ok())
                .any(|p| p.matches(namespace))
        };
        (self.include_namespaces.is_empty() || m(&self.include_namespaces))
            && !m(&self.exclude_namespaces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn containers_symlink_names_give_pod_namespace_container_and_id() {
        let m = PodMeta::from_path(&PathBuf::from(
            "/var/log/containers/web-7d4b9c-x2x_shop_nginx-proxy-0123abcd.log",
        ))
        .unwrap();
        assert_eq!(m.pod, "web-7d4b9c-x2x");
        assert_eq!(m.namespace, "shop");
        assert_eq!(m.container, "nginx-proxy");
        assert_eq!(m.container_id.as_deref(), Some("0123abcd"));
    }

    #[test]
    fn pods_paths_give_namespace_pod_uid_and_container_also_when_rotated() {
        for name in [
            "0.log",
            "3.log",
            "0.log.20261122-101010",
            "0.log.20261122-101010.gz",
        ] {
            let p = PathBuf::from(format!(
                "/var/log/pods/shop_web-1_5f0c-11ee-uid/nginx/{name}"
            ));
            let m = PodMeta::from_path(&p).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(
                (m.namespace.as_str(), m.pod.as_str(), m.container.as_str()),
                ("shop", "web-1", "nginx")
            );
            assert_eq!(m.pod_uid.as_deref(), Some("5f0c-11ee-uid"));
        }
    }

    #[test]
    fn other_paths_have_no_metadata() {
        for p in [
            "/var/log/app/server.log",
            "/var/log/containers/noseparators.log",
            "/var/log/pods/ns_pod/c/0.log",
            "/var/log/pods/ns_pod_uid/c/current.log",
        ] {
            assert_eq!(PodMeta::from_path(&PathBuf::from(p)), None, "{p}");
        }
    }

    #[test]
    fn a_symlink_adds_its_targets_pod_uid() {
        let d = tempfile::tempdir().unwrap();
        let pods = d.path().join("pods/ns_pod-a_uid-1/app");
        std::fs::create_dir_all(&pods).unwrap();
        std::fs::write(pods.join("0.log"), "").unwrap();
        let links = d.path().join("containers");
        std::fs::create_dir_all(&links).unwrap();
        let link = links.join("pod-a_ns_app-cafe.log");
        std::os::unix::fs::symlink(pods.join("0.log"), &link).unwrap();
        let m = PodMeta::from_path(&link).unwrap();
        assert_eq!(m.pod_uid.as_deref(), Some("uid-1"));
        assert_eq!(m.container_id.as_deref(), Some("cafe"));
    }

    #[test]
    fn metadata_json_uses_the_configured_names_and_leaves_out_empty_ones() {
        let m = PodMeta {
            namespace: "ns".into(),
            pod: "p".into(),
            pod_uid: None,
            container: "c".into(),
            container_id: Some("id".into()),
        };
        let f = MetaFields {
            namespace: "k8s_ns".into(),
            container_id: String::new(),
            ..MetaFields::default()
        };
        assert_eq!(
            String::from_utf8(m.to_json(&f)).unwrap(),
            r#"{"k8s_ns":"ns","pod":"p","container":"c"}"#
        );
    }

    #[test]
    fn namespace_filters_are_globs_and_exclude_wins() {
        let k = KubernetesConfig {
            include_namespaces: vec!["team-*".into(), "default".into()],
            exclude_namespaces: vec!["team-secret".into()],
            ..KubernetesConfig::default()
        };
        assert!(k.wants("team-a") && k.wants("default"));
        assert!(!k.wants("kube-system") && !k.wants("team-secret"));
        assert!(KubernetesConfig::default().wants("anything"));
    }
}
