//! One lab host's life on this machine: what state it is in (judged from its cgroup and
//! boot loop, not from files that a crash could leave behind), preparing its disk, and
//! stopping it — cleanly when possible, by force only for processes in its own cgroup.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::cgroup::Cgroups;
use super::layout::{HostPaths, Lab, LabHost};
use super::{fsutil, mounts, procs};

/// What the host is doing right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// No directory: never created, or destroyed.
    Absent,
    /// A disk and no processes.
    Stopped,
    /// The boot loop runs (and with it, normally, systemd-nspawn and the host).
    Running { loop_pid: u32, nspawn_pid: Option<u32> },
    /// Processes of the host remain without the boot loop that owns them (killed, or
    /// an interrupted run): `lab up` stops them and boots the host again.
    Stale { why: String },
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// Nothing was running.
    WasStopped,
    /// The host powered off by itself after being asked to.
    Clean,
    /// It had to be killed (SIGKILL to every process in its cgroup).
    Killed,
}

/// How long a host gets to power off before its processes are killed.
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(30);
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// For processes that are neither systemd-nspawn nor a container's init.
const STRAY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct HostCtl<'a> {
    pub host: LabHost,
    pub paths: HostPaths,
    cg: &'a Cgroups,
}

impl<'a> HostCtl<'a> {
    pub fn new(lab: &Lab, cg: &'a Cgroups, host: LabHost) -> HostCtl<'a> {
        let paths = HostPaths::new(lab, &host);
        HostCtl { host, paths, cg }
    }

    pub fn observe(&self) -> Observed {
        let name = &self.host.name;
        let live: Vec<u32> = self.cg.all_pids(name).into_iter().filter(|&p| procs::alive(p)).collect();
        let nspawn_pid = self
            .cg
            .supervisor_pids(name)
            .into_iter()
            .chain(live.iter().copied())
            .find(|&p| procs::alive(p) && procs::comm(p).as_deref() == Some("systemd-nspawn"));
        if let Some(loop_pid) = self.loop_pid() {
            return Observed::Running { loop_pid, nspawn_pid };
        }
        if !live.is_empty() {
            let why = match nspawn_pid {
                Some(pid) => format!("its boot loop is gone but systemd-nspawn (pid {pid}) still runs"),
                None => format!("no systemd-nspawn, but {} process(es) remain in its cgroup", live.len()),
            };
            return Observed::Stale { why };
        }
        if self.paths.dir.exists() { Observed::Stopped } else { Observed::Absent }
    }

    /// The boot loop's pid, when it is alive and in this host's cgroup.
    fn loop_pid(&self) -> Option<u32> {
        let name = &self.host.name;
        let recorded = std::fs::read_to_string(self.paths.loop_pid()).ok().and_then(|s| s.trim().parse().ok());
        let is_loop =
            |p: u32| procs::alive(p) && self.cg.contains(name, p) && procs::comm(p).as_deref() == Some("bash");
        recorded.filter(|&p| is_loop(p)).or_else(|| self.cg.top_pids(name).into_iter().find(|&p| is_loop(p)))
    }

    /// Stops whatever runs of this host and clears what a run leaves (mount, cgroups,
    /// pid files). The disk (upper dir) is kept.
    pub fn stop(&self) -> Result<StopOutcome> {
        let mut outcome = StopOutcome::WasStopped;
        if self.live_pids().next().is_some() {
            // Tell the loop not to boot the host again, whatever exit status it sees.
            fsutil::write_atomic(&self.paths.stop_flag(), b"", 0o644)?;
            let loop_pid = self.loop_pid();
            let grace = self.ask_to_power_off();
            let gone = procs::wait_until(grace, || {
                self.live_pids().next().is_none() && loop_pid.is_none_or(|p| !procs::alive(p))
            });
            outcome = if gone { StopOutcome::Clean } else { self.kill_all()? };
        }
        self.clear_runtime()?;
        Ok(outcome)
    }

    fn live_pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.cg.all_pids(&self.host.name).into_iter().filter(|&p| procs::alive(p))
    }

