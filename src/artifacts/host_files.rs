//! The binaries as the desired state's files: which host gets which (by role and the
//! inventory's sources), and how they join a rendered desired state.
//!
//! Two steps, because a host's architecture is only known from its facts, and the
//! facts must already cover the binaries' paths: [`add_placeholders`] before the facts
//! (paths, mode, owner; empty content), [`fill`] after [`super::resolve`].

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::bail;

use super::Artifacts;
use super::catalog::{self, Arch, Binary};
use crate::desired::{DesiredState, ManagedFile};
use crate::inventory::{EtcdSource, Host, Inventory, KubernetesSource};

/// Every binary the cluster installs somewhere (the tiers that are not skipped).
pub fn enabled(inv: &Inventory) -> Vec<Binary> {
    let mut out = Vec::new();
    if inv.artifacts.etcd != EtcdSource::Preinstalled {
        out.extend(catalog::etcd_binaries(&inv.cluster.etcd_version));
    }
    if inv.artifacts.kubernetes != KubernetesSource::Skip {
        out.extend(Binary::KUBERNETES);
    }
    if inv.artifacts.runtime_source().installs_binaries() {
        out.extend(Binary::RUNTIME);
    }
    out
}

/// The binaries `host` gets: by its roles, among the tiers the inventory installs.
pub fn wanted(inv: &Inventory, host: &Host) -> Vec<Binary> {
    enabled(inv).into_iter().filter(|b| b.wanted_by(host)).collect()
}

/// `host`'s binaries as files: /usr/local/bin/<name> (CNI plugins: /opt/cni/bin/<name>),
/// 0755 root:root, in the phase of the component that runs them. The content is shared (an `Arc`), not copied.
pub fn files_for(artifacts: &Artifacts, host: &Host) -> Vec<ManagedFile> {
    let Some(set) = artifacts.sets.get(&artifacts.arch_of(&host.name)) else { return Vec::new() };
    set.values().filter(|r| r.binary.wanted_by(host)).map(|r| file(r.binary, r.content.clone())).collect()
}

fn file(binary: Binary, content: Arc<Vec<u8>>) -> ManagedFile {
    ManagedFile {
        path: binary.host_path(),
        mode: 0o755,
        owner: "root".into(),
        group: "root".into(),
        content,
        secret: false,
        component: binary.component(),
        only_while_missing: None,
    }
}

/// Adds each host's binaries to `desired` with empty content (so the facts gathered
/// next cover their paths), and makes the unit running each binary watch it (a new
/// binary restarts its daemon). [`fill`] must follow before a plan is made; `reset`
/// needs only the paths.
pub fn add_placeholders(desired: &mut DesiredState, inv: &Inventory) -> anyhow::Result<()> {
    for d in &mut desired.hosts {
        let Some(host) = inv.host(&d.host) else { continue };
        for binary in wanted(inv, host) {
            let path = binary.host_path();
            if d.files.iter().any(|f| f.path == path) {
                bail!("host {}: {path} is rendered already; it is reserved for the {binary} binary", d.host);
            }
            d.files.push(file(binary, Arc::new(Vec::new())));
            if let Some(unit) = binary.unit().and_then(|u| d.units.iter_mut().find(|x| x.name == u))
                && !unit.watches.contains(&path)
            {
                unit.watches.push(path);
            }
        }
        // Render hands out files sorted by path; keep it so (stable plans and output).
        d.files.sort_by(|a, b| a.path.cmp(&b.path));
    }
    Ok(())
}

/// Puts the resolved content into the placeholders [`add_placeholders`] made. Every
/// placeholder must be filled: an empty binary is never pushed.
pub fn fill(desired: &mut DesiredState, artifacts: &Artifacts, inv: &Inventory) -> anyhow::Result<()> {
    for d in &mut desired.hosts {
        let Some(host) = inv.host(&d.host) else { continue };
        let resolved: BTreeMap<String, Arc<Vec<u8>>> =
            files_for(artifacts, host).into_iter().map(|f| (f.path, f.content)).collect();
        for binary in wanted(inv, host) {
            let path = binary.host_path();
            let Some(f) = d.files.iter_mut().find(|f| f.path == path) else {
                bail!("host {}: {path} was not prepared (add_placeholders must run before the facts)", d.host);
            };
            match resolved.get(&path) {
                Some(content) => f.content = content.clone(),
                None => bail!(
                    "host {}: no {binary} binary was resolved for linux/{} (internal: resolve and fill disagree)",
                    d.host,
                    artifacts.arch_of(&d.host)
                ),
            }
        }
    }
    Ok(())
}

