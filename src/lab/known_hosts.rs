//! Pins the lab hosts' sshd host keys into a known_hosts file, so an inventory with
//! `host_keys = "strict"` accepts exactly these hosts. Entries for other hosts are kept;
//! stale entries for the lab addresses are replaced.

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};

use super::fsutil;

/// The host keys of one lab host: "type base64" strings.
#[derive(Debug, Clone)]
pub struct HostKeys {
    pub address: Ipv4Addr,
    pub keys: Vec<String>,
}

/// Reads the public host keys `ssh-keygen -A` made in the host's /etc/ssh.
pub fn read_host_keys(root: &Path, address: Ipv4Addr) -> Result<HostKeys> {
    let mut keys = Vec::new();
    // Preference order of OpenSSH clients; all three are pinned so any client can connect.
    for kind in ["ed25519", "ecdsa", "rsa"] {
        let p = super::identity::inside(root, &format!("etc/ssh/ssh_host_{kind}_key.pub"))?;
        // A host could link its key file to a file of this machine: never read through it.
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            anyhow::bail!("host key {} is a symlink; refusing to read through it", p.display());
        }
        let text = std::fs::read_to_string(&p).with_context(|| format!("reading host key {}", p.display()))?;
        let mut fields = text.split_whitespace();
        if let (Some(t), Some(b)) = (fields.next(), fields.next()) {
            keys.push(format!("{t} {b}"));
        }
    }
    Ok(HostKeys { address, keys })
}

/// Rewrites `path` (atomically) with `hosts`' keys replacing any earlier entry for their
/// addresses; returns how many lines were pinned.
pub fn pin(path: &Path, hosts: &[HostKeys]) -> Result<usize> {
    let existing = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let merged = merge(&existing, hosts);
    if let Some(dir) = path.parent() {
        // The state dir also holds the PKI: keep it private.
        fsutil::private_dir(dir)?;
    }
    if merged != existing {
        fsutil::write_atomic(path, merged.as_bytes(), 0o644)?;
    }
    Ok(hosts.iter().map(|h| h.keys.len()).sum())
}

fn merge(existing: &str, hosts: &[HostKeys]) -> String {
    let ours: Vec<String> = hosts.iter().map(|h| h.address.to_string()).collect();
    let mut out = String::new();
    for line in existing.lines() {
        if !names_any(line, &ours) {
            out.push_str(line);
            out.push('\n');
        }
    }
    for h in hosts {
        for k in &h.keys {
            out.push_str(&format!("{} {}\n", h.address, k));
        }
    }
    out
}

/// True when the known_hosts line's host field names one of `addresses` (plain or as
/// "[addr]:22"); comments, markers and hashed names are never ours.
fn names_any(line: &str, addresses: &[String]) -> bool {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
        return false;
    }
    let Some(field) = line.split_whitespace().next() else { return false };
    field.split(',').any(|pattern| {
        let host = pattern.strip_prefix('[').and_then(|p| p.strip_suffix("]:22")).unwrap_or(pattern);
        addresses.iter().any(|a| a == host)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(addr: [u8; 4], k: &str) -> HostKeys {
        HostKeys { address: Ipv4Addr::from(addr), keys: vec![format!("ssh-ed25519 {k}")] }
    }

    #[test]
    fn replaces_stale_lab_entries_and_keeps_others() {
        let existing = "\
# mine
10.0.0.1 ssh-ed25519 KEEP
127.0.1.1 ssh-ed25519 OLD1
127.0.1.10 ssh-ed25519 NOT_NODE1
[127.0.1.2]:22,node2 ssh-rsa OLD2
[127.0.1.2]:2222 ssh-rsa OTHERPORT
@cert-authority 127.0.1.1 ssh-ed25519 CA
";
        let merged = merge(existing, &[keys([127, 0, 1, 1], "NEW1"), keys([127, 0, 1, 2], "NEW2")]);
        assert!(merged.contains("10.0.0.1 ssh-ed25519 KEEP\n"));
        assert!(merged.contains("127.0.1.10 ssh-ed25519 NOT_NODE1\n"));
        assert!(merged.contains("[127.0.1.2]:2222 ssh-rsa OTHERPORT\n"));
        assert!(merged.contains("@cert-authority 127.0.1.1 ssh-ed25519 CA\n"));
        assert!(merged.contains("# mine\n"));
        assert!(!merged.contains("OLD1") && !merged.contains("OLD2"));
        assert!(merged.ends_with("127.0.1.1 ssh-ed25519 NEW1\n127.0.1.2 ssh-ed25519 NEW2\n"));
    }

    #[test]
    fn pinning_twice_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".provision/lab/known_hosts");
        let hosts = [keys([127, 0, 1, 1], "A")];
        pin(&p, &hosts).unwrap();
        let once = std::fs::read_to_string(&p).unwrap();
        pin(&p, &hosts).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), once);
        assert_eq!(once, "127.0.1.1 ssh-ed25519 A\n");
    }

    #[test]
    fn reads_the_three_host_keys() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join("etc/ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        for (kind, t) in [("ed25519", "ssh-ed25519"), ("ecdsa", "ecdsa-sha2-nistp256"), ("rsa", "ssh-rsa")] {
            std::fs::write(ssh.join(format!("ssh_host_{kind}_key.pub")), format!("{t} AAAA{kind} root@x\n")).unwrap();
        }
        let k = read_host_keys(dir.path(), Ipv4Addr::new(127, 0, 1, 3)).unwrap();
        assert_eq!(k.keys, ["ssh-ed25519 AAAAed25519", "ecdsa-sha2-nistp256 AAAAecdsa", "ssh-rsa AAAArsa"]);
        std::fs::remove_file(ssh.join("ssh_host_rsa_key.pub")).unwrap();
        assert!(read_host_keys(dir.path(), Ipv4Addr::new(127, 0, 1, 3)).is_err());
        // A key file linked out of the host is refused, not followed.
        std::os::unix::fs::symlink("/etc/hostname", ssh.join("ssh_host_rsa_key.pub")).unwrap();
        let err = read_host_keys(dir.path(), Ipv4Addr::new(127, 0, 1, 3)).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
    }
}
