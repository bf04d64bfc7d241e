//! From the inventory's `[artifacts]` and the hosts' architectures to verified binaries
//! in memory: one job per Kubernetes binary and one per etcd tarball, run a few at a time,
//! every failure reported together (all the 404s at once, not one per run).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};

use super::cache::{self, ChecksumSource, Remote};
use super::catalog::{self, Arch, Binary, Tier};
use super::download::Http;
use super::host_files::{enabled, wanted};
use super::local_dir;
use super::progress::Progress;
use super::release::{self, Packing, ReleaseFile};
use super::{Artifacts, Origin, Resolved, SourceKind, checksum, elf, etcd_tarball};
use crate::inventory::{EtcdSource, KubernetesSource, Loaded, RuntimeSource};

/// Downloads at once: enough to fill a link, few enough to be gentle on 2-core CI.
const PARALLEL: usize = 4;

/// Where binaries come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceChoice {
    /// As `[artifacts]` says (download, directory, skip, preinstalled).
    Inventory,
    /// Download every tier the inventory installs, whatever its source (`artifacts fetch`
    /// prepares a directory for an air-gapped site on a connected machine).
    DownloadAll,
}

pub struct Options {
    pub progress: Progress,
    pub sources: SourceChoice,
    /// Non-empty: every binary the cluster uses, for each of these architectures
    /// (instead of what each host of `host_arch` needs).
    pub every_binary_for: Vec<Arch>,
}

impl Default for Options {
    fn default() -> Self {
        Options { progress: Progress::stderr(), sources: SourceChoice::Inventory, every_binary_for: Vec::new() }
    }
}

/// The binaries every inventory host needs, for its architecture (`arches`, from the
/// facts; hosts missing there are taken as amd64), verified. Call it before the plan is
/// executed: any error here means nothing on the hosts was touched.
pub fn resolve(loaded: &Loaded, arches: &BTreeMap<String, Arch>) -> anyhow::Result<Artifacts> {
    resolve_with(loaded, arches, &Options::default())
}

