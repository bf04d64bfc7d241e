//! The desired state of every host: the files, directories, users and units that
//! `render` produces and that `plan` compares with what the hosts have.
//!
//! This is the contract between rendering and the plan: `provision render` writes
//! exactly these files (mirrored under its output directory), and `apply` installs
//! exactly these files, so the two can never disagree.

use std::sync::Arc;

use serde::Serialize;

/// The part of the control plane a file or unit belongs to. Apply works through
/// components in this order, one phase each, waiting for health in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// Files every host needs before any service starts (CA certificates, users, dirs).
    Base,
    Etcd,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Kubelet,
}

#[derive(Debug, Clone, Serialize)]
pub struct DesiredState {
    pub hosts: Vec<DesiredHost>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DesiredHost {
    /// Inventory host name.
    pub host: String,
    pub users: Vec<SystemUser>,
    pub dirs: Vec<ManagedDir>,
    pub files: Vec<ManagedFile>,
    pub units: Vec<ManagedUnit>,
}

/// A system account a service runs as (e.g. etcd), created when missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemUser {
    pub name: String,
    pub home: String,
    pub component: Component,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedDir {
    /// Absolute path on the host.
    pub path: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub component: Component,
}

#[derive(Clone, Serialize)]
pub struct ManagedFile {
    /// Absolute path on the host.
    pub path: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    #[serde(skip)]
    pub content: Arc<Vec<u8>>,
    /// Private keys, tokens, encryption keys: content never printed or logged.
    pub secret: bool,
    pub component: Component,
}

/// A systemd unit provision manages. It is enabled and started; it is restarted
/// when any file in `watches` (its unit file, flags' files, certificates) changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedUnit {
    /// e.g. "etcd.service"
    pub name: String,
    pub component: Component,
    /// Absolute paths of the files whose change requires a restart.
    pub watches: Vec<String>,
}

/// Debug never shows the content: it may be a private key (only its size and digest).
impl std::fmt::Debug for ManagedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedFile")
            .field("path", &self.path)
            .field("mode", &format_args!("{:04o}", self.mode))
            .field("owner", &self.owner)
            .field("group", &self.group)
            .field("size", &self.content.len())
            .field("sha256", &self.sha256_hex())
            .field("secret", &self.secret)
            .field("component", &self.component)
            .finish()
    }
}

impl ManagedFile {
    pub fn sha256_hex(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(self.content.as_slice()))
    }
}

impl DesiredHost {
    pub fn file(&self, path: &str) -> Option<&ManagedFile> {
        self.files.iter().find(|f| f.path == path)
    }
}
