//! The state directory on the operator's machine: `.provision/<cluster>/` beside
//! the inventory file. It holds the PKI, the encryption key and the pinned host keys.

use std::path::{Path, PathBuf};

use crate::trust::{self, Leaf, TrustError};

#[derive(Debug, Clone)]
pub struct StateDir {
    /// The directory above the state dir that we trust but do not own (the inventory's
    /// directory): everything from here down to `root` must be ours (see crate::trust).
    anchor: PathBuf,
    root: PathBuf,
}

impl StateDir {
    /// The state directory for `cluster` next to the inventory at `inventory_path`.
    pub fn beside(inventory_path: &Path, cluster: &str) -> StateDir {
        let dir = inventory_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        StateDir { anchor: dir.to_path_buf(), root: dir.join(".provision").join(cluster) }
    }

    pub fn at(root: impl Into<PathBuf>) -> StateDir {
        let root: PathBuf = root.into();
        let anchor = root.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        StateDir { anchor, root }
    }

    /// The part of `root` that must be ours, relative to the anchor.
    fn owned_part(&self) -> Result<&Path, TrustError> {
        self.root.strip_prefix(&self.anchor).map_err(|_| TrustError::NotADirectory {
            path: self.root.clone(),
            kind: "a path outside the inventory's directory",
        })
    }

    /// Creates (0700) or checks the state dir, `pki/` and `secrets/`: real directories of
    /// ours, no link on the way, nobody else can write to them or above them (except a
    /// sticky directory such as /tmp). An attacker's pre-created CA is never used.
    pub fn prepare(&self) -> Result<(), TrustError> {
        let owned = self.owned_part()?;
        for sub in ["", "pki", "secrets"] {
            trust::dir_below(&self.anchor, &owned.join(sub), 0o700, Leaf::SetMode)?;
        }
        Ok(())
    }

    /// `<state dir>/<name>`, created 0700 (e.g. `backups`), after the same checks.
    pub fn private_subdir(&self, name: &str) -> Result<PathBuf, TrustError> {
        trust::dir_below(&self.anchor, &self.owned_part()?.join(name), 0o700, Leaf::SetMode)
    }

    /// For commands that only read the state: true when it exists, an error when it
    /// exists but is not trustworthy.
    pub fn check(&self) -> Result<bool, TrustError> {
        trust::check_dir_below(&self.anchor, self.owned_part()?)
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

    /// The break-glass super-admin kubeconfig (system:masters), 0600: only here, never
    /// on a host.
    pub fn super_admin_kubeconfig(&self) -> PathBuf {
        self.root.join("super-admin.conf")
    }

    /// Keeps the render's operator-only files (super-admin.conf) in the state dir, 0600,
    /// written only when they differ. Returns the path when there is one.
    pub fn keep_operator_files(&self, rendered: &crate::render::Rendered) -> anyhow::Result<Option<PathBuf>> {
        let Some(conf) = &rendered.super_admin_conf else { return Ok(None) };
        self.prepare()?;
        let path = self.super_admin_kubeconfig();
        let same =
            trust::read_ours(&path)?.is_some_and(|old| zeroize::Zeroizing::new(old).as_slice() == conf.as_bytes());
        if !same {
            crate::fsutil::write_atomic(&path, conf.as_bytes(), 0o600)?;
        }
        Ok(Some(path))
    }

    /// The admin kubeconfig for the operator (`kubectl --kubeconfig=...`), 0600: the
    /// same file apply puts at /etc/kubernetes/admin.conf on the control-plane hosts.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.root.join("admin.conf")
    }
}
