//! Files of the PKI on the operator's machine: private directories (0700), private files
//! (0600), atomic replacement (temp file + fsync + rename) so a crash never leaves half a key.

use std::fs::{self, OpenOptions, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Certificates and public keys are not secret.
pub const PUBLIC_FILE_MODE: u32 = 0o644;

pub use crate::fsutil::{private_dir, write_atomic};

/// Held while a run reads and writes the PKI; released when dropped.
pub struct RunLock {
    _file: fs::File,
}

/// Makes sure only one provision run at a time works on a state directory: two runs
/// creating a CA at once would each sign certificates with a CA the other replaced.
pub fn lock(path: &Path) -> anyhow::Result<RunLock> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(RunLock { _file: file }),
        Err(fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another provision run holds {}: wait for it to finish, then run again",
            path.display()
        ),
        Err(fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// The file's content, or None when it does not exist.
pub fn read_optional(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
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
/// restored it from a backup with a loose mode). Returns true when the mode was changed.
pub fn tighten(path: &Path) -> anyhow::Result<bool> {
    let mode = fs::metadata(path).with_context(|| format!("reading the mode of {}", path.display()))?.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    set_mode(path, PRIVATE_FILE_MODE)?;
    Ok(true)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .with_context(|| format!("setting mode {mode:o} on {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
