//! Atomic file writes on a host, over the exec channel.
//!
//! The content travels on stdin to a small sh script (never in the command line), so it
//! works through `sudo` for non-root users, which SFTP cannot. The script:
//! 1. creates `.provision-tmp.XXXXXXXXXX` next to the target (same filesystem, so the
//!    rename is atomic; the fixed prefix lets stale ones be found and removed),
//! 2. copies stdin into it and checks the byte count (a connection lost mid-transfer gives
//!    the script an early EOF: a truncated file must never be installed),
//! 3. fsyncs it (`sync FILE`), sets owner, then mode (chown may clear setuid bits), all
//!    BEFORE the rename, so the target never exists with the wrong owner or mode,
//! 4. renames it over the target (`mv -T`: never into a directory of that name),
//! 5. fsyncs the directory so the rename itself survives a crash.
//!
//! A trap removes the temp file on any failure. Needs GNU coreutils (Debian, RHEL, ...).

use super::error::SshError;
use super::session::Session;
use super::shell::quote;

/// Name prefix of the temp files; `find DIR -name '.provision-tmp.*'` lists stale ones.
pub const TEMP_PREFIX: &str = ".provision-tmp.";

impl Session {
    /// Writes `content` to `path` on the host atomically, with `mode` (e.g. 0o600) and
    /// `owner`:`group` (names or numeric ids) set before the file appears under its name.
    /// The parent directory must exist. Secrets are safe here: content goes on stdin.
    pub async fn write_file_atomic(&self, path: &str, content: &[u8], mode: u32, owner: &str, group: &str) -> Result<(), SshError> {
        let script = write_script(path, content.len(), mode, owner, group).map_err(|reason| SshError::InvalidRequest {
            host: self.host().to_string(),
            what: format!("write {path}"),
            reason,
        })?;
        self.exec_checked_named(&script, &format!("write {path}"), Some(content)).await?;
        Ok(())
    }
}

fn write_script(path: &str, len: usize, mode: u32, owner: &str, group: &str) -> Result<String, String> {
    if !path.starts_with('/') || path.ends_with('/') || path.contains('\0') {
        return Err(format!("{path:?} is not an absolute file path"));
    }
    if mode > 0o7777 {
        return Err(format!("mode {mode:o} is not a file mode (at most 7777)"));
    }
    for (what, name) in [("owner", owner), ("group", group)] {
        let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            return Err(format!("{what} {name:?} is not a user/group name or id"));
        }
    }
    Ok(format!(
        r#"set -eu
target={target}
dir=$(dirname -- "$target")
tmp=$(mktemp -- "$dir/{prefix}XXXXXXXXXX")
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
cat > "$tmp"
size=$(wc -c < "$tmp")
if [ "$size" -ne {len} ]; then
  echo "received $size of {len} bytes (connection lost?); $target left unchanged" >&2
  exit 1
fi
sync -- "$tmp"
chown -- {owner}:{group} "$tmp"
chmod -- {mode:04o} "$tmp"
mv -f -T -- "$tmp" "$target"
trap - EXIT
sync -- "$dir"
"#,
        target = quote(path),
        prefix = TEMP_PREFIX,
        owner = quote(owner),
        group = quote(group),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_requests() {
        assert!(write_script("etc/x", 1, 0o644, "root", "root").unwrap_err().contains("absolute"));
        assert!(write_script("/etc/", 1, 0o644, "root", "root").unwrap_err().contains("absolute"));
        assert!(write_script("/etc/x", 1, 0o10000, "root", "root").unwrap_err().contains("mode"));
        assert!(write_script("/etc/x", 1, 0o644, "root:x", "root").unwrap_err().contains("owner"));
        assert!(write_script("/etc/x", 1, 0o644, "root", "").unwrap_err().contains("group"));
    }

    #[test]
    fn script_quotes_the_path_and_checks_the_size() {
        let s = write_script("/etc/it's here", 42, 0o600, "etcd", "0").unwrap();
        assert!(s.contains(r#"target='/etc/it'\''s here'"#), "{s}");
        assert!(s.contains(r#"[ "$size" -ne 42 ]"#), "{s}");
        assert!(s.contains("chmod -- 0600"), "{s}");
        // owner before mode, both before the rename
        let (chown, chmod, mv) = (s.find("chown").unwrap(), s.find("chmod").unwrap(), s.find("mv -f").unwrap());
        assert!(chown < chmod && chmod < mv);
    }

    #[test]
    fn script_works_in_a_local_shell() {
        // The same script the host runs, run here as the current user against a temp dir.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("conf");
        let id = |flag: &str| String::from_utf8(std::process::Command::new("id").arg(flag).output().unwrap().stdout).unwrap().trim().to_string();
        let (me, my_group) = (id("-u"), id("-g"));
        let (me, my_group) = (me.as_str(), my_group.as_str());
        let content = b"line1\nsecret\n";
        let script = write_script(target.to_str().unwrap(), content.len(), 0o640, me, my_group).unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(content).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read(&target).unwrap(), content);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777, 0o640);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("conf")]);

        // Short stdin: refused, target unchanged, no temp file left.
        let script = write_script(target.to_str().unwrap(), 999, 0o600, me, my_group).unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"short").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("received 5 of 999 bytes"));
        assert_eq!(std::fs::read(&target).unwrap(), content);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
