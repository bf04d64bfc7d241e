//! Version changes of the binaries provision installs, judged against what the hosts run
//! (facts: `--version` of the binary the plan would overwrite), never against what the
//! inventory says was installed before.
//!
//! The rules are upstream's:
//! - etcd moves one minor at a time (3.4 -> 3.5 -> 3.6), never down: a member of a newer
//!   minor writes data an older one cannot read, and a skipped minor skips the migration
//!   the middle one does.
//! - Kubernetes moves one minor at a time, never down (kubeadm and the version-skew policy).
//!   The skew order (every kube-apiserver first, then controller-managers and schedulers,
//!   then kubelets and kube-proxies) is the apply order of the phases (`phase_spec::PHASES`:
//!   etcd, kube-apiserver, controller-manager+scheduler, kubelet), and within a phase the
//!   running members restart one host at a time (`rollout`); a one-minor step keeps the
//!   apiservers within one minor of each other, the controllers never newer than an
//!   upgraded apiserver, and the kubelets never newer than the apiservers.
//!
//! A refused change is a problem of the plan (apply stops after preflight, nothing changes)
//! whose message gives the supported path.

use std::collections::BTreeMap;
use std::fmt;

use super::Plan;
use super::facts::HostFacts;
use crate::inventory::Inventory;

/// A release `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release(pub u64, pub u64, pub u64);

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Release {
    /// The first `X.Y.Z` (optionally `vX.Y.Z`) in a `--version` line: `etcd Version: 3.4.23`,
    /// `Kubernetes v1.34.2`.
    pub fn find_in(line: &str) -> Option<Release> {
        line.split(|c: char| c.is_whitespace() || c == ',').find_map(|word| {
            let word = word.strip_prefix('v').unwrap_or(word);
            let core = word.split(['-', '+']).next()?;
            let mut parts = core.split('.');
            let (a, b, c) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            Some(Release(a.parse().ok()?, b.parse().ok()?, c.parse().ok()?))
        })
    }
}

/// The products whose binaries provision installs, by the binary's file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    Etcd,
    Kubernetes,
}

impl Product {
    pub fn of_binary(path: &str) -> Option<Product> {
        match path.rsplit('/').next()? {
            "etcd" => Some(Product::Etcd),
            "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" | "kubelet" | "kube-proxy" => {
                Some(Product::Kubernetes)
            }
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Product::Etcd => "etcd",
            Product::Kubernetes => "Kubernetes",
        }
    }

    /// The inventory key that sets the wanted version.
    fn key(self) -> &'static str {
        match self {
            Product::Etcd => "cluster.etcd_version",
            Product::Kubernetes => "cluster.kubernetes_version",
        }
    }
}

/// What the plan says about one binary: nothing (same release), the change it makes, or
/// why it refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Same,
    /// e.g. "etcd 3.4.23 -> 3.5.16 (/usr/local/bin/etcd)".
    Change(String),
    Refused(String),
}

/// Judges moving `binary` from the `running` release to the `wanted` one.
pub fn judge(product: Product, binary: &str, running: Release, wanted: Release) -> Step {
    if running == wanted {
        return Step::Same;
    }
    let name = product.name();
    let key = product.key();
    let change = format!("{name} {running} -> {wanted} ({binary})");
    if wanted < running {
        return Step::Refused(format!(
            "{change} is a downgrade, which {name} does not support: set {key} to {running} (or a later {}.{} \
             patch) and restore from a snapshot if an older release is really needed",
            running.0, running.1
        ));
    }
    if wanted.0 != running.0 {
        return Step::Refused(format!("{change} changes the major version, which provision does not plan"));
    }
    if wanted.1 > running.1 + 1 {
        let path: Vec<String> = (running.1 + 1..=wanted.1).map(|m| format!("{}.{m}.x", running.0)).collect();
        return Step::Refused(format!(
            "{change} skips a minor: {name} upgrades one minor at a time; apply {} in turn (set {key} to each, \
             apply, then the next)",
            path.join(", then ")
        ));
    }
    Step::Change(change)
}

