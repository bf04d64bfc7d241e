//! Files on the operator's machine (the PKI, the state directory, the artifacts cache,
//! render output, the lab hosts' files): atomic replacement and private directories, one
//! implementation for all.

use std::fs::{self, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// Creates `dir` (and missing parents, all 0700) and makes sure `dir` itself is 0700,
/// tightening a directory that was there before. Refuses a `dir` that is a link, not
/// ours or writable by others, and parents another user controls (see [`crate::trust`]).
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    crate::trust::private_dir(dir)?;
    Ok(())
}

/// Replaces `path` with `bytes`: a temp file in the same directory, created with `mode`
/// from the start (a key is never readable by others, not even for a moment), fsynced,
/// then renamed over `path`, and the directory fsynced so the rename survives a crash.
/// A reader sees the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    write_atomic_owned(path, bytes, mode, None)
}

/// Like [`write_atomic`], and chowns the temp file to `owner` (uid, gid) before the rename.
pub fn write_atomic_owned(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp-{}-{:08x}", name.to_string_lossy(), std::process::id(), rand::random::<u32>()));
    let result = (|| -> anyhow::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o700)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
                .with_context(|| format!("setting the owner of {}", tmp.display()))?;
        }
        // The umask may have removed bits from `mode`; set it exactly (after the chown,
        // which may clear set-id bits).
        file.set_permissions(Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", tmp.display()))?;
        file.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
        file.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if let Ok(d) = fs::File::open(dir) {
        // Best effort: some filesystems refuse fsync on a directory.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_with_the_exact_mode_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        write_atomic(&p, b"one", 0o644).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["key"]);
        let err = write_atomic(&dir.path().join("missing/key"), b"x", 0o600).unwrap_err();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
    }
}