pub fn resolve_with(loaded: &Loaded, host_arch: &BTreeMap<String, Arch>, opts: &Options) -> anyhow::Result<Artifacts> {
    let inv = &loaded.inventory;
    let mut needed: BTreeMap<Arch, BTreeSet<Binary>> = BTreeMap::new();
    if opts.every_binary_for.is_empty() {
        for host in &inv.hosts {
            let arch = host_arch.get(&host.name).copied().unwrap_or(Arch::DEFAULT);
            let w = wanted(inv, host);
            if !w.is_empty() {
                needed.entry(arch).or_default().extend(w);
            }
        }
    } else {
        for arch in &opts.every_binary_for {
            needed.entry(*arch).or_default().extend(enabled(inv));
        }
    }

    let mut notes = Vec::new();
    if inv.artifacts.kubernetes == KubernetesSource::Skip {
        notes.push("artifacts.kubernetes = \"skip\": no Kubernetes binaries are installed".to_string());
    }
    if inv.artifacts.etcd == EtcdSource::Preinstalled {
        notes.push(
            "artifacts.etcd = \"preinstalled\": the etcd already on the hosts (/usr/bin/etcd) is used; no etcd binaries are installed"
                .to_string(),
        );
    }

    let ctx = Ctx::new(loaded, opts)?;
    let mut jobs = Vec::new();
    for (arch, binaries) in &needed {
        let mut releases: BTreeMap<Tier, Vec<Binary>> = BTreeMap::new();
        for b in binaries {
            match b.tier() {
                Tier::Kubernetes => jobs.push(Job::Kube { arch: *arch, binary: *b }),
                tier => releases.entry(tier).or_default().push(*b),
            }
        }
        jobs.extend(releases.into_iter().map(|(tier, binaries)| Job::Release { arch: *arch, tier, binaries }));
    }
    let results = run_parallel(&ctx, jobs);

    let mut sets: BTreeMap<Arch, BTreeMap<Binary, Resolved>> = BTreeMap::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(out) => {
                notes.extend(out.notes);
                for r in out.resolved {
                    sets.entry(r.arch).or_default().insert(r.binary, r);
                }
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    match errors.len() {
        0 => {}
        1 => bail!("{}", errors.remove(0)),
        n => bail!("{n} binaries could not be had (nothing on the hosts was changed):\n  - {}", errors.join("\n  - ")),
    }
    Ok(Artifacts {
        kubernetes_version: catalog::v(&inv.cluster.kubernetes_version),
        etcd_version: catalog::v(&inv.cluster.etcd_version),
        sets,
        host_arch: host_arch.clone(),
        notes,
    })
}

enum Job {
    Kube {
        arch: Arch,
        binary: Binary,
    },
    /// The binaries of one release file (all of `tier`'s that the hosts need).
    Release {
        arch: Arch,
        tier: Tier,
        binaries: Vec<Binary>,
    },
}

#[derive(Default)]
struct JobOut {
    resolved: Vec<Resolved>,
    notes: Vec<String>,
}

impl JobOut {
    /// One verified binary; `sha256` is the digest of `bytes`, computed once.
    fn push(&mut self, binary: Binary, arch: Arch, bytes: Vec<u8>, sha256: String, origin: Origin) {
        let size = bytes.len() as u64;
        self.resolved.push(Resolved { binary, arch, size, content: shared(bytes, &sha256), sha256, origin });
    }
}

/// A file read from `artifacts.directory`, as (bytes, sha256, origin); a file without a
/// checksum file is noted as used without verification.
fn from_directory(found: local_dir::Found, what: &str, out: &mut JobOut) -> (Vec<u8>, String, Origin) {
    if found.checksum_file.is_none() {
        out.notes.push(unverified(what, &found.path));
    }
    let origin =
        Origin { source: SourceKind::Directory, path: found.path, url: None, checksum_file: found.checksum_file };
    (found.bytes, found.sha256, origin)
}

enum Source {
    Download { cache_root: PathBuf, base_url: String },
    Directory(PathBuf),
}

struct Ctx<'a> {
    loaded: &'a Loaded,
    http: Http,
    progress: Progress,
    kube: Option<Source>,
    etcd: Option<Source>,
    /// containerd, runc, the CNI plugins and crictl (artifacts.runtime).
    runtime: Option<Source>,
}

