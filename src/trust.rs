//! Trusted paths on the operator's machine: the directories and files provision creates
//! or relies on (the state directory and its parts, `render --out`, the artifacts cache,
//! backup directories, the lab's directories) and the files it reads from them.
//!
//! WHY: provision runs as root or as the operator, often in shared places (/tmp, a
//! team checkout). A directory someone else created or can write to lets that person
//! swap in their own CA, or point a link at /etc and have us chmod, write or delete
//! there. So before use, with lstat (never following a link):
//! - the parts we own (below an anchor such as the inventory's directory) must be real
//!   directories/files (no symbolic link), owned by the running user, not writable by
//!   group or others; missing parts are created by us;
//! - the directories above them (the anchor and its parents) must be owned by root or by
//!   us, and writable by others only with the sticky bit (like /tmp: nobody can rename or
//!   remove our entries there). A link among them is followed only when root or we own it.
//!
//! Files are opened with O_NOFOLLOW, and anything that is not a regular file (a named
//! pipe would block the open forever, /dev/zero would fill memory) is refused before it
//! is opened. Every error names the path and what to do.

use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Why a path is not used, with the fix. No variant carries file content.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(
        "{path}: is a symbolic link; provision does not follow links in the directories it keeps keys and output in\n  \
         fix: remove the link (rm {path}) and run again, or give the real path",
        path = .path.display()
    )]
    Symlink { path: PathBuf },

    #[error(
        "{path}: is owned by uid {owner}, not by you (uid {me}){or_root}: another user may have prepared it\n  \
         fix: check what it holds, remove it (or use a directory you own), and run again",
        path = .path.display(),
        or_root = if *.above { " or root" } else { "" }
    )]
    ForeignOwner { path: PathBuf, owner: u32, me: u32, above: bool },

    #[error(
        "{path}: mode {mode:04o} lets other users change what is in it\n  \
         fix: chmod go-w {path} (after checking nobody else put anything there), or use another directory",
        path = .path.display()
    )]
    WritableByOthers { path: PathBuf, mode: u32 },

    #[error("{path}: is {kind}, not a directory\n  fix: remove it or give another path", path = .path.display())]
    NotADirectory { path: PathBuf, kind: &'static str },

    #[error("{path}: is {kind}, not a regular file\n  fix: give the path of a regular file", path = .path.display())]
    NotARegularFile { path: PathBuf, kind: &'static str },

    #[error("{path}: is larger than {limit} bytes: not a file provision wrote (check the path)", path = .path.display())]
    TooLarge { path: PathBuf, limit: u64 },

    #[error("{path}: too many symbolic links on the way", path = .path.display())]
    TooManyLinks { path: PathBuf },

    #[error("{action} {path}: {source}", path = .path.display())]
    Io { action: &'static str, path: PathBuf, source: io::Error },
}

type Result<T> = std::result::Result<T, TrustError>;

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> TrustError + 'a {
    move |source| TrustError::Io { action, path: path.to_path_buf(), source }
}

/// The running user (effective uid): the owner everything we trust must have.
pub fn me() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// What kind of file `meta` describes, in words.
pub fn kind(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// A directory or file of ours: no link, owned by us, not writable by group or others.
pub fn check_ours(path: &Path, meta: &Metadata) -> Result<()> {
    if meta.file_type().is_symlink() {
        return Err(TrustError::Symlink { path: path.to_path_buf() });
    }
    if meta.uid() != me() {
        return Err(TrustError::ForeignOwner { path: path.to_path_buf(), owner: meta.uid(), me: me(), above: false });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(TrustError::WritableByOthers { path: path.to_path_buf(), mode: meta.mode() & 0o7777 });
    }
    Ok(())
}

/// A directory above ours: owned by root or us; writable by others only when sticky.
fn check_above(path: &Path, meta: &Metadata) -> Result<()> {
    if meta.uid() != 0 && meta.uid() != me() {
        return Err(TrustError::ForeignOwner { path: path.to_path_buf(), owner: meta.uid(), me: me(), above: true });
    }
    let sticky_dir = meta.is_dir() && meta.mode() & 0o1000 != 0;
    if meta.mode() & 0o022 != 0 && !sticky_dir && !meta.file_type().is_symlink() {
        return Err(TrustError::WritableByOthers { path: path.to_path_buf(), mode: meta.mode() & 0o7777 });
    }
    Ok(())
}

fn lstat(path: &Path) -> io::Result<Metadata> {
    fs::symlink_metadata(path)
}

/// Walks `path` (absolute) from `/`, checking each existing directory as one above ours
/// and following only links owned by root or us. Returns the resolved existing part and
/// the names below it that do not exist yet.
fn walk_above(path: &Path) -> Result<(PathBuf, Vec<OsString>)> {
    let mut pending: Vec<OsString> = Vec::new();
    // A stack: the next name to look at is on top.
    let mut remaining: Vec<OsString> = path.components().filter_map(normal_or_parent).collect();
    remaining.reverse();
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    let root_meta = lstat(&cur).map_err(io_error("reading", &cur))?;
    check_above(&cur, &root_meta)?;
    while let Some(name) = remaining.pop() {
        if !pending.is_empty() {
            if name == ".." {
                return Err(TrustError::NotADirectory { path: cur.join(&pending[0]), kind: "missing" });
            }
            pending.push(name);
            continue;
        }
        if name == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&name);
        let meta = match lstat(&next) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                pending.push(name);
                continue;
            }
            Err(e) => return Err(io_error("reading", &next)(e)),
        };
        check_above(&next, &meta)?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > 40 {
                return Err(TrustError::TooManyLinks { path: path.to_path_buf() });
            }
            let target = fs::read_link(&next).map_err(io_error("reading the link", &next))?;
            if target.is_absolute() {
                cur = PathBuf::from("/");
            }
            let mut parts: Vec<OsString> = target.components().filter_map(normal_or_parent).collect();
            parts.reverse();
            remaining.extend(parts);
            continue;
        }
        if !meta.is_dir() {
            return Err(TrustError::NotADirectory { path: next, kind: kind(&meta) });
        }
        cur = next;
    }
    Ok((cur, pending))
}

