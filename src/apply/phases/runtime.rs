//! runtime: containerd, the kernel prerequisites and the pod routes of every kubelet
//! host, before the kubelets (which need the runtime's socket). With artifacts.runtime =
//! "preinstalled" the binaries are the host's own packages: preflight asks for them
//! (`required_paths`) and the apply plan refuses a host without them, or whose kernel,
//! swap or cgroups cannot run pods (`refuse_unfit_hosts`, `node_prereqs`), instead of
//! letting containerd.service or the kubelet fail to start in this phase. With "download"
//! or "directory" the binaries are files of the desired state (pushed in this phase,
//! before containerd starts): only the host tools (iptables) are required of the host.

use std::collections::{BTreeMap, BTreeSet};

use crate::apply::{ApplyContext, PhaseResult};
use crate::artifacts::Binary;
use crate::desired::{Component, DesiredHost, DesiredState};
use crate::inventory::KubeletSettings;
use crate::plan::facts::{HostFacts, PathState};
use crate::plan::{HostReport, PhasePlan};
use crate::render::runtime::{HOST_TOOLS, preinstalled_binaries};

pub async fn run(plan: &PhasePlan, ctx: &ApplyContext<'_>) -> PhaseResult {
    super::prepare_start_wait(plan, ctx).await
}

pub fn has_runtime(host: &DesiredHost) -> bool {
    host.units.iter().any(|u| u.component == Component::Runtime)
}

/// The host's own packages are used: the runtime tier is rendered and provision does not
/// install containerd itself (its binary is no file of the desired state).
fn uses_packages(host: &DesiredHost) -> bool {
    has_runtime(host) && host.file(&Binary::Containerd.host_path()).is_none()
}

/// The paths preflight must ask `host` about for the runtime tier.
pub fn required_paths(host: &DesiredHost) -> Vec<String> {
    let mut paths: Vec<String> = Vec::new();
    if has_runtime(host) {
        paths.extend(HOST_TOOLS.iter().map(|(p, _)| p.to_string()));
    }
    if uses_packages(host) {
        paths.extend(preinstalled_binaries().into_iter().map(|(p, _)| p));
    }
    paths
}

/// A problem of the plan (apply stops after preflight) on every host whose runtime tier
/// lacks its binaries or host tools, or whose kernel, swap or cgroups cannot run it
/// (`node_prereqs`). Only the apply plan asks: `reset` removes the tier's files and needs
/// none of this, so such a host can still be reset.
pub fn refuse_unfit_hosts(
    reports: &mut [HostReport],
    facts: &BTreeMap<String, HostFacts>,
    desired: &DesiredState,
    kubelet: &KubeletSettings,
) {
    for r in reports {
        let Some(f) = facts.get(&r.host) else { continue };
        let Some(d) = desired.hosts.iter().find(|d| d.host == r.host) else { continue };
        r.problems.extend(missing_binaries(f, d));
        r.problems.extend(missing_host_tools(f, d));
        if let (true, Some(node)) = (has_runtime(d), &f.node) {
            let runs_kubelet = d.units.iter().any(|u| u.component == Component::Kubelet);
            let (problems, warnings) = super::node_prereqs::judge(node, runs_kubelet.then_some(kubelet));
            r.problems.extend(problems);
            r.warnings.extend(warnings);
        }
    }
}

/// The tools the runtime tier runs whatever its source (the pod routes unit loads the
/// pod egress masquerade with iptables-restore).
pub fn missing_host_tools(f: &HostFacts, host: &DesiredHost) -> Option<String> {
    let wanted = HOST_TOOLS.iter().map(|(p, pkg)| (p.to_string(), *pkg)).filter(|_| has_runtime(host));
    let (paths, packages) = missing(f, wanted)?;
    Some(format!(
        "{paths} missing: the pod routes unit loads the pod egress masquerade with it; install it (Debian: apt-get install {packages})"
    ))
}

/// One problem naming the missing binaries and the packages that hold them.
pub fn missing_binaries(f: &HostFacts, host: &DesiredHost) -> Option<String> {
    let (paths, packages) = missing(f, preinstalled_binaries().into_iter().filter(|_| uses_packages(host)))?;
    Some(format!(
        "the container runtime is not installed ({paths} missing): artifacts.runtime = \"preinstalled\" uses the host's own packages; install them (Debian: apt-get install {packages}) or set artifacts.runtime = \"skip\""
    ))
}

