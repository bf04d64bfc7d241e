//! `lab up`, `lab down`, `lab destroy`: the steps, in order, with hosts worked on in
//! parallel inside a step. Every command takes the lab lock first, so two of them never
//! act on the same hosts at once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::cgroup::Cgroups;
use super::host::{self, HostCtl, Observed, StopOutcome};
use super::image::{self, RECIPE};
use super::known_hosts::{self, HostKeys};
use super::layout::{DEFAULT_HOSTS, Lab, LabHost, MAX_HOSTS};
use super::preflight::{self, BASH, NSPAWN, SSH_KEYGEN, TAR, ZSTD};
use super::progress::{Progress, StepTiming};
use super::{boot, fsutil, hostkeys, identity, key, lock, probe};
use crate::state::StateDir;

/// How long a booting host gets until its sshd must answer.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Hosts `node1 ..= node<hosts>`.
    pub hosts: u32,
    /// The lab inventory: its state dir's known_hosts receives the host keys.
    pub inventory: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostAction {
    Booted,
    AlreadyRunning,
    /// Leftovers of an earlier run were stopped first, then the host was booted.
    Recovered,
}

impl std::fmt::Display for HostAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HostAction::Booted => "booted",
            HostAction::AlreadyRunning => "already running",
            HostAction::Recovered => "recovered",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HostUp {
    #[serde(flatten)]
    pub host: LabHost,
    pub action: HostAction,
    /// What was recovered from, for `Recovered`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Seconds from starting systemd-nspawn until sshd answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    pub hosts: Vec<HostUp>,
    pub image: String,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub steps: Vec<StepTiming>,
    pub total_seconds: f64,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DownReport {
    pub hosts: Vec<HostDown>,
    pub steps: Vec<StepTiming>,
    pub total_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostDown {
    #[serde(flatten)]
    pub host: LabHost,
    /// "powered-off", "killed" or "was-stopped".
    pub result: &'static str,
}

fn lock_lab(lab: &Lab) -> Result<lock::LockGuard> {
    let path = lab.lock_path();
    lock::exclusive(&path, || {
        eprintln!("waiting for another `provision lab` command to finish (lock {})", path.display())
    })
}

/// Boots hosts node1..=N (building/unpacking the image first when needed), leaving
/// running hosts alone and recovering from whatever an earlier run left behind.
pub fn up(lab: &Lab, opts: &UpOptions, progress: &Progress) -> Result<UpReport> {
    let started = Instant::now();
    if !(1..=MAX_HOSTS).contains(&opts.hosts) {
        bail!(
            "--hosts must be between 1 and {MAX_HOSTS} (addresses 127.0.1.1 ..= 127.0.1.{MAX_HOSTS}), got {}",
            opts.hosts
        );
    }
    preflight::require_root("up")?;
    let tools = preflight::require_tools(&[NSPAWN, BASH, SSH_KEYGEN, TAR, ZSTD])?;
    let (nspawn, bash, ssh_keygen) = (&tools[0], &tools[1], &tools[2]);
    let cg = Cgroups::detect()?;
    fsutil::private_dir(lab.state_dir())?;
    let _lock = lock_lab(lab)?;
    let mut warnings = Vec::new();

    let public_key = progress.step("key", |s| {
        let k = key::ensure(&lab.key_path(), ssh_keygen)?;
        s.detail(lab.key_path().display().to_string());
        Ok(k)
    })?;
    let all = LabHost::first(opts.hosts);
    let ctls: Vec<HostCtl> = all.iter().map(|h| HostCtl::new(lab, &cg, h.clone())).collect();
    let observed: Vec<Observed> = ctls.iter().map(HostCtl::observe).collect();
    let to_boot: Vec<usize> = (0..ctls.len()).filter(|&i| !matches!(observed[i], Observed::Running { .. })).collect();

    // New hosts take sshd host keys from the pool; keys for the others are made while the
    // image step runs: neither needs the other.
    let mut need_keys = Vec::new();
    for &i in &to_boot {
        if hostkeys::needed(&ctls[i].paths) && !hostkeys::take_from_pool(lab, &ctls[i].paths)? {
            need_keys.push(i);
        }
    }
    let (image, staged) = std::thread::scope(|scope| {
        let keys = scope.spawn(|| parallel(&need_keys, |i| hostkeys::stage(&ctls[i].paths, ssh_keygen)));
        let image = image::ensure(lab, &RECIPE, progress);
        let staged = if need_keys.is_empty() {
            keys.join().map_err(|_| anyhow::anyhow!("the host key thread panicked"))
        } else {
            progress.step("hostkeys", |s| {
                s.message("ssh-keygen -A for the new hosts");
                let r = keys.join().map_err(|_| anyhow::anyhow!("the host key thread panicked"));
                s.detail(format!("{} new host(s), made alongside the image step", need_keys.len()));
                r
            })
        };
        (image, staged)
    });
    let image = image?;
    // Not fatal: ssh-keygen -A on the mounted disk makes whatever is missing.
    match staged {
        Ok(results) => {
            for (r, &i) in results.iter().zip(&need_keys) {
                if let Err(e) = r {
                    warnings.push(format!("{}: host keys made later: {e:#}", ctls[i].host.name));
                }
            }
        }
        Err(e) => warnings.push(format!("host keys made later: {e:#}")),
    }

    // Disks: stop leftovers, mount the overlay, write the identity.
    let prepared = progress.step("prepare", |s| {
        s.message(format!("{} host disk(s)", to_boot.len()));
        let results = parallel(&to_boot, |i| -> Result<String> {
            let ctl = &ctls[i];
            ctl.stop()?;
            let key = ctl.prepare_disk(lab, &image.key)?;
            identity::write(&ctl.root(), &ctl.host, &all, &public_key, RECIPE.sudo_user, ssh_keygen, Some(&ctl.paths))?;
            Ok(key)
        });
        let keys = collect(&to_boot, &ctls, results)?;
        let new = to_boot.iter().filter(|&&i| observed[i] == Observed::Absent).count();
        let stale = to_boot.iter().filter(|&&i| matches!(observed[i], Observed::Stale { .. })).count();
        s.detail(format!(
            "{} disk(s): {new} new, {stale} recovered; {} running left alone",
            to_boot.len(),
            ctls.len() - to_boot.len()
        ));
        Ok(keys)
    })?;
    for (key, &i) in prepared.iter().zip(&to_boot) {
        if key != &image.key {
            warnings.push(format!(
                "{} runs on the older image {key} (current {}); `provision lab destroy` rebuilds hosts on the new one",
                ctls[i].host.name, image.key
            ));
        }
    }

    // Boot in parallel; every host (also the ones already running) must answer on ssh.
    let all_idx: Vec<usize> = (0..ctls.len()).collect();
    if let Some(raised) = preflight::inotify_for(opts.hosts)? {
        warnings.push(raised);
    }
    let boot_times = progress.step("boot", |s| {
        s.message(format!("{} host(s) until sshd answers", to_boot.len()));
        let results = parallel(&all_idx, |i| -> Result<Option<f64>> {
            let ctl = &ctls[i];
            let loop_pid = match &observed[i] {
                Observed::Running { loop_pid, .. } => *loop_pid,
                _ => {
                    if let Some(banner) = probe::ssh_banner(ctl.host.address.into(), Duration::from_millis(300)) {
                        bail!(
                            "{}:22 already answers ({banner}) although {} is not running: another sshd listens \
                             there or on 0.0.0.0:22; stop it (lab hosts need 127.0.1.0/24 port 22 free)",
                            ctl.host.address,
                            ctl.host.name
                        );
                    }
                    ctl.rotate_console_log()?;
                    let procs = cg.create(&ctl.host.name)?;
                    boot::spawn(&ctl.host, &ctl.paths, nspawn, bash, &procs)?
                }
            };
            let took = boot::wait_for_sshd(&ctl.host, &ctl.paths, loop_pid, BOOT_TIMEOUT)?;
            Ok(to_boot.contains(&i).then_some(took.as_secs_f64()))
        });
        let times = collect(&all_idx, &ctls, results)?;
        let slowest = times.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
        s.detail(format!("{} booted; sshd answers on all (slowest {slowest:.2}s)", to_boot.len()));
        Ok(times)
    })?;

    let known_hosts_path = lab_known_hosts(&opts.inventory)?;
    if !opts.inventory.exists() {
        warnings.push(format!(
            "inventory {} does not exist; the host keys are pinned in {} anyway (--inventory names the lab inventory)",
            opts.inventory.display(),
            known_hosts_path.display()
        ));
    }
    progress.step("pin", |s| {
        let keys: Vec<HostKeys> =
            ctls.iter().map(|c| known_hosts::read_host_keys(&c.root(), c.host.address)).collect::<Result<_>>()?;
        let n = known_hosts::pin(&known_hosts_path, &keys)?;
        s.detail(format!("{n} host keys -> {}", known_hosts_path.display()));
        Ok(())
    })?;
    fsutil::write_atomic(&lab.expected_hosts_path(), format!("{}\n", opts.hosts).as_bytes(), 0o644)?;
    if let Err(e) = hostkeys::refill_pool_in_background(lab, DEFAULT_HOSTS as usize, bash, ssh_keygen) {
        warnings.push(format!("{e:#}"));
    }
    if let Err(e) = image::prune(lab, &image.key, &host::images_in_use(lab)) {
        warnings.push(format!("could not remove old images: {e:#}"));
    }

    let hosts = ctls
        .iter()
        .enumerate()
        .map(|(i, c)| HostUp {
            host: c.host.clone(),
            action: match &observed[i] {
                Observed::Running { .. } => HostAction::AlreadyRunning,
                Observed::Stale { .. } => HostAction::Recovered,
                _ => HostAction::Booted,
            },
            note: match &observed[i] {
                Observed::Stale { why } => Some(why.clone()),
                _ => None,
            },
            boot_seconds: boot_times[i],
        })
        .collect();
    Ok(UpReport {
        hosts,
        image: image.key,
        key: lab.key_path(),
        known_hosts: known_hosts_path,
        steps: progress.timings(),
        total_seconds: started.elapsed().as_secs_f64(),
        warnings,
    })
}

/// `StateDir::beside(inventory, <cluster name>).known_hosts()`: the file the ssh module
/// consults for that inventory. The cluster name is read from the inventory when it has
/// one ("lab" otherwise, as in inventories/lab.toml).
pub fn lab_known_hosts(inventory: &Path) -> Result<PathBuf> {
    // A regular file only (a named pipe would block), of an inventory's size at most.
    let opened = crate::trust::open_regular(inventory, crate::trust::Follow::Links)
        .with_context(|| format!("reading inventory {}", inventory.display()))?;
    let cluster = match opened {
        Some((file, _)) => {
            let bytes = crate::trust::read_capped(file, inventory, crate::inventory::MAX_INVENTORY_BYTES)?;
            cluster_name(&String::from_utf8_lossy(&bytes)).unwrap_or_else(|| "lab".to_string())
        }
        None => "lab".to_string(),
    };
    Ok(StateDir::beside(inventory, &cluster).known_hosts())
}

fn cluster_name(inventory_toml: &str) -> Option<String> {
    let value: toml::Table = inventory_toml.parse().ok()?;
    let name = value.get("cluster")?.get("name")?.as_str()?;
    // Only a name that is safe as a directory name.
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        .then(|| name.to_string())
}

/// Powers off every lab host (cleanly: SIGTERM to systemd-nspawn) and keeps their disks.
pub fn down(lab: &Lab, progress: &Progress) -> Result<DownReport> {
    let started = Instant::now();
    preflight::require_root("down")?;
    let cg = Cgroups::detect()?;
    if !lab.state_dir().exists() {
        return Ok(DownReport { hosts: Vec::new(), steps: Vec::new(), total_seconds: 0.0 });
    }
    let _lock = lock_lab(lab)?;
    let hosts = stop_all(lab, &cg, progress)?;
    Ok(DownReport { hosts, steps: progress.timings(), total_seconds: started.elapsed().as_secs_f64() })
}

/// `down`, then removes the hosts' disks; with `image`, the image cache too.
pub fn destroy(lab: &Lab, image: bool, progress: &Progress) -> Result<DownReport> {
    let started = Instant::now();
    preflight::require_root("destroy")?;
    let cg = Cgroups::detect()?;
    if !(lab.state_dir().exists() || image && lab.cache_dir().exists()) {
        return Ok(DownReport { hosts: Vec::new(), steps: Vec::new(), total_seconds: 0.0 });
    }
    fsutil::private_dir(lab.state_dir())?;
    let _lock = lock_lab(lab)?;
    let hosts = stop_all(lab, &cg, progress)?;
    progress.step("remove", |s| {
        let existing = lab.existing_hosts().context("listing lab hosts")?;
        for h in &existing {
            HostCtl::new(lab, &cg, h.clone()).remove()?;
        }
        fsutil::remove_tree(&lab.hosts_dir())?;
        fsutil::remove_file_if_exists(&lab.expected_hosts_path())?;
        cg.remove_group_if_empty();
        s.detail(format!("{} host disk(s)", existing.len()));
        Ok(())
    })?;
    // The next `up` usually makes new hosts: have their host keys ready.
    if let (Some(bash), Some(keygen)) = (preflight::find("bash"), preflight::find("ssh-keygen")) {
        let _ = hostkeys::refill_pool_in_background(lab, DEFAULT_HOSTS as usize, &bash, &keygen);
    }
    if image {
        progress.step("image", |s| {
            fsutil::remove_tree(&lab.images_dir())?;
            fsutil::remove_tree(lab.cache_dir())?;
            s.detail(format!("removed {} and {}", lab.images_dir().display(), lab.cache_dir().display()));
            Ok(())
        })?;
    }
    Ok(DownReport { hosts, steps: progress.timings(), total_seconds: started.elapsed().as_secs_f64() })
}

/// Hosts with a disk or with processes in a lab cgroup (a leftover whose directory is
/// gone still has to be stopped).
fn known_hosts_on_machine(lab: &Lab, cg: &Cgroups) -> Result<Vec<LabHost>> {
    let mut hosts = lab.existing_hosts().context("listing lab hosts")?;
    for dir in cg.group_dirs() {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if let Some(h) = e.file_name().to_str().and_then(LabHost::from_name)
                    && !hosts.contains(&h)
                {
                    hosts.push(h);
                }
            }
        }
    }
    hosts.sort_by_key(|h| h.index);
    Ok(hosts)
}

