//! The download cache on the operator's machine, and the one function that yields a
//! verified file from it: cached and still matching its checksum, or downloaded,
//! checked, and only then put in place.
//!
//! Layout (`artifacts.cache_dir`, default `$XDG_CACHE_HOME/provision` or
//! `~/.cache/provision`):
//! ```text
//! kubernetes/v1.34.2/amd64/kube-apiserver          the binary, only ever a verified one
//! kubernetes/v1.34.2/amd64/kube-apiserver.sha256   the published checksum it matched
//! etcd/v3.5.21/amd64/etcd-v3.5.21-linux-amd64.tar.gz
//! etcd/v3.5.21/amd64/SHA256SUMS                    the release's list it matched
//! */*.part                                         an unfinished download (resumed next run)
//! */.*.lock                                        held while a file is checked or fetched
//! ```
//! A cached file is hashed again every time it is used: a damaged file is downloaded
//! again (and said so), never pushed to a host.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::checksum::{self, Mismatch};
use super::download::{FetchError, Http};
use super::progress::Progress;

/// The default cache root: `$XDG_CACHE_HOME/provision`, else `$HOME/.cache/provision`.
pub fn default_root() -> anyhow::Result<PathBuf> {
    root_from(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
}

fn root_from(xdg_cache_home: Option<std::ffi::OsString>, home: Option<std::ffi::OsString>) -> anyhow::Result<PathBuf> {
    // The XDG spec: a relative XDG_CACHE_HOME is invalid and ignored.
    if let Some(x) = xdg_cache_home.filter(|x| Path::new(x).is_absolute()) {
        return Ok(PathBuf::from(x).join("provision"));
    }
    match home.filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache/provision")),
        None => anyhow::bail!("neither XDG_CACHE_HOME nor HOME is set: set artifacts.cache_dir in the inventory"),
    }
}

/// Where the published checksum of a file comes from, and where it is kept.
#[derive(Debug, Clone)]
pub enum ChecksumSource {
    /// `<url>.sha256` (Kubernetes), kept as `<file>.sha256`.
    Sha256File { url: String, cached: PathBuf },
    /// A `SHA256SUMS` list (etcd) with a line for `name`.
    Sums { url: String, cached: PathBuf, name: String },
}

impl ChecksumSource {
    fn url(&self) -> &str {
        match self {
            ChecksumSource::Sha256File { url, .. } | ChecksumSource::Sums { url, .. } => url,
        }
    }
    fn cached(&self) -> &Path {
        match self {
            ChecksumSource::Sha256File { cached, .. } | ChecksumSource::Sums { cached, .. } => cached,
        }
    }
    /// The digest in a checksum file's text.
    fn digest_in(&self, text: &str) -> Result<String, String> {
        match self {
            ChecksumSource::Sha256File { .. } => checksum::parse_sha256_file(text),
            ChecksumSource::Sums { name, .. } => {
                checksum::lookup_sums(text, name).ok_or_else(|| format!("has no line for {name}"))
            }
        }
    }
}

/// One file to have in the cache.
#[derive(Debug, Clone)]
pub struct Remote {
    /// Names it in messages: "kube-apiserver (linux/amd64, Kubernetes v1.34.2)".
    pub what: String,
    pub url: String,
    /// The verified file's place in the cache.
    pub file: PathBuf,
    pub checksum: ChecksumSource,
    /// What to check when the URL is wrong: "check cluster.kubernetes_version and ...".
    pub hint: String,
}

/// A verified file.
#[derive(Debug)]
pub struct Got {
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub path: PathBuf,
    /// The checksum file it matched (in the cache).
    pub checksum_file: PathBuf,
    /// True when it was downloaded by this call.
    pub downloaded: bool,
    /// Set when a damaged cached copy was replaced: what was wrong with it.
    pub repaired: Option<String>,
}

