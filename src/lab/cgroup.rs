//! One cgroup per lab host, `provision-lab/nodeN`, in the hierarchies systemd-nspawn
//! uses. Each host needs its OWN cgroup: when hosts share one, the containers' systemd
//! fails units with status=219/CGROUP. systemd-nspawn (with --keep-unit) moves itself to
//! `supervisor/` and the container to `payload/` below the cgroup it starts in.
//!
//! Every process in these cgroups was started by the lab, so these are the only pids the
//! lab ever signals.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

const GROUP: &str = "provision-lab";

/// The cgroup hierarchies the lab places hosts in.
#[derive(Debug, Clone)]
pub struct Cgroups {
    /// First the one nspawn and systemd track processes in (named systemd hierarchy on a
    /// hybrid host, the unified one on a pure cgroup2 host).
    roots: Vec<PathBuf>,
}

impl Cgroups {
    /// Finds the hierarchies under /sys/fs/cgroup.
    pub fn detect() -> Result<Cgroups> {
        let base = Path::new("/sys/fs/cgroup");
        if base.join("cgroup.controllers").exists() {
            // Pure cgroup2 (unified) host.
            return Ok(Cgroups { roots: vec![base.to_path_buf()] });
        }
        let named = base.join("systemd");
        let unified = base.join("unified");
        let mut roots = Vec::new();
        if named.join("cgroup.procs").exists() {
            roots.push(named);
        }
        if unified.join("cgroup.procs").exists() {
            roots.push(unified);
        }
        if roots.is_empty() {
            bail!(
                "no usable cgroup hierarchy: neither /sys/fs/cgroup (cgroup2) nor /sys/fs/cgroup/systemd \
                 (name=systemd) is mounted; systemd-nspawn needs one, e.g. \
                 `mkdir -p /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd`"
            );
        }
        Ok(Cgroups { roots })
    }

    /// The host's cgroup directory in each hierarchy.
    pub fn dirs(&self, name: &str) -> Vec<PathBuf> {
        self.roots.iter().map(|r| r.join(GROUP).join(name)).collect()
    }

    /// `provision-lab` in each hierarchy.
    pub fn group_dirs(&self) -> Vec<PathBuf> {
        self.roots.iter().map(|r| r.join(GROUP)).collect()
    }

    /// Creates the host's cgroups and opens their `cgroup.procs` for writing: a process
    /// that writes "0" there moves itself in (done by the boot loop before it execs).
    pub fn create(&self, name: &str) -> Result<Vec<File>> {
        let mut files = Vec::new();
        for dir in self.dirs(name) {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating cgroup {}", dir.display()))?;
            let procs = dir.join("cgroup.procs");
            files.push(
                OpenOptions::new().write(true).open(&procs).with_context(|| format!("opening {}", procs.display()))?,
            );
        }
        Ok(files)
    }

    /// Every pid anywhere in the host's cgroup trees (all hierarchies), sorted.
    pub fn all_pids(&self, name: &str) -> Vec<u32> {
        let mut pids = Vec::new();
        for dir in self.dirs(name) {
            collect_pids(&dir, &mut pids);
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Pids directly in the host's top cgroup: the boot loop (and, for a moment after it
    /// starts, systemd-nspawn before it moves itself to `supervisor/`).
    pub fn top_pids(&self, name: &str) -> Vec<u32> {
        self.dirs(name).first().map(|d| read_pids(&d.join("cgroup.procs"))).unwrap_or_default()
    }

    /// systemd-nspawn's pid(s).
    pub fn supervisor_pids(&self, name: &str) -> Vec<u32> {
        self.dirs(name).first().map(|d| read_pids(&d.join("supervisor/cgroup.procs"))).unwrap_or_default()
    }

    /// True when `pid` is in this host's cgroup (guards against a recycled pid).
    pub fn contains(&self, name: &str, pid: u32) -> bool {
        let needle = format!("/{GROUP}/{name}");
        super::procs::cgroup_paths(pid).iter().any(|p| p == &needle || p.starts_with(&format!("{needle}/")))
    }

    /// Removes the host's cgroup directories, deepest first. Fails when a process is
    /// still inside (the kernel refuses with EBUSY).
    pub fn remove(&self, name: &str) -> Result<()> {
        for dir in self.dirs(name) {
            remove_depth_first(&dir)?;
        }
        Ok(())
    }

    /// Removes the empty `provision-lab` groups (after the last host is gone).
    pub fn remove_group_if_empty(&self) {
        for dir in self.group_dirs() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn read_pids(procs: &Path) -> Vec<u32> {
    std::fs::read_to_string(procs)
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

fn collect_pids(dir: &Path, out: &mut Vec<u32>) {
    out.extend(read_pids(&dir.join("cgroup.procs")));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

/// cgroupfs directories hold only control files, which cannot be deleted: a cgroup is
/// removed with rmdir once its children are gone.
fn remove_depth_first(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for e in entries {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_depth_first(&e.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing cgroup {} (processes still inside?)", dir.display())),
    }
}