    /// SIGTERM to systemd-nspawn makes it power the container off; when nspawn is gone,
    /// the container's init powers off on SIGRTMIN+4. Anything else left (a boot loop
    /// between two boots, a stray process) gets SIGTERM. Returns how long to wait.
    fn ask_to_power_off(&self) -> Duration {
        let pids: Vec<u32> = self.live_pids().collect();
        let is_nspawn = |p: &u32| procs::comm(*p).as_deref() == Some("systemd-nspawn");
        let nspawns: Vec<u32> = pids.iter().copied().filter(is_nspawn).collect();
        let inits: Vec<u32> = pids.iter().copied().filter(|&p| procs::is_container_init(p)).collect();
        if !nspawns.is_empty() {
            for p in nspawns {
                let _ = procs::signal(p, libc::SIGTERM);
            }
            return POWEROFF_TIMEOUT;
        }
        if !inits.is_empty() {
            for p in inits {
                let _ = procs::signal(p, procs::sig_poweroff());
            }
            return POWEROFF_TIMEOUT;
        }
        for p in pids {
            let _ = procs::signal(p, libc::SIGTERM);
        }
        STRAY_TIMEOUT
    }

    fn kill_all(&self) -> Result<StopOutcome> {
        let gone = procs::wait_until(KILL_TIMEOUT, || {
            let pids: Vec<u32> = self.live_pids().collect();
            for p in &pids {
                let _ = procs::signal(*p, libc::SIGKILL);
            }
            pids.is_empty()
        });
        if !gone {
            let left: Vec<String> = self.live_pids().map(|p| p.to_string()).collect();
            bail!("{}: processes {} survived SIGKILL", self.host.name, left.join(", "));
        }
        Ok(StopOutcome::Killed)
    }

    /// Unmounts the root, removes the cgroups and the loop's files.
    fn clear_runtime(&self) -> Result<()> {
        mounts::unmount_all_under(&self.paths.root())?;
        // An exited process can take a moment to leave its cgroup.
        let mut last = Ok(());
        for _ in 0..40 {
            last = self.cg.remove(&self.host.name);
            if last.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        last?;
        for f in [self.paths.stop_flag(), self.paths.loop_pid(), self.paths.started()] {
            fsutil::remove_file_if_exists(&f)?;
        }
        Ok(())
    }

    /// Makes the host's disk and mounts its root filesystem; returns the image key the
    /// disk belongs to (a host keeps the image it was created from).
    pub fn prepare_disk(&self, lab: &Lab, current_image: &str) -> Result<String> {
        let p = &self.paths;
        std::fs::create_dir_all(&p.dir).with_context(|| format!("creating {}", p.dir.display()))?;
        // Recorded before the upper dir holds anything: an upper dir is only meaningful
        // on top of the lower dir it was made on.
        let key = match std::fs::read_to_string(p.image_file()) {
            Ok(k) if !k.trim().is_empty() => k.trim().to_string(),
            _ => {
                fsutil::write_atomic(&p.image_file(), format!("{current_image}\n").as_bytes(), 0o644)?;
                current_image.to_string()
            }
        };
        let lower = lab.image_root(&key);
        if !lower.is_dir() {
            bail!(
                "{}'s disk was made on image {key}, which is gone from {}; \
                 `provision lab destroy` removes the hosts so they can be made again",
                self.host.name,
                lower.display()
            );
        }
        for d in [p.upper(), p.work(), p.root()] {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        // A mount left by an interrupted run (possibly stacked) is replaced by a fresh one.
        mounts::unmount_all_under(&p.root())?;
        mounts::mount_overlay(&lower, &p.upper(), &p.work(), &p.root())?;
        Ok(key)
    }

    /// Removes the host's directory (its disk). The host must be stopped.
    pub fn remove(&self) -> Result<()> {
        fsutil::remove_tree(&self.paths.dir)
    }

    pub fn root(&self) -> std::path::PathBuf {
        self.paths.root()
    }

    /// Rotates the console log so each boot's log starts empty (the previous one is kept).
    pub fn rotate_console_log(&self) -> Result<()> {
        let log = self.paths.console_log();
        if log.exists() {
            let prev = self.paths.dir.join("console.log.1");
            std::fs::rename(&log, &prev).with_context(|| format!("rotating {}", log.display()))?;
        }
        Ok(())
    }
}

/// Image keys used by the hosts' disks (so pruning keeps them).
pub fn images_in_use(lab: &Lab) -> Vec<String> {
    lab.existing_hosts()
        .unwrap_or_default()
        .iter()
        .filter_map(|h| std::fs::read_to_string(HostPaths::new(lab, h).image_file()).ok())
        .map(|k| k.trim().to_string())
        .collect()
}

/// Uptime of a running host from the boot time its loop recorded.
pub fn uptime(paths: &HostPaths) -> Option<Duration> {
    let started: u64 = std::fs::read_to_string(paths.started()).ok()?.trim().parse().ok()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(now.saturating_sub(started)))
}