impl<'a> Ctx<'a> {
    fn new(loaded: &'a Loaded, opts: &Options) -> anyhow::Result<Ctx<'a>> {
        let a = &loaded.inventory.artifacts;
        let cache_root = || -> anyhow::Result<PathBuf> {
            match &a.cache_dir {
                Some(dir) => Ok(loaded.resolve_path(dir)),
                None => cache::default_root(),
            }
        };
        let directory = || -> anyhow::Result<PathBuf> {
            let dir = a.directory.as_deref().context(
                "artifacts.directory is not set, but a source is \"directory\": set it to the folder holding the binaries",
            )?;
            let dir = loaded.resolve_path(dir);
            if !dir.is_dir() {
                bail!(
                    "artifacts.directory {} is not a directory: create it and put the binaries there (docs/artifacts.md)",
                    dir.display()
                );
            }
            Ok(dir)
        };
        let download_all = opts.sources == SourceChoice::DownloadAll;
        let kube = match a.kubernetes {
            KubernetesSource::Skip => None,
            KubernetesSource::Directory if !download_all => Some(Source::Directory(directory()?)),
            _ => Some(Source::Download { cache_root: cache_root()?, base_url: a.kubernetes_base_url.clone() }),
        };
        let etcd = match a.etcd {
            EtcdSource::Preinstalled => None,
            EtcdSource::Directory if !download_all => Some(Source::Directory(directory()?)),
            _ => Some(Source::Download { cache_root: cache_root()?, base_url: a.etcd_base_url.clone() }),
        };
        let runtime = match a.runtime_source() {
            RuntimeSource::Preinstalled | RuntimeSource::Skip => None,
            RuntimeSource::Directory if !download_all => Some(Source::Directory(directory()?)),
            _ => Some(Source::Download { cache_root: cache_root()?, base_url: a.runtime_base_url.clone() }),
        };
        Ok(Ctx { loaded, http: Http::new(), progress: opts.progress.clone(), kube, etcd, runtime })
    }

    fn run(&self, job: &Job) -> anyhow::Result<JobOut> {
        match job {
            Job::Kube { arch, binary } => self.kube(*arch, *binary),
            Job::Release { arch, tier, binaries } => self.release(*arch, *tier, binaries),
        }
    }

    fn kube(&self, arch: Arch, binary: Binary) -> anyhow::Result<JobOut> {
        let version = &self.loaded.inventory.cluster.kubernetes_version;
        let what = format!("{binary} (linux/{arch}, Kubernetes {})", catalog::v(version));
        let mut out = JobOut::default();
        let (bytes, sha256, origin) = match self.kube.as_ref().context("kubernetes binaries are skipped")? {
            Source::Download { cache_root, base_url } => {
                let url = catalog::kubernetes_url(base_url, version, arch, binary);
                let file = cache_root
                    .join(Tier::Kubernetes.cache_dir())
                    .join(catalog::v(version))
                    .join(arch.as_str())
                    .join(binary.name());
                let item = Remote {
                    what: what.clone(),
                    checksum: ChecksumSource::Sha256File {
                        url: format!("{url}.sha256"),
                        cached: with_suffix(&file, ".sha256"),
                    },
                    url,
                    file,
                    hint: Tier::Kubernetes.missing_hint(&catalog::v(version), arch, base_url),
                };
                self.cached(item, &mut out)?
            }
            Source::Directory(dir) => {
                let found = local_dir::require(&local_dir::arch_root(dir, arch), binary.name(), &what, dir)?;
                from_directory(found, &what, &mut out)
            }
        };
        check_elf(&bytes, arch, &what, &origin.path)?;
        out.push(binary, arch, bytes, sha256, origin);
        Ok(out)
    }

    /// The binaries of one release file (etcd's tarball, containerd's, runc, the CNI
    /// plugins', crictl's): downloaded and checked, or from the directory as published or
    /// already extracted.
    fn release(&self, arch: Arch, tier: Tier, binaries: &[Binary]) -> anyhow::Result<JobOut> {
        let inv = &self.loaded.inventory;
        let file = release::release_file(inv, tier, arch).context("internal: a release job for Kubernetes")?;
        let what = format!("{} (linux/{arch}, {} {})", tier.product(), tier.product(), file.version);
        let mut out = JobOut::default();
        let source = match tier {
            Tier::Etcd => self.etcd.as_ref(),
            _ => self.runtime.as_ref(),
        };
        let (bytes, sha256, origin) =
            match source.with_context(|| format!("{} binaries are not installed", tier.product()))? {
                Source::Download { cache_root, .. } => {
                    let dir = cache_root.join(tier.cache_dir()).join(&file.version).join(arch.as_str());
                    let cached_sum = dir.join(file.checksum_name());
                    let item = Remote {
                        what: format!("{} ({} {})", file.name, tier.product(), file.version),
                        url: file.url.clone(),
                        file: dir.join(&file.name),
                        checksum: if file.checksum_is_list {
                            ChecksumSource::Sums {
                                url: file.checksum_url.clone(),
                                cached: cached_sum,
                                name: file.name.clone(),
                            }
                        } else {
                            ChecksumSource::Sha256File { url: file.checksum_url.clone(), cached: cached_sum }
                        },
                        hint: file.hint(arch),
                    };
                    self.cached(item, &mut out)?
                }
                Source::Directory(dir) => {
                    let root = local_dir::arch_root(dir, arch);
                    let lists = [file.checksum_name(), local_dir::SUMS_FILE];
                    match local_dir::read_in(&root, &file.name, &what, &lists)? {
                        Some(found) => from_directory(found, &what, &mut out),
                        None => return extracted(&root, dir, arch, &file, binaries, out),
                    }
                }
            };
        // A raw file is the binary itself: its digest is the one just checked, not hashed again.
        let members: Vec<(Binary, Vec<u8>, String)> = match file.packing {
            Packing::Archive => etcd_tarball::extract(&bytes, binaries, &origin.path.display().to_string())?
                .into_iter()
                .map(|(b, bytes)| {
                    let sha256 = checksum::sha256_hex(&bytes);
                    (b, bytes, sha256)
                })
                .collect(),
            Packing::Raw => binaries.iter().map(|b| (*b, bytes.clone(), sha256.clone())).collect(),
        };
        for (binary, bytes, sha256) in members {
            let what = format!("{binary} (linux/{arch}, {} {}, from {})", tier.product(), file.version, file.name);
            check_elf(&bytes, arch, &what, &origin.path)?;
            out.push(binary, arch, bytes, sha256, origin.clone());
        }
        Ok(out)
    }

    /// A verified file from the cache (downloading it when needed).
    fn cached(&self, item: Remote, out: &mut JobOut) -> anyhow::Result<(Vec<u8>, String, Origin)> {
        let got = cache::ensure(&self.http, &item, &self.progress)?;
        // Reported with the other notes by the caller (plan's preamble, fetch's table).
        out.notes.extend(got.repaired);
        let origin = Origin {
            source: if got.downloaded { SourceKind::Download } else { SourceKind::Cache },
            path: got.path,
            url: Some(item.url),
            checksum_file: Some(got.checksum_file),
        };
        Ok((got.bytes, got.sha256, origin))
    }
}

/// The directory holds the release's binaries themselves rather than the release file.
fn extracted(
    root: &Path,
    dir: &Path,
    arch: Arch,
    file: &ReleaseFile,
    binaries: &[Binary],
    mut out: JobOut,
) -> anyhow::Result<JobOut> {
    let (product, version) = (file.tier.product(), &file.version);
    let first = binaries.first().context("internal: a release job without binaries")?;
    if !root.join(first.directory_entry()).exists() {
        let names: Vec<String> = binaries.iter().map(|b| b.directory_entry()).collect();
        bail!(
            "{product} (linux/{arch}, {product} {version}): artifacts.directory {} holds neither {} nor the extracted {}; \
             put one of them there (docs/artifacts.md), e.g. with `provision artifacts fetch INVENTORY --to {}` on a machine \
             with internet access, or check {}",
            root.display(),
            file.name,
            names.join(", "),
            dir.display(),
            file.tier.version_key()
        );
    }
    for binary in binaries {
        let what = format!("{binary} (linux/{arch}, {product} {version})");
        let found = local_dir::require(root, &binary.directory_entry(), &what, dir)?;
        check_elf(&found.bytes, arch, &what, &found.path)?;
        let (bytes, sha256, origin) = from_directory(found, &what, &mut out);
        out.push(*binary, arch, bytes, sha256, origin);
    }
    Ok(out)
}

fn run_parallel(ctx: &Ctx<'_>, jobs: Vec<Job>) -> Vec<anyhow::Result<JobOut>> {
    let n = jobs.len();
    let queue = Mutex::new(jobs.into_iter().enumerate());
    let results: Mutex<Vec<Option<anyhow::Result<JobOut>>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(n) {
            s.spawn(|| {
                loop {
                    let next = queue.lock().map(|mut q| q.next()).ok().flatten();
                    let Some((i, job)) = next else { break };
                    let r = ctx.run(&job);
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.into_iter().map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("a download worker stopped")))).collect()
}

/// The verified bytes, shared by every host, with the digest just computed from them
/// (so the plan does not hash hundreds of megabytes again).
fn shared(bytes: Vec<u8>, sha256: &str) -> Arc<Vec<u8>> {
    crate::desired::shared_content_with_sha256(bytes, sha256)
}

fn check_elf(bytes: &[u8], arch: Arch, what: &str, path: &Path) -> anyhow::Result<()> {
    elf::check(bytes, arch).map_err(|why| {
        anyhow::anyhow!("{what}: {} {why}; use the linux/{arch} release of it (no host was changed)", path.display())
    })
}

fn unverified(what: &str, path: &Path) -> String {
    format!(
        "{what}: {} has no checksum file ({}.sha256 or a SHA256SUMS line): used without verification",
        path.display(),
        path.file_name().and_then(|n| n.to_str()).unwrap_or("FILE")
    )
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Copies the verified files into `dir` in the layout the `directory` source reads:
/// the Kubernetes binaries with their `.sha256` files, the release files (etcd's tarball,
/// containerd's, runc.<arch>, the CNI plugins', crictl's) as published with their checksum
/// files; in `dir/<arch>/` when there are several architectures. Returns the files written.
pub fn export_to(artifacts: &Artifacts, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let nested = artifacts.sets.len() > 1;
    let mut written = Vec::new();
    for (arch, set) in &artifacts.sets {
        let root = if nested { dir.join(arch.as_str()) } else { dir.to_path_buf() };
        crate::trust::owned_dir(&root).with_context(|| format!("the export directory {}", root.display()))?;
        let mut done = BTreeSet::new();
        for r in set.values() {
            let name = r.origin.path.file_name().context("artifact without a file name")?.to_owned();
            // A release file (a tarball, runc.<arch>) keeps its published name; an extracted
            // binary goes where the directory source looks for it (cni/bridge).
            let release_file = name.to_str() != Some(r.binary.name());
            let entry = if release_file { PathBuf::from(&name) } else { PathBuf::from(r.binary.directory_entry()) };
            if !done.insert(entry.clone().into_os_string()) {
                continue; // the binaries of one tarball share it
            }
            let target = root.join(&entry);
            if let Some(parent) = target.parent() {
                crate::trust::owned_dir(parent)
                    .with_context(|| format!("the export directory {}", parent.display()))?;
            }
            let from_archive = release_file && r.origin.path.extension().is_some_and(|e| e == "gz" || e == "tgz");
            let bytes = if release_file {
                let bytes =
                    std::fs::read(&r.origin.path).with_context(|| format!("reading {}", r.origin.path.display()))?;
                verify_copy(&bytes, r)?;
                bytes
            } else {
                r.content.as_slice().to_vec()
            };
            cache::write_atomic(&target, &bytes)?;
            set_executable(&target, !from_archive)?;
            written.push(target.clone());
            if let Some(sums) = &r.origin.checksum_file {
                let sums_dir = target.parent().unwrap_or(&root);
                let target = sums_dir.join(sums.file_name().context("checksum file without a name")?);
                if done.insert(target.strip_prefix(&root).unwrap_or(&target).as_os_str().to_owned()) {
                    let text = std::fs::read(sums).with_context(|| format!("reading {}", sums.display()))?;
                    cache::write_atomic(&target, &text)?;
                    written.push(target);
                }
            }
        }
    }
    Ok(written)
}

/// The tarball re-read from the cache must still be the one verified.
fn verify_copy(bytes: &[u8], r: &Resolved) -> anyhow::Result<()> {
    let Some(sums) = &r.origin.checksum_file else { return Ok(()) };
    let name = r.origin.path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let text = std::fs::read_to_string(sums).with_context(|| format!("reading {}", sums.display()))?;
    let actual = checksum::sha256_hex(bytes);
    // A list names the file; a file's own checksum (.sha256, .sha256sum) may hold the bare digest.
    match checksum::lookup_sums(&text, name).or_else(|| checksum::parse_sha256_file(&text).ok()) {
        Some(expected) if expected == actual => Ok(()),
        _ => bail!("{} changed while being copied (sha256 {actual}): run the fetch again", r.origin.path.display()),
    }
}

fn set_executable(path: &Path, executable: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}
