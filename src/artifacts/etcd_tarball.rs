//! Release tarballs: etcd's (`etcd-v3.5.21-linux-amd64.tar.gz`: etcd, etcdctl and etcdutl
//! in its top directory beside docs), containerd's (`bin/containerd`, ...), the CNI
//! plugins' (`./bridge`, ...) and crictl's (`crictl`). Read in memory from the verified
//! bytes, never unpacked onto disk, so nothing unverified ever lies in the cache.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, bail};

use super::catalog::Binary;

/// Refuse absurd members (a corrupt or hostile archive): etcd is ~25 MB, containerd ~60 MB.
const MAX_MEMBER_BYTES: u64 = 512 << 20;

/// The wanted binaries' contents, by binary. `label` names the archive in errors.
pub fn extract(tar_gz: &[u8], wanted: &[Binary], label: &str) -> anyhow::Result<BTreeMap<Binary, Vec<u8>>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tar_gz));
    let mut found = BTreeMap::new();
    let mut seen = Vec::new();
    let entries = archive.entries().with_context(|| format!("{label}: not a tar.gz archive"))?;
    for entry in entries {
        let mut entry = entry.with_context(|| format!("{label}: damaged archive"))?;
        let path = entry.path().with_context(|| format!("{label}: a member has an unreadable name"))?.into_owned();
        // Only `<top>/<name>` (or a bare `<name>`): the release's binaries, not docs.
        let depth = path.components().count();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
        if entry.header().entry_type().is_file() && depth <= 2 {
            seen.push(name.clone());
        }
        let Some(binary) = wanted.iter().copied().find(|b| b.name() == name) else { continue };
        if !entry.header().entry_type().is_file() || depth > 2 || found.contains_key(&binary) {
            continue;
        }
        let size = entry.header().size().unwrap_or(0);
        if size > MAX_MEMBER_BYTES {
            bail!("{label}: {name} claims {size} bytes, more than any release binary: a damaged archive");
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        (&mut entry)
            .take(MAX_MEMBER_BYTES)
            .read_to_end(&mut bytes)
            .with_context(|| format!("{label}: reading {name} from the archive"))?;
        found.insert(binary, bytes);
    }
    let missing: Vec<&str> = wanted.iter().filter(|b| !found.contains_key(b)).map(|b| b.name()).collect();
    if !missing.is_empty() {
        seen.sort();
        bail!(
            "{label}: has no {} in its top directory (it holds: {}); is it {} release tarball of the inventory's version?",
            missing.join(", "),
            if seen.is_empty() { "no files".to_string() } else { seen.join(", ") },
            match wanted.first().map(|b| b.tier().product()) {
                Some(p @ "etcd") => format!("an {p}"),
                Some(p) => format!("a {p}"),
                None => "a".to_string(),
            }
        );
    }
    Ok(found)
}

/// Builds a release-shaped tarball: `<top>/<name>` members (`etcd-v<ver>-linux-<arch>`,
/// `bin`, `.`), or bare `<name>`s when `top` is empty (for tests, and for anyone
/// preparing a directory by hand).
pub fn build(top: &str, members: &[(&str, &[u8])]) -> anyhow::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o755);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let path = if top.is_empty() { name.to_string() } else { format!("{top}/{name}") };
        tar.append_data(&mut header, path, *bytes)?;
    }
    Ok(tar.into_inner()?.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_binaries_from_the_top_directory() {
        let tgz = build(
            "etcd-v3.5.21-linux-amd64",
            &[
                ("README.md", b"docs"),
                ("etcd", b"E"),
                ("etcdctl", b"C"),
                ("etcdutl", b"U"),
                ("Documentation/etcd", b"no"),
            ],
        )
        .unwrap();
        let got = extract(&tgz, &Binary::ETCD, "t.tar.gz").unwrap();
        assert_eq!(got[&Binary::Etcd], b"E");
        assert_eq!(got[&Binary::Etcdctl], b"C");
        assert_eq!(got[&Binary::Etcdutl], b"U");
    }

    #[test]
    fn a_missing_binary_names_what_is_there() {
        let tgz = build("etcd-v3.4.23-linux-amd64", &[("etcd", b"E"), ("etcdctl", b"C")]).unwrap();
        let e = extract(&tgz, &Binary::ETCD, "etcd-v3.4.23-linux-amd64.tar.gz").unwrap_err().to_string();
        assert_eq!(
            e,
            "etcd-v3.4.23-linux-amd64.tar.gz: has no etcdutl in its top directory (it holds: etcd, etcdctl); \
             is it an etcd release tarball of the inventory's version?"
        );
    }

    #[test]
    fn runtime_release_layouts() {
        // containerd: bin/<name>; CNI plugins: ./<name>; crictl: <name> at the top.
        let c = build(
            "bin",
            &[("containerd", b"D"), ("containerd-shim-runc-v2", b"S"), ("ctr", b"C"), ("containerd-stress", b"x")],
        )
        .unwrap();
        let got = extract(&c, &[Binary::Containerd, Binary::ContainerdShimRuncV2, Binary::Ctr], "c.tar.gz").unwrap();
        assert_eq!((got[&Binary::Containerd].as_slice(), got[&Binary::Ctr].as_slice()), (&b"D"[..], &b"C"[..]));
        let n = build(
            ".",
            &[("bridge", b"B"), ("host-local", b"H"), ("loopback", b"L"), ("portmap", b"P"), ("vlan", b"V")],
        )
        .unwrap();
        let got = extract(&n, &Binary::CNI_PLUGINS, "cni.tgz").unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[&Binary::CniHostLocal], b"H");
        let e = extract(&n, &[Binary::Crictl], "crictl.tar.gz").unwrap_err().to_string();
        assert!(e.ends_with("is it a crictl release tarball of the inventory's version?"), "{e}");
    }

    #[test]
    fn garbage_is_not_an_archive() {
        let e = extract(b"<html>not found</html>", &Binary::ETCD, "x.tar.gz").unwrap_err();
        assert!(format!("{e:#}").starts_with("x.tar.gz: "), "{e:#}");
    }
}
