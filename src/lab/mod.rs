//! Local lab hosts: real Debian bookworm machines (systemd as PID 1, real sshd) booted as
//! systemd-nspawn containers on 127.0.1.N of this machine, for trying `provision` and for
//! end-to-end tests without VMs.
//!
//! One image is built with debootstrap and cached as a zstd tarball keyed by its recipe
//! (`image`); every host is an overlayfs over the unpacked image with its own upper dir, so
//! a host's disk survives `lab down` (`host`, `identity`, `mounts`). Each host runs in its
//! own cgroup under a small boot loop that outlives this process (`cgroup`, `boot`).
//! The hosts' sshd host keys are pinned into the lab inventory's known_hosts
//! (`known_hosts`) so the inventory can use `host_keys = "strict"`.

mod boot;
mod cgroup;
mod fsutil;
mod host;
mod hostkeys;
mod identity;
pub mod image;
mod key;
mod known_hosts;
mod layout;
mod lifecycle;
mod lock;
mod mounts;
mod preflight;
mod probe;
mod procs;
pub mod progress;
pub mod status;
pub mod testing;

pub use layout::{DEFAULT_HOSTS, Lab, LabHost, MAX_HOSTS};
pub use lifecycle::{DownReport, HostAction, HostUp, UpOptions, UpReport, destroy, down, up};
pub use progress::{Progress, StepTiming};
pub use status::{HostState, HostStatus, LabStatus, status};
pub use testing::{TestLab, TestLabLock, ensure_fresh_for_tests, ensure_up_for_tests, lock_for_tests};
