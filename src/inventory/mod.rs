//! The inventory: a TOML file that describes the cluster and its hosts.
//!
//! ```ignore
//! let loaded = inventory::load(Path::new("inventories/lab.toml"))?;   // Err: every problem, with file:line:col
//! loaded.inventory.hosts_with(Role::Etcd);
//! loaded.resolve_path(loaded.inventory.ssh.private_key.as_deref()?);    // relative to the file, ~/ expanded
//! loaded.state_dir();                                                   // .provision/<cluster>/ beside the file
//! ```
//! The reference for operators is docs/inventory.md.

mod diagnostics;
mod load;
mod locate;
pub mod pod_slices;
mod report;
mod schema;
mod spec;
mod suggest;
mod validate;
mod walk;

use std::path::{Path, PathBuf};

pub use diagnostics::{Diagnostic, Diagnostics, Severity};
pub use load::MAX_INVENTORY_BYTES;
pub use schema::*;
pub use validate::{JumpHost, SUPPORTED_ETCD_MINORS, SUPPORTED_KUBERNETES_MINORS};

use crate::state::StateDir;

/// A valid inventory, where it was read from, and the warnings it raised.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub inventory: Inventory,
    /// The path as given (messages name the file the way the operator wrote it).
    pub path: PathBuf,
    pub warnings: Vec<Diagnostic>,
}

/// Reads, parses and validates the inventory at `path`. On failure the error holds
/// every problem found (and the warnings), never just the first.
pub fn load(path: &Path) -> Result<Loaded, Diagnostics> {
    let text = load::read(path)?;
    parse(path, &text)
}

/// Like [`load`] for text already in memory; `path` names it in messages and anchors
/// its relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Loaded, Diagnostics> {
    let (inventory, warnings) = load::parse_text(path, text)?;
    Ok(Loaded { inventory, path: path.to_path_buf(), warnings })
}

impl Loaded {
    /// A path written in the inventory, made usable: `~/...` is under $HOME, and a
    /// relative path is relative to the inventory file's directory (not to wherever
    /// `provision` was started), so an inventory and its keys can move together.
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        if let Ok(rest) = p.strip_prefix("~")
            && let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty())
        {
            return PathBuf::from(home).join(rest);
        }
        if p.is_absolute() {
            return p.to_path_buf();
        }
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        dir.join(p)
    }

    /// `.provision/<cluster>/` beside the inventory file.
    pub fn state_dir(&self) -> StateDir {
        StateDir::beside(&self.path, &self.inventory.cluster.name)
    }

    /// Hosts per role: (etcd, control-plane, worker).
    pub fn role_counts(&self) -> (usize, usize, usize) {
        let count = |role| self.inventory.hosts_with(role).count();
        (count(Role::Etcd), count(Role::ControlPlane), count(Role::Worker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(path: &str) -> Loaded {
        parse(Path::new(path), validate::testing::VALID).expect("valid")
    }

    #[test]
    fn relative_paths_are_relative_to_the_inventory() {
        let l = loaded("/srv/clusters/prod.toml");
        assert_eq!(l.resolve_path(Path::new("keys/id_ed25519")), Path::new("/srv/clusters/keys/id_ed25519"));
        assert_eq!(l.resolve_path(Path::new("/etc/key")), Path::new("/etc/key"));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(loaded("prod.toml").resolve_path(Path::new("k")), cwd.join("k"));
    }

    #[test]
    fn tilde_is_home() {
        let home = std::env::var_os("HOME").expect("HOME is set in tests");
        let l = loaded("/srv/prod.toml");
        assert_eq!(l.resolve_path(Path::new("~/.ssh/id_ed25519")), PathBuf::from(&home).join(".ssh/id_ed25519"));
        assert_eq!(l.resolve_path(Path::new("~")), PathBuf::from(&home));
        // "~user" is not expanded (only the operator's own home is meant).
        assert_eq!(l.resolve_path(Path::new("~other/k")), Path::new("/srv/~other/k"));
    }

    #[test]
    fn state_dir_is_beside_the_inventory() {
        assert_eq!(loaded("/srv/clusters/prod.toml").state_dir().root(), Path::new("/srv/clusters/.provision/lab"));
    }

    #[test]
    fn typed_values_and_defaults() {
        let l = loaded("x.toml");
        let inv = &l.inventory;
        assert_eq!(inv.hosts.len(), 3);
        assert_eq!(inv.cluster.api_port, 6443);
        assert_eq!(inv.ssh.user, "root");
        assert_eq!(inv.etcd.client_port, 2379);
        assert_eq!(inv.cluster.first_service_ip().to_string(), "10.32.0.1");
        assert_eq!(inv.cluster.dns_service_ip().to_string(), "10.32.0.10");
        assert_eq!(l.role_counts(), (3, 3, 0));
    }

    #[test]
    fn load_reads_files_and_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.toml");
        std::fs::write(&path, validate::testing::VALID).unwrap();
        assert_eq!(load(&path).unwrap().path, path);
        let missing = load(&dir.path().join("nope.toml")).unwrap_err();
        assert!(missing.to_string().contains("nope.toml: cannot open the inventory"), "{missing}");
        std::fs::write(&path, b"[cluster]\nname = \"l\xffb\"\n").unwrap();
        let not_utf8 = load(&path).unwrap_err().to_string();
        assert!(not_utf8.ends_with("lab.toml:2:10: is not UTF-8 text (byte 0xff); save it as UTF-8"), "{not_utf8}");
        std::fs::write(&path, vec![b'#'; MAX_INVENTORY_BYTES as usize + 1]).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("is larger than 1048576 bytes"));
    }
}
