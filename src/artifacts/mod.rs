//! The Kubernetes, etcd and container runtime binaries: where they come from (downloaded into a cache on
//! the operator's machine with the published checksums checked, or taken from a local
//! directory for air-gapped installs), and which host gets which.
//!
//! ```ignore
//! let artifacts = artifacts::resolve(&loaded, &host_arches)?;  // before anything on a host changes
//! let files = artifacts::files_for(&artifacts, host);         // /usr/local/bin/<name>, 0755 root:root
//! ```
//! The pipeline (plan/apply) adds the binaries' paths to the desired state before the
//! facts are gathered ([`add_placeholders`]), learns each host's architecture from
//! them, resolves, and fills the content in ([`fill`]): a bad checksum or a missing file
//! stops the run before the plan exists. Operators' reference: docs/artifacts.md.

mod cache;
mod catalog;
pub mod checksum;
mod download;
pub mod elf;
pub mod etcd_tarball;
mod host_files;
mod local_dir;
mod progress;
pub mod release;
mod resolve;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

pub use cache::default_root as default_cache_root;
pub use catalog::{
    Arch, BIN_DIR, Binary, CNI_BIN_DIR, Tier, etcd_sums_url, etcd_tarball_name, etcd_tarball_url, kubernetes_url,
};
pub use checksum::{Mismatch, sha256_hex};
pub use host_files::{add_placeholders, arches_from_machines, files_for, fill, wanted};
pub use local_dir::SUMS_FILE;
pub use progress::{Progress, human_bytes};
pub use resolve::{Options, SourceChoice, export_to, resolve, resolve_with};

/// The binaries of one cluster, per architecture, verified and in memory.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub kubernetes_version: String,
    pub etcd_version: String,
    pub sets: BTreeMap<Arch, BTreeMap<Binary, Resolved>>,
    /// Each host's architecture (from its facts); hosts not listed use [`Arch::DEFAULT`].
    pub host_arch: BTreeMap<String, Arch>,
    /// What the operator should know: skipped tiers, unverified files, repaired cache.
    pub notes: Vec<String>,
}

impl Artifacts {
    pub fn arch_of(&self, host: &str) -> Arch {
        self.host_arch.get(host).copied().unwrap_or(Arch::DEFAULT)
    }

    /// Every resolved binary, by architecture then binary.
    pub fn all(&self) -> impl Iterator<Item = &Resolved> {
        self.sets.values().flat_map(|s| s.values())
    }
}

/// One verified binary.
#[derive(Clone, Serialize)]
pub struct Resolved {
    pub binary: Binary,
    pub arch: Arch,
    /// Shared by every host that gets it: one copy in memory however many hosts.
    #[serde(skip)]
    pub content: Arc<Vec<u8>>,
    pub sha256: String,
    pub size: u64,
    pub origin: Origin,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("binary", &self.binary)
            .field("arch", &self.arch)
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .field("origin", &self.origin)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Verified copy already in the download cache.
    Cache,
    /// Downloaded by this run (and now in the cache).
    Download,
    /// From `artifacts.directory`.
    Directory,
}

/// Where a binary came from and what it was checked against.
#[derive(Debug, Clone, Serialize)]
pub struct Origin {
    pub source: SourceKind,
    /// The file read: the binary itself, or the etcd tarball it was taken from.
    pub path: PathBuf,
    pub url: Option<String>,
    /// The checksum file it matched; None means unverified (a directory without checksums).
    pub checksum_file: Option<PathBuf>,
}
