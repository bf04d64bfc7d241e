//! File helpers: atomic writes (temp file + rename) and tree removal that never
//! descends into a mounted filesystem.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::mounts;

pub use crate::fsutil::{private_dir, write_atomic, write_atomic_owned};



/// Creates a directory with `mode` (and its owner) when missing.
pub fn dir_with_mode(path: &Path, mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode of {}", path.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("setting owner of {}", path.display()))?;
    }
    Ok(())
}

/// Removes `path` and everything below it. Anything still mounted below it is unmounted
/// first; if a mount cannot be removed the tree is left alone, because deleting through a
/// mount (a bind-mounted /dev, a host's overlay) would delete files that are not ours.
pub fn remove_tree(path: &Path) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(path) else { return Ok(()) };
    if !meta.is_dir() {
        return remove_file_if_exists(path);
    }
    mounts::unmount_all_under(path)?;
    let left = mounts::mount_points_under(path)?;
    if !left.is_empty() {
        bail!(
            "not removing {}: still mounted below it: {}",
            path.display(),
            left.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))
}

/// Removes a file; a missing file is fine.
pub fn remove_file_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn atomic_write_sets_mode_and_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        // No temp files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn private_dir_tightens_an_existing_dir() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b");
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&p).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn remove_tree_removes_and_tolerates_absence() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        fs::create_dir_all(p.join("x/y")).unwrap();
        fs::write(p.join("x/y/f"), "z").unwrap();
        remove_tree(&p).unwrap();
        assert!(!p.exists());
        remove_tree(&p).unwrap();
    }
}
