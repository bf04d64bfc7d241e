//! The binaries' sources end to end, with no internet: a real HTTP server on 127.0.7.1
//! laid out like dl.k8s.io and the etcd release page, a real download cache on disk,
//! real directories for the air-gapped source.

#[path = "support/mirror.rs"]
mod mirror;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mirror::{ETCD, K8S, Mirror, fake};
use provision::artifacts::{self, Arch, Artifacts, Binary, Options, Progress, SourceChoice, SourceKind};
use provision::inventory::{self, Loaded};

struct Setup {
    dir: tempfile::TempDir,
    loaded: Loaded,
}

impl Setup {
    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
    fn k8s_cache(&self, arch: Arch, name: &str) -> PathBuf {
        self.cache().join(format!("kubernetes/v{K8S}/{arch}/{name}"))
    }
    fn etcd_cache(&self, arch: Arch, name: &str) -> PathBuf {
        self.cache().join(format!("etcd/v{ETCD}/{arch}/{name}"))
    }
}

/// An inventory beside its own cache, reading from `mirror` (or a directory).
fn setup(artifacts_toml: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[cluster]
name = "t"
kubernetes_version = "{K8S}"
etcd_version = "{ETCD}"
api_endpoint = "10.0.0.1"
service_cidr = "10.32.0.0/24"
pod_cidr = "10.200.0.0/16"

[artifacts]
cache_dir = "cache"
{artifacts_toml}

[[host]]
name = "cp1"
address = "10.0.0.1"
roles = ["etcd", "control-plane"]

[[host]]
name = "w1"
address = "10.0.0.2"
roles = ["worker"]
"#
    );
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, text).unwrap();
    let loaded = inventory::load(&path).unwrap_or_else(|d| panic!("{d}"));
    Setup { dir, loaded }
}

fn from_mirror(m: &Mirror) -> Setup {
    setup(&format!("kubernetes_base_url = \"{}\"\netcd_base_url = \"{}\"", m.k8s_base(), m.etcd_base()))
}

fn quiet() -> Options {
    Options { progress: Progress::silent(), ..Options::default() }
}

fn resolve(s: &Setup, arches: &BTreeMap<String, Arch>) -> anyhow::Result<Artifacts> {
    artifacts::resolve_with(&s.loaded, arches, &quiet())
}

