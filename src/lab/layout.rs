//! Where the lab keeps its files, and how hosts are named and addressed.
//!
//! ```text
//! /var/lib/provision-lab/            (0700)
//!   id_ed25519, id_ed25519.pub       the lab key (root's and ops' authorized key on every host)
//!   lock, tests.lock                 flock files: lab commands / tests that use the lab
//!   expected-hosts                   how many hosts the last `lab up` asked for
//!   images/<key>/                    the unpacked image: every host's overlay lowerdir
//!   hostkeys-pool/set-*/             sshd host key sets made in advance for new hosts
//!   hosts/nodeN/                     one host: image, upper/, work/, root/ (the overlay),
//!                                    console.log, loop.pid, started, stop
//! /var/cache/provision-lab/
//!   bookworm-<key>.tar.zst           the built image; <key> hashes the recipe
//!   debs/                            debootstrap's package cache
//! ```

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// How many hosts `lab up` boots unless told otherwise (an etcd cluster of three).
pub const DEFAULT_HOSTS: u32 = 3;
/// 127.0.1.1 ..= 127.0.1.254.
pub const MAX_HOSTS: u32 = 254;

/// The lab's directories on this machine.
#[derive(Debug, Clone)]
pub struct Lab {
    state: PathBuf,
    cache: PathBuf,
}

/// One lab host: `node<index>` at `127.0.1.<index>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LabHost {
    pub index: u32,
    pub name: String,
    pub address: Ipv4Addr,
}

impl LabHost {
    pub fn new(index: u32) -> LabHost {
        debug_assert!((1..=MAX_HOSTS).contains(&index));
        LabHost { index, name: format!("node{index}"), address: Ipv4Addr::new(127, 0, 1, index as u8) }
    }

    /// The host for a directory name like "node4", if it is one.
    pub fn from_name(name: &str) -> Option<LabHost> {
        let digits = name.strip_prefix("node")?;
        if digits.starts_with('0') {
            return None;
        }
        let index: u32 = digits.parse().ok()?;
        (1..=MAX_HOSTS).contains(&index).then(|| LabHost::new(index))
    }

    /// Hosts `node1 ..= node<count>`.
    pub fn first(count: u32) -> Vec<LabHost> {
        (1..=count.min(MAX_HOSTS)).map(LabHost::new).collect()
    }
}

impl Lab {
    /// The lab of this machine, in the standard directories.
    pub fn system() -> Lab {
        Lab::at("/var/lib/provision-lab", "/var/cache/provision-lab")
    }

    pub fn at(state: impl Into<PathBuf>, cache: impl Into<PathBuf>) -> Lab {
        Lab { state: state.into(), cache: cache.into() }
    }

    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// The lab's private key (0600); inventories/lab.toml points here.
    pub fn key_path(&self) -> PathBuf {
        self.state.join("id_ed25519")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.state.join("lock")
    }

    pub fn tests_lock_path(&self) -> PathBuf {
        self.state.join("tests.lock")
    }

    pub fn expected_hosts_path(&self) -> PathBuf {
        self.state.join("expected-hosts")
    }

    pub fn images_dir(&self) -> PathBuf {
        self.state.join("images")
    }

    /// The unpacked image with this recipe key.
    pub fn image_root(&self, key: &str) -> PathBuf {
        self.images_dir().join(key)
    }

    /// Host key sets made in advance, each used by exactly one new host.
    pub fn hostkeys_pool(&self) -> PathBuf {
        self.state.join("hostkeys-pool")
    }

    pub fn hosts_dir(&self) -> PathBuf {
        self.state.join("hosts")
    }

    pub fn host_dir(&self, host: &LabHost) -> PathBuf {
        self.hosts_dir().join(&host.name)
    }

    pub fn tarball(&self, key: &str) -> PathBuf {
        self.cache.join(format!("bookworm-{key}.tar.zst"))
    }

    pub fn debs_cache(&self) -> PathBuf {
        self.cache.join("debs")
    }

    pub fn build_dir(&self, key: &str) -> PathBuf {
        self.cache.join(format!("build-{key}"))
    }

    /// Hosts that have a directory (running or stopped), in index order.
    pub fn existing_hosts(&self) -> std::io::Result<Vec<LabHost>> {
        let mut hosts = Vec::new();
        match std::fs::read_dir(self.hosts_dir()) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry?;
                    if let Some(host) = entry.file_name().to_str().and_then(LabHost::from_name) {
                        hosts.push(host);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        hosts.sort_by_key(|h| h.index);
        Ok(hosts)
    }

    /// How many hosts the last `lab up` asked for (DEFAULT_HOSTS when it never ran).
    pub fn expected_hosts(&self) -> u32 {
        std::fs::read_to_string(self.expected_hosts_path())
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|n| (1..=MAX_HOSTS).contains(n))
            .unwrap_or(DEFAULT_HOSTS)
    }
}

/// Per-host files inside `hosts/nodeN/`.
#[derive(Debug, Clone)]
pub(crate) struct HostPaths {
    pub dir: PathBuf,
}

impl HostPaths {
    pub fn new(lab: &Lab, host: &LabHost) -> HostPaths {
        HostPaths { dir: lab.host_dir(host) }
    }
    /// The overlay mount point: the host's root filesystem.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// Which image key this host's upper dir was made on top of.
    pub fn image_file(&self) -> PathBuf {
        self.dir.join("image")
    }
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    pub fn loop_pid(&self) -> PathBuf {
        self.dir.join("loop.pid")
    }
    /// Unix time of the current boot, written by the boot loop.
    pub fn started(&self) -> PathBuf {
        self.dir.join("started")
    }
    /// Present while `lab down` stops the host: the loop must not boot it again.
    pub fn stop_flag(&self) -> PathBuf {
        self.dir.join("stop")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_named_and_addressed_by_index() {
        let h = LabHost::new(4);
        assert_eq!(h.name, "node4");
        assert_eq!(h.address, Ipv4Addr::new(127, 0, 1, 4));
        assert_eq!(LabHost::first(3).iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["node1", "node2", "node3"]);
    }

    #[test]
    fn only_canonical_host_dir_names_are_hosts() {
        assert_eq!(LabHost::from_name("node12").map(|h| h.index), Some(12));
        for bad in ["node0", "node01", "node255", "node", "nodex", "other", "node1.tmp"] {
            assert_eq!(LabHost::from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn expected_hosts_defaults_when_unrecorded_or_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab::at(dir.path(), dir.path().join("cache"));
        assert_eq!(lab.expected_hosts(), DEFAULT_HOSTS);
        std::fs::write(lab.expected_hosts_path(), "9\n").unwrap();
        assert_eq!(lab.expected_hosts(), 9);
        std::fs::write(lab.expected_hosts_path(), "lots").unwrap();
        assert_eq!(lab.expected_hosts(), DEFAULT_HOSTS);
    }

    #[test]
    fn existing_hosts_ignores_foreign_entries_and_sorts() {
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab::at(dir.path(), dir.path().join("cache"));
        assert!(lab.existing_hosts().unwrap().is_empty());
        for name in ["node10", "node2", "junk"] {
            std::fs::create_dir_all(lab.hosts_dir().join(name)).unwrap();
        }
        let names: Vec<String> = lab.existing_hosts().unwrap().into_iter().map(|h| h.name).collect();
        assert_eq!(names, ["node2", "node10"]);
    }
}
