//! The runtime tier's sources (artifacts.runtime = "download" / "directory") end to end,
//! with no internet: a real HTTP server on 127.0.7.1 laid out like GitHub's release pages
//! (`artifacts.runtime_base_url` points at it), a real download cache on disk, real
//! directories for the air-gapped source.
//!
//! The release files are built from REAL binaries: Debian trixie's containerd 1.7.24, runc
//! 1.1.15 and CNI plugins 1.1.1 (scripts/fetch-runtime-trixie, cached under the target dir).
//! Debian has no crictl: crictl's release file carries a STAND-IN, Debian's static busybox
//! renamed, only to prove the download, checksum and cache mechanics of its release file.
//! Nothing here runs it or claims it is crictl.

#[path = "support/mirror.rs"]
mod mirror;
#[path = "support/runtime_trixie.rs"]
mod runtime_trixie;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mirror::Mirror;
use provision::artifacts::{
    self, Arch, Artifacts, Binary, Options, Progress, SourceChoice, SourceKind, etcd_tarball, sha256_hex,
};
use provision::inventory::{self, Loaded};
use runtime_trixie::{CNI, CONTAINERD, RUNC};

/// The version crictl's stand-in is published under.
const CRICTL: &str = "1.34.0";

fn trixie() -> PathBuf {
    runtime_trixie::fetch()
}

fn read(dir: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The real binaries by the binary they stand for (crictl: the stand-in).
fn real_binaries(t: &Path) -> BTreeMap<Binary, Vec<u8>> {
    Binary::RUNTIME
        .iter()
        .map(|b| (*b, if *b == Binary::Crictl { read(t, "stand-in/busybox") } else { read(t, &b.directory_entry()) }))
        .collect()
}

/// GitHub's release paths (written out here, not taken from provision's catalog).
fn gh(repo: &str, version: &str, file: &str) -> String {
    format!("/gh/{repo}/releases/download/v{version}/{file}")
}

/// The release files as published: (path under the base URL, bytes), checksum files
/// included. Built once per test process (compressing ~130 MB is the slow part).
fn release_files(bins: &BTreeMap<Binary, Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    static FILES: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    FILES.get_or_init(|| build_release_files(bins)).clone()
}

fn build_release_files(bins: &BTreeMap<Binary, Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    let b = |x: Binary| bins[&x].as_slice();
    let mut out = Vec::new();
    let containerd = etcd_tarball::build(
        "bin",
        &[
            ("containerd", b(Binary::Containerd)),
            ("containerd-shim-runc-v2", b(Binary::ContainerdShimRuncV2)),
            ("ctr", b(Binary::Ctr)),
            ("containerd-stress", b"not wanted"),
        ],
    )
    .unwrap();
    let name = format!("containerd-{CONTAINERD}-linux-amd64.tar.gz");
    // "<hex>  <file>", as containerd publishes its .sha256sum.
    let sum = format!("{}  {name}\n", sha256_hex(&containerd));
    out.push((gh("containerd/containerd", CONTAINERD, &format!("{name}.sha256sum")), sum.into_bytes()));
    out.push((gh("containerd/containerd", CONTAINERD, &name), containerd));
    // runc: the bare binary, and one list for every asset of the release.
    let runc = b(Binary::Runc).to_vec();
    let sums = format!(
        "{}  runc.amd64\n{}  runc.arm64\n{}  runc.tar.xz\n",
        sha256_hex(&runc),
        "ab".repeat(32),
        "cd".repeat(32)
    );
    out.push((gh("opencontainers/runc", RUNC, "runc.sha256sum"), sums.into_bytes()));
    out.push((gh("opencontainers/runc", RUNC, "runc.amd64"), runc));
    let cni_members: Vec<(&str, &[u8])> = Binary::CNI_PLUGINS.iter().map(|p| (p.name(), b(*p))).collect();
    let mut cni_all = cni_members.clone();
    cni_all.push(("vlan", b"another plugin"));
    let cni = etcd_tarball::build(".", &cni_all).unwrap();
    let name = format!("cni-plugins-linux-amd64-v{CNI}.tgz");
    out.push((
        gh("containernetworking/plugins", CNI, &format!("{name}.sha256")),
        format!("{}  {name}\n", sha256_hex(&cni)).into_bytes(),
    ));
    out.push((gh("containernetworking/plugins", CNI, &name), cni));
    let crictl = etcd_tarball::build("", &[("crictl", b(Binary::Crictl))]).unwrap();
    let name = format!("crictl-v{CRICTL}-linux-amd64.tar.gz");
    // crictl publishes the bare digest.
    out.push((gh("kubernetes-sigs/cri-tools", CRICTL, &format!("{name}.sha256")), sha256_hex(&crictl).into_bytes()));
    out.push((gh("kubernetes-sigs/cri-tools", CRICTL, &name), crictl));
    out
}

struct Setup {
    dir: tempfile::TempDir,
    loaded: Loaded,
}

fn setup(artifacts_toml: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[cluster]
name = "t"
kubernetes_version = "1.34.2"
etcd_version = "3.5.21"
api_endpoint = "10.0.0.1"
service_cidr = "10.32.0.0/24"
pod_cidr = "10.200.0.0/16"

[artifacts]
kubernetes = "skip"
etcd = "preinstalled"
cache_dir = "cache"
containerd_version = "{CONTAINERD}"
runc_version = "{RUNC}"
cni_plugins_version = "{CNI}"
crictl_version = "{CRICTL}"
{artifacts_toml}

[[host]]
name = "e1"
address = "10.0.0.3"
roles = ["etcd"]

[[host]]
name = "w1"
address = "10.0.0.2"
roles = ["control-plane"]
"#
    );
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, text).unwrap();
    let loaded = inventory::load(&path).unwrap_or_else(|d| panic!("{d}"));
    Setup { dir, loaded }
}

