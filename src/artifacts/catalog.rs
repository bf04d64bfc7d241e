//! What is installed where: the binaries, their architectures, the official release
//! URLs and which hosts get which binary (by role, matching what render runs there).

use std::fmt;

use serde::Serialize;

use crate::desired::Component;
use crate::inventory::{Host, Role};

/// Where every binary goes on the hosts (the units' ExecStart= point here).
pub const BIN_DIR: &str = "/usr/local/bin";
/// Where the CNI plugins go when provision installs them (the upstream default, which the
/// rendered containerd config names).
pub const CNI_BIN_DIR: &str = "/opt/cni/bin";

/// CPU architecture, in the names the Kubernetes and etcd releases use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    /// Used for hosts whose architecture is unknown (not reached yet).
    pub const DEFAULT: Arch = Arch::Amd64;
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// From `uname -m` (what the facts report) or a release name.
    pub fn from_machine(machine: &str) -> Option<Arch> {
        match machine.trim() {
            "x86_64" | "amd64" => Some(Arch::Amd64),
            "aarch64" | "arm64" | "aarch64_be" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// ELF e_machine of a binary built for this architecture.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::Amd64 => 62,  // EM_X86_64
            Arch::Arm64 => 183, // EM_AARCH64
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Arch, String> {
        Arch::from_machine(s).ok_or_else(|| format!("unknown architecture {s:?}: expected amd64 or arm64"))
    }
}

/// The release trains binaries come from: Kubernetes publishes each binary alone, the
/// others one release file per architecture (see [`super::release`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    Etcd,
    Kubernetes,
    Containerd,
    Runc,
    CniPlugins,
    Crictl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Binary {
    Etcd,
    Etcdctl,
    Etcdutl,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Kubectl,
    Kubelet,
    KubeProxy,
    Containerd,
    ContainerdShimRuncV2,
    Ctr,
    Runc,
    Crictl,
    CniBridge,
    CniHostLocal,
    CniLoopback,
    CniPortmap,
}

impl Binary {
    pub const ETCD: [Binary; 3] = [Binary::Etcd, Binary::Etcdctl, Binary::Etcdutl];
    pub const KUBERNETES: [Binary; 6] = [
        Binary::KubeApiserver,
        Binary::KubeControllerManager,
        Binary::KubeScheduler,
        Binary::Kubectl,
        Binary::Kubelet,
        Binary::KubeProxy,
    ];
    /// The container runtime tier when provision installs it (artifacts.runtime =
    /// "download" or "directory"). The CNI plugins are the four the rendered bridge
    /// configuration uses (bridge, host-local IPAM, portmap) plus loopback for the pods'
    /// `lo`: the one list preflight, verify and the installs use.
    pub const RUNTIME: [Binary; 9] = [
        Binary::Containerd,
        Binary::ContainerdShimRuncV2,
        Binary::Ctr,
        Binary::Runc,
        Binary::Crictl,
        Binary::CniBridge,
        Binary::CniHostLocal,
        Binary::CniLoopback,
        Binary::CniPortmap,
    ];
    pub const CNI_PLUGINS: [Binary; 4] =
        [Binary::CniBridge, Binary::CniHostLocal, Binary::CniLoopback, Binary::CniPortmap];

    pub fn name(self) -> &'static str {
        match self {
            Binary::Etcd => "etcd",
            Binary::Etcdctl => "etcdctl",
            Binary::Etcdutl => "etcdutl",
            Binary::KubeApiserver => "kube-apiserver",
            Binary::KubeControllerManager => "kube-controller-manager",
            Binary::KubeScheduler => "kube-scheduler",
            Binary::Kubectl => "kubectl",
            Binary::Kubelet => "kubelet",
            Binary::KubeProxy => "kube-proxy",
            Binary::Containerd => "containerd",
            Binary::ContainerdShimRuncV2 => "containerd-shim-runc-v2",
            Binary::Ctr => "ctr",
            Binary::Runc => "runc",
            Binary::Crictl => "crictl",
            Binary::CniBridge => "bridge",
            Binary::CniHostLocal => "host-local",
            Binary::CniLoopback => "loopback",
            Binary::CniPortmap => "portmap",
        }
    }

    pub fn tier(self) -> Tier {
        match self {
            Binary::Etcd | Binary::Etcdctl | Binary::Etcdutl => Tier::Etcd,
            Binary::KubeApiserver
            | Binary::KubeControllerManager
            | Binary::KubeScheduler
            | Binary::Kubectl
            | Binary::Kubelet
            | Binary::KubeProxy => Tier::Kubernetes,
            Binary::Containerd | Binary::ContainerdShimRuncV2 | Binary::Ctr => Tier::Containerd,
            Binary::Runc => Tier::Runc,
            Binary::Crictl => Tier::Crictl,
            Binary::CniBridge | Binary::CniHostLocal | Binary::CniLoopback | Binary::CniPortmap => Tier::CniPlugins,
        }
    }

    /// Its name inside an `artifacts.directory` holding extracted binaries: the CNI
    /// plugins in a `cni/` subfolder (their names, like `bridge`, say nothing alone).
    pub fn directory_entry(self) -> String {
        match self.tier() {
            Tier::CniPlugins => format!("cni/{}", self.name()),
            _ => self.name().to_string(),
        }
    }

    /// The apply phase that installs it: a binary lands with the component it runs.
    /// kubectl comes with the apiserver (the post-bootstrap RBAC step uses it);
    /// kube-proxy with the kubelet (render puts its unit in the node phase).
    pub fn component(self) -> Component {
        match self {
            Binary::Etcd | Binary::Etcdctl | Binary::Etcdutl => Component::Etcd,
            Binary::KubeApiserver | Binary::Kubectl => Component::KubeApiserver,
            Binary::KubeControllerManager => Component::KubeControllerManager,
            Binary::KubeScheduler => Component::KubeScheduler,
            Binary::Kubelet | Binary::KubeProxy => Component::Kubelet,
            _ => Component::Runtime,
        }
    }

    /// The systemd unit that runs this binary: it restarts when the binary changes.
    pub fn unit(self) -> Option<&'static str> {
        match self {
            Binary::Etcd => Some("etcd.service"),
            Binary::KubeApiserver => Some("kube-apiserver.service"),
            Binary::KubeControllerManager => Some("kube-controller-manager.service"),
            Binary::KubeScheduler => Some("kube-scheduler.service"),
            Binary::Kubelet => Some("kubelet.service"),
            Binary::KubeProxy => Some("kube-proxy.service"),
            // The shim comes with the daemon's release and must match it; runc, ctr,
            // crictl and the CNI plugins are run afresh for each use. The unit keeps
            // KillMode=process, so running containers survive the restart.
            Binary::Containerd | Binary::ContainerdShimRuncV2 => Some("containerd.service"),
            _ => None,
        }
    }

    /// Absolute path on the hosts.
    pub fn host_path(self) -> String {
        match self.tier() {
            Tier::CniPlugins => format!("{CNI_BIN_DIR}/{}", self.name()),
            _ => format!("{BIN_DIR}/{}", self.name()),
        }
    }

    /// Whether `host` runs (or needs) this binary, by its roles. Matches render:
    /// etcd members run etcd; control-plane hosts run the three control-plane daemons
    /// (and get kubectl); control-plane and worker hosts run kubelet and kube-proxy.
    pub fn wanted_by(self, host: &Host) -> bool {
        match self {
            Binary::Etcd | Binary::Etcdctl | Binary::Etcdutl => host.has(Role::Etcd),
            Binary::KubeApiserver | Binary::KubeControllerManager | Binary::KubeScheduler | Binary::Kubectl => {
                host.has(Role::ControlPlane)
            }
            // kubelet, kube-proxy and the runtime tier: where render puts them (every host
            // with a pod slice).
            _ => host.runs_kubelet(),
        }
    }
}