/// The verified content of `item`: from the cache when the cached file still matches
/// its checksum, else downloaded (resuming a `.part`), checked, and put in place.
pub fn ensure(http: &Http, item: &Remote, progress: &Progress) -> anyhow::Result<Got> {
    let dir = item.file.parent().context("cache file without a directory")?;
    // Binaries from here run as root on every host: only a cache directory of ours
    // (or root's), that nobody else can write to, is used (see crate::trust).
    crate::trust::owned_dir(dir).with_context(|| format!("the cache directory {}", dir.display()))?;
    // Two provision runs sharing the cache wait for each other instead of both
    // writing the same .part file.
    let _lock = lock(&item.file)?;

    let cached_sum = read_cached_checksum(&item.checksum);
    let mut fetched_sum = None;
    let mut repaired = None;
    if let Some(bytes) = read_if_exists(&item.file)? {
        let actual = checksum::sha256_hex(&bytes);
        let expected = match &cached_sum {
            Some(e) => e.clone(),
            None => fetched_sum.insert(fetch_checksum(http, item)?).clone(),
        };
        if expected.digest == actual {
            if !expected.from_cache {
                write_atomic(item.checksum.cached(), expected.text.as_bytes())?;
            }
            return Ok(Got {
                bytes,
                sha256: actual,
                path: item.file.clone(),
                checksum_file: item.checksum.cached().to_path_buf(),
                downloaded: false,
                repaired: None,
            });
        }
        repaired = Some(format!(
            "the cached {} was damaged (sha256 {actual}, expected {}): downloaded it again",
            item.file.display(),
            expected.digest
        ));
        remove_if_exists(&item.file)?;
    }
    // After damage the cached checksum is suspect too: the server's is used.
    let expected = match (fetched_sum, cached_sum) {
        (Some(e), _) => e,
        (None, Some(e)) if repaired.is_none() => e,
        _ => fetch_checksum(http, item)?,
    };
    let Expected { digest, text, .. } = expected;

    let part = part_path(&item.file);
    let resumed = part.exists();
    let mut bytes = download(http, item, &part, progress)?;
    let mut actual = checksum::sha256_hex(&bytes);
    if actual != digest && resumed {
        // The prefix kept from an earlier run may not belong to this file: once more, whole.
        remove_if_exists(&part)?;
        bytes = download(http, item, &part, progress)?;
        actual = checksum::sha256_hex(&bytes);
    }
    if actual != digest {
        remove_if_exists(&part)?;
        return Err(Mismatch {
            what: item.what.clone(),
            from: item.url.clone(),
            expected: digest,
            expected_from: item.checksum.url().to_string(),
            actual,
            hint: format!(
                "nothing was cached and no host was changed. Run again (a proxy or an interrupted \
                 transfer may have damaged it); if it persists, the mirror serves a file that differs \
                 from its checksum: check the base URL in [artifacts] ({})",
                item.hint
            ),
        }
        .into());
    }
    // The checksum first: a verified file in place always has its checksum beside it.
    write_atomic(item.checksum.cached(), text.as_bytes())?;
    fs::rename(&part, &item.file).with_context(|| format!("moving {} to {}", part.display(), item.file.display()))?;
    sync_dir(dir);
    Ok(Got {
        bytes,
        sha256: actual,
        path: item.file.clone(),
        checksum_file: item.checksum.cached().to_path_buf(),
        downloaded: true,
        repaired,
    })
}

fn download(http: &Http, item: &Remote, part: &Path, progress: &Progress) -> anyhow::Result<Vec<u8>> {
    let bar = progress.bar(item.file.file_name().and_then(|n| n.to_str()).unwrap_or(&item.what));
    match http.download(&item.url, part, &bar.bar) {
        Ok(bytes) => {
            bar.finish(bytes.len() as u64);
            Ok(bytes)
        }
        Err(e) => {
            bar.abandon();
            Err(explain(e, item))
        }
    }
}

fn explain(e: FetchError, item: &Remote) -> anyhow::Error {
    let advice =
        if e.is_not_found() {
            format!("no such file: {}", item.hint)
        } else {
            match &e {
            FetchError::Truncated { .. } => "nothing was installed".to_string(),
            _ => "no host was changed; for machines without internet access see docs/artifacts.md (air-gapped installs)"
                .to_string(),
        }
        };
    anyhow::anyhow!("{}: downloading {e}; {advice}", item.what)
}

#[derive(Debug, Clone)]
struct Expected {
    digest: String,
    /// The checksum file's text, kept in the cache as published.
    text: String,
    from_cache: bool,
}

fn read_cached_checksum(source: &ChecksumSource) -> Option<Expected> {
    let text = fs::read_to_string(source.cached()).ok()?;
    source.digest_in(&text).ok().map(|digest| Expected { digest, text, from_cache: true })
}

fn fetch_checksum(http: &Http, item: &Remote) -> anyhow::Result<Expected> {
    let url = item.checksum.url();
    let text = http.get_text(url).map_err(|e| {
        let advice = if e.is_not_found() {
            format!("no published checksum: {}", item.hint)
        } else {
            "no host was changed".into()
        };
        anyhow::anyhow!("{}: fetching the published checksum {e}; {advice}", item.what)
    })?;
    let digest = item
        .checksum
        .digest_in(&text)
        .map_err(|why| anyhow::anyhow!("{}: the published checksum {url} {why}; {}", item.what, item.hint))?;
    Ok(Expected { digest, text, from_cache: false })
}

fn part_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

fn lock(file: &Path) -> anyhow::Result<File> {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let path = file.with_file_name(format!(".{name}.lock"));
    let f = crate::trust::open_own_file(&path).context("the cache's lock file")?;
    f.lock().with_context(|| format!("locking {}", path.display()))?;
    Ok(f)
}

fn read_if_exists(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading the cached {}", path.display())),
    }
}

fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Temp file beside `path`, fsync, rename: a reader sees the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::fsutil::write_atomic(path, bytes, 0o644)
}

/// Makes a rename durable; best effort (the file itself is already synced).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("SHA256SUMS");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["SHA256SUMS"]);
    }

    #[test]
    fn cache_root_follows_xdg_then_home() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(root_from(os("/x/cache"), os("/home/op")).unwrap(), Path::new("/x/cache/provision"));
        assert_eq!(root_from(os("rel"), os("/home/op")).unwrap(), Path::new("/home/op/.cache/provision"));
        assert_eq!(root_from(None, os("/home/op")).unwrap(), Path::new("/home/op/.cache/provision"));
        assert!(root_from(None, None).unwrap_err().to_string().contains("set artifacts.cache_dir"));
    }

    #[test]
    fn part_files_sit_beside_the_target() {
        assert_eq!(part_path(Path::new("/c/kubelet")), Path::new("/c/kubelet.part"));
    }
}
