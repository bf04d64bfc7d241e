//! The lab key: one ed25519 key per machine, made once with ssh-keygen. Every lab host
//! authorizes it for root and for `ops`; inventories/lab.toml logs in with it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::fsutil;

/// Makes sure the key exists (0600, in a 0700 dir) and returns its public half
/// ("ssh-ed25519 AAAA... provision-lab").
pub fn ensure(key: &Path, ssh_keygen: &Path) -> Result<String> {
    let dir = key.parent().context("lab key path has no directory")?;
    fsutil::private_dir(dir)?;
    let public = pub_path(key);
    if !(key.exists() && public.exists()) {
        generate(key, &public, ssh_keygen)?;
    }
    // Someone may have loosened it; ssh refuses a private key readable by others anyway.
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting mode 0600 on {}", key.display()))?;
    let text = std::fs::read_to_string(&public).with_context(|| format!("reading {}", public.display()))?;
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if !line.starts_with("ssh-ed25519 ") {
        bail!("{} is not an ed25519 public key; remove it and its private key to make a new lab key", public.display());
    }
    Ok(line)
}

pub fn pub_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Generates under temporary names and renames, so an interrupted run never leaves a
/// private key without its public half (or half a key).
fn generate(key: &Path, public: &Path, ssh_keygen: &Path) -> Result<()> {
    let tmp = key.with_file_name(format!(".id_ed25519.tmp-{}", std::process::id()));
    let tmp_pub = pub_path(&tmp);
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_file(&tmp_pub);
    let out = Command::new(ssh_keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "provision-lab", "-f"])
        .arg(&tmp)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", ssh_keygen.display()))?;
    if !out.status.success() {
        bail!("ssh-keygen failed to make the lab key: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    std::fs::rename(&tmp_pub, public).with_context(|| format!("writing {}", public.display()))?;
    std::fs::rename(&tmp, key).with_context(|| format!("writing {}", key.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn makes_a_private_key_once() {
        let Some(keygen) = super::super::preflight::find("ssh-keygen") else { return };
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("lab/id_ed25519");
        let first = ensure(&key, &keygen).unwrap();
        assert!(first.starts_with("ssh-ed25519 "));
        assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(key.parent().unwrap()).unwrap().mode() & 0o777, 0o700);
        assert_eq!(ensure(&key, &keygen).unwrap(), first, "an existing key is kept");
        assert_eq!(std::fs::read_dir(key.parent().unwrap()).unwrap().count(), 2, "no temp files left");
    }
}
