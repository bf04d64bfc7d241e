//! The release files that hold binaries: etcd's tarball and the runtime tier's releases
//! (containerd, runc, the CNI plugins, crictl), one file per architecture, each with its
//! published checksum. One description per tier, so download, the directory source, the
//! cache and the export treat them all alike.
//!
//! | tier | file (under `<base>`) | checksum |
//! |---|---|---|
//! | etcd | `v{V}/etcd-v{V}-linux-{arch}.tar.gz` | `v{V}/SHA256SUMS` (list) |
//! | containerd | `containerd/containerd/releases/download/v{V}/containerd-{V}-linux-{arch}.tar.gz` | same + `.sha256sum` |
//! | runc | `opencontainers/runc/releases/download/v{V}/runc.{arch}` | `.../v{V}/runc.sha256sum` (list) |
//! | CNI plugins | `containernetworking/plugins/releases/download/v{V}/cni-plugins-linux-{arch}-v{V}.tgz` | same + `.sha256` |
//! | crictl | `kubernetes-sigs/cri-tools/releases/download/v{V}/crictl-v{V}-linux-{arch}.tar.gz` | same + `.sha256` |

use super::catalog::{self, Arch, Tier, v};
use crate::inventory::Inventory;

/// How the binaries sit in the release file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// A .tar.gz with the binaries in its top directory or one level down.
    Archive,
    /// The file is the binary (runc).
    Raw,
}

/// One published release file and its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFile {
    pub tier: Tier,
    /// "v2.1.4"
    pub version: String,
    /// The file's published name: `containerd-2.1.4-linux-amd64.tar.gz`.
    pub name: String,
    pub url: String,
    pub checksum_url: String,
    /// True: the checksum file lists every asset of the release (`<hex>  <name>` lines);
    /// false: it holds this file's digest alone (bare, or with the name after it).
    pub checksum_is_list: bool,
    pub packing: Packing,
    pub base_url: String,
}

impl ReleaseFile {
    /// The checksum file's name (the last segment of its URL).
    pub fn checksum_name(&self) -> &str {
        self.checksum_url.rsplit('/').next().unwrap_or(&self.checksum_url)
    }

    /// "is containerd v2.1.4 released for linux/amd64? Check artifacts.containerd_version and ..."
    pub fn hint(&self, arch: Arch) -> String {
        self.tier.missing_hint(&self.version, arch, &self.base_url)
    }
}

impl Tier {
    /// The product's name in messages.
    pub fn product(self) -> &'static str {
        match self {
            Tier::Etcd => "etcd",
            Tier::Kubernetes => "Kubernetes",
            Tier::Containerd => "containerd",
            Tier::Runc => "runc",
            Tier::CniPlugins => "CNI plugins",
            Tier::Crictl => "crictl",
        }
    }

    /// What to check when a release file of `version` is not found at `base_url`.
    pub fn missing_hint(self, version: &str, arch: Arch, base_url: &str) -> String {
        format!(
            "is {} {version} released for linux/{arch}? Check {} and {} ({base_url})",
            self.product(),
            self.version_key(),
            self.base_url_key(),
        )
    }

    /// The inventory key holding its version.
    pub fn version_key(self) -> &'static str {
        match self {
            Tier::Etcd => "cluster.etcd_version",
            Tier::Kubernetes => "cluster.kubernetes_version",
            Tier::Containerd => "artifacts.containerd_version",
            Tier::Runc => "artifacts.runc_version",
            Tier::CniPlugins => "artifacts.cni_plugins_version",
            Tier::Crictl => "artifacts.crictl_version",
        }
    }

    pub fn base_url_key(self) -> &'static str {
        match self {
            Tier::Etcd => "artifacts.etcd_base_url",
            Tier::Kubernetes => "artifacts.kubernetes_base_url",
            _ => "artifacts.runtime_base_url",
        }
    }

    /// Its folder in the download cache.
    pub fn cache_dir(self) -> &'static str {
        match self {
            Tier::Etcd => "etcd",
            Tier::Kubernetes => "kubernetes",
            Tier::Containerd => "containerd",
            Tier::Runc => "runc",
            Tier::CniPlugins => "cni-plugins",
            Tier::Crictl => "crictl",
        }
    }

    /// The version the inventory asks for (as written).
    pub fn version_in(self, inv: &Inventory) -> &str {
        let a = &inv.artifacts;
        match self {
            Tier::Etcd => &inv.cluster.etcd_version,
            Tier::Kubernetes => &inv.cluster.kubernetes_version,
            Tier::Containerd => &a.containerd_version,
            Tier::Runc => &a.runc_version,
            Tier::CniPlugins => &a.cni_plugins_version,
            Tier::Crictl => &a.crictl_version,
        }
    }
}

