//! What the lab needs from this machine, checked before touching anything, with the
//! command that fixes each gap.

use std::path::PathBuf;

use anyhow::{Result, bail};

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
