//! What makes a lab host itself, written into its root filesystem (its overlay) before
//! it boots: hostname, machine-id, sshd host keys, the sshd drop-in that binds it to its
//! own loopback address, /etc/hosts naming all lab nodes, and the lab key authorized for
//! root and the sudo user.
//!
//! The machine-id and host keys are made once and kept (they are the host's identity
//! across reboots and `lab down`/`up`); the other files are rewritten on every boot.

use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::fsutil;
use super::hostkeys;
use super::layout::{HostPaths, LabHost};

/// sshd settings of every lab host; `ListenAddress` keeps each host's sshd on its own
/// address (the hosts share the machine's network namespace).
pub fn sshd_dropin(host: &LabHost) -> String {
    format!(
        "# Written by `provision lab up`.\n\
         ListenAddress {}\n\
         PasswordAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         UseDNS no\n",
        host.address
    )
}

pub fn hosts_file(all: &[LabHost]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n\n# provision lab hosts\n",
    );
    for h in all {
        s.push_str(&format!("{}\t{}\n", h.address, h.name));
    }
    s
}

/// A fresh machine-id: 128 random bits formatted like a v4 UUID, as `systemd-id128 new`.
pub fn new_machine_id() -> String {
    let mut id: [u8; 16] = rand::random();
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    hex::encode(id)
}

fn valid_machine_id(s: &str) -> bool {
    let s = s.trim();
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0')
}

/// Writes the host's identity into `root` (its mounted overlay). Host keys staged in
/// advance for this host (`hostkeys`) are used when present.
pub fn write(
    root: &Path,
    host: &LabHost,
    all: &[LabHost],
    authorized_key: &str,
    sudo_user: &str,
    ssh_keygen: &Path,
    staged_keys: Option<&HostPaths>,
) -> Result<()> {
    let file = |rel: &str| inside(root, rel);
    fsutil::write_atomic(&file("etc/hostname")?, format!("{}\n", host.name).as_bytes(), 0o644)?;
    fsutil::write_atomic(&file("etc/hosts")?, hosts_file(all).as_bytes(), 0o644)?;

    let machine_id = file("etc/machine-id")?;
    let current = std::fs::read_to_string(&machine_id).unwrap_or_default();
    if !valid_machine_id(&current) {
        fsutil::write_atomic(&machine_id, format!("{}\n", new_machine_id()).as_bytes(), 0o444)?;
    }

    // -A makes only the missing key types, so existing host keys (the pinned ones) stay.
    // It would follow a symlinked key path out of the host: such links are removed first.
    for kind in ["rsa", "ecdsa", "ed25519"] {
        for suffix in ["", ".pub"] {
            let p = file(&format!("etc/ssh/ssh_host_{kind}_key{suffix}"))?;
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
                fsutil::remove_file_if_exists(&p)?;
            }
        }
    }
    if let Some(paths) = staged_keys {
        hostkeys::install_staged(paths, &file("etc/ssh")?)?;
    }
    let out = Command::new(ssh_keygen)
        .arg("-A")
        .arg("-f")
        .arg(root)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", ssh_keygen.display()))?;
    if !out.status.success() {
        bail!("ssh-keygen -A failed for {}: {}", host.name, String::from_utf8_lossy(&out.stderr).trim());
    }

    fsutil::dir_with_mode(&file("etc/ssh/sshd_config.d")?, 0o755, None)?;
    fsutil::write_atomic(&file("etc/ssh/sshd_config.d/10-provision-lab.conf")?, sshd_dropin(host).as_bytes(), 0o644)?;

    let line = format!("{authorized_key}\n");
    fsutil::dir_with_mode(&file("root/.ssh")?, 0o700, Some((0, 0)))?;
    fsutil::write_atomic_owned(&file("root/.ssh/authorized_keys")?, line.as_bytes(), 0o600, Some((0, 0)))?;

    let (uid, gid, home) = passwd_entry(root, sudo_user)?;
    let home = home.trim_start_matches('/');
    fsutil::dir_with_mode(&file(&format!("{home}/.ssh"))?, 0o700, Some((uid, gid)))?;
    fsutil::write_atomic_owned(
        &file(&format!("{home}/.ssh/authorized_keys"))?,
        line.as_bytes(),
        0o600,
        Some((uid, gid)),
    )?;
    Ok(())
}

/// `root/rel`, refusing when a directory on the way is a symlink: root inside a lab host
/// can plant one, and following it from outside would write to this machine's files.
pub fn inside(root: &Path, rel: &str) -> Result<PathBuf> {
    let rel = Path::new(rel);
    let mut at = root.to_path_buf();
    let parts: Vec<Component> = rel.components().collect();
    for (i, c) in parts.iter().enumerate() {
        let Component::Normal(name) = c else { bail!("unexpected path component in {}", rel.display()) };
        at.push(name);
        let last = i + 1 == parts.len();
        if !last && std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            bail!("{} is a symlink inside the lab host; refusing to write through it", at.display());
        }
    }
    Ok(at)
}

/// uid, gid and home of `user` in the host's /etc/passwd.
fn passwd_entry(root: &Path, user: &str) -> Result<(u32, u32, String)> {
    let p = inside(root, "etc/passwd")?;
    if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!("{} is a symlink; refusing to read through it", p.display());
    }
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 7 && f[0] == user {
            let uid = f[2].parse().with_context(|| format!("uid of {user} in {}", p.display()))?;
            let gid = f[3].parse().with_context(|| format!("gid of {user} in {}", p.display()))?;
            return Ok((uid, gid, f[5].to_string()));
        }
    }
    bail!("user {user} is missing from {}; rebuild the image (`provision lab destroy --image`)", p.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ids_are_fresh_and_valid() {
        let a = new_machine_id();
        assert!(valid_machine_id(&a), "{a}");
        assert_ne!(a, new_machine_id());
        assert!(!valid_machine_id(""));
        assert!(!valid_machine_id("00000000000000000000000000000000"));
        assert!(valid_machine_id("94bcdb6c46b7448cadf4bee632025780\n"));
    }

    #[test]
    fn hosts_file_names_every_node() {
        let s = hosts_file(&LabHost::first(3));
        assert!(s.contains("127.0.1.1\tnode1\n127.0.1.2\tnode2\n127.0.1.3\tnode3\n"));
        assert!(s.starts_with("127.0.0.1\tlocalhost\n"));
    }

    #[test]
    fn sshd_dropin_binds_the_host_address_and_hardens() {
        let s = sshd_dropin(&LabHost::new(2));
        for l in
            ["ListenAddress 127.0.1.2", "PasswordAuthentication no", "PermitRootLogin prohibit-password", "UseDNS no"]
        {
            assert!(s.lines().any(|x| x == l), "{l}");
        }
    }

    #[test]
    fn refuses_to_write_through_symlinked_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/", root.join("root")).unwrap();
        assert!(inside(&root, "etc/hostname").is_ok());
        assert!(inside(&root, "root/.ssh/authorized_keys").is_err());
        // A symlink as the final component is replaced by the atomic rename, not followed.
        std::os::unix::fs::symlink("/etc/passwd", root.join("etc/hosts")).unwrap();
        assert!(inside(&root, "etc/hosts").is_ok());
    }

    #[test]
    fn finds_the_sudo_users_ids() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nops:x:1000:1000::/home/ops:/bin/bash\n",
        )
        .unwrap();
        assert_eq!(passwd_entry(dir.path(), "ops").unwrap(), (1000, 1000, "/home/ops".to_string()));
        assert!(passwd_entry(dir.path(), "nobody").is_err());
    }
}