/// Judges every installed binary the plan would replace, per host: a change is listed on
/// the host's report, a refused one is a problem of the plan (apply stops after preflight).
/// A binary whose `--version` cannot be read is a note, not a refusal: the rolling restart
/// still protects the cluster.
pub fn judge_hosts(plan: &mut Plan, facts: &BTreeMap<String, HostFacts>, inv: &Inventory) {
    // The etcd minor the members move to, when they do (the rollout's last gate waits for it).
    let mut etcd_minor_up: Option<Release> = None;
    for report in plan.hosts.iter_mut() {
        let Some(f) = facts.get(&report.host) else { continue };
        for (binary, line) in &f.versions {
            let Some(product) = Product::of_binary(binary) else { continue };
            let wanted_text = match product {
                Product::Etcd => &inv.cluster.etcd_version,
                Product::Kubernetes => &inv.cluster.kubernetes_version,
            };
            let Some(wanted) = Release::find_in(wanted_text) else { continue };
            let Some(running) = Release::find_in(line) else {
                report.warnings.push(format!("cannot read the version of {binary} ({line:?}): upgrade rules not checked"));
                continue;
            };
            match judge(product, binary, running, wanted) {
                Step::Same => {}
                Step::Change(c) => {
                    if product == Product::Etcd && wanted.1 != running.1 {
                        etcd_minor_up = Some(wanted);
                    }
                    report.version_changes.push(c)
                }
                Step::Refused(why) => report.problems.push(format!("{why} (nothing was changed)")),
            }
        }
    }
    if let Some(minor) = etcd_minor_up {
        gate_last_etcd_stage_on_cluster_version(plan, minor);
    }
}