/// The `wanted` (path, Debian package) pairs the host lacks: their paths joined with ", "
/// and their packages, sorted and once each, joined with " " (an apt-get line).
fn missing(f: &HostFacts, wanted: impl Iterator<Item = (String, &'static str)>) -> Option<(String, String)> {
    let missing: Vec<(String, &str)> = wanted.filter(|(p, _)| matches!(f.path(p), PathState::Missing)).collect();
    if missing.is_empty() {
        return None;
    }
    let paths: Vec<&str> = missing.iter().map(|(p, _)| p.as_str()).collect();
    let packages: BTreeSet<&str> = missing.iter().map(|(_, pkg)| *pkg).collect();
    Some((paths.join(", "), packages.into_iter().collect::<Vec<_>>().join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::ManagedUnit;
    use crate::plan::facts::{FileStat, Ownership};

    fn host(runtime: bool) -> DesiredHost {
        let units = if runtime {
            vec![ManagedUnit { name: "containerd.service".into(), component: Component::Runtime, watches: vec![] }]
        } else {
            vec![]
        };
        DesiredHost { host: "n1".into(), users: vec![], dirs: vec![], files: vec![], units }
    }

    fn present(except: &[&str]) -> HostFacts {
        let mut f = HostFacts::default();
        let tools = HOST_TOOLS.iter().map(|(p, pkg)| (p.to_string(), *pkg));
        for (p, _) in preinstalled_binaries().into_iter().chain(tools).filter(|(p, _)| !except.contains(&p.as_str())) {
            let own = Ownership { mode: 0o755, owner: "root".into(), group: "root".into() };
            f.paths.insert(p.to_string(), PathState::File(FileStat { own, size: 1, mtime: None, sha256: None }));
        }
        f
    }

    #[test]
    fn a_host_without_the_packages_is_refused_with_what_to_install() {
        assert_eq!(required_paths(&host(false)), Vec::<String>::new());
        assert_eq!(required_paths(&host(true)).len(), preinstalled_binaries().len() + HOST_TOOLS.len());
        assert_eq!(missing_binaries(&present(&[]), &host(true)), None);
        assert_eq!(missing_binaries(&HostFacts::default(), &host(false)), None, "no runtime tier, nothing needed");
        let p = missing_binaries(&present(&["/usr/sbin/runc", "/usr/lib/cni/bridge"]), &host(true)).unwrap();
        assert!(p.contains("(/usr/sbin/runc, /usr/lib/cni/bridge missing)"), "{p}");
        assert!(p.contains("apt-get install containernetworking-plugins runc"), "{p}");
        let p = missing_binaries(&HostFacts::default(), &host(true)).unwrap();
        assert!(p.contains("apt-get install containerd containernetworking-plugins runc"), "{p}");
    }

    #[test]
    fn a_runtime_provision_installs_needs_nothing_of_the_host() {
        let mut h = host(true);
        h.files.push(crate::desired::ManagedFile {
            path: Binary::Containerd.host_path(),
            mode: 0o755,
            owner: "root".into(),
            group: "root".into(),
            content: std::sync::Arc::new(Vec::new()),
            secret: false,
            component: Component::Runtime,
            only_while_missing: None,
        });
        assert_eq!(required_paths(&h), ["/usr/sbin/iptables-restore"]);
        assert_eq!(missing_binaries(&HostFacts::default(), &h), None);
        let p = missing_host_tools(&HostFacts::default(), &h).unwrap();
        assert!(
            p.starts_with("/usr/sbin/iptables-restore missing: the pod routes unit")
                && p.ends_with("apt-get install iptables)"),
            "{p}"
        );
        assert_eq!(missing_host_tools(&present(&[]), &h), None);
    }

    #[test]
    fn the_plan_refuses_only_reached_hosts_of_the_runtime_tier_without_the_packages() {
        let mut reports: Vec<HostReport> = ["n1", "n2", "n3", "etcd1"].iter().map(|h| HostReport::new(h, "")).collect();
        let named = |name: &str, runtime: bool| DesiredHost { host: name.into(), ..host(runtime) };
        let desired = DesiredState {
            hosts: vec![named("n1", true), named("n2", true), named("n3", true), named("etcd1", false)],
        };
        // n3 unreachable: no facts, its connection problem says enough.
        let facts = BTreeMap::from([
            ("n1".to_string(), present(&[])),
            ("n2".to_string(), present(&["/usr/bin/containerd"])),
            ("etcd1".to_string(), HostFacts::default()),
        ]);
        refuse_unfit_hosts(&mut reports, &facts, &desired, &KubeletSettings::default());
        let failed: Vec<&str> = reports.iter().filter(|r| !r.problems.is_empty()).map(|r| r.host.as_str()).collect();
        assert_eq!(failed, ["n2"]);
        assert!(reports[1].problems[0].contains("/usr/bin/containerd missing"), "{:?}", reports[1]);
    }

    #[test]
    fn the_node_facts_of_runtime_hosts_refuse_or_warn() {
        use crate::plan::facts::{KernelFeature, NodeFacts};
        let node = |swap_kb, cgroup_fs: &str| NodeFacts {
            swap_kb,
            cgroup_fs: cgroup_fs.into(),
            overlay: KernelFeature::Loaded,
            br_netfilter: KernelFeature::Loaded,
        };
        let mut kubelet_host = host(true);
        kubelet_host.host = "k".into();
        kubelet_host.units.push(ManagedUnit {
            name: "kubelet.service".into(),
            component: Component::Kubelet,
            watches: vec![],
        });
        let desired = DesiredState {
            hosts: vec![
                kubelet_host,
                DesiredHost { host: "r".into(), ..host(true) },
                DesiredHost { host: "e".into(), ..host(false) },
            ],
        };
        let with = |n: NodeFacts| HostFacts { node: Some(n), ..present(&[]) };
        let facts = BTreeMap::from([
            ("k".to_string(), with(node(1024, "cgroup2fs"))),
            ("r".to_string(), with(node(1024, "tmpfs"))),
            ("e".to_string(), with(node(1024, "tmpfs"))),
        ]);
        let mut reports: Vec<HostReport> = ["k", "r", "e"].iter().map(|h| HostReport::new(h, "")).collect();
        refuse_unfit_hosts(&mut reports, &facts, &desired, &KubeletSettings::default());
        assert!(reports[0].problems[0].starts_with("swap is on (1 MiB"), "{:?}", reports[0]);
        assert!(
            reports[1].problems.is_empty() && reports[1].warnings[0].starts_with("cgroup v1 only"),
            "{:?}",
            reports[1]
        );
        assert!(reports[2].problems.is_empty() && reports[2].warnings.is_empty(), "no runtime tier: not judged");
        let mut reports: Vec<HostReport> = ["k"].iter().map(|h| HostReport::new(h, "")).collect();
        refuse_unfit_hosts(&mut reports, &facts, &desired, &KubeletSettings { fail_swap_on: false });
        assert!(reports[0].problems.is_empty(), "{:?}", reports[0]);
    }
}
