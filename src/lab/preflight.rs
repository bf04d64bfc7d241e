//! What the lab needs from this machine, checked before touching anything, with the
//! command that fixes each gap.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

pub const INSTALL_HINT: &str = "apt-get install -y systemd-container debootstrap zstd";

/// A host tool, the Debian package that ships it.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub package: &'static str,
}

pub const NSPAWN: Tool = Tool { name: "systemd-nspawn", package: "systemd-container" };
pub const DEBOOTSTRAP: Tool = Tool { name: "debootstrap", package: "debootstrap" };
pub const ZSTD: Tool = Tool { name: "zstd", package: "zstd" };
pub const TAR: Tool = Tool { name: "tar", package: "tar" };
pub const SSH_KEYGEN: Tool = Tool { name: "ssh-keygen", package: "openssh-client" };
pub const BASH: Tool = Tool { name: "bash", package: "bash" };
pub const CHROOT: Tool = Tool { name: "chroot", package: "coreutils" };

/// sbin directories are searched too: `sudo` and cron often leave them out of PATH.
const EXTRA_DIRS: &[&str] = &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The PATH handed to processes the lab starts.
pub const CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn require_root(what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "`provision lab {what}` must run as root: it mounts overlay filesystems, creates cgroups and \
             boots containers with systemd-nspawn (try `sudo provision lab {what}`)"
        );
    }
    Ok(())
}

/// Absolute paths of `tools`, or one error naming every missing tool and how to install it.
pub fn require_tools(tools: &[Tool]) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for tool in tools {
        match find(tool.name) {
            Some(p) => found.push(p),
            None => missing.push(*tool),
        }
    }
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|t| format!("{} (package {})", t.name, t.package)).collect();
        let mut packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
        packages.dedup();
        bail!(
            "the lab needs {} which {} not installed; install with `apt-get install -y {}` \
             (all lab requirements: `{INSTALL_HINT}`)",
            names.join(", "),
            if missing.len() == 1 { "is" } else { "are" },
            packages.join(" ")
        );
    }
    Ok(found)
}

/// inotify instances each booted host's systemd, journald, udev-less services and sshd
/// take (measured: 10 hosts booted with the kernel's default 128 for this user, the 17th
/// host of 30 failed with "Failed to create inotify object: Too many open files").
const INOTIFY_INSTANCES_PER_HOST: u64 = 16;
const INOTIFY_MAX_INSTANCES: &str = "/proc/sys/fs/inotify/max_user_instances";

/// Raises fs.inotify.max_user_instances when `hosts` need more than it allows (the lab's
/// hosts all run as root on this machine and share that limit). Returns what changed, for
/// the boot step's line; never lowers it.
pub fn inotify_for(hosts: u32) -> Result<Option<String>> {
    let want = (u64::from(hosts) * INOTIFY_INSTANCES_PER_HOST).max(128);
    let now: u64 = std::fs::read_to_string(INOTIFY_MAX_INSTANCES)
        .with_context(|| format!("reading {INOTIFY_MAX_INSTANCES}"))?
        .trim()
        .parse()
        .with_context(|| format!("parsing {INOTIFY_MAX_INSTANCES}"))?;
    if now >= want {
        return Ok(None);
    }
    std::fs::write(INOTIFY_MAX_INSTANCES, format!("{want}\n")).with_context(|| {
        format!("raising {INOTIFY_MAX_INSTANCES} from {now} to {want} for {hosts} lab hosts (or: sysctl -w fs.inotify.max_user_instances={want})")
    })?;
    Ok(Some(format!("fs.inotify.max_user_instances {now} -> {want} for {hosts} hosts")))
}

pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_present_tools_and_names_missing_ones_with_their_package() {
        assert!(require_tools(&[BASH]).is_ok());
        let err = require_tools(&[BASH, Tool { name: "no-such-tool-xyz", package: "no-such-pkg" }]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("no-such-tool-xyz (package no-such-pkg)"), "{msg}");
        assert!(msg.contains("apt-get install -y no-such-pkg"), "{msg}");
        assert!(msg.contains(INSTALL_HINT), "{msg}");
    }
}