fn from_mirror(m: &Mirror) -> Setup {
    setup(&format!("runtime = \"download\"\nruntime_base_url = \"{}/gh\"", m.url()))
}

fn resolve(s: &Setup) -> anyhow::Result<Artifacts> {
    let arches = BTreeMap::from([("e1".to_string(), Arch::Amd64), ("w1".to_string(), Arch::Amd64)]);
    artifacts::resolve_with(&s.loaded, &arches, &Options { progress: Progress::silent(), ..Options::default() })
}

fn publish(m: &Mirror, files: &[(String, Vec<u8>)]) {
    for (path, bytes) in files {
        m.put(path, bytes.clone());
    }
}

/// Each runtime binary resolved is the real one, at its host path, only for the kubelet host.
fn assert_real(a: &Artifacts, s: &Setup, bins: &BTreeMap<Binary, Vec<u8>>, source: SourceKind) {
    let set = &a.sets[&Arch::Amd64];
    assert_eq!(set.keys().copied().collect::<Vec<_>>(), Binary::RUNTIME);
    for r in set.values() {
        assert!(r.content.as_slice() == bins[&r.binary].as_slice(), "{} differs from the published one", r.binary);
        assert_eq!(r.sha256, sha256_hex(&bins[&r.binary]));
        assert_eq!(r.origin.source, source, "{}", r.binary);
        assert!(r.origin.checksum_file.is_some(), "{} verified: {r:?}", r.binary);
    }
    let inv = &s.loaded.inventory;
    assert!(artifacts::files_for(a, &inv.hosts[0]).is_empty(), "the etcd-only host gets no runtime");
    let files = artifacts::files_for(a, &inv.hosts[1]);
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths.len(), 9);
    assert!(paths.contains(&"/usr/local/bin/containerd") && paths.contains(&"/opt/cni/bin/host-local"), "{paths:?}");
    assert!(files.iter().all(|f| f.mode == 0o755 && f.owner == "root" && f.group == "root"));
}