fn normal_or_parent(c: Component) -> Option<OsString> {
    match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(io_error("resolving", path))
}

/// What to do with the directory at the end of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// Create it if missing; an existing one keeps its mode (it passed the checks).
    Keep,
    /// Create it if missing, and set `mode` on it (on the open directory, not the name).
    SetMode,
}

/// Makes sure `anchor/below` is a directory of ours and returns its path (the anchor
/// resolved). `anchor` and its parents are checked as directories above ours (missing
/// ones are created as ours); every part of `below` must be ours, never a link. Missing
/// parts are created with `mode`.
pub fn dir_below(anchor: &Path, below: &Path, mode: u32, leaf: Leaf) -> Result<PathBuf> {
    let (mut cur, mut ours) = walk_above(&absolute(anchor)?)?;
    for c in below.components() {
        match c {
            Component::Normal(n) => ours.push(n.to_os_string()),
            Component::CurDir => {}
            _ => {
                return Err(TrustError::NotADirectory {
                    path: anchor.join(below),
                    kind: "a path with \"..\" or \"/\"",
                });
            }
        }
    }
    for name in ours {
        cur.push(name);
        match lstat(&cur) {
            Ok(meta) => {
                check_ours(&cur, &meta)?;
                if !meta.is_dir() {
                    return Err(TrustError::NotADirectory { path: cur, kind: kind(&meta) });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match fs::DirBuilder::new().mode(mode).create(&cur) {
                    Ok(()) => {}
                    // Someone made it between our lstat and mkdir: check theirs below.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_error("creating the directory", &cur)(e)),
                }
                let meta = lstat(&cur).map_err(io_error("reading", &cur))?;
                check_ours(&cur, &meta)?;
            }
            Err(e) => return Err(io_error("reading", &cur)(e)),
        }
    }
    if leaf == Leaf::SetMode {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&cur)
            .map_err(io_error("opening", &cur))?;
        check_ours(&cur, &dir.metadata().map_err(io_error("reading", &cur))?)?;
        dir.set_permissions(fs::Permissions::from_mode(mode)).map_err(io_error("setting the mode of", &cur))?;
    }
    Ok(cur)
}

/// `dir` as a private directory (0700) of ours: its parent is checked as a directory
/// above ours, `dir` itself must be ours (created if missing, tightened to 0700).
pub fn private_dir(dir: &Path) -> Result<PathBuf> {
    let (anchor, name) = split_last(dir)?;
    dir_below(&anchor, Path::new(&name), 0o700, Leaf::SetMode)
}

/// `dir` as a directory of ours, created 0700 if missing, an existing one kept as it is
/// when it passes the checks (e.g. `render --out`, a backup directory the operator named).
pub fn owned_dir(dir: &Path) -> Result<PathBuf> {
    let (anchor, name) = split_last(dir)?;
    dir_below(&anchor, Path::new(&name), 0o700, Leaf::Keep)
}

