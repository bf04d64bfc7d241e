//! runtime: containerd, the kernel prerequisites and the pod routes of every kubelet
//! host, before the kubelets (which need the runtime's socket). With artifacts.runtime =
//! "preinstalled" the binaries are the host's own packages: preflight asks for them
//! (`required_paths`) and the apply plan refuses a host without them
//! (`refuse_missing_binaries`), instead of letting containerd.service fail to start in
//! this phase. With "download" or "directory" the binaries are files of the desired
//! state (pushed in this phase, before containerd starts): nothing is required of the host.

use std::collections::{BTreeMap, BTreeSet};

use crate::apply::{ApplyContext, PhaseResult};
use crate::artifacts::Binary;
use crate::desired::{Component, DesiredHost, DesiredState};
use crate::plan::facts::{HostFacts, PathState};
use crate::plan::{HostReport, PhasePlan};
use crate::render::runtime::preinstalled_binaries;

pub async fn run(plan: &PhasePlan, ctx: &ApplyContext<'_>) -> PhaseResult {
    super::prepare_start_wait(plan, ctx).await
}

fn has_runtime(host: &DesiredHost) -> bool {
    host.units.iter().any(|u| u.component == Component::Runtime)
}

/// The host's own packages are used: the runtime tier is rendered and provision does not
/// install containerd itself (its binary is no file of the desired state).
fn uses_packages(host: &DesiredHost) -> bool {
    has_runtime(host) && host.file(&Binary::Containerd.host_path()).is_none()
}

/// The paths preflight must ask `host` about for the runtime tier.
pub fn required_paths(host: &DesiredHost) -> Vec<String> {
    if uses_packages(host) { preinstalled_binaries().into_iter().map(|(p, _)| p).collect() } else { Vec::new() }
}

/// A problem of the plan (apply stops after preflight) on every host whose runtime tier
/// lacks its binaries. Only the apply plan asks: `reset` removes the tier's files and
/// needs none of its binaries, so a host without them can still be reset.
pub fn refuse_missing_binaries(
    reports: &mut [HostReport],
    facts: &BTreeMap<String, HostFacts>,
    desired: &DesiredState,
) {
    for r in reports {
        let Some(f) = facts.get(&r.host) else { continue };
        let Some(d) = desired.hosts.iter().find(|d| d.host == r.host) else { continue };
        r.problems.extend(missing_binaries(f, d));
    }
}

/// One problem naming the missing binaries and the packages that hold them.
pub fn missing_binaries(f: &HostFacts, host: &DesiredHost) -> Option<String> {
    let missing: Vec<(String, &str)> = preinstalled_binaries()
        .into_iter()
        .filter(|(p, _)| uses_packages(host) && matches!(f.path(p), PathState::Missing))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let paths: Vec<&str> = missing.iter().map(|(p, _)| p.as_str()).collect();
    let packages: BTreeSet<&str> = missing.iter().map(|(_, pkg)| *pkg).collect();
    let packages: Vec<&str> = packages.into_iter().collect();
    Some(format!(
        "the container runtime is not installed ({} missing): artifacts.runtime = \"preinstalled\" uses the host's own packages; install them (Debian: apt-get install {}) or set artifacts.runtime = \"skip\"",
        paths.join(", "),
        packages.join(" ")
    ))
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
        for (p, _) in preinstalled_binaries().iter().filter(|(p, _)| !except.contains(&p.as_str())) {
            let own = Ownership { mode: 0o755, owner: "root".into(), group: "root".into() };
            f.paths.insert(p.to_string(), PathState::File(FileStat { own, size: 1, mtime: None, sha256: None }));
        }
        f
    }

    #[test]
    fn a_host_without_the_packages_is_refused_with_what_to_install() {
        assert_eq!(required_paths(&host(false)), Vec::<String>::new());
        assert_eq!(required_paths(&host(true)).len(), preinstalled_binaries().len());
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
        assert_eq!(required_paths(&h), Vec::<String>::new());
        assert_eq!(missing_binaries(&HostFacts::default(), &h), None);
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
        refuse_missing_binaries(&mut reports, &facts, &desired);
        let failed: Vec<&str> = reports.iter().filter(|r| !r.problems.is_empty()).map(|r| r.host.as_str()).collect();
        assert_eq!(failed, ["n2"]);
        assert!(reports[1].problems[0].contains("/usr/bin/containerd missing"), "{:?}", reports[1]);
    }
}