fn all_amd64() -> BTreeMap<String, Arch> {
    BTreeMap::from([("cp1".into(), Arch::Amd64), ("w1".into(), Arch::Amd64)])
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn downloads_verifies_and_then_serves_from_the_cache_without_a_request() {
    let m = Mirror::start();
    let published = m.publish(Arch::Amd64);
    let s = from_mirror(&m);

    let a = resolve(&s, &all_amd64()).unwrap();
    let set = &a.sets[&Arch::Amd64];
    assert_eq!(set.len(), 9, "{:?}", set.keys());
    for r in set.values() {
        assert_eq!(r.content.as_slice(), published[r.binary.name()].as_slice(), "{}", r.binary);
        assert_eq!(r.sha256, artifacts::sha256_hex(&published[r.binary.name()]));
        assert_eq!(r.origin.source, SourceKind::Download);
    }
    let api = &set[&Binary::KubeApiserver];
    assert_eq!(api.origin.url.as_deref(), Some(format!("{}/release/v{K8S}/bin/linux/amd64/kube-apiserver", m.k8s_base()).as_str()));
    // The cache holds verified files with the checksums they matched; no leftovers.
    assert_eq!(std::fs::read(s.k8s_cache(Arch::Amd64, "kube-apiserver")).unwrap(), published["kube-apiserver"]);
    assert_eq!(
        std::fs::read_to_string(s.k8s_cache(Arch::Amd64, "kube-apiserver.sha256")).unwrap(),
        artifacts::sha256_hex(&published["kube-apiserver"])
    );
    let k8s_dir = files_in(&s.cache().join(format!("kubernetes/v{K8S}/amd64")));
    assert!(k8s_dir.iter().all(|f| !f.ends_with(".part") && !f.contains(".tmp.")), "{k8s_dir:?}");
    assert_eq!(files_in(&s.cache().join(format!("etcd/v{ETCD}/amd64"))).iter().filter(|f| !f.starts_with('.')).count(), 2);
    // 6 binaries + 6 checksums, each redirected once (12 x 2), + tarball + SHA256SUMS.
    let first = m.hit_count();
    assert_eq!(first, 26, "{:#?}", m.hits());

    // The roles decide who gets what; the content is shared, not copied.
    let cp = artifacts::files_for(&a, &s.loaded.inventory.hosts[0]);
    let w = artifacts::files_for(&a, &s.loaded.inventory.hosts[1]);
    assert_eq!(cp.len(), 9);
    assert_eq!(w.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["/usr/local/bin/kubelet", "/usr/local/bin/kube-proxy"]);
    let cp_kubelet = cp.iter().find(|f| f.path == "/usr/local/bin/kubelet").unwrap();
    assert!(std::sync::Arc::ptr_eq(&cp_kubelet.content, &w[0].content));
    assert_eq!(cp_kubelet.sha256_hex(), artifacts::sha256_hex(&published["kubelet"]));

    // Second run: everything from the cache, re-verified, and not one request.
    let again = resolve(&s, &all_amd64()).unwrap();
    assert_eq!(m.hit_count(), first, "{:#?}", &m.hits()[first..]);
    assert!(again.all().all(|r| r.origin.source == SourceKind::Cache));
    assert_eq!(again.sets[&Arch::Amd64][&Binary::Etcdutl].content.as_slice(), published["etcdutl"].as_slice());
}

#[test]
fn a_wrong_published_checksum_is_an_error_and_nothing_is_cached() {
    let m = Mirror::start();
    let published = m.publish(Arch::Amd64);
    let wrong = "0".repeat(64);
    m.put(&Mirror::k8s_path(Arch::Amd64, "kube-scheduler.sha256"), wrong.clone().into_bytes());
    let s = from_mirror(&m);

    let e = format!("{:#}", resolve(&s, &all_amd64()).unwrap_err());
    let url = format!("{}/release/v{K8S}/bin/linux/amd64/kube-scheduler", m.k8s_base());
    let actual = artifacts::sha256_hex(&published["kube-scheduler"]);
    assert!(
        e.contains(&format!(
            "kube-scheduler (linux/amd64, Kubernetes v{K8S}): sha256 mismatch for {url}: expected {wrong} (from {url}.sha256), got {actual}; nothing was cached and no host was changed"
        )),
        "{e}"
    );
    // Neither the binary, nor its checksum, nor a partial download.
    let left = files_in(&s.cache().join(format!("kubernetes/v{K8S}/amd64")));
    assert!(!left.iter().any(|f| f.starts_with("kube-scheduler")), "{left:?}");
    // The others were fine and are cached.
    assert!(left.contains(&"kubelet".to_string()), "{left:?}");
}

#[test]
fn missing_files_are_errors_naming_the_url_all_at_once() {
    let m = Mirror::start();
    m.publish(Arch::Amd64);
    m.remove(&Mirror::k8s_path(Arch::Amd64, "kubectl"));
    m.remove(&Mirror::etcd_path(&format!("etcd-v{ETCD}-linux-amd64.tar.gz")));
    let s = from_mirror(&m);

    let e = format!("{:#}", resolve(&s, &all_amd64()).unwrap_err());
    assert!(e.starts_with("2 binaries could not be had (nothing on the hosts was changed):"), "{e}");
    let url = format!("{}/release/v{K8S}/bin/linux/amd64/kubectl", m.k8s_base());
    assert!(e.contains(&format!("kubectl (linux/amd64, Kubernetes v{K8S}): downloading {url}: HTTP 404 Not Found; no such file: is Kubernetes v{K8S} released for linux/amd64? Check cluster.kubernetes_version and artifacts.kubernetes_base_url")), "{e}");
    let tarball = format!("{}/v{ETCD}/etcd-v{ETCD}-linux-amd64.tar.gz", m.etcd_base());
    assert!(e.contains(&format!("downloading {tarball}: HTTP 404 Not Found; no such file: is etcd v{ETCD} released for linux/amd64? Check cluster.etcd_version")), "{e}");
    assert!(!s.k8s_cache(Arch::Amd64, "kubectl").exists());
    assert!(!s.k8s_cache(Arch::Amd64, "kubectl.sha256").exists());
}

#[test]
fn a_broken_transfer_leaves_no_file_and_the_next_run_resumes() {
    let m = Mirror::start();
    let published = m.publish(Arch::Amd64);
    let path = Mirror::k8s_path(Arch::Amd64, "kube-apiserver");
    let cut = published["kube-apiserver"].len() / 3;
    m.truncate(&path, cut);
    let s = from_mirror(&m);

    let e = format!("{:#}", resolve(&s, &all_amd64()).unwrap_err());
    let url = format!("{}/release/v{K8S}/bin/linux/amd64/kube-apiserver", m.k8s_base());
    assert!(
        e.contains(&format!(
            "kube-apiserver (linux/amd64, Kubernetes v{K8S}): downloading {url}: the transfer broke off after {cut} of {} bytes",
            published["kube-apiserver"].len()
        )),
        "{e}"
    );
    assert!(e.contains("run again to resume"), "{e}");
    // Nothing usable under the binary's name, nor its checksum; the part file is kept.
    assert!(!s.k8s_cache(Arch::Amd64, "kube-apiserver").exists());
    assert!(!s.k8s_cache(Arch::Amd64, "kube-apiserver.sha256").exists());
    assert_eq!(std::fs::read(s.k8s_cache(Arch::Amd64, "kube-apiserver.part")).unwrap(), published["kube-apiserver"][..cut]);

    m.heal(&path);
    let before = m.hit_count();
    let a = resolve(&s, &all_amd64()).unwrap();
    assert_eq!(a.sets[&Arch::Amd64][&Binary::KubeApiserver].content.as_slice(), published["kube-apiserver"].as_slice());
    // Only the missing rest was asked for.
    let resumed: Vec<_> = m.hits()[before..].iter().filter(|h| h.path == path).cloned().collect();
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(resumed[0].range.as_deref(), Some(format!("bytes={cut}-").as_str()));
    assert!(!s.k8s_cache(Arch::Amd64, "kube-apiserver.part").exists());
}

#[test]
fn a_server_without_range_support_gets_a_whole_download() {
    let m = Mirror::start();
    let published = m.publish(Arch::Amd64);
    let path = Mirror::k8s_path(Arch::Amd64, "kubelet");
    m.truncate(&path, 1000);
    let s = from_mirror(&m);
    assert!(resolve(&s, &all_amd64()).is_err());
    assert_eq!(std::fs::metadata(s.k8s_cache(Arch::Amd64, "kubelet.part")).unwrap().len(), 1000);

    m.heal(&path);
    m.ignore_range(true);
    let a = resolve(&s, &all_amd64()).unwrap();
    assert_eq!(a.sets[&Arch::Amd64][&Binary::Kubelet].content.as_slice(), published["kubelet"].as_slice());
    assert_eq!(std::fs::read(s.k8s_cache(Arch::Amd64, "kubelet")).unwrap(), published["kubelet"]);
}

#[test]
fn a_stale_partial_download_of_another_file_is_discarded() {
    let m = Mirror::start();
    let published = m.publish(Arch::Amd64);
    let s = from_mirror(&m);
    // A .part left by an earlier run of a different release: its prefix does not fit.
    let part = s.k8s_cache(Arch::Amd64, "kube-proxy.part");
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, vec![b'x'; 5000]).unwrap();

    let before = m.hit_count();
    let a = resolve(&s, &all_amd64()).unwrap();
    assert_eq!(a.sets[&Arch::Amd64][&Binary::KubeProxy].content.as_slice(), published["kube-proxy"].as_slice());
    // Resumed first (and failed the checksum), then fetched whole.
    let path = Mirror::k8s_path(Arch::Amd64, "kube-proxy");
    let ranges: Vec<Option<String>> = m.hits()[before..].iter().filter(|h| h.path == path).map(|h| h.range.clone()).collect();
    assert_eq!(ranges, [Some("bytes=5000-".to_string()), None]);
    assert!(!part.exists());
}