fn stop_all(lab: &Lab, cg: &Cgroups, progress: &Progress) -> Result<Vec<HostDown>> {
    let hosts = known_hosts_on_machine(lab, cg)?;
    let ctls: Vec<HostCtl> = hosts.iter().map(|h| HostCtl::new(lab, cg, h.clone())).collect();
    let idx: Vec<usize> = (0..ctls.len()).collect();
    progress.step("stop", |s| {
        s.message(format!("{} host(s)", ctls.len()));
        let results = parallel(&idx, |i| ctls[i].stop());
        let outcomes = collect(&idx, &ctls, results)?;
        let count = |o: StopOutcome| outcomes.iter().filter(|&&x| x == o).count();
        s.detail(format!(
            "{} powered off, {} killed, {} were stopped",
            count(StopOutcome::Clean),
            count(StopOutcome::Killed),
            count(StopOutcome::WasStopped)
        ));
        Ok(hosts
            .iter()
            .zip(outcomes)
            .map(|(h, o)| HostDown {
                host: h.clone(),
                result: match o {
                    StopOutcome::Clean => "powered-off",
                    StopOutcome::Killed => "killed",
                    StopOutcome::WasStopped => "was-stopped",
                },
            })
            .collect())
    })
}

/// Runs `f` for every index on its own thread; results in index order.
fn parallel<T: Send>(indices: &[usize], f: impl Fn(usize) -> Result<T> + Sync) -> Vec<Result<T>> {
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = indices.iter().map(|&i| scope.spawn(move || f(i))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a worker thread panicked"))))
            .collect()
    })
}