/// (parent, last name) of `dir`; "." and ".." are resolved first (they must exist).
fn split_last(dir: &Path) -> Result<(PathBuf, OsString)> {
    let abs = absolute(dir)?;
    let abs = match abs.file_name() {
        Some(_) if !abs.ends_with("..") => abs,
        _ => fs::canonicalize(&abs).map_err(io_error("resolving", dir))?,
    };
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => Ok((parent.to_path_buf(), name.to_os_string())),
        _ => Err(TrustError::NotADirectory { path: abs, kind: "the root directory" }),
    }
}

/// Checks, without creating anything, that `anchor/below` is ours where it exists.
/// Returns false when it does not exist (yet).
pub fn check_dir_below(anchor: &Path, below: &Path) -> Result<bool> {
    let (mut cur, pending) = walk_above(&absolute(anchor)?)?;
    if !pending.is_empty() {
        return Ok(false);
    }
    for c in below.components() {
        if let Component::Normal(n) = c {
            cur.push(n);
            match lstat(&cur) {
                Ok(meta) => {
                    check_ours(&cur, &meta)?;
                    if !meta.is_dir() {
                        return Err(TrustError::NotADirectory { path: cur, kind: kind(&meta) });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(io_error("reading", &cur)(e)),
            }
        }
    }
    Ok(true)
}

/// How a file is opened by [`open_regular`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// A file the operator named (an inventory, a snapshot): a link to it is fine.
    Links,
    /// A file in one of our directories: a link is refused (O_NOFOLLOW).
    NoLinks,
}

/// Opens an existing regular file for reading; None when it does not exist. Anything
/// else (a named pipe, a device, a socket, a directory) is refused before it is opened,
/// and checked again on the open file (it could have been swapped in between).
pub fn open_regular(path: &Path, follow: Follow) -> Result<Option<(File, Metadata)>> {
    let before = match follow {
        Follow::Links => fs::metadata(path),
        Follow::NoLinks => lstat(path),
    };
    let before = match before {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("reading", path)(e)),
    };
    if before.file_type().is_symlink() {
        return Err(TrustError::Symlink { path: path.to_path_buf() });
    }
    if !before.is_file() {
        return Err(TrustError::NotARegularFile { path: path.to_path_buf(), kind: kind(&before) });
    }
    let nofollow = if follow == Follow::NoLinks { libc::O_NOFOLLOW } else { 0 };
    // O_NONBLOCK: should a pipe be swapped in after the check, the open does not wait.
    let file =
        OpenOptions::new().read(true).custom_flags(nofollow | libc::O_NONBLOCK).open(path).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::ELOOP) => TrustError::Symlink { path: path.to_path_buf() },
                _ => io_error("opening", path)(e),
            }
        })?;
    let meta = file.metadata().map_err(io_error("reading", path))?;
    if !meta.is_file() {
        return Err(TrustError::NotARegularFile { path: path.to_path_buf(), kind: kind(&meta) });
    }
    Ok(Some((file, meta)))
}

/// Reads at most `limit` bytes of `file` (more is an error: not a file we wrote).
pub fn read_capped(mut file: File, path: &Path, limit: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    (&mut file).take(limit + 1).read_to_end(&mut bytes).map_err(io_error("reading", path))?;
    if bytes.len() as u64 > limit {
        return Err(TrustError::TooLarge { path: path.to_path_buf(), limit });
    }
    Ok(bytes)
}

/// Files provision keeps (keys, certificates, kubeconfigs, manifests) are small.
pub const MAX_OWN_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The content of a file of ours (no link, owned by us, not writable by others), or
/// None when it does not exist.
pub fn read_ours(path: &Path) -> Result<Option<Vec<u8>>> {
    let Some((file, meta)) = open_regular(path, Follow::NoLinks)? else {
        return Ok(None);
    };
    check_ours(path, &meta)?;
    read_capped(file, path, MAX_OWN_FILE_BYTES).map(Some)
}

/// Removes group and other permissions from a file of ours, on the open file (never
/// through a link). Returns true when the mode changed.
pub fn tighten(path: &Path) -> Result<bool> {
    let Some((file, meta)) = open_regular(path, Follow::NoLinks)? else {
        return Err(io_error("reading the mode of", path)(io::ErrorKind::NotFound.into()));
    };
    if meta.uid() != me() {
        return Err(TrustError::ForeignOwner { path: path.to_path_buf(), owner: meta.uid(), me: me(), above: false });
    }
    if meta.mode() & 0o077 == 0 {
        return Ok(false);
    }
    file.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io_error("setting mode 600 on", path))?;
    Ok(true)
}