#[test]
fn a_damaged_cached_file_is_detected_and_downloaded_again() {
    let m = Mirror::start();
    let published = m.publish(Arch::Amd64);
    let s = from_mirror(&m);
    resolve(&s, &all_amd64()).unwrap();

    let cached = s.k8s_cache(Arch::Amd64, "kubelet");
    let mut bytes = std::fs::read(&cached).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&cached, &bytes).unwrap();
    let tarball = s.etcd_cache(Arch::Amd64, &format!("etcd-v{ETCD}-linux-amd64.tar.gz"));
    std::fs::write(&tarball, b"truncated").unwrap();

    let before = m.hit_count();
    let a = resolve(&s, &all_amd64()).unwrap();
    let kubelet = &a.sets[&Arch::Amd64][&Binary::Kubelet];
    assert_eq!(kubelet.content.as_slice(), published["kubelet"].as_slice());
    assert_eq!(kubelet.origin.source, SourceKind::Download);
    assert_eq!(std::fs::read(&cached).unwrap(), published["kubelet"]);
    assert!(a.notes.iter().any(|n| n.contains(&format!("the cached {} was damaged", cached.display()))), "{:?}", a.notes);
    assert!(a.notes.iter().any(|n| n.contains("linux-amd64.tar.gz was damaged")), "{:?}", a.notes);
    assert_eq!(a.sets[&Arch::Amd64][&Binary::Etcd].content.as_slice(), published["etcd"].as_slice());
    // Only the two damaged files (and their checksums, asked again) were fetched.
    let paths: Vec<String> = m.hits()[before..].iter().map(|h| h.path.clone()).filter(|p| !p.starts_with("/k8s/")).collect();
    let mut paths = paths;
    paths.sort();
    assert_eq!(
        paths,
        [
            Mirror::etcd_path("SHA256SUMS"),
            Mirror::etcd_path(&format!("etcd-v{ETCD}-linux-amd64.tar.gz")),
            Mirror::k8s_path(Arch::Amd64, "kubelet"),
            Mirror::k8s_path(Arch::Amd64, "kubelet.sha256"),
        ]
    );
}

