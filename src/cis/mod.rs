//! CIS Kubernetes Benchmark v1.12 checks as code (see shared notes cis-benchmark.md),
//! one function per check id, all working on a `HostView`, whether it was built from
//! the rendered files or read from a real host.
//!
//! Each check applies to the hosts running one daemon (1.2.x to hosts running
//! kube-apiserver, 2.x to etcd members, ...); `run_all` runs the ones that apply.
//! 1.1.9/1.1.10 (CNI files) apply to every host with a kubelet: provision renders the
//! bridge CNI configuration there (render/runtime.rs).

pub mod view;

mod checks_apiserver;
mod checks_control_plane;
mod checks_etcd;
mod checks_files;
mod checks_kubelet;
mod support;

use serde::Serialize;

pub use view::{FileKind, FileView, HostView};

/// The outcome of one check on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub id: &'static str,
    pub title: &'static str,
    pub passed: bool,
    /// What was seen (flag values, modes, owners); never file contents.
    pub evidence: String,
}

/// What a check function returns; the catalog adds id and title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub passed: bool,
    pub evidence: String,
}

impl Outcome {
    pub fn pass(evidence: impl Into<String>) -> Outcome {
        Outcome { passed: true, evidence: evidence.into() }
    }
    pub fn fail(evidence: impl Into<String>) -> Outcome {
        Outcome { passed: false, evidence: evidence.into() }
    }
    pub fn when(passed: bool, evidence: impl Into<String>) -> Outcome {
        Outcome { passed, evidence: evidence.into() }
    }
    /// Both must pass; the evidence of both is kept.
    pub fn and(self, other: Outcome) -> Outcome {
        Outcome { passed: self.passed && other.passed, evidence: format!("{}; {}", self.evidence, other.evidence) }
    }
}

pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    /// The daemon whose hosts this check applies to.
    pub process: &'static str,
    /// A "Manual" check in the benchmark (provision automates it anyway).
    pub manual: bool,
    pub run: fn(&HostView) -> Outcome,
}

impl Check {
    pub fn evaluate(&self, view: &HostView) -> CheckResult {
        let o = (self.run)(view);
        CheckResult { id: self.id, title: self.title, passed: o.passed, evidence: o.evidence }
    }
}

pub const APISERVER: &str = "kube-apiserver";
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";
pub const SCHEDULER: &str = "kube-scheduler";
pub const ETCD: &str = "etcd";
pub const KUBELET: &str = "kubelet";
pub const KUBE_PROXY: &str = "kube-proxy";

/// Every check, in benchmark order.
pub fn catalog() -> Vec<&'static Check> {
    let mut all: Vec<&'static Check> = Vec::new();
    all.extend(checks_files::CONTROL_PLANE.iter());
    all.extend(checks_apiserver::CHECKS.iter());
    all.extend(checks_control_plane::CHECKS.iter());
    all.extend(checks_etcd::CHECKS.iter());
    all.extend(checks_files::WORKER.iter());
    all.extend(checks_kubelet::CHECKS.iter());
    all
}

/// Runs every check that applies to the daemons running on this host.
pub fn run_all(view: &HostView) -> Vec<CheckResult> {
    catalog().into_iter().filter(|c| view.runs(c.process)).map(|c| c.evaluate(view)).collect()
}

/// Runs the check `id`, whether or not it applies to this host.
pub fn run_one(view: &HostView, id: &str) -> Option<CheckResult> {
    catalog().into_iter().find(|c| c.id == id).map(|c| c.evaluate(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<&str> = catalog().iter().map(|c| c.id).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }
}