/// All values, or one error naming every host that failed.
fn collect<T>(indices: &[usize], ctls: &[HostCtl], results: Vec<Result<T>>) -> Result<Vec<T>> {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (&i, r) in indices.iter().zip(results) {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => failed.push(format!("{}: {e:#}", ctls[i].host.name)),
        }
    }
    if failed.is_empty() { Ok(ok) } else { bail!("{}", failed.join("\n")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_go_to_the_inventorys_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let inv = dir.path().join("inventories/lab.toml");
        assert_eq!(lab_known_hosts(&inv).unwrap(), dir.path().join("inventories/.provision/lab/known_hosts"));
        std::fs::create_dir_all(inv.parent().unwrap()).unwrap();
        std::fs::write(&inv, "[cluster]\nname = \"bench\"\n").unwrap();
        assert_eq!(lab_known_hosts(&inv).unwrap(), dir.path().join("inventories/.provision/bench/known_hosts"));
        std::fs::write(&inv, "[cluster]\nname = \"../evil\"\n").unwrap();
        assert_eq!(lab_known_hosts(&inv).unwrap(), dir.path().join("inventories/.provision/lab/known_hosts"));
    }

    #[test]
    fn parallel_keeps_order_and_collect_names_every_failed_host() {
        let out = parallel(&[0, 1, 2], |i| if i == 1 { bail!("boom") } else { Ok(i * 10) });
        assert_eq!(out.len(), 3);
        assert_eq!(*out[0].as_ref().unwrap(), 0);
        assert_eq!(*out[2].as_ref().unwrap(), 20);
        assert!(out[1].is_err());
    }
}