#[test]
fn each_host_gets_its_own_architecture() {
    let m = Mirror::start();
    let amd = m.publish(Arch::Amd64);
    let arm = m.publish(Arch::Arm64);
    let s = from_mirror(&m);
    let arches = BTreeMap::from([("cp1".into(), Arch::Amd64), ("w1".into(), Arch::Arm64)]);
    let a = resolve(&s, &arches).unwrap();
    // Only what each architecture's hosts need: the arm64 worker gets kubelet and kube-proxy.
    assert_eq!(a.sets[&Arch::Arm64].keys().copied().collect::<Vec<_>>(), [Binary::Kubelet, Binary::KubeProxy]);
    let w = artifacts::files_for(&a, &s.loaded.inventory.hosts[1]);
    assert_eq!(w[0].content.as_slice(), arm["kubelet"].as_slice());
    let cp = artifacts::files_for(&a, &s.loaded.inventory.hosts[0]);
    assert_eq!(cp.iter().find(|f| f.path.ends_with("/kubelet")).unwrap().content.as_slice(), amd["kubelet"].as_slice());
}

#[test]
fn a_wrong_architecture_from_the_mirror_is_refused() {
    let m = Mirror::start();
    m.publish(Arch::Amd64);
    // arm64 bytes under the amd64 URL, with a matching checksum.
    let arm = fake("kube-proxy", Arch::Arm64);
    m.put(&Mirror::k8s_path(Arch::Amd64, "kube-proxy"), arm.clone());
    m.put(&Mirror::k8s_path(Arch::Amd64, "kube-proxy.sha256"), artifacts::sha256_hex(&arm).into_bytes());
    let s = from_mirror(&m);
    let e = format!("{:#}", resolve(&s, &all_amd64()).unwrap_err());
    assert!(e.contains("kube-proxy (linux/amd64, Kubernetes v1.34.2): "), "{e}");
    assert!(e.contains("is built for arm64, but the host is amd64"), "{e}");
}

