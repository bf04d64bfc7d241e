//! The state directory on the operator's machine: `.provision/<cluster>/` beside
//! the inventory file. It holds the PKI, the encryption key and the pinned host keys.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory for `cluster` next to the inventory at `inventory_path`.
    pub fn beside(inventory_path: &Path, cluster: &str) -> StateDir {
        let dir = inventory_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        StateDir { root: dir.join(".provision").join(cluster) }
    }

    pub fn at(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.root.join("pki")
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.root.join("known_hosts")
    }

    pub fn secrets_dir(&self) -> PathBuf {
        self.root.join("secrets")
    }

    /// The admin kubeconfig for the operator (`kubectl --kubeconfig=...`), 0600: the
    /// same file apply puts at /etc/kubernetes/admin.conf on the control-plane hosts.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.root.join("admin.conf")
    }
}
