//! For end-to-end tests that use the lab hosts (from any test file, worktree or test
//! binary): one test at a time holds the lab, because tests change the hosts (install
//! etcd, stop them, destroy them).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let lab = provision::lab::ensure_up_for_tests()?; // waits for other lab tests, then `lab up`
//! // ... ssh to lab.hosts[0].address with lab.key, pinned keys in lab.known_hosts,
//! //     or run `provision apply lab.inventory` ...
//! drop(lab); // the next lab test may go
//! # Ok(()) }
//! ```
//! Tests that drive `provision lab ...` themselves hold `lock_for_tests()` instead.

use std::path::PathBuf;

use anyhow::Result;

use super::layout::{DEFAULT_HOSTS, Lab, LabHost};
use super::lifecycle::{self, UpOptions};
use super::lock::{self, LockGuard};
use super::progress::Progress;

/// Exclusive use of the lab by one test, until dropped.
#[derive(Debug)]
pub struct TestLabLock {
    _guard: LockGuard,
}

/// Three running lab hosts, held by one test until dropped.
#[derive(Debug)]
pub struct TestLab {
    pub hosts: Vec<LabHost>,
    /// The lab's private key (root and `ops` on every host accept it).
    pub key: PathBuf,
    /// known_hosts with the hosts' pinned keys.
    pub known_hosts: PathBuf,
    /// inventories/lab.toml of this source tree.
    pub inventory: PathBuf,
    _lock: TestLabLock,
}

/// inventories/lab.toml of the crate these tests belong to.
pub fn lab_inventory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("inventories/lab.toml")
}

/// True while some test holds the lab (so `lab down`/`destroy` by hand would pull the
/// hosts from under it).
pub fn held_by_a_test() -> bool {
    lock::is_held(&Lab::system().tests_lock_path())
}

/// Waits until no other test uses the lab, then holds it.
pub fn lock_for_tests() -> Result<TestLabLock> {
    let lab = Lab::system();
    let guard = lock::exclusive(&lab.tests_lock_path(), || {
        eprintln!("waiting for another test that uses the lab hosts ({})", lab.tests_lock_path().display())
    })?;
    Ok(TestLabLock { _guard: guard })
}

/// Takes the test lock and brings node1..3 up (building the image on first use, about
/// a minute; from then on a few seconds, or nothing when they run). Hosts keep the state
/// earlier tests left on them.
pub fn ensure_up_for_tests() -> Result<TestLab> {
    let held = lock_for_tests()?;
    // Hosts another checkout's tests left hold a cluster of that checkout's PKI, which
    // this one's apply rightly refuses (a different etcd CA): start afresh then.
    let lab = Lab::system();
    if std::fs::read_to_string(owner_path(&lab)).ok() != Some(owner()) {
        lifecycle::destroy(&lab, false, &Progress::for_stderr())?;
    }
    up_holding(held)
}

/// Which checkout's tests set the lab hosts up (its lab inventory's path).
fn owner_path(lab: &Lab) -> PathBuf {
    lab.state_dir().join("tests-owner")
}

fn owner() -> String {
    lab_inventory().display().to_string()
}

/// Like `ensure_up_for_tests`, on freshly made hosts: whatever earlier tests left on the
/// hosts is destroyed first (the image is kept; a few seconds more).
pub fn ensure_fresh_for_tests() -> Result<TestLab> {
    let held = lock_for_tests()?;
    lifecycle::destroy(&Lab::system(), false, &Progress::for_stderr())?;
    up_holding(held)
}

fn up_holding(held: TestLabLock) -> Result<TestLab> {
    let lab = Lab::system();
    let inventory = lab_inventory();
    let report = lifecycle::up(
        &lab,
        &UpOptions { hosts: DEFAULT_HOSTS, inventory: inventory.clone() },
        &Progress::for_stderr(),
    )?;
    crate::fsutil::write_atomic(&owner_path(&lab), owner().as_bytes(), 0o644)?;
    Ok(TestLab {
        hosts: report.hosts.into_iter().map(|h| h.host).collect(),
        key: report.key,
        known_hosts: report.known_hosts,
        inventory,
        _lock: held,
    })
}
