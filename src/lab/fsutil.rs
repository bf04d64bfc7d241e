//! File helpers: atomic writes (temp file + rename) and tree removal that never
//! descends into a mounted filesystem.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::mounts;

/// Writes `content` to `path` with `mode` via a temp file in the same directory and a
/// rename, so a reader (or a crash) never sees half a file.
pub fn write_atomic(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    write_atomic_owned(path, content, mode, None)
}

/// Like `write_atomic`, and chowns the file to `owner` (uid, gid) before the rename.
pub fn write_atomic_owned(path: &Path, content: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    let dir = path.parent().with_context(|| format!("{} has no parent directory", path.display()))?;
    let name = path.file_name().with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        // Set the mode before writing so secrets are never readable by others, even briefly.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting mode of {}", tmp.display()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
                .with_context(|| format!("setting owner of {}", tmp.display()))?;
        }
        f.write_all(content).with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` (and parents) and makes sure it is 0700.
pub fn private_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting mode 0700 on {}", path.display()))
}

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
