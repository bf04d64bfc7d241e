//! The lab image: Debian bookworm (minbase) with systemd, sshd, sudo and etcd 3.4,
//! built once with debootstrap, cached as a zstd tarball named by a hash of the recipe
//! (a changed recipe builds a new image; an unchanged one never rebuilds), and unpacked
//! once into `images/<key>/`, the read-only lower layer of every host's overlay.
//!
//! Nothing host-specific is in the image: no machine-id, no sshd host keys, no
//! authorized key. Each host gets its own when it is created.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::fsutil;
use super::layout::Lab;
use super::preflight::{self, Tool};
use super::progress::Progress;

/// Bump when the build procedure changes in a way the fields below do not show.
const PROCEDURE_VERSION: u32 = 1;

/// What goes into the image. Its hash names the cached tarball.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub suite: &'static str,
    pub mirror: &'static str,
    pub variant: &'static str,
    /// Installed by debootstrap itself.
    pub include: &'static [&'static str],
    /// Installed afterwards with apt-get inside the image, services kept from starting.
    pub packages: &'static [&'static str],
    /// Units disabled (never masked: a masked unit file is a symlink to /dev/null, and a
    /// provisioner writing /etc/systemd/system/etcd.service would write into /dev/null).
    pub disable: &'static [&'static str],
    /// Units that must never run in the lab (timers that wake up apt or scrub disks).
    pub mask: &'static [&'static str],
    /// A user with passwordless sudo, for testing the non-root path.
    pub sudo_user: &'static str,
}

pub const RECIPE: Recipe = Recipe {
    suite: "bookworm",
    mirror: "http://deb.debian.org/debian",
    variant: "minbase",
    include: &[
        "systemd",
        "systemd-sysv",
        "dbus",
        "openssh-server",
        "iproute2",
        "procps",
        "ca-certificates",
        "sudo",
        "coreutils",
    ],
    // The runtime tier from Debian (`artifacts.runtime = "preinstalled"`), and a static
    // busybox to build a local container image from (no registry is reachable here).
    packages: &[
        "etcd-server",
        "etcd-client",
        "containerd",
        "runc",
        "containernetworking-plugins",
        "iptables",
        "busybox-static",
    ],
    disable: &["etcd.service", "containerd.service"],
    mask: &[
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "dpkg-db-backup.timer",
        "e2scrub_all.timer",
        "e2scrub_reap.service",
        "systemd-tmpfiles-clean.timer",
    ],
    sudo_user: "ops",
};

impl Recipe {
    /// debootstrap's arguments before the target directory and mirror.
    fn debootstrap_args(&self, debs_cache: &Path) -> Vec<String> {
        vec![
            format!("--variant={}", self.variant),
            format!("--cache-dir={}", debs_cache.display()),
            format!("--include={}", self.include.join(",")),
            self.suite.to_string(),
        ]
    }

