//! Files of the PKI on the operator's machine: private directories (0700), private files
//! (0600), atomic replacement (temp file + fsync + rename) so a crash never leaves half a key.

use std::fs;
use std::path::Path;

use anyhow::Context;

pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Certificates and public keys are not secret.
pub const PUBLIC_FILE_MODE: u32 = 0o644;

#[cfg(test)]
use crate::fsutil::private_dir;
pub use crate::fsutil::write_atomic;

/// Held while a run reads and writes the PKI; released when dropped.
pub struct RunLock {
    _file: fs::File,
}

/// Makes sure only one provision run at a time works on a state directory: two runs
/// creating a CA at once would each sign certificates with a CA the other replaced.
///
/// A lock still held a moment after its run let go is waited for (up to 3 s): a process
/// forked by the same program (tests, a child of a library) shares the lock file's open
/// description until it execs, which keeps the lock for that instant (seen in CI).
pub fn lock(path: &Path) -> anyhow::Result<RunLock> {
    let file = crate::trust::open_own_file(path).context("opening the lock file")?;
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(RunLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < give_up => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another provision run holds {}: wait for it to finish, then run again",
                path.display()
            ),
            Err(fs::TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
}

/// The file's content, or None when it does not exist. Only a regular file of ours is
/// read: never through a link, never one another user owns or may write.
pub fn read_optional(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    Ok(crate::trust::read_ours(path)?)
}

/// Like `read_optional`, for text files (PEM).
pub fn read_optional_text(path: &Path) -> anyhow::Result<Option<String>> {
    match read_optional(path)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{} is not a text (PEM) file", path.display())),
    }
}

/// Removes group/other permissions from an existing private file (e.g. after an operator
/// restored it from a backup with a loose mode), on the open file: a link is refused,
/// never followed. Returns true when the mode was changed.
pub fn tighten(path: &Path) -> anyhow::Result<bool> {
    Ok(crate::trust::tighten(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::Permissions;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn writes_atomically_with_the_mode_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        let key = dir.join("x.key");
        write_atomic(&key, b"one", PRIVATE_FILE_MODE).unwrap();
        write_atomic(&key, b"two", PRIVATE_FILE_MODE).unwrap();
        assert_eq!(fs::read(&key).unwrap(), b"two");
        assert_eq!(mode(&key), 0o600);
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.key")]);
        assert_eq!(read_optional(&dir.join("nope")).unwrap(), None);
    }

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(".pki.lock");
        let first = lock(&path).unwrap();
        let err = lock(&path).err().unwrap().to_string();
        assert!(err.contains("another provision run") && err.contains(".pki.lock"), "{err}");
        drop(first);
        lock(&path).unwrap();
    }

    #[test]
    fn tightens_a_loose_private_file_and_a_loose_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("k");
        write_atomic(&key, b"k", 0o644).unwrap();
        assert!(tighten(&key).unwrap());
        assert_eq!(mode(&key), 0o600);
        assert!(!tighten(&key).unwrap());
        fs::set_permissions(tmp.path(), Permissions::from_mode(0o755)).unwrap();
        private_dir(tmp.path()).unwrap();
        assert_eq!(mode(tmp.path()), 0o700);
    }
}