#[test]
fn download_verifies_the_published_checksums_and_the_second_run_fetches_nothing() {
    let t = trixie();
    let bins = real_binaries(&t);
    let m = Mirror::start();
    let files = release_files(&bins);
    publish(&m, &files);
    let s = from_mirror(&m);

    let started = std::time::Instant::now();
    let a = resolve(&s).unwrap();
    eprintln!(
        "first resolve (4 release files, {} MB) in {:.2}s",
        files.iter().map(|f| f.1.len()).sum::<usize>() >> 20,
        started.elapsed().as_secs_f64()
    );
    assert_real(&a, &s, &bins, SourceKind::Download);
    let first: Vec<String> = m.hits().into_iter().map(|h| h.path).collect();
    // Each release file and its checksum file once (runc's list serves runc.amd64).
    let mut want: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
    want.sort();
    let mut got = first.clone();
    got.sort();
    assert_eq!(got, want);
    let containerd = &a.sets[&Arch::Amd64][&Binary::Containerd];
    assert_eq!(
        containerd.origin.url.as_deref(),
        Some(
            format!(
                "{}{}",
                m.url(),
                gh("containerd/containerd", CONTAINERD, &format!("containerd-{CONTAINERD}-linux-amd64.tar.gz"))
            )
            .as_str()
        )
    );
    let cache = s.dir.path().join("cache");
    assert!(
        cache
            .join(format!("containerd/v{CONTAINERD}/amd64/containerd-{CONTAINERD}-linux-amd64.tar.gz.sha256sum"))
            .is_file()
    );
    assert!(cache.join(format!("runc/v{RUNC}/amd64/runc.sha256sum")).is_file());

    // Second run: all from the cache, not one request.
    let a = resolve(&s).unwrap();
    assert_eq!(m.hit_count(), first.len(), "the second run fetched {:?}", &m.hits()[first.len()..]);
    assert_real(&a, &s, &bins, SourceKind::Cache);
}

#[test]
fn a_corrupted_checksum_is_refused_naming_the_url_and_the_version_key() {
    let t = trixie();
    let bins = real_binaries(&t);
    let m = Mirror::start();
    publish(&m, &release_files(&bins));
    let sum_path = gh("containernetworking/plugins", CNI, &format!("cni-plugins-linux-amd64-v{CNI}.tgz.sha256"));
    m.put(&sum_path, format!("{}  cni-plugins-linux-amd64-v{CNI}.tgz\n", "0".repeat(64)).into_bytes());
    // And runc's list without the amd64 line.
    let runc_sums = gh("opencontainers/runc", RUNC, "runc.sha256sum");
    m.put(&runc_sums, format!("{}  runc.arm64\n", "ab".repeat(32)).into_bytes());
    let s = from_mirror(&m);
    let e = format!("{:#}", resolve(&s).unwrap_err());
    let url = format!(
        "{}{}",
        m.url(),
        gh("containernetworking/plugins", CNI, &format!("cni-plugins-linux-amd64-v{CNI}.tgz"))
    );
    assert!(e.starts_with("2 binaries could not be had (nothing on the hosts was changed)"), "{e}");
    assert!(e.contains(&format!("sha256 mismatch for {url}: expected {} (from {url}.sha256)", "0".repeat(64))), "{e}");
    assert!(e.contains("Check artifacts.cni_plugins_version and artifacts.runtime_base_url"), "{e}");
    assert!(e.contains(&format!("{}{runc_sums}", m.url())) && e.contains("has no line for runc.amd64"), "{e}");
    // Nothing unverified was kept.
    let cache = s.dir.path().join("cache");
    assert!(!cache.join(format!("cni-plugins/v{CNI}/amd64/cni-plugins-linux-amd64-v{CNI}.tgz")).exists());
    assert!(!cache.join(format!("runc/v{RUNC}/amd64/runc.amd64")).exists());
}

/// The directory source reads the release files as published, with their checksum files.
#[test]
fn directory_with_the_release_files() {
    let t = trixie();
    let bins = real_binaries(&t);
    let s = setup("runtime = \"directory\"\ndirectory = \"bin\"");
    let dir = s.dir.path().join("bin");
    std::fs::create_dir(&dir).unwrap();
    for (path, bytes) in release_files(&bins) {
        std::fs::write(dir.join(path.rsplit('/').next().unwrap()), bytes).unwrap();
    }
    let a = resolve(&s).unwrap();
    assert_real(&a, &s, &bins, SourceKind::Directory);
    // Only the notes about the other tiers: nothing unverified.
    assert!(
        a.notes.iter().all(|n| n.starts_with("artifacts.kubernetes") || n.starts_with("artifacts.etcd")),
        "{:?}",
        a.notes
    );
    assert!(!s.dir.path().join("cache").exists(), "the directory source must not touch the cache");

    // A damaged tarball: refused, naming the file and its checksum file.
    let tgz = dir.join(format!("containerd-{CONTAINERD}-linux-amd64.tar.gz"));
    let mut bytes = std::fs::read(&tgz).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&tgz, bytes).unwrap();
    let e = format!("{:#}", resolve(&s).unwrap_err());
    assert!(e.contains(&format!("sha256 mismatch for {}: expected", tgz.display())), "{e}");
    assert!(e.contains(&format!("(from {}.sha256sum)", tgz.display())), "{e}");
}