/// Each host's architecture from its facts (`uname -m`), for the hosts that get
/// binaries. A host on an architecture without releases is an error naming it.
pub fn arches_from_machines(
    inv: &Inventory,
    machines: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, Arch>> {
    let mut out = BTreeMap::new();
    let mut bad = Vec::new();
    for host in &inv.hosts {
        let Some(machine) = machines.get(&host.name) else { continue };
        match Arch::from_machine(machine) {
            Some(arch) => {
                out.insert(host.name.clone(), arch);
            }
            None if wanted(inv, host).is_empty() => {}
            None => bad.push(format!("{} is {machine}", host.name)),
        }
    }
    if !bad.is_empty() {
        bail!(
            "{}: Kubernetes and etcd binaries are installed for amd64 and arm64 only; \
             for other machines install them yourself and set artifacts.kubernetes = \"skip\" / artifacts.etcd = \"preinstalled\" \
             (and the runtime's: artifacts.runtime = \"preinstalled\")",
            bad.join(", ")
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::{Origin, Resolved, SourceKind};
    use crate::desired::{Component, DesiredHost, ManagedUnit};
    use crate::inventory::Role;

    fn inventory(extra: &str) -> Inventory {
        let text = format!(
            r#"
[cluster]
name = "t"
kubernetes_version = "1.34.2"
etcd_version = "3.5.21"
api_endpoint = "127.0.0.1"
service_cidr = "10.32.0.0/24"
pod_cidr = "10.200.0.0/16"
{extra}
[[host]]
name = "cp1"
address = "10.0.0.1"
roles = ["etcd", "control-plane"]
[[host]]
name = "w1"
address = "10.0.0.2"
roles = ["worker"]
"#
        );
        crate::inventory::parse(std::path::Path::new("t.toml"), &text).expect("valid").inventory
    }

    fn artifacts(inv: &Inventory, arch: Arch) -> Artifacts {
        let mut set = BTreeMap::new();
        for b in enabled(inv) {
            let content = Arc::new(format!("{b}-{arch}").into_bytes());
            let origin = Origin { source: SourceKind::Cache, path: "/c".into(), url: None, checksum_file: None };
            set.insert(b, Resolved { binary: b, arch, sha256: String::new(), size: 0, content, origin });
        }
        Artifacts {
            kubernetes_version: "v1.34.2".into(),
            etcd_version: "v3.5.21".into(),
            sets: BTreeMap::from([(arch, set)]),
            host_arch: inv.hosts.iter().map(|h| (h.name.clone(), arch)).collect(),
            notes: vec![],
        }
    }

    fn paths(files: &[ManagedFile]) -> Vec<&str> {
        files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn roles_and_sources_pick_the_files() {
        let inv = inventory("");
        let a = artifacts(&inv, Arch::Arm64);
        let cp = files_for(&a, &inv.hosts[0]);
        assert_eq!(
            paths(&cp),
            [
                "/usr/local/bin/etcd",
                "/usr/local/bin/etcdctl",
                "/usr/local/bin/etcdutl",
                "/usr/local/bin/kube-apiserver",
                "/usr/local/bin/kube-controller-manager",
                "/usr/local/bin/kube-scheduler",
                "/usr/local/bin/kubectl",
                "/usr/local/bin/kubelet",
                "/usr/local/bin/kube-proxy",
            ]
        );
        let f = &cp[3];
        assert_eq!((f.mode, f.owner.as_str(), f.group.as_str(), f.secret), (0o755, "root", "root", false));
        assert_eq!(f.component, Component::KubeApiserver);
        assert_eq!(cp[0].component, Component::Etcd);
        assert_eq!(f.content.as_slice(), b"kube-apiserver-arm64");
        // Shared, not copied: both hosts' kubelet is the same allocation.
        let w = files_for(&a, &inv.hosts[1]);
        assert_eq!(paths(&w), ["/usr/local/bin/kubelet", "/usr/local/bin/kube-proxy"]);
        assert!(Arc::ptr_eq(&w[0].content, &cp[7].content));

        let skip = inventory("[artifacts]\nkubernetes = \"skip\"\netcd = \"preinstalled\"\n");
        assert!(wanted(&skip, &skip.hosts[0]).is_empty());
        let mut inv34 = inventory("[artifacts]\nkubernetes = \"skip\"\n");
        inv34.cluster.etcd_version = "3.4.23".into();
        assert_eq!(wanted(&inv34, &inv34.hosts[0]), [Binary::Etcd, Binary::Etcdctl]);
    }

    #[test]
    fn placeholders_then_fill() {
        let inv = inventory("");
        let unit = |name: &str, c| ManagedUnit { name: name.into(), component: c, watches: vec!["/etc/x".into()] };
        let mut desired = DesiredState {
            hosts: inv
                .hosts
                .iter()
                .map(|h| DesiredHost {
                    host: h.name.clone(),
                    users: vec![],
                    dirs: vec![],
                    files: vec![],
                    units: if h.has(Role::Etcd) {
                        vec![
                            unit("etcd.service", Component::Etcd),
                            unit("kube-apiserver.service", Component::KubeApiserver),
                        ]
                    } else {
                        vec![unit("kubelet.service", Component::Kubelet)]
                    },
                })
                .collect(),
        };
        add_placeholders(&mut desired, &inv).unwrap();
        assert_eq!(desired.hosts[0].files.len(), 9);
        assert!(desired.hosts[0].files.iter().all(|f| f.content.is_empty()));
        assert_eq!(desired.hosts[0].units[0].watches, ["/etc/x", "/usr/local/bin/etcd"]);
        assert_eq!(desired.hosts[0].units[1].watches, ["/etc/x", "/usr/local/bin/kube-apiserver"]);
        assert_eq!(desired.hosts[1].units[0].watches, ["/etc/x", "/usr/local/bin/kubelet"]);
        let sorted = {
            let mut p = paths(&desired.hosts[0].files);
            p.sort();
            p
        };
        assert_eq!(paths(&desired.hosts[0].files), sorted);
        // Twice is refused (the path is taken).
        assert!(add_placeholders(&mut desired.clone(), &inv).unwrap_err().to_string().contains("is rendered already"));

        fill(&mut desired, &artifacts(&inv, Arch::Amd64), &inv).unwrap();
        let kubelet = desired.hosts[1].file("/usr/local/bin/kubelet").unwrap();
        assert_eq!(kubelet.content.as_slice(), b"kubelet-amd64");
        assert!(desired.hosts.iter().flat_map(|h| &h.files).all(|f| !f.content.is_empty()));

        // Artifacts without the binaries a host needs: refused, never an empty push.
        let mut missing = artifacts(&inv, Arch::Amd64);
        missing.sets.values_mut().for_each(|s| {
            s.remove(&Binary::KubeProxy);
        });
        let e = fill(&mut desired, &missing, &inv).unwrap_err().to_string();
        assert!(e.contains("no kube-proxy binary was resolved for linux/amd64"), "{e}");
    }

    #[test]
    fn runtime_binaries_go_to_every_kubelet_host_only_when_provision_installs_them() {
        let extra = "[[host]]\nname = \"e1\"\naddress = \"10.0.0.9\"\nroles = [\"etcd\"]\n";
        let runtime = |inv: &Inventory, i: usize| -> Vec<String> {
            wanted(inv, &inv.hosts[i])
                .into_iter()
                .filter(|b| Binary::RUNTIME.contains(b))
                .map(|b| b.host_path())
                .collect()
        };
        for source in ["download", "directory"] {
            let inv = inventory(&format!("[artifacts]\nruntime = \"{source}\"\ndirectory = \"/srv\"\n{extra}"));
            assert_eq!(inv.hosts[0].name, "e1");
            assert!(runtime(&inv, 0).is_empty(), "an etcd-only host runs no kubelet: no runtime");
            for i in [1, 2] {
                assert_eq!(runtime(&inv, i), Binary::RUNTIME.map(|b| b.host_path()), "{source} {}", inv.hosts[i].name);
            }
        }
        for source in ["preinstalled", "skip"] {
            let inv = inventory(&format!("[artifacts]\nruntime = \"{source}\"\n"));
            assert!(runtime(&inv, 0).is_empty() && runtime(&inv, 1).is_empty(), "{source}: the host's own or none");
        }
        // containerd.service restarts when the daemon or its shim changes.
        let inv = inventory("[artifacts]\nruntime = \"download\"\n");
        let unit = ManagedUnit { name: "containerd.service".into(), component: Component::Runtime, watches: vec![] };
        let mut desired = DesiredState {
            hosts: vec![DesiredHost {
                host: "w1".into(),
                users: vec![],
                dirs: vec![],
                files: vec![],
                units: vec![unit],
            }],
        };
        add_placeholders(&mut desired, &inv).unwrap();
        assert_eq!(
            desired.hosts[0].units[0].watches,
            ["/usr/local/bin/containerd", "/usr/local/bin/containerd-shim-runc-v2"]
        );
        let cni = desired.hosts[0].file("/opt/cni/bin/portmap").unwrap();
        assert_eq!((cni.mode, cni.owner.as_str(), cni.component), (0o755, "root", Component::Runtime));
    }

    #[test]
    fn machines_map_to_arches() {
        let inv = inventory("");
        let m =
            |a: &str, b: &str| BTreeMap::from([("cp1".to_string(), a.to_string()), ("w1".to_string(), b.to_string())]);
        let got = arches_from_machines(&inv, &m("x86_64", "aarch64")).unwrap();
        assert_eq!(got, BTreeMap::from([("cp1".into(), Arch::Amd64), ("w1".into(), Arch::Arm64)]));
        let e = arches_from_machines(&inv, &m("x86_64", "riscv64")).unwrap_err().to_string();
        assert!(
            e.starts_with("w1 is riscv64: Kubernetes and etcd binaries are installed for amd64 and arm64 only"),
            "{e}"
        );
        // A host that gets no binaries may be anything.
        let skip = inventory("[artifacts]\nkubernetes = \"skip\"\netcd = \"preinstalled\"\n");
        assert!(arches_from_machines(&skip, &m("s390x", "riscv64")).unwrap().is_empty());
    }
}