/// Opens (creating it 0600 if missing) a file of ours for writing, never through a link;
/// for lock files.
pub fn open_own_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => TrustError::Symlink { path: path.to_path_buf() },
            _ => io_error("opening", path)(e),
        })?;
    let meta = file.metadata().map_err(io_error("reading", path))?;
    if !meta.is_file() {
        return Err(TrustError::NotARegularFile { path: path.to_path_buf(), kind: kind(&meta) });
    }
    check_ours(path, &meta)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mode(p: &Path) -> u32 {
        lstat(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn creates_private_dirs_and_tightens_the_leaf_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let made = private_dir(&dir).unwrap();
        assert_eq!(made, dir);
        assert_eq!((mode(&tmp.path().join("a")), mode(&dir)), (0o700, 0o700));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        owned_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o755, "owned_dir keeps the mode of a dir that passes");
    }

    #[test]
    fn refuses_links_and_writable_dirs_in_our_part_but_follows_our_links_above() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        symlink(&real, &link).unwrap();
        // Our own link above the anchor is followed.
        assert_eq!(dir_below(&link, Path::new("x"), 0o700, Leaf::SetMode).unwrap(), real.join("x"));
        // A link in our part is refused, and its target is not touched.
        fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).unwrap();
        let err = private_dir(&link).unwrap_err();
        assert!(matches!(err, TrustError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("fix: remove the link"), "{err}");
        assert_eq!(mode(&real), 0o755);
        fs::set_permissions(&real, fs::Permissions::from_mode(0o777)).unwrap();
        let err = private_dir(&real).unwrap_err();
        assert!(matches!(err, TrustError::WritableByOthers { mode: 0o777, .. }), "{err}");
        // Above ours, a world-writable dir is fine only when sticky.
        assert!(matches!(
            dir_below(&real, Path::new("y"), 0o700, Leaf::Keep),
            Err(TrustError::WritableByOthers { .. })
        ));
        fs::set_permissions(&real, fs::Permissions::from_mode(0o1777)).unwrap();
        dir_below(&real, Path::new("y"), 0o700, Leaf::Keep).unwrap();
        // ".." in our part is refused.
        assert!(dir_below(tmp.path(), Path::new("../x"), 0o700, Leaf::Keep).is_err());
        // A file where a directory is expected.
        fs::write(tmp.path().join("f"), "x").unwrap();
        assert!(matches!(private_dir(&tmp.path().join("f")), Err(TrustError::NotADirectory { .. })));
        assert!(!check_dir_below(tmp.path(), Path::new("missing/x")).unwrap());
        assert!(check_dir_below(&real, Path::new("y")).unwrap());
        assert!(matches!(check_dir_below(tmp.path(), Path::new("real/y")), Err(TrustError::WritableByOthers { .. })));
    }

    #[test]
    fn files_no_links_no_pipes_and_tighten_on_the_open_file() {
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("k");
        fs::write(&key, "key").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_ours(&key).unwrap().unwrap(), b"key");
        assert!(tighten(&key).unwrap());
        assert!(!tighten(&key).unwrap());
        assert_eq!(mode(&key), 0o600);
        assert!(read_ours(&tmp.path().join("nope")).unwrap().is_none());

        let victim = tmp.path().join("victim");
        fs::write(&victim, "v").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
        let link = tmp.path().join("link.key");
        symlink(&victim, &link).unwrap();
        assert!(matches!(tighten(&link), Err(TrustError::Symlink { .. })));
        assert!(matches!(read_ours(&link), Err(TrustError::Symlink { .. })));
        assert!(matches!(open_own_file(&link), Err(TrustError::Symlink { .. })));
        assert_eq!(mode(&victim), 0o644, "never chmod-ed through the link");
        assert!(open_regular(&link, Follow::Links).unwrap().is_some(), "a named file may be a link");

        let fifo = tmp.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = open_regular(&fifo, Follow::Links).unwrap_err();
        assert!(err.to_string().contains("is a named pipe, not a regular file"), "{err}");
        let err = open_regular(Path::new("/dev/zero"), Follow::Links).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");

        fs::write(&key, vec![b'x'; 10]).unwrap();
        let (f, _) = open_regular(&key, Follow::NoLinks).unwrap().unwrap();
        assert!(matches!(read_capped(f, &key, 5), Err(TrustError::TooLarge { .. })));
    }
}