/// The directory source reads the extracted binaries (CNI plugins under cni/), each with
/// its .sha256 (what scripts/fetch-runtime-trixie lays out, plus the crictl stand-in).
#[test]
fn directory_with_extracted_binaries() {
    let t = trixie();
    let bins = real_binaries(&t);
    let s = setup("runtime = \"directory\"\ndirectory = \"bin\"");
    let dir = s.dir.path().join("bin");
    std::fs::create_dir_all(dir.join("cni")).unwrap();
    for b in Binary::RUNTIME {
        let rel = b.directory_entry();
        std::fs::write(dir.join(&rel), &bins[&b]).unwrap();
        std::fs::write(dir.join(format!("{rel}.sha256")), format!("{}  {}\n", sha256_hex(&bins[&b]), b.name()))
            .unwrap();
    }
    let a = resolve(&s).unwrap();
    assert_real(&a, &s, &bins, SourceKind::Directory);
    assert_eq!(a.sets[&Arch::Amd64][&Binary::CniPortmap].origin.path, dir.join("cni/portmap"));

    // A missing plugin names where it belongs.
    std::fs::remove_file(dir.join("cni/loopback")).unwrap();
    let e = format!("{:#}", resolve(&s).unwrap_err());
    assert!(
        e.contains(&format!("loopback (linux/amd64, CNI plugins v{CNI}): {}/cni/loopback is missing", dir.display())),
        "{e}"
    );
    // Neither form at all: both named, and the version key.
    std::fs::remove_dir_all(dir.join("cni")).unwrap();
    let e = format!("{:#}", resolve(&s).unwrap_err());
    assert!(
        e.contains(&format!("holds neither cni-plugins-linux-amd64-v{CNI}.tgz nor the extracted cni/bridge, cni/host-local, cni/loopback, cni/portmap")),
        "{e}"
    );
    assert!(e.contains("check artifacts.cni_plugins_version"), "{e}");
}

#[test]
fn fetch_then_export_round_trips_into_the_directory_source() {
    let t = trixie();
    let bins = real_binaries(&t);
    let m = Mirror::start();
    let files = release_files(&bins);
    publish(&m, &files);
    // The air-gapped site's inventory says "directory"; a connected machine fetches for it.
    let s = setup(&format!("runtime = \"directory\"\ndirectory = \"bin\"\nruntime_base_url = \"{}/gh\"", m.url()));
    let opts = Options {
        progress: Progress::silent(),
        sources: SourceChoice::DownloadAll,
        every_binary_for: vec![Arch::Amd64],
    };
    let fetched = artifacts::resolve_with(&s.loaded, &BTreeMap::new(), &opts).unwrap();
    assert_eq!(fetched.all().count(), 9);
    let bin = s.dir.path().join("bin");
    let written = artifacts::export_to(&fetched, &bin).unwrap();
    let mut names: Vec<String> = written.iter().map(|p| p.strip_prefix(&bin).unwrap().display().to_string()).collect();
    names.sort();
    let mut want: Vec<String> = files.iter().map(|(p, _)| p.rsplit('/').next().unwrap().to_string()).collect();
    want.sort();
    assert_eq!(names, want, "the release files as published, with their checksum files");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(bin.join("runc.amd64")).unwrap().permissions().mode() & 0o777, 0o755);

    let before = m.hit_count();
    let a = resolve(&s).unwrap();
    assert_eq!(m.hit_count(), before, "the directory source needs no server");
    assert_real(&a, &s, &bins, SourceKind::Directory);
}
