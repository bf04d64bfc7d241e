//! The `directory` source (air-gapped installs): binaries the operator put in
//! `artifacts.directory`, checked against checksum files when they are there.
//!
//! Layout (docs/artifacts.md): `<dir>/kube-apiserver`, ..., and for each release file
//! (etcd, containerd, runc, CNI plugins, crictl) either the file as published
//! (`<dir>/etcd-v<ver>-linux-<arch>.tar.gz`, `<dir>/runc.amd64`, ...) or the extracted
//! binaries (`<dir>/etcd`, `<dir>/containerd`, `<dir>/runc`, `<dir>/cni/bridge`, ...).
//! With hosts of several architectures: `<dir>/amd64/...`, `<dir>/arm64/...`.
//! Checksums, optional: `<file>.sha256` or `<file>.sha256sum` beside a file, or a list
//! (`SHA256SUMS`, or the release's own such as `runc.sha256sum`) in the same directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::catalog::Arch;
use super::checksum::{self, Mismatch};

pub const SUMS_FILE: &str = "SHA256SUMS";

/// A file read from the directory.
#[derive(Debug)]
pub struct Found {
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub path: PathBuf,
    /// The checksum file it matched; None when the directory has none for it.
    pub checksum_file: Option<PathBuf>,
}

/// `<dir>/<arch>/` when that directory exists, else `<dir>/`.
pub fn arch_root(dir: &Path, arch: Arch) -> PathBuf {
    let nested = dir.join(arch.as_str());
    if nested.is_dir() { nested } else { dir.to_path_buf() }
}

/// Reads `root/name` and checks it against `root/name.sha256`, `root/name.sha256sum` or
/// `root/SHA256SUMS` when one has it. A missing file is None; a checksum file that exists
/// but cannot be read or does not match is an error naming the paths.
pub fn read(root: &Path, name: &str, what: &str) -> anyhow::Result<Option<Found>> {
    read_in(root, name, what, &[SUMS_FILE])
}

/// [`read`] with the checksum lists to consult (a release's own list, like `runc.sha256sum`).
pub fn read_in(root: &Path, name: &str, what: &str, lists: &[&str]) -> anyhow::Result<Option<Found>> {
    let path = root.join(name);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("{what}: reading {}", path.display())),
    };
    let sha256 = checksum::sha256_hex(&bytes);
    let Some((expected, checksum_file)) = expected_digest(root, name, what, lists)? else {
        return Ok(Some(Found { bytes, sha256, path, checksum_file: None }));
    };
    if expected != sha256 {
        return Err(Mismatch {
            what: what.to_string(),
            from: path.display().to_string(),
            expected,
            expected_from: checksum_file.display().to_string(),
            actual: sha256,
            hint: "no host was changed. Copy the file again from where it was fetched \
                   (`provision artifacts fetch INVENTORY --to DIR` on a connected machine writes \
                   binaries and checksums that match)"
                .into(),
        }
        .into());
    }
    Ok(Some(Found { bytes, sha256, path, checksum_file: Some(checksum_file) }))
}

/// Like [`read`], but a missing file is an error saying what to put where.
pub fn require(root: &Path, name: &str, what: &str, dir_setting: &Path) -> anyhow::Result<Found> {
    match read(root, name, what)? {
        Some(found) => Ok(found),
        None => bail!(
            "{what}: {} is missing from artifacts.directory ({}); put it there (docs/artifacts.md shows the layout), \
             e.g. with `provision artifacts fetch INVENTORY --to {}` on a machine with internet access",
            root.join(name).display(),
            dir_setting.display(),
            dir_setting.display()
        ),
    }
}

/// The digest the directory publishes for `name`: its own `<name>.sha256` or
/// `<name>.sha256sum` first, then a line in one of `lists`. None when nothing says
/// anything about it.
fn expected_digest(root: &Path, name: &str, what: &str, lists: &[&str]) -> anyhow::Result<Option<(String, PathBuf)>> {
    for suffix in [".sha256", ".sha256sum"] {
        let own = root.join(format!("{name}{suffix}"));
        if let Some(text) = read_text(&own, what)? {
            let digest = checksum::parse_sha256_file(&text).map_err(|why| {
                anyhow::anyhow!("{what}: the checksum file {} {why}; fix or remove it", own.display())
            })?;
            return Ok(Some((digest, own)));
        }
    }
    for list in lists {
        let sums = root.join(list);
        // A list that does not mention the file (e.g. the etcd release's list, which names
        // only archives) says nothing about it.
        if let Some(digest) = read_text(&sums, what)?.and_then(|text| checksum::lookup_sums(&text, name)) {
            return Ok(Some((digest, sums)));
        }
    }
    Ok(None)
}

fn read_text(path: &Path, what: &str) -> anyhow::Result<Option<String>> {
    match std::fs::read(path) {
        Ok(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{what}: the checksum file {} is not text", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{what}: reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_arch_directories_win() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(arch_root(d.path(), Arch::Arm64), d.path());
        std::fs::create_dir(d.path().join("arm64")).unwrap();
        assert_eq!(arch_root(d.path(), Arch::Arm64), d.path().join("arm64"));
        assert_eq!(arch_root(d.path(), Arch::Amd64), d.path());
    }

    #[test]
    fn checksum_files_are_used_when_present() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::write(root.join("kubelet"), b"k").unwrap();
        let plain = read(root, "kubelet", "kubelet").unwrap().unwrap();
        assert_eq!(plain.checksum_file, None);
        // A SHA256SUMS that does not list it says nothing; one that does is checked.
        std::fs::write(root.join(SUMS_FILE), format!("{}  other\n", "0".repeat(64))).unwrap();
        assert_eq!(read(root, "kubelet", "kubelet").unwrap().unwrap().checksum_file, None);
        std::fs::write(root.join(SUMS_FILE), format!("{}  kubelet\n", plain.sha256)).unwrap();
        assert_eq!(read(root, "kubelet", "kubelet").unwrap().unwrap().checksum_file, Some(root.join(SUMS_FILE)));
        // The file's own .sha256 comes first.
        std::fs::write(root.join("kubelet.sha256"), "f".repeat(64)).unwrap();
        let e = read(root, "kubelet", "kubelet (linux/amd64)").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "kubelet (linux/amd64): sha256 mismatch for {}/kubelet: expected {}",
                root.display(),
                "f".repeat(64)
            )),
            "{e}"
        );
        assert!(e.contains(&format!("got {}", plain.sha256)), "{e}");
        std::fs::write(root.join("kubelet.sha256"), "oops").unwrap();
        let e = read(root, "kubelet", "kubelet").unwrap_err().to_string();
        assert!(e.contains("kubelet.sha256 does not start with a sha256"), "{e}");
    }

    #[test]
    fn a_missing_file_says_where_it_should_be() {
        let d = tempfile::tempdir().unwrap();
        let e = require(d.path(), "kube-scheduler", "kube-scheduler (linux/amd64, Kubernetes v1.34.2)", d.path())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("kube-scheduler (linux/amd64, Kubernetes v1.34.2): "), "{e}");
        assert!(e.contains(&format!("{}/kube-scheduler is missing", d.path().display())), "{e}");
        assert!(e.contains("provision artifacts fetch INVENTORY --to"), "{e}");
    }
}