/// The release file of `tier` for `arch`, from the inventory's version and base URL.
/// None for Kubernetes (its binaries are published one by one: [`catalog::kubernetes_url`]).
pub fn release_file(inv: &Inventory, tier: Tier, arch: Arch) -> Option<ReleaseFile> {
    let a = &inv.artifacts;
    let version = tier.version_in(inv);
    let bare = version.trim_start_matches('v');
    let base = match tier {
        Tier::Kubernetes => return None,
        Tier::Etcd => a.etcd_base_url.trim_end_matches('/'),
        _ => a.runtime_base_url.trim_end_matches('/'),
    };
    let github = |repo: &str| format!("{base}/{repo}/releases/download/{}", v(version));
    let (dir, name, checksum_url, checksum_is_list, packing) = match tier {
        Tier::Kubernetes => return None,
        Tier::Etcd => {
            let dir = format!("{base}/{}", v(version));
            let sums = format!("{dir}/{}", super::local_dir::SUMS_FILE);
            (dir, catalog::etcd_tarball_name(version, arch), Some(sums), true, Packing::Archive)
        }
        Tier::Containerd => (
            github("containerd/containerd"),
            format!("containerd-{bare}-linux-{arch}.tar.gz"),
            None,
            false,
            Packing::Archive,
        ),
        Tier::Runc => {
            let dir = github("opencontainers/runc");
            let sums = format!("{dir}/runc.sha256sum");
            (dir, format!("runc.{arch}"), Some(sums), true, Packing::Raw)
        }
        Tier::CniPlugins => (
            github("containernetworking/plugins"),
            format!("cni-plugins-linux-{arch}-v{bare}.tgz"),
            None,
            false,
            Packing::Archive,
        ),
        Tier::Crictl => (
            github("kubernetes-sigs/cri-tools"),
            format!("crictl-v{bare}-linux-{arch}.tar.gz"),
            None,
            false,
            Packing::Archive,
        ),
    };
    let url = format!("{dir}/{name}");
    let own_suffix = if tier == Tier::Containerd { ".sha256sum" } else { ".sha256" };
    Some(ReleaseFile {
        tier,
        version: v(version),
        checksum_url: checksum_url.unwrap_or_else(|| format!("{url}{own_suffix}")),
        name,
        url,
        checksum_is_list,
        packing,
        base_url: base.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(extra: &str) -> Inventory {
        let text = format!(
            "[cluster]\nname = \"t\"\nkubernetes_version = \"1.34.2\"\netcd_version = \"3.5.21\"\napi_endpoint = \"127.0.0.1\"\n\
             service_cidr = \"10.32.0.0/24\"\npod_cidr = \"10.200.0.0/16\"\n[artifacts]\n{extra}\n"
        );
        toml::from_str(&text).expect("an inventory")
    }

    #[test]
    fn official_release_urls_for_each_component_and_arch() {
        let i = inv("");
        let gh = "https://github.com";
        let f = |t, a| release_file(&i, t, a).unwrap();
        let c = f(Tier::Containerd, Arch::Amd64);
        assert_eq!(
            c.url,
            format!("{gh}/containerd/containerd/releases/download/v2.1.4/containerd-2.1.4-linux-amd64.tar.gz")
        );
        assert_eq!(c.checksum_url, format!("{}.sha256sum", c.url));
        assert_eq!(
            (c.checksum_name(), c.checksum_is_list, c.packing),
            ("containerd-2.1.4-linux-amd64.tar.gz.sha256sum", false, Packing::Archive)
        );
        let r = f(Tier::Runc, Arch::Arm64);
        assert_eq!(r.url, format!("{gh}/opencontainers/runc/releases/download/v1.3.0/runc.arm64"));
        assert_eq!(r.checksum_url, format!("{gh}/opencontainers/runc/releases/download/v1.3.0/runc.sha256sum"));
        assert_eq!((r.checksum_is_list, r.packing), (true, Packing::Raw));
        let n = f(Tier::CniPlugins, Arch::Arm64);
        assert_eq!(
            n.url,
            format!("{gh}/containernetworking/plugins/releases/download/v1.7.1/cni-plugins-linux-arm64-v1.7.1.tgz")
        );
        assert_eq!(n.checksum_url, format!("{}.sha256", n.url));
        let k = f(Tier::Crictl, Arch::Amd64);
        assert_eq!(
            k.url,
            format!("{gh}/kubernetes-sigs/cri-tools/releases/download/v1.34.0/crictl-v1.34.0-linux-amd64.tar.gz")
        );
        assert_eq!(k.checksum_url, format!("{}.sha256", k.url));
        let e = f(Tier::Etcd, Arch::Amd64);
        assert_eq!(e.url, catalog::etcd_tarball_url(&i.artifacts.etcd_base_url, "3.5.21", Arch::Amd64));
        assert_eq!(e.checksum_url, catalog::etcd_sums_url(&i.artifacts.etcd_base_url, "3.5.21"));
        assert_eq!(release_file(&i, Tier::Kubernetes, Arch::Amd64), None);
        // A mirror reproduces GitHub's paths under its own base; versions may carry a "v".
        let m = inv("runtime_base_url = \"https://mirror.example/gh/\"\ncontainerd_version = \"v1.7.24\"");
        let c = release_file(&m, Tier::Containerd, Arch::Arm64).unwrap();
        assert_eq!(
            c.url,
            "https://mirror.example/gh/containerd/containerd/releases/download/v1.7.24/containerd-1.7.24-linux-arm64.tar.gz"
        );
        assert!(c.hint(Arch::Arm64).contains("is containerd v1.7.24 released for linux/arm64? Check artifacts.containerd_version and artifacts.runtime_base_url (https://mirror.example/gh)"));
    }
}
