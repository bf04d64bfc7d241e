//! The plan: what apply will do, as data.
//!
//! `plan = diff(desired, facts)`: per phase, per host, ordered actions, then the waits
//! that gate the next phase. `provision plan` prints it; `provision apply` computes it
//! once and executes exactly it; `provision reset` builds a reset plan the same way.

pub mod action;
pub mod api_objects;
pub mod diff;
pub mod facts;
pub mod membership;
pub mod phase_spec;
pub mod pipeline;
pub mod render_text;
pub mod reset;
pub mod restore;
pub mod rollout;
pub mod versions;

use serde::Serialize;

pub use action::{Action, Phase, Wait};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanKind {
    Apply,
    Reset,
    /// `etcd restore` (and its rollback).
    Restore,
}

/// The whole plan. Its JSON form is the `--output json` of `provision plan`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub kind: PlanKind,
    pub cluster: String,
    /// Every inventory host, with what preflight learnt (or why it failed).
    pub hosts: Vec<HostReport>,
    /// The phases the desired state has, in order (empty ones included: stable shape).
    pub phases: Vec<PhasePlan>,
    /// Number of actions (waits excluded): 0 means the hosts are up to date.
    pub changes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub address: String,
    pub os: Option<String>,
    pub arch: Option<String>,
    pub systemd: Option<u32>,
    /// The node's slice of cluster.pod_cidr (hosts with a kubelet): provision assigns it,
    /// so the plan shows it before anything runs.
    pub pod_cidr: Option<String>,
    /// Why the host cannot be worked on (unreachable, not root, port taken, ...).
    /// A plan with any failed host is an error: apply stops after preflight.
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// Version changes of installed binaries this plan makes ("etcd 3.4.23 -> 3.5.16
    /// (/usr/local/bin/etcd)"), judged against what the host runs (plan::versions).
    pub version_changes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhasePlan {
    pub phase: Phase,
    /// Hosts that have actions in this phase, in inventory order.
    pub hosts: Vec<HostSteps>,
    pub waits: Vec<Wait>,
    /// Restarts of running units, one host per stage, each gated (`rollout`): apply runs
    /// them after the hosts' other actions and the waits, in this order.
    pub stages: Vec<rollout::Stage>,
    /// A verified etcd snapshot to the operator's machine, taken before this phase
    /// changes anything (before restarting running etcd members).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<rollout::Snapshot>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostSteps {
    pub host: String,
    pub actions: Vec<Action>,
}

impl HostReport {
    /// A host before preflight learnt anything about it.
    pub fn new(host: &str, address: &str) -> HostReport {
        HostReport {
            host: host.to_string(),
            address: address.to_string(),
            os: None,
            arch: None,
            systemd: None,
            pod_cidr: None,
            problems: Vec::new(),
            warnings: Vec::new(),
            version_changes: Vec::new(),
        }
    }
}

impl Plan {
    pub fn failed_hosts(&self) -> Vec<&str> {
        self.hosts.iter().filter(|h| !h.problems.is_empty()).map(|h| h.host.as_str()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.changes == 0 && self.phases.iter().all(|p| p.waits.is_empty())
    }

    /// The actions of one host, phase by phase, staged restarts after the phase's other
    /// actions (for the per-host text view).
    pub fn host_actions<'a>(&'a self, host: &'a str) -> impl Iterator<Item = (Phase, &'a Action)> + 'a {
        self.phases.iter().flat_map(move |p| {
            let steps = p.hosts.iter().filter(move |h| h.host == host).flat_map(|h| h.actions.iter());
            let staged = p.stages.iter().filter(move |s| s.host == host).flat_map(|s| s.actions.iter());
            steps.chain(staged).map(move |a| (p.phase, a))
        })
    }

    pub(crate) fn count_changes(&mut self) {
        self.changes = self
            .phases
            .iter()
            .map(|p| {
                p.hosts.iter().map(|h| h.actions.len()).sum::<usize>()
                    + p.stages.iter().map(|s| s.changes()).sum::<usize>()
            })
            .sum();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::desired::{Component, DesiredHost, DesiredState, ManagedFile, ManagedUnit};
    use crate::plan::facts::HostFacts;

    /// The JSON shape scripts rely on: keys and their nesting, not the values.
    #[test]
    fn plan_json_has_a_stable_shape() {
        let host = DesiredHost {
            host: "node1".into(),
            users: vec![],
            dirs: vec![],
            files: vec![ManagedFile {
                path: "/etc/etcd/pki/server.key".into(),
                mode: 0o600,
                owner: "etcd".into(),
                group: "etcd".into(),
                content: Arc::new(b"-----BEGIN PRIVATE KEY-----".to_vec()),
                secret: true,
                component: Component::Etcd,
                only_while_missing: None,
            }],
            units: vec![ManagedUnit {
                name: "etcd.service".into(),
                component: Component::Etcd,
                watches: vec!["/etc/etcd/pki/server.key".into()],
            }],
        };
        let facts = BTreeMap::from([("node1".to_string(), HostFacts::default())]);
        let report = HostReport {
            host: "node1".into(),
            address: "127.0.1.1".into(),
            os: Some("Debian".into()),
            arch: Some("x86_64".into()),
            systemd: Some(252),
            pod_cidr: None,
            problems: vec![],
            warnings: vec![],
            version_changes: vec![],
        };
        let plan = diff::plan_apply("lab", vec![report], &DesiredState { hosts: vec![host] }, &facts);
        let v = serde_json::to_value(&plan).unwrap();
        let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&v), ["changes", "cluster", "hosts", "kind", "phases"]);
        assert_eq!(
            keys(&v["hosts"][0]),
            ["address", "arch", "host", "os", "pod_cidr", "problems", "systemd", "version_changes", "warnings"]
        );
        assert_eq!(v["phases"][0]["phase"], "preflight");
        let etcd = &v["phases"][1];
        assert_eq!(keys(etcd), ["hosts", "phase", "stages", "waits"]);
        assert_eq!(etcd["phase"], "etcd");
        let write = &etcd["hosts"][0]["actions"][0];
        assert_eq!(keys(write), ["action", "group", "mode", "owner", "path", "secret", "sha256", "size", "why"]);
        assert_eq!(etcd["waits"][0]["wait"], "units-active");
        assert_eq!(etcd["waits"][1]["wait"], "etcd-quorum");
        assert!(!v.to_string().contains("BEGIN PRIVATE KEY"));
    }

    #[test]
    fn a_nodes_pod_slice_is_shown_with_its_host() {
        let report = |pod_cidr: Option<&str>| HostReport {
            pod_cidr: pod_cidr.map(String::from),
            ..HostReport::new("node1", "10.0.0.11")
        };
        let facts = BTreeMap::from([("node1".to_string(), HostFacts::default())]);
        let empty = DesiredState { hosts: vec![] };
        let plan = diff::plan_apply("c", vec![report(Some("10.200.3.0/24"))], &empty, &facts);
        assert!(render_text::render(&plan).starts_with("node1 (10.0.0.11, pods 10.200.3.0/24)\n"));
        assert_eq!(serde_json::to_value(&plan).unwrap()["hosts"][0]["pod_cidr"], "10.200.3.0/24");
        let plan = diff::plan_apply("c", vec![report(None)], &empty, &facts);
        assert!(render_text::render(&plan).starts_with("node1 (10.0.0.11)\n"));
    }
}