impl fmt::Display for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The etcd binaries a release ships: etcdutl exists since 3.5.
pub fn etcd_binaries(version: &str) -> Vec<Binary> {
    let mut parts = version.trim_start_matches('v').split('.').map(|p| p.parse::<u32>().ok());
    let has_etcdutl = match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (3, 5),
        _ => true,
    };
    Binary::ETCD.into_iter().filter(|b| *b != Binary::Etcdutl || has_etcdutl).collect()
}

/// "v1.34.2" for "1.34.2" (the inventory may write either).
pub fn v(version: &str) -> String {
    format!("v{}", version.trim_start_matches('v'))
}

fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// `<base>/release/v<ver>/bin/linux/<arch>/<binary>` (dl.k8s.io's layout); the
/// published checksum is the same URL with `.sha256`.
pub fn kubernetes_url(base_url: &str, version: &str, arch: Arch, binary: Binary) -> String {
    format!("{}/release/{}/bin/linux/{}/{}", base(base_url), v(version), arch, binary.name())
}

/// `etcd-v3.5.21-linux-amd64.tar.gz`
pub fn etcd_tarball_name(version: &str, arch: Arch) -> String {
    format!("etcd-{}-linux-{}.tar.gz", v(version), arch)
}

/// `<base>/v<ver>/etcd-v<ver>-linux-<arch>.tar.gz` (the GitHub release page's layout).
pub fn etcd_tarball_url(base_url: &str, version: &str, arch: Arch) -> String {
    format!("{}/{}/{}", base(base_url), v(version), etcd_tarball_name(version, arch))
}