/// Writes a directory the way an operator would by hand.
fn write_dir(dir: &Path, arch: Arch, etcd_as_tarball: bool, checksums: bool) -> BTreeMap<String, Vec<u8>> {
    std::fs::create_dir_all(dir).unwrap();
    let mut out = BTreeMap::new();
    let mut sums = String::new();
    for b in Binary::KUBERNETES.iter().chain(&Binary::ETCD) {
        let bytes = fake(b.name(), arch);
        out.insert(b.name().to_string(), bytes);
    }
    for b in Binary::KUBERNETES {
        std::fs::write(dir.join(b.name()), &out[b.name()]).unwrap();
        if checksums {
            std::fs::write(dir.join(format!("{}.sha256", b.name())), artifacts::sha256_hex(&out[b.name()])).unwrap();
        }
    }
    if etcd_as_tarball {
        let members: Vec<(&str, &[u8])> = Binary::ETCD.iter().map(|b| (b.name(), out[b.name()].as_slice())).collect();
        let tgz = artifacts::etcd_tarball::build(&format!("etcd-v{ETCD}-linux-{arch}"), &members).unwrap();
        let name = format!("etcd-v{ETCD}-linux-{arch}.tar.gz");
        sums.push_str(&format!("{}  {name}\n", artifacts::sha256_hex(&tgz)));
        std::fs::write(dir.join(name), tgz).unwrap();
    } else {
        for b in Binary::ETCD {
            std::fs::write(dir.join(b.name()), &out[b.name()]).unwrap();
            sums.push_str(&format!("{}  {}\n", artifacts::sha256_hex(&out[b.name()]), b.name()));
        }
    }
    if checksums {
        std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
    }
    out
}

#[test]
fn directory_source_with_checksum_files() {
    let s = setup("kubernetes = \"directory\"\netcd = \"directory\"\ndirectory = \"bin\"");
    let expected = write_dir(&s.dir.path().join("bin"), Arch::Amd64, true, true);
    let a = resolve(&s, &all_amd64()).unwrap();
    assert_eq!(a.all().count(), 9);
    for r in a.all() {
        assert_eq!(r.content.as_slice(), expected[r.binary.name()].as_slice());
        assert_eq!(r.origin.source, SourceKind::Directory);
        assert!(r.origin.checksum_file.is_some(), "{r:?}");
    }
    assert!(a.notes.is_empty(), "{:?}", a.notes);
    assert!(!s.cache().exists(), "the directory source must not touch the cache");

    // A file that no longer matches its checksum: error naming both digests and the path.
    let dir = s.dir.path().join("bin");
    std::fs::write(dir.join("kube-controller-manager"), fake("something else", Arch::Amd64)).unwrap();
    let e = format!("{:#}", resolve(&s, &all_amd64()).unwrap_err());
    assert!(
        e.contains(&format!(
            "kube-controller-manager (linux/amd64, Kubernetes v{K8S}): sha256 mismatch for {}/kube-controller-manager: expected {} (from {}/kube-controller-manager.sha256)",
            dir.display(),
            artifacts::sha256_hex(&expected["kube-controller-manager"]),
            dir.display()
        )),
        "{e}"
    );
}

#[test]
fn directory_source_without_checksum_files_says_so() {
    let s = setup("kubernetes = \"directory\"\netcd = \"directory\"\ndirectory = \"bin\"");
    let expected = write_dir(&s.dir.path().join("bin"), Arch::Amd64, false, false);
    let a = resolve(&s, &all_amd64()).unwrap();
    for r in a.all() {
        assert_eq!(r.content.as_slice(), expected[r.binary.name()].as_slice());
        assert_eq!(r.origin.checksum_file, None);
    }
    assert_eq!(a.notes.len(), 9, "{:?}", a.notes);
    assert!(a.notes.iter().any(|n| n.contains("/bin/kubelet has no checksum file") && n.contains("used without verification")), "{:?}", a.notes);
}

#[test]
fn directory_source_missing_binary_or_wrong_arch() {
    let s = setup("kubernetes = \"directory\"\netcd = \"directory\"\ndirectory = \"bin\"");
    let dir = s.dir.path().join("bin");
    write_dir(&dir, Arch::Amd64, false, false);
    std::fs::remove_file(dir.join("kube-scheduler")).unwrap();
    let e = format!("{:#}", resolve(&s, &all_amd64()).unwrap_err());
    assert!(e.contains(&format!("kube-scheduler (linux/amd64, Kubernetes v{K8S}): {}/kube-scheduler is missing from artifacts.directory", dir.display())), "{e}");

    // Neither the etcd tarball nor the extracted etcd.
    std::fs::write(dir.join("kube-scheduler"), fake("kube-scheduler", Arch::Amd64)).unwrap();
    std::fs::remove_file(dir.join("etcd")).unwrap();
    let e = format!("{:#}", resolve(&s, &all_amd64()).unwrap_err());
    assert!(e.contains(&format!("holds neither etcd-v{ETCD}-linux-amd64.tar.gz nor the extracted etcd, etcdctl, etcdutl")), "{e}");

    // arm64 binaries for amd64 hosts (the classic air-gap mistake).
    std::fs::write(dir.join("etcd"), fake("etcd", Arch::Arm64)).unwrap();
    let e = format!("{:#}", resolve(&s, &all_amd64()).unwrap_err());
    assert!(e.contains(&format!("etcd (linux/amd64, etcd v{ETCD}): {}/etcd is built for arm64, but the host is amd64", dir.display())), "{e}");
}

