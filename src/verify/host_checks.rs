//! Two per-host checks from the same facts the CIS checks read:
//! - `units.active`: every unit provision installs on the host is active;
//! - `files.private`: every private key, kubeconfig and the encryption config is
//!   readable by its owner only (CIS 1.1.21 covers /etc/kubernetes/pki/*.key only;
//!   etcd's keys under /etc/etcd/pki and the kubeconfigs matter just as much).

use super::cis_hosts::Gathered;
use super::host_facts::{HostFacts, expected_units};
use super::report::{CheckResult, HostOutcome};
use crate::cis::FileKind;
use crate::inventory::Inventory;
use crate::render::paths;

pub const UNITS_ACTIVE: &str = "units.active";
pub const FILES_PRIVATE: &str = "files.private";

pub fn units_active(inv: &Inventory, gathered: &Gathered) -> CheckResult {
    let outcomes = gathered
        .iter()
        .filter_map(|(host, facts)| {
            let h = inv.host(host)?;
            let expected = expected_units(inv, h);
            if expected.is_empty() {
                return None;
            }
            Some(match facts {
                Err(e) => HostOutcome::fail(host, format!("could not read the host: {e}")),
                Ok(f) => judge_units(host, &expected, f),
            })
        })
        .collect();
    CheckResult::from_hosts(UNITS_ACTIVE, "every unit provision installs is active", outcomes)
}

fn judge_units(host: &str, expected: &[&str], f: &HostFacts) -> HostOutcome {
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for unit in expected {
        match f.units.get(*unit) {
            Some(s) if s.active == "active" && s.main_pid > 0 => good.push(format!("{unit} (pid {})", s.main_pid)),
            Some(s) => bad.push(format!("{unit} is {}", s.active)),
            None => bad.push(format!("{unit} is unknown to systemd")),
        }
    }
    if bad.is_empty() {
        HostOutcome::pass(host, format!("active: {}", good.join(", ")))
    } else {
        HostOutcome::fail(host, bad.join("; "))
    }
}

/// Files whose content is a secret: private keys, kubeconfigs (they embed a client key),
/// the encryption config (it holds the encryption key).
pub fn is_private(path: &str) -> bool {
    path.ends_with(".key")
        || (path.starts_with(&format!("{}/", paths::KUBERNETES_DIR)) && path.ends_with(".conf"))
        || [paths::KUBELET_KUBECONFIG, paths::KUBE_PROXY_KUBECONFIG, paths::ENCRYPTION_CONFIG, paths::SA_KEY]
            .contains(&path)
}

pub fn files_private(inv: &Inventory, gathered: &Gathered) -> CheckResult {
    let outcomes = gathered
        .iter()
        // A host provision installs no key on (a worker while kubernetes is skipped) has
        // nothing to judge: "no private key found" would be a false failure there.
        .filter(|(host, _)| inv.host(host).is_some_and(|h| holds_private_files(inv, h)))
        .map(|(host, facts)| match facts {
            Err(e) => HostOutcome::fail(host, format!("could not read the host: {e}")),
            Ok(f) => judge_files(host, f),
        })
        .collect();
    CheckResult::from_hosts(
        FILES_PRIVATE,
        "private keys, kubeconfigs and the encryption config are readable by their owner only",
        outcomes,
    )
}

/// etcd members hold their keys; with the kubernetes tier, every control-plane host and
/// kubelet host holds keys or kubeconfigs. (The runtime tier alone installs none.)
fn holds_private_files(inv: &Inventory, h: &crate::inventory::Host) -> bool {
    h.has(crate::inventory::Role::Etcd)
        || (inv.artifacts.kubernetes != crate::inventory::KubernetesSource::Skip
            && (h.has(crate::inventory::Role::ControlPlane) || h.runs_kubelet()))
}

fn judge_files(host: &str, f: &HostFacts) -> HostOutcome {
    let private: Vec<(&String, &crate::cis::FileView)> =
        f.files.iter().filter(|(p, v)| v.kind == FileKind::File && is_private(p)).collect();
    let exposed: Vec<String> = private
        .iter()
        .filter(|(_, v)| v.mode & 0o077 != 0)
        .map(|(p, v)| format!("{p}: {} (group or others may read it; want 0600)", v.describe()))
        .collect();
    if !exposed.is_empty() {
        return HostOutcome::fail(host, exposed.join("; "));
    }
    if private.is_empty() {
        return HostOutcome::fail(host, "no private key or kubeconfig found where provision installs them");
    }
    HostOutcome::pass(host, format!("{} private files, all owner-only", private.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cis::FileView;
    use crate::verify::host_facts::UnitState;

    fn file(mode: u32, owner: &str) -> FileView {
        FileView { kind: FileKind::File, mode, owner: owner.into(), group: owner.into(), content: None }
    }

    #[test]
    fn a_group_readable_key_fails_and_is_named() {
        let mut f = HostFacts { host: "node2".into(), ..Default::default() };
        f.files.insert("/etc/etcd/pki/server.key".into(), file(0o644, "etcd"));
        f.files.insert("/etc/etcd/pki/server.crt".into(), file(0o644, "etcd"));
        f.files.insert("/etc/etcd/pki/peer.key".into(), file(0o600, "etcd"));
        let o = judge_files("node2", &f);
        assert_eq!(o.status, crate::verify::report::Status::Fail);
        assert!(o.evidence.starts_with("/etc/etcd/pki/server.key: mode 0644 etcd:etcd"), "{}", o.evidence);
        f.files.insert("/etc/etcd/pki/server.key".into(), file(0o600, "etcd"));
        assert_eq!(judge_files("node2", &f).evidence, "2 private files, all owner-only");
        assert!(is_private("/etc/kubernetes/admin.conf") && is_private(paths::KUBELET_KUBECONFIG));
        assert!(!is_private("/etc/kubernetes/pki/ca.crt"));
    }

    /// A worker while kubernetes is skipped holds no key: it is not judged (the benchmark's
    /// 10-host lab failed verify with "no private key found" on its workers).
    #[test]
    fn hosts_without_keys_by_design_are_not_judged() {
        let mut text = include_str!("../../tests/fixtures/lab.toml").to_string();
        text.push_str("\n[[host]]\nname = \"node4\"\naddress = \"127.0.1.4\"\nroles = [\"worker\"]\n");
        let inv: Inventory = toml::from_str(&text).unwrap();
        let mut etcd = HostFacts::default();
        etcd.files.insert("/etc/etcd/pki/server.key".into(), file(0o600, "etcd"));
        let gathered: Gathered = vec![("node1".into(), Ok(etcd)), ("node4".into(), Ok(HostFacts::default()))];
        let r = files_private(&inv, &gathered);
        assert_eq!(r.hosts, ["node1"], "{r:?}");
    }

    #[test]
    fn a_stopped_unit_fails() {
        let mut f = HostFacts::default();
        f.units.insert("etcd.service".into(), UnitState { active: "inactive".into(), main_pid: 0 });
        let o = judge_units("node2", &["etcd.service"], &f);
        assert_eq!(o.evidence, "etcd.service is inactive");
        f.units.insert("etcd.service".into(), UnitState { active: "active".into(), main_pid: 42 });
        assert_eq!(judge_units("node2", &["etcd.service"], &f).evidence, "active: etcd.service (pid 42)");
    }
}
