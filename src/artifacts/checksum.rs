//! Published checksums: parsing them and comparing files against them.
//!
//! Kubernetes publishes `<binary>.sha256` holding just the hex digest; etcd publishes
//! one `SHA256SUMS` per release with `<hex>  <file>` lines (sha256sum's format, which
//! is also what an operator writes by hand for the directory source).

use std::fmt;

use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A lower-case hex sha256 (64 characters).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The digest of a `.sha256` file: its first word, which must be a sha256 (dl.k8s.io
/// publishes the bare digest; `sha256sum` output with a file name is accepted too).
pub fn parse_sha256_file(text: &str) -> Result<String, String> {
    let first = text.split_whitespace().next().unwrap_or("");
    if is_sha256_hex(first) {
        Ok(first.to_ascii_lowercase())
    } else if first.is_empty() {
        Err("is empty".into())
    } else {
        Err(format!("does not start with a sha256 (64 hex digits): {:?}", shorten(first)))
    }
}

/// The digest listed for `file` in a sha256sum-style list (`<hex>  <name>` or
/// `<hex> *<name>`; names may carry a leading `./`). None when the file is not listed.
pub fn lookup_sums(text: &str, file: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (digest, name) = line.trim().split_once(char::is_whitespace)?;
        let name = name.trim_start().trim_start_matches('*').trim_start_matches("./");
        (name == file && is_sha256_hex(digest)).then(|| digest.to_ascii_lowercase())
    })
}

fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

/// A file whose sha256 is not the published one. Its message says which file, both
/// digests, where each came from, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Mismatch {
    /// What was checked: "kube-apiserver (linux/amd64, v1.34.2)".
    pub what: String,
    /// The URL or path the bytes came from.
    pub from: String,
    pub expected: String,
    /// The URL or path the expected digest came from.
    pub expected_from: String,
    pub actual: String,
    pub hint: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: sha256 mismatch for {}: expected {} (from {}), got {}; {}",
            self.what, self.from, self.expected, self.expected_from, self.actual, self.hint
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn digest_of_bytes() {
        assert_eq!(sha256_hex(b"hello"), D);
    }

    #[test]
    fn sha256_files() {
        assert_eq!(parse_sha256_file(D).unwrap(), D);
        assert_eq!(parse_sha256_file(&format!("{}  kube-apiserver\n", D.to_uppercase())).unwrap(), D);
        assert_eq!(parse_sha256_file("").unwrap_err(), "is empty");
        assert!(parse_sha256_file("<html>Not Found</html>").unwrap_err().contains("does not start with a sha256"));
        assert!(parse_sha256_file(&D[..63]).is_err());
    }

    /// The runtime releases' checksum files, in the shapes GitHub serves them.
    #[test]
    fn runtime_release_checksum_shapes() {
        // containerd-<v>-linux-<arch>.tar.gz.sha256sum: sha256sum's output for the one file.
        assert_eq!(parse_sha256_file(&format!("{D}  containerd-2.1.4-linux-amd64.tar.gz\n")).unwrap(), D);
        // cni-plugins-linux-<arch>-v<v>.tgz.sha256: the same shape.
        assert_eq!(parse_sha256_file(&format!("{D}  cni-plugins-linux-amd64-v1.7.1.tgz\n")).unwrap(), D);
        // crictl-v<v>-linux-<arch>.tar.gz.sha256: the bare digest (older releases: with the name).
        assert_eq!(parse_sha256_file(D).unwrap(), D);
        assert_eq!(parse_sha256_file(&format!("{D} crictl-v1.34.0-linux-amd64.tar.gz")).unwrap(), D);
        // runc.sha256sum: one line per asset of the release.
        let x = "ab".repeat(32);
        let runc = format!("{x}  runc.amd64\n{D}  runc.arm64\n{x}  runc.tar.xz\n{x}  libseccomp-2.5.6.tar.gz\n");
        assert_eq!(lookup_sums(&runc, "runc.arm64").as_deref(), Some(D));
        assert_eq!(lookup_sums(&runc, "runc.amd64").as_deref(), Some(x.as_str()));
        assert_eq!(lookup_sums(&runc, "runc.riscv64"), None);
    }

    #[test]
    fn sums_lists() {
        let sums = format!(
            "{x}  etcd-v3.5.21-darwin-amd64.zip\n{D}  etcd-v3.5.21-linux-amd64.tar.gz\n{x} *./etcdctl\n",
            x = "ab".repeat(32)
        );
        assert_eq!(lookup_sums(&sums, "etcd-v3.5.21-linux-amd64.tar.gz").as_deref(), Some(D));
        assert_eq!(lookup_sums(&sums, "etcdctl").as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(lookup_sums(&sums, "etcd-v3.5.21-linux-arm64.tar.gz"), None);
        assert_eq!(lookup_sums("garbage line\n\n", "etcd"), None);
    }
}
