//! sshd host keys for hosts being created, made ahead of time. `ssh-keygen -A` spends
//! most of its time on the RSA key (about a second of CPU per host, and many seconds of
//! wall time on a busy machine) and does not need the host's disk. So:
//! - a small pool of complete key sets is kept filled in the background (after `up` and
//!   `destroy`); a new host takes one set (each set is used once, by one host);
//! - hosts the pool cannot serve get their keys made while the image step runs;
//! - the keys are copied in when the disk is mounted. Hosts that have keys keep them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::fsutil;
use super::layout::{HostPaths, Lab};
use super::procs;

const KEY_FILES: [&str; 3] = ["ssh_host_rsa_key", "ssh_host_ecdsa_key", "ssh_host_ed25519_key"];

/// Where keys wait for the host's disk: `hosts/.nodeN-hostkeys/etc/ssh/` (beside the host's
/// directory, so a host whose creation stops here does not look created).
pub fn staging_root(paths: &HostPaths) -> PathBuf {
    let name = paths.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    paths.dir.with_file_name(format!(".{name}-hostkeys"))
}

/// True when the host's disk has no host keys yet (the image has none, so the keys of an
/// existing host are in its upper dir).
pub fn needed(paths: &HostPaths) -> bool {
    let ssh = paths.upper().join("etc/ssh");
    !KEY_FILES.iter().all(|k| ssh.join(k).is_file() && ssh.join(format!("{k}.pub")).is_file())
}