/// The last etcd stage of a minor upgrade also waits for the cluster version: until the
/// leader raises it, the cluster still speaks the old minor's protocol.
fn gate_last_etcd_stage_on_cluster_version(plan: &mut Plan, minor: Release) {
    let last = plan
        .phases
        .iter_mut()
        .filter(|p| p.phase == super::action::Phase::Etcd)
        .flat_map(|p| p.stages.last_mut())
        .next();
    if let Some(super::rollout::Stage { gate: super::rollout::Gate::EtcdMember { cluster_version, .. }, .. }) = last {
        *cluster_version = Some(format!("{}.{}", minor.0, minor.1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Release {
        Release::find_in(s).unwrap_or_else(|| panic!("{s}"))
    }

    #[test]
    fn versions_are_read_from_version_lines() {
        assert_eq!(Release::find_in("etcd Version: 3.4.23"), Some(Release(3, 4, 23)));
        assert_eq!(Release::find_in("Kubernetes v1.34.2"), Some(Release(1, 34, 2)));
        assert_eq!(Release::find_in("Kubernetes v1.33.0-rc.1"), Some(Release(1, 33, 0)));
        assert_eq!(Release::find_in("no version here"), None);
        assert_eq!(Release::find_in(""), None);
    }

    #[test]
    fn etcd_moves_one_minor_at_a_time_and_never_down() {
        let bin = "/usr/local/bin/etcd";
        assert_eq!(judge(Product::Etcd, bin, r("3.4.23"), r("3.4.23")), Step::Same);
        assert_eq!(
            judge(Product::Etcd, bin, r("3.4.23"), r("3.5.16")),
            Step::Change("etcd 3.4.23 -> 3.5.16 (/usr/local/bin/etcd)".into())
        );
        assert!(matches!(judge(Product::Etcd, bin, r("3.5.16"), r("3.5.21")), Step::Change(_)));
        let Step::Refused(why) = judge(Product::Etcd, bin, r("3.4.23"), r("3.6.4")) else { panic!("3.4 -> 3.6") };
        assert!(why.contains("skips a minor") && why.contains("apply 3.5.x, then 3.6.x in turn"), "{why}");
        assert!(why.contains("cluster.etcd_version"), "{why}");
        let Step::Refused(why) = judge(Product::Etcd, bin, r("3.5.16"), r("3.4.23")) else { panic!("downgrade") };
        assert!(why.contains("downgrade") && why.contains("set cluster.etcd_version to 3.5.16"), "{why}");
        let Step::Refused(why) = judge(Product::Etcd, bin, r("3.5.16"), r("3.5.9")) else { panic!("patch down") };
        assert!(why.contains("downgrade"), "{why}");
    }

    #[test]
    fn kubernetes_follows_the_skew_rules() {
        let bin = "/usr/local/bin/kube-apiserver";
        assert!(matches!(judge(Product::Kubernetes, bin, r("1.33.5"), r("1.34.2")), Step::Change(_)));
        let Step::Refused(why) = judge(Product::Kubernetes, bin, r("1.32.9"), r("1.34.2")) else { panic!() };
        assert!(why.contains("apply 1.33.x, then 1.34.x in turn"), "{why}");
        assert!(matches!(judge(Product::Kubernetes, bin, r("1.34.2"), r("1.33.5")), Step::Refused(_)));
        assert!(matches!(judge(Product::Kubernetes, bin, r("1.34.2"), r("2.0.0")), Step::Refused(_)));
        assert_eq!(Product::of_binary("/usr/local/bin/kubelet"), Some(Product::Kubernetes));
        assert_eq!(Product::of_binary("/usr/local/bin/etcdctl"), None);
    }

    /// The skew order is the phase order: apiservers before controllers before kubelets,
    /// each after etcd. A one-minor step per apply keeps every pair within the policy.
    #[test]
    fn the_upgrade_order_is_the_version_skew_order() {
        use crate::desired::Component;
        use crate::plan::phase_spec::phase_of;
        let order = [
            Component::Etcd,
            Component::KubeApiserver,
            Component::KubeControllerManager,
            Component::KubeScheduler,
            Component::Kubelet,
        ]
        .map(phase_of);
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
        assert!(phase_of(Component::KubeApiserver) < phase_of(Component::KubeControllerManager));
        assert!(phase_of(Component::KubeControllerManager) < phase_of(Component::Kubelet));
    }

    #[test]
    fn the_plan_lists_allowed_changes_and_refuses_skips_per_host() {
        let inv: Inventory = toml::from_str(
            "[cluster]\nname = \"lab\"\nkubernetes_version = \"1.34.2\"\netcd_version = \"3.5.16\"\n\
             api_endpoint = \"10.0.0.1\"\nservice_cidr = \"10.32.0.0/24\"\npod_cidr = \"10.200.0.0/16\"\n\
             [[host]]\nname = \"n1\"\naddress = \"10.0.0.1\"\nroles = [\"etcd\"]\n",
        )
        .unwrap();
        let report = |h: &str| crate::plan::HostReport::new(h, "");
        let mut plan = Plan {
            kind: crate::plan::PlanKind::Apply,
            cluster: "lab".into(),
            hosts: vec![report("n1"), report("n2"), report("n3")],
            phases: vec![],
            changes: 0,
        };
        let host = |etcd: &str, apiserver: Option<&str>| {
            let mut f = HostFacts::default();
            f.versions.insert("/usr/local/bin/etcd".into(), etcd.into());
            if let Some(a) = apiserver {
                f.versions.insert("/usr/local/bin/kube-apiserver".into(), a.into());
            }
            f
        };
        let facts = BTreeMap::from([
            ("n1".to_string(), host("etcd Version: 3.4.23", Some("Kubernetes v1.33.5"))),
            ("n2".to_string(), host("etcd Version: 3.5.16", Some("Kubernetes v1.32.1"))),
            ("n3".to_string(), host("garbage", None)),
        ]);
        judge_hosts(&mut plan, &facts, &inv);
        assert_eq!(
            plan.hosts[0].version_changes,
            vec![
                "etcd 3.4.23 -> 3.5.16 (/usr/local/bin/etcd)".to_string(),
                "Kubernetes 1.33.5 -> 1.34.2 (/usr/local/bin/kube-apiserver)".to_string()
            ]
        );
        assert!(plan.hosts[0].problems.is_empty());
        assert_eq!(plan.failed_hosts(), vec!["n2"]);
        assert!(plan.hosts[1].problems[0].contains("apply 1.33.x, then 1.34.x in turn"), "{:?}", plan.hosts[1]);
        assert!(plan.hosts[2].warnings[0].contains("cannot read the version"), "{:?}", plan.hosts[2]);
    }
}