/// The release's checksum list, one `<sha256>  <file>` line per asset.
pub fn etcd_sums_url(base_url: &str, version: &str) -> String {
    format!("{}/{}/SHA256SUMS", base(base_url), v(version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(roles: &[Role]) -> Host {
        Host {
            name: "h".into(),
            address: "127.0.0.1".parse().unwrap(),
            roles: roles.to_vec(),
            ssh_port: None,
            ssh_user: None,
            pod_cidr: None,
        }
    }

    #[test]
    fn official_urls() {
        assert_eq!(
            kubernetes_url("https://dl.k8s.io/", "1.34.2", Arch::Arm64, Binary::KubeApiserver),
            "https://dl.k8s.io/release/v1.34.2/bin/linux/arm64/kube-apiserver"
        );
        let etcd = "https://github.com/etcd-io/etcd/releases/download";
        assert_eq!(
            etcd_tarball_url(etcd, "v3.5.21", Arch::Amd64),
            "https://github.com/etcd-io/etcd/releases/download/v3.5.21/etcd-v3.5.21-linux-amd64.tar.gz"
        );
        assert_eq!(etcd_sums_url(etcd, "3.5.21"), format!("{etcd}/v3.5.21/SHA256SUMS"));
    }

    #[test]
    fn etcdutl_since_3_5() {
        assert_eq!(etcd_binaries("3.4.23"), [Binary::Etcd, Binary::Etcdctl]);
        assert_eq!(etcd_binaries("3.5.21"), Binary::ETCD);
        assert_eq!(etcd_binaries("v3.6.0"), Binary::ETCD);
    }

    #[test]
    fn roles_pick_binaries_like_render() {
        let wanted = |roles: &[Role]| -> Vec<&str> {
            let h = host(roles);
            Binary::ETCD.iter().chain(&Binary::KUBERNETES).filter(|b| b.wanted_by(&h)).map(|b| b.name()).collect()
        };
        assert_eq!(wanted(&[Role::Etcd]), ["etcd", "etcdctl", "etcdutl"]);
        assert_eq!(
            wanted(&[Role::ControlPlane]),
            ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy"]
        );
        assert_eq!(wanted(&[Role::Worker]), ["kubelet", "kube-proxy"]);
        let runtime = |roles: &[Role]| Binary::RUNTIME.iter().filter(|b| b.wanted_by(&host(roles))).count();
        assert_eq!((runtime(&[Role::Etcd]), runtime(&[Role::ControlPlane]), runtime(&[Role::Worker])), (0, 9, 9));
    }

    #[test]
    fn runtime_binaries_paths_and_units() {
        let paths: Vec<String> = Binary::RUNTIME.iter().map(|b| b.host_path()).collect();
        assert_eq!(
            paths,
            [
                "/usr/local/bin/containerd",
                "/usr/local/bin/containerd-shim-runc-v2",
                "/usr/local/bin/ctr",
                "/usr/local/bin/runc",
                "/usr/local/bin/crictl",
                "/opt/cni/bin/bridge",
                "/opt/cni/bin/host-local",
                "/opt/cni/bin/loopback",
                "/opt/cni/bin/portmap",
            ]
        );
        assert!(Binary::RUNTIME.iter().all(|b| b.component() == Component::Runtime));
        let restarting: Vec<&str> = Binary::RUNTIME.iter().filter(|b| b.unit().is_some()).map(|b| b.name()).collect();
        assert_eq!(restarting, ["containerd", "containerd-shim-runc-v2"]);
        assert_eq!(Binary::CniHostLocal.directory_entry(), "cni/host-local");
        assert_eq!(Binary::Runc.directory_entry(), "runc");
    }

    /// RUNTIME spells the plugins out (a const array cannot be concatenated): kept equal.
    #[test]
    fn the_runtime_list_ends_with_the_one_cni_plugin_list() {
        assert_eq!(Binary::RUNTIME[Binary::RUNTIME.len() - Binary::CNI_PLUGINS.len()..], Binary::CNI_PLUGINS);
    }

    #[test]
    fn arch_names() {
        assert_eq!(Arch::from_machine("x86_64\n"), Some(Arch::Amd64));
        assert_eq!(Arch::from_machine("aarch64"), Some(Arch::Arm64));
        assert_eq!(Arch::from_machine("riscv64"), None);
        assert!("s390x".parse::<Arch>().unwrap_err().contains("expected amd64 or arm64"));
    }
}