/// Makes a full set of host keys in the staging directory (replacing an older one).
pub fn stage(paths: &HostPaths, ssh_keygen: &Path) -> Result<()> {
    let root = staging_root(paths);
    fsutil::remove_tree(&root)?;
    fsutil::dir_with_mode(&root.join("etc/ssh"), 0o755, None)?;
    let out = Command::new(ssh_keygen)
        .arg("-A")
        .arg("-f")
        .arg(&root)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", ssh_keygen.display()))?;
    if !out.status.success() {
        bail!("ssh-keygen -A failed in {}: {}", root.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Copies staged keys into `ssh_dir` (the mounted host's /etc/ssh) where a key is
/// missing, then drops the staging directory. Private keys stay 0600 throughout.
pub fn install_staged(paths: &HostPaths, ssh_dir: &Path) -> Result<()> {
    let staged = staging_root(paths).join("etc/ssh");
    if !staged.is_dir() {
        return Ok(());
    }
    for k in KEY_FILES {
        let (private, public) = (ssh_dir.join(k), ssh_dir.join(format!("{k}.pub")));
        let (from_private, from_public) = (staged.join(k), staged.join(format!("{k}.pub")));
        // Both halves or neither: a lone half would be left for ssh-keygen -A to redo.
        if private.exists() || public.exists() || !from_private.is_file() || !from_public.is_file() {
            continue;
        }
        let key = std::fs::read(&from_private).with_context(|| format!("reading {}", from_private.display()))?;
        let pubkey = std::fs::read(&from_public).with_context(|| format!("reading {}", from_public.display()))?;
        fsutil::write_atomic_owned(&private, &key, 0o600, Some((0, 0)))?;
        fsutil::write_atomic_owned(&public, &pubkey, 0o644, Some((0, 0)))?;
    }
    fsutil::remove_tree(&staging_root(paths))
}

/// Moves one ready set from the pool to the host's staging directory; false when the
/// pool is empty. Sets are renamed into the pool only when complete, and taken by rename,
/// so no set is ever half made or used twice.
pub fn take_from_pool(lab: &Lab, paths: &HostPaths) -> Result<bool> {
    let pool = lab.hostkeys_pool();
    let Ok(entries) = std::fs::read_dir(&pool) else { return Ok(false) };
    let target = staging_root(paths);
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with("set-") {
            continue;
        }
        fsutil::remove_tree(&target)?;
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        if std::fs::rename(e.path(), &target).is_ok() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// $1 pool dir, $2 sets wanted, $3 ssh-keygen. One filler at a time (flock); a set is
/// made under a temporary name and renamed into the pool when complete.
const FILL: &str = r#"set -u
pool=$1 want=$2 keygen=$3
fill() {
    exec 9>"$pool/.fill.lock"
    flock -n 9 || exit 0
    # Holding the lock, no other filler runs: temporary sets are leftovers of a killed one.
    rm -rf "$pool"/.tmp-*
    while [ "$(find "$pool" -mindepth 1 -maxdepth 1 -name 'set-*' | wc -l)" -lt "$want" ]; do
        tmp="$pool/.tmp-$$-$RANDOM"
        mkdir -p "$tmp/etc/ssh" && nice -n 10 "$keygen" -A -f "$tmp" >/dev/null &&
            mv "$tmp" "$pool/set-$(date +%s%N)-$RANDOM" || { rm -rf "$tmp"; exit 1; }
    done
}
fill </dev/null >/dev/null 2>&1 &
"#;

/// Fills the pool up to `want` sets in a detached, niced background process; returns at
/// once.
pub fn refill_pool_in_background(lab: &Lab, want: usize, bash: &Path, ssh_keygen: &Path) -> Result<()> {
    let pool = lab.hostkeys_pool();
    fsutil::private_dir(&pool)?;
    let mut cmd = Command::new(bash);
    cmd.arg("-c")
        .arg(FILL)
        .arg("provision-lab-hostkeys")
        .arg(&pool)
        .arg(want.to_string())
        .arg(ssh_keygen)
        .env_clear()
        .env("PATH", super::preflight::CHILD_PATH)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    procs::detach(&mut cmd);
    let out = cmd.output().with_context(|| format!("starting the host key pool filler ({})", bash.display()))?;
    if !out.status.success() {
        bail!("the host key pool filler did not start: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::layout::{Lab, LabHost};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn staged_keys_fill_only_missing_keys() {
        let Some(keygen) = super::super::preflight::find("ssh-keygen") else { return };
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab::at(dir.path(), dir.path().join("cache"));
        let paths = HostPaths::new(&lab, &LabHost::new(1));
        std::fs::create_dir_all(paths.upper()).unwrap();
        assert!(needed(&paths));
        stage(&paths, &keygen).unwrap();

        let ssh = dir.path().join("root/etc/ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::write(ssh.join("ssh_host_ed25519_key"), "KEEP").unwrap();
        std::fs::write(ssh.join("ssh_host_ed25519_key.pub"), "KEEP.pub").unwrap();
        install_staged(&paths, &ssh).unwrap();

        assert_eq!(std::fs::read_to_string(ssh.join("ssh_host_ed25519_key")).unwrap(), "KEEP");
        let rsa = std::fs::metadata(ssh.join("ssh_host_rsa_key")).unwrap();
        assert_eq!(rsa.mode() & 0o777, 0o600);
        assert!(std::fs::read_to_string(ssh.join("ssh_host_ecdsa_key.pub")).unwrap().starts_with("ecdsa-sha2-"));
        assert!(!staging_root(&paths).exists(), "staging removed");
    }

    #[test]
    fn pool_sets_are_taken_once_each() {
        let Some(keygen) = super::super::preflight::find("ssh-keygen") else { return };
        let Some(bash) = super::super::preflight::find("bash") else { return };
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab::at(dir.path(), dir.path().join("cache"));
        let (one, two) = (HostPaths::new(&lab, &LabHost::new(1)), HostPaths::new(&lab, &LabHost::new(2)));
        assert!(!take_from_pool(&lab, &one).unwrap(), "no pool yet");
        refill_pool_in_background(&lab, 1, &bash, &keygen).unwrap();
        let filled = crate::lab::procs::wait_until(std::time::Duration::from_secs(60), || {
            std::fs::read_dir(lab.hostkeys_pool())
                .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("set-")))
                .unwrap_or(false)
        });
        assert!(filled, "the filler made a set");
        assert!(take_from_pool(&lab, &one).unwrap());
        assert!(!take_from_pool(&lab, &two).unwrap(), "the only set is gone");
        let pubkey = std::fs::read_to_string(staging_root(&one).join("etc/ssh/ssh_host_ed25519_key.pub")).unwrap();
        assert!(pubkey.starts_with("ssh-ed25519 "));
    }
}