#[test]
fn skip_and_preinstalled_install_nothing_and_say_so() {
    let s = setup("kubernetes = \"skip\"\netcd = \"preinstalled\"");
    let a = resolve(&s, &all_amd64()).unwrap();
    assert_eq!(a.all().count(), 0);
    assert!(artifacts::files_for(&a, &s.loaded.inventory.hosts[0]).is_empty());
    assert_eq!(a.notes.len(), 2, "{:?}", a.notes);
    assert!(a.notes[0].contains("no Kubernetes binaries are installed"));
    assert!(a.notes[1].contains("no etcd binaries are installed"));
}

#[test]
fn fetch_then_export_feeds_the_directory_source() {
    let m = Mirror::start();
    let published = m.publish(Arch::Amd64);
    // The site's inventory says "directory"; a connected machine fetches for it.
    let s = setup(&format!(
        "kubernetes = \"directory\"\netcd = \"directory\"\ndirectory = \"bin\"\nkubernetes_base_url = \"{}\"\netcd_base_url = \"{}\"",
        m.k8s_base(),
        m.etcd_base()
    ));
    let opts = Options { progress: Progress::silent(), sources: SourceChoice::DownloadAll, every_binary_for: vec![Arch::Amd64] };
    let fetched = artifacts::resolve_with(&s.loaded, &BTreeMap::new(), &opts).unwrap();
    assert_eq!(fetched.all().count(), 9);
    let bin = s.dir.path().join("bin");
    let written = artifacts::export_to(&fetched, &bin).unwrap();
    assert_eq!(written.len(), 6 * 2 + 2, "{written:?}");
    assert_eq!(
        files_in(&bin).iter().filter(|f| !f.ends_with(".sha256")).cloned().collect::<Vec<_>>(),
        [
            "SHA256SUMS".to_string(),
            format!("etcd-v{ETCD}-linux-amd64.tar.gz"),
            "kube-apiserver".into(),
            "kube-controller-manager".into(),
            "kube-proxy".into(),
            "kube-scheduler".into(),
            "kubectl".into(),
            "kubelet".into(),
        ]
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(bin.join("kubelet")).unwrap().permissions().mode() & 0o777, 0o755);

    // The air-gapped side: no server needed any more, everything verified.
    let before = m.hit_count();
    let a = resolve(&s, &all_amd64()).unwrap();
    assert_eq!(m.hit_count(), before);
    assert_eq!(a.all().count(), 9);
    for r in a.all() {
        assert_eq!(r.origin.source, SourceKind::Directory);
        assert!(r.origin.checksum_file.is_some(), "{r:?}");
        assert_eq!(r.content.as_slice(), published[r.binary.name()].as_slice());
    }
}

/// HTTPS is real TLS with certificate verification: a mirror whose certificate no
/// trusted CA signed is refused (here `openssl s_server` with a self-signed one).
#[test]
fn https_mirror_with_an_untrusted_certificate_is_refused() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let st = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=127.0.7.3", "-addext", "subjectAltName=IP:127.0.7.3", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let port = std::net::TcpListener::bind("127.0.7.3:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-www", "-accept", &format!("127.0.7.3:{port}"), "-cert"])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.is_ok_and(|l| l.contains("ACCEPT"))), "s_server did not start");

    let s = setup(&format!("kubernetes = \"download\"\netcd = \"preinstalled\"\nkubernetes_base_url = \"https://127.0.7.3:{port}\""));
    let result = resolve(&s, &all_amd64());
    let _ = server.kill();
    let _ = server.wait();
    let e = format!("{:#}", result.unwrap_err());
    assert!(e.contains(&format!("https://127.0.7.3:{port}/release/v{K8S}/bin/linux/amd64/")), "{e}");
    assert!(e.contains("not signed by a CA of the built-in Mozilla list"), "{e}");
    assert!(!s.cache().join(format!("kubernetes/v{K8S}/amd64/kubelet")).exists());
}
