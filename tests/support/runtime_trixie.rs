//! Debian trixie's container runtime (containerd 1.7.24, runc 1.1.15, CNI plugins 1.1.1)
//! laid out by scripts/fetch-runtime-trixie, once per target dir (the .deb downloads are
//! kept there): the real binaries the runtime tests build their sources from.

#![allow(dead_code)]

use std::path::PathBuf;

pub const CONTAINERD: &str = "1.7.24";
pub const RUNC: &str = "1.1.15";
pub const CNI: &str = "1.1.1";

/// The laid-out directory: `containerd`, `containerd-shim-runc-v2`, `ctr`, `runc`,
/// `cni/<plugin>` with their `.sha256`, and `stand-in/busybox` (no crictl in Debian).
pub fn fetch() -> PathBuf {
    // The tests of one binary ask at once; the script also locks DIR (another process).
    static FETCHED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FETCHED.get_or_init(fetch_once).clone()
}

fn fetch_once() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("runtime-trixie");
    let out = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fetch-runtime-trixie"))
        .arg(&dir)
        .output()
        .expect("run scripts/fetch-runtime-trixie");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "fetching trixie's runtime: {said}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(said.trim(), format!("containerd {CONTAINERD}\nrunc {RUNC}\ncni-plugins {CNI}"));
    dir
}
