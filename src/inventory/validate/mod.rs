//! Rules beyond syntax, one file per area. They run on the typed sections that
//! parsed cleanly, so a typo in [ssh] does not hide an overlap in [cluster]; a rule
//! that needs a section that did not parse is skipped (its errors are already listed).

mod artifacts;
mod cluster;
mod etcd;
mod hosts;
pub(crate) mod names;
mod network;
mod security;
mod ssh;

pub use ssh::JumpHost;

use super::report::Reporter;
use super::schema::{Artifacts, Cluster, EtcdSettings, Host, KubeletSettings, PkiSettings, Security, SshSettings};

/// Kubernetes minor versions `provision` renders configurations for.
pub const SUPPORTED_KUBERNETES_MINORS: &[&str] = &["1.32", "1.33", "1.34"];
/// etcd minor versions whose flags and APIs `provision` supports.
pub const SUPPORTED_ETCD_MINORS: &[&str] = &["3.4", "3.5", "3.6"];

/// A section typed from its usable keys, and the keys that were not usable
/// (malformed, or required and missing: already reported, and replaced by a stand-in).
pub(crate) struct Part<T> {
    pub value: T,
    pub unusable: Vec<&'static str>,
}

impl<T> Part<T> {
    /// Whether rules may look at `field` (it holds what the operator wrote, or its default).
    pub fn ok(&self, field: &str) -> bool {
        !self.unusable.contains(&field)
    }
}

/// The sections of one inventory. A section is None only when it is not a table at
/// all (or [cluster] is missing); otherwise rules run on every usable key, so one
/// typo does not hide the other problems.
pub(crate) struct Sections {
    pub cluster: Option<Part<Cluster>>,
    pub ssh: Option<Part<SshSettings>>,
    pub security: Option<Part<Security>>,
    pub pki: Option<Part<PkiSettings>>,
    pub etcd: Option<Part<EtcdSettings>>,
    pub artifacts: Option<Part<Artifacts>>,
    pub kubelet: Option<Part<KubeletSettings>>,
    /// One entry per `[[host]]`, in file order (None: not a table).
    pub hosts: Vec<Option<Part<Host>>>,
    /// False when `host` is not an array of tables: the number of hosts is unknown.
    pub hosts_shape_ok: bool,
}

impl Sections {
    fn parsed_hosts(&self) -> impl Iterator<Item = (usize, &Part<Host>)> {
        self.hosts.iter().enumerate().filter_map(|(i, h)| h.as_ref().map(|h| (i, h)))
    }

    /// Every host with usable roles, or None when any host's roles are unknown
    /// (counting roles would then give wrong answers).
    fn hosts_with_known_roles(&self) -> Option<Vec<&Host>> {
        if !self.hosts_shape_ok {
            return None;
        }
        self.hosts.iter().map(|h| h.as_ref().filter(|h| h.ok("roles")).map(|h| &h.value)).collect()
    }
}

pub(crate) fn run(s: &Sections, rep: &mut Reporter<'_>) {
    if let Some(c) = &s.cluster {
        cluster::check(c, rep);
        network::check_ranges(c, rep);
        network::check_hosts_outside_ranges(c, s.parsed_hosts(), rep);
        // Which hosts need a slice depends on their roles: unknown roles would give wrong answers.
        if s.hosts_with_known_roles().is_some() {
            network::check_pod_slices(c, s.parsed_hosts(), rep);
        }
    }
    network::check_ports(s.cluster.as_ref(), s.etcd.as_ref(), s.ssh.as_ref(), rep);
    hosts::check_each(s.parsed_hosts(), rep);
    hosts::check_unique(s.parsed_hosts(), rep);
    if let Some(all) = s.hosts_with_known_roles() {
        hosts::check_roles_present(&all, rep);
    }
    if let Some(e) = &s.etcd {
        etcd::check(e, rep);
    }
    if let Some(sec) = &s.security {
        security::check_audit(sec, rep);
    }
    if let Some(p) = &s.pki {
        security::check_pki(p, rep);
    }
    if let Some(ssh) = &s.ssh {
        ssh::check(ssh, rep);
    }
    if let Some(a) = &s.artifacts {
        artifacts::check(a, rep);
    }
}

/// Helpers for the rule tests: a valid inventory to start from, and the rendered
/// diagnostics of a variation of it.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    pub const VALID: &str = r#"
[cluster]
name = "lab"
kubernetes_version = "1.34.2"
etcd_version = "3.5.21"
api_endpoint = "10.0.0.10"
service_cidr = "10.32.0.0/24"
pod_cidr = "10.200.0.0/16"

[[host]]
name = "node1"
address = "10.0.0.11"
roles = ["etcd", "control-plane"]

[[host]]
name = "node2"
address = "10.0.0.12"
roles = ["etcd", "control-plane"]

[[host]]
name = "node3"
address = "10.0.0.13"
roles = ["etcd", "control-plane"]
"#;

    /// (errors, warnings) as printed, for `text` loaded as test.toml.
    pub fn diagnose(text: &str) -> (Vec<String>, Vec<String>) {
        match crate::inventory::parse(Path::new("test.toml"), text) {
            Ok(loaded) => (vec![], loaded.warnings.iter().map(|w| w.to_string()).collect()),
            Err(d) => {
                (d.errors.iter().map(|e| e.to_string()).collect(), d.warnings.iter().map(|w| w.to_string()).collect())
            }
        }
    }

    /// The one error `text` has; fails the test when there are none or several.
    pub fn only_error(text: &str) -> String {
        let (errors, _) = diagnose(text);
        assert_eq!(errors.len(), 1, "expected exactly one error, got {errors:#?}");
        errors.into_iter().next().unwrap_or_default()
    }

    /// The one warning `text` has (and no errors).
    pub fn only_warning(text: &str) -> String {
        let (errors, warnings) = diagnose(text);
        assert!(errors.is_empty(), "unexpected errors {errors:#?}");
        assert_eq!(warnings.len(), 1, "expected exactly one warning, got {warnings:#?}");
        warnings.into_iter().next().unwrap_or_default()
    }

    /// VALID with one section appended.
    pub fn with(extra: &str) -> String {
        format!("{VALID}\n{extra}\n")
    }

    /// VALID with `from` replaced by `to` (which must occur).
    pub fn replaced(from: &str, to: &str) -> String {
        assert!(VALID.contains(from), "{from:?} is not in VALID");
        VALID.replacen(from, to, 1)
    }

    #[test]
    fn the_base_inventory_is_valid() {
        assert_eq!(diagnose(VALID), (vec![], vec![]));
    }
}