    /// The shell script run inside the debootstrapped tree (chroot) to finish the image.
    pub fn configure_script(&self) -> String {
        let packages = self.packages.join(" ");
        let disable = self.disable.join(" ");
        let mask = self.mask.join(" ");
        let user = self.sudo_user;
        format!(
            r#"set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
# Keep package scripts from starting services inside the build tree.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
apt-get update -q
apt-get install -y -q --no-install-recommends {packages}
rm -f /usr/sbin/policy-rc.d
systemctl disable {disable}
systemctl mask {mask}
# systemd-nspawn mounts the cgroup v1 controllers read-only in the host; runc must make
# its containers' cgroups there (docs/runtime.md). The host may remount them writable.
cat > /etc/systemd/system/provision-lab-cgroup-rw.service <<'UNIT'
[Unit]
Description=Make the cgroup v1 controller mounts writable (systemd-nspawn mounts them read-only)
DefaultDependencies=no
Before=containerd.service
ConditionPathIsMountPoint=/sys/fs/cgroup/cpuset

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for d in /sys/fs/cgroup/*/; do [ "$(stat -f -c %%T "$d")" = cgroupfs ] && mount -o remount,rw,bind "$d"; done; exit 0'

[Install]
WantedBy=multi-user.target
UNIT
systemctl enable provision-lab-cgroup-rw.service
useradd --create-home --shell /bin/bash {user}
printf '{user} ALL=(ALL:ALL) NOPASSWD: ALL\n' > /etc/sudoers.d/{user}
chmod 0440 /etc/sudoers.d/{user}
# Each host makes its own identity when it is created.
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/*
"#
        )
    }

    /// 16 hex digits of sha256 over everything that shapes the image.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!("procedure {PROCEDURE_VERSION}\n"));
        h.update(format!("mirror {}\n", self.mirror));
        // The cache dir is not part of the image: hash the arguments without it.
        h.update(self.debootstrap_args(Path::new("-")).join(" "));
        h.update("\n");
        h.update(self.configure_script());
        hex::encode(h.finalize())[..16].to_string()
    }
}

/// The unpacked image hosts are made from.
#[derive(Debug, Clone)]
pub struct Image {
    pub key: String,
    pub root: PathBuf,
}

/// Makes sure the image for `recipe` is unpacked, building or unpacking it as needed.
pub fn ensure(lab: &Lab, recipe: &Recipe, progress: &Progress) -> Result<Image> {
    let key = recipe.key();
    let root = lab.image_root(&key);
    let tarball = lab.tarball(&key);
    let image = Image { key: key.clone(), root: root.clone() };
    if root.is_dir() {
        progress.step("image", |s| {
            s.detail(format!("bookworm-{key} ready"));
            Ok(())
        })?;
        return Ok(image);
    }
    if tarball.is_file() {
        progress.step("image", |s| {
            s.detail(format!("bookworm-{key} cached ({})", size_mb(&tarball)));
            Ok(())
        })?;
    } else {
        progress.step("image", |s| {
            s.message("debootstrap bookworm (about a minute; log in the cache dir)");
            build(lab, recipe, &key, s)?;
            s.detail(format!("built bookworm-{key} ({})", size_mb(&tarball)));
            Ok(())
        })?;
        // The build tree became the unpacked image: nothing to unpack.
        if root.is_dir() {
            return Ok(image);
        }
    }
    progress.step("unpack", |s| {
        s.message(format!("{} -> {}", tarball.display(), root.display()));
        unpack(lab, &key)?;
        s.detail(format!("to {}", root.display()));
        Ok(())
    })?;
    Ok(image)
}

fn size_mb(p: &Path) -> String {
    fs::metadata(p).map(|m| format!("{} MB", m.len() / 1_000_000)).unwrap_or_else(|_| "?".into())
}

/// Tools the image build needs beyond those every lab command needs.
pub const BUILD_TOOLS: &[Tool] = &[preflight::DEBOOTSTRAP, preflight::CHROOT, preflight::TAR, preflight::ZSTD];

fn build(lab: &Lab, recipe: &Recipe, key: &str, step: &super::progress::Step) -> Result<()> {
    let tools = preflight::require_tools(BUILD_TOOLS)?;
    let (debootstrap, chroot) = (&tools[0], &tools[1]);
    let build = lab.build_dir(key);
    let rootfs = build.join("rootfs");
    let log_path = lab.cache_dir().join(format!("build-{key}.log"));
    // A build interrupted earlier may have left proc/sys mounted inside its tree.
    fsutil::remove_tree(&build)?;
    fs::create_dir_all(&build).with_context(|| format!("creating {}", build.display()))?;
    fs::create_dir_all(lab.debs_cache()).with_context(|| format!("creating {}", lab.debs_cache().display()))?;
    let log = fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;

    let mut cmd = Command::new(debootstrap);
    cmd.args(recipe.debootstrap_args(&lab.debs_cache())).arg(&rootfs).arg(recipe.mirror);
    run_logged(cmd, &log, &log_path, "debootstrap")?;

    step.message("installing etcd, sudo user, identity cleanup (chroot)");
    let mut cmd = Command::new(chroot);
    cmd.arg(&rootfs).args(["/bin/sh", "-c"]).arg(recipe.configure_script());
    cmd.env_clear().env("PATH", preflight::CHILD_PATH).env("HOME", "/root");
    run_logged(cmd, &log, &log_path, "configuring the image")?;
    verify(&rootfs, recipe)?;

    step.message("writing the zstd tarball");
    let tarball = lab.tarball(key);
    let tmp = tarball.with_extension("zst.partial");
    let mut cmd = Command::new(&tools[2]);
    cmd.arg("--create")
        .arg(format!("--file={}", tmp.display()))
        .arg(format!("--directory={}", rootfs.display()))
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls"])
        .arg("--use-compress-program=zstd -T0 -3")
        .arg(".");
    cmd.env("PATH", preflight::CHILD_PATH);
    run_logged(cmd, &log, &log_path, "packing the image")?;
    fs::rename(&tmp, &tarball).with_context(|| format!("renaming {} to {}", tmp.display(), tarball.display()))?;

    // The freshly built tree IS the image: move it into place instead of unpacking the
    // tarball again (same filesystem; otherwise the unpack step does it).
    let dest = lab.image_root(key);
    fs::create_dir_all(lab.images_dir()).with_context(|| format!("creating {}", lab.images_dir().display()))?;
    if fs::rename(&rootfs, &dest).is_err() {
        fsutil::remove_tree(&rootfs)?;
    }
    fsutil::remove_tree(&build)?;
    Ok(())
}

/// The image must hold what the lab promises; a silent apt hiccup must not produce a
/// cached image without etcd.
fn verify(rootfs: &Path, recipe: &Recipe) -> Result<()> {
    let required = [
        "usr/bin/etcd",
        "usr/bin/etcdctl",
        "usr/sbin/sshd",
        "lib/systemd/systemd",
        "usr/bin/sudo",
        "usr/bin/ssh-keygen",
    ];
    for f in required {
        if !rootfs.join(f).exists() {
            bail!("the built image lacks /{f}; see the build log in {}", rootfs.display());
        }
    }
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).context("reading the image's /etc/passwd")?;
    if !passwd.lines().any(|l| l.starts_with(&format!("{}:", recipe.sudo_user))) {
        bail!("the built image has no user {}", recipe.sudo_user);
    }
    Ok(())
}

fn run_logged(mut cmd: Command, log: &fs::File, log_path: &Path, what: &str) -> Result<()> {
    let status = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicating the log file handle")?)
        .stderr(log.try_clone().context("duplicating the log file handle")?)
        .status()
        .with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status}); last lines of {}:\n{}", log_path.display(), tail(log_path, 15));
    }
    Ok(())
}

/// The last `n` lines of a log file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(bytes) = fs::read(path) else { return String::from("(no log)") };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Unpacks the cached tarball into `images/<key>/` (via a temporary name, so a half
/// unpacked image is never mistaken for a whole one).
fn unpack(lab: &Lab, key: &str) -> Result<()> {
    let tools = preflight::require_tools(&[preflight::TAR, preflight::ZSTD])?;
    let dest = lab.image_root(key);
    let partial = lab.images_dir().join(format!("{key}.partial"));
    fsutil::remove_tree(&partial)?;
    fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let out = Command::new(&tools[0])
        .arg("--extract")
        .arg(format!("--file={}", lab.tarball(key).display()))
        .arg(format!("--directory={}", partial.display()))
        .args(["--numeric-owner", "--preserve-permissions", "--xattrs", "--xattrs-include=*", "--acls"])
        .arg("--use-compress-program=zstd")
        .env("PATH", preflight::CHILD_PATH)
        .stdin(Stdio::null())
        .output()
        .context("starting tar")?;
    if !out.status.success() {
        bail!(
            "unpacking {} failed ({}): {}; remove it to rebuild the image",
            lab.tarball(key).display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    fs::rename(&partial, &dest).with_context(|| format!("renaming {} to {}", partial.display(), dest.display()))
}

/// Removes tarballs, unpacked images and build leftovers that are neither the current
/// image nor under any host's disk (`in_use`).
pub fn prune(lab: &Lab, current: &str, in_use: &[String]) -> Result<Vec<PathBuf>> {
    let keep = |key: &str| key == current || in_use.iter().any(|k| k == key);
    let mut removed = Vec::new();
    if let Ok(entries) = fs::read_dir(lab.images_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let key = name.strip_suffix(".partial").unwrap_or(&name);
            if name.ends_with(".partial") || !keep(key) {
                fsutil::remove_tree(&e.path())?;
                removed.push(e.path());
            }
        }
    }
    if let Ok(entries) = fs::read_dir(lab.cache_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale_tarball =
                name.strip_prefix("bookworm-").and_then(|n| n.strip_suffix(".tar.zst")).is_some_and(|key| !keep(key));
            let partial = name.ends_with(".zst.partial");
            let stale_build = name
                .strip_prefix("build-")
                .map(|k| k.strip_suffix(".log").unwrap_or(k))
                .is_some_and(|key| key != current);
            if stale_tarball || partial || stale_build {
                fsutil::remove_tree(&e.path())?;
                removed.push(e.path());
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_stable_and_follows_the_recipe() {
        let a = RECIPE.key();
        assert_eq!(a.len(), 16);
        assert_eq!(a, RECIPE.key());
        let mut other = RECIPE.clone();
        other.packages = &["etcd-server"];
        assert_ne!(other.key(), a);
        let mut other = RECIPE.clone();
        other.mirror = "http://mirror.example/debian";
        assert_ne!(other.key(), a);
    }

    #[test]
    fn recipe_installs_what_the_lab_promises() {
        for p in ["systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "ca-certificates", "iproute2", "procps"]
        {
            assert!(RECIPE.include.contains(&p), "{p}");
        }
        let script = RECIPE.configure_script();
        assert!(script.contains(
            "apt-get install -y -q --no-install-recommends etcd-server etcd-client containerd runc \
             containernetworking-plugins iptables busybox-static"
        ));
        assert!(script.contains("systemctl disable etcd.service containerd.service"));
        assert!(script.contains("systemctl enable provision-lab-cgroup-rw.service"));
        assert!(!RECIPE.mask.iter().any(|u| u.starts_with("etcd")), "etcd must be disabled, never masked");
        // policy-rc.d is in place before the install and gone after it.
        let install = script.find("apt-get install").unwrap();
        assert!(script.find("policy-rc.d").unwrap() < install);
        assert!(script.rfind("rm -f /usr/sbin/policy-rc.d").unwrap() > install);
        assert!(script.contains(": > /etc/machine-id") && script.contains("rm -f /etc/ssh/ssh_host_*"));
    }

    #[test]
    fn prune_keeps_current_and_used_images_only() {
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab::at(dir.path().join("state"), dir.path().join("cache"));
        for key in ["cur", "used", "old"] {
            fs::create_dir_all(lab.image_root(key)).unwrap();
            fs::create_dir_all(lab.cache_dir()).unwrap();
            fs::write(lab.tarball(key), "x").unwrap();
        }
        fs::create_dir_all(lab.images_dir().join("cur.partial")).unwrap();
        fs::create_dir_all(lab.build_dir("old")).unwrap();
        fs::write(lab.cache_dir().join("build-old.log"), "log").unwrap();
        fs::write(lab.cache_dir().join("build-cur.log"), "log").unwrap();
        fs::create_dir_all(lab.debs_cache()).unwrap();
        let removed = prune(&lab, "cur", &["used".to_string()]).unwrap();
        assert_eq!(removed.len(), 5, "{removed:?}");
        assert!(lab.image_root("cur").exists() && lab.image_root("used").exists());
        assert!(!lab.image_root("old").exists() && !lab.tarball("old").exists());
        assert!(lab.tarball("cur").exists() && lab.debs_cache().exists());
        assert!(lab.cache_dir().join("build-cur.log").exists());
    }
}
