//! Serialises lab commands (and tests using the lab) with flock(2) on a file. The kernel
//! drops the lock when the holder exits, however it exits, so a crash never leaves the
//! lab locked.

use std::fs::{File, OpenOptions};
use std::path::Path;

use anyhow::{Context, Result};

/// Held until dropped.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

/// Takes the exclusive lock on `path`, waiting for the current holder; `on_wait` is
/// called once when someone else holds it.
pub fn exclusive(path: &Path, on_wait: impl FnOnce()) -> Result<LockGuard> {
    if let Some(dir) = path.parent() {
        super::fsutil::private_dir(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            on_wait();
            file.lock().with_context(|| format!("locking {}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    Ok(LockGuard { _file: file })
}

/// True when someone holds the lock on `path` right now (the lock is not kept).
pub fn is_held(path: &Path) -> bool {
    let Ok(file) = OpenOptions::new().write(true).open(path) else { return false };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        assert!(!is_held(&path));
        let first = exclusive(&path, || panic!("nobody holds it yet")).unwrap();
        assert!(is_held(&path));
        let released = Arc::new(AtomicBool::new(false));
        let waited = Arc::new(AtomicBool::new(false));
        let (p, r, w) = (path.clone(), released.clone(), waited.clone());
        let t = std::thread::spawn(move || {
            let _second = exclusive(&p, || w.store(true, Ordering::SeqCst)).unwrap();
            // Only possible once the first guard is gone.
            assert!(r.load(Ordering::SeqCst));
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        released.store(true, Ordering::SeqCst);
        drop(first);
        t.join().unwrap();
        assert!(waited.load(Ordering::SeqCst));
    }
}
