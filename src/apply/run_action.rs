//! One plan action, executed on one host over its SSH session.
//!
//! Every value reaches the shell single-quoted; paths come from the desired state,
//! names from the plan. Writes go through `write_file_atomic` (temp file in the same
//! directory, fsync, chmod/chown, rename): a killed apply never leaves a partial file.

use anyhow::{Context, bail};

use crate::plan::action::{Action, WriteReason};
use crate::plan::facts::shell_quote as q;
use crate::ssh::Session;

pub async fn run(session: &Session, action: &Action) -> anyhow::Result<()> {
    match action {
        Action::WriteFile { path, mode, owner, group, why, content, .. } => {
            if why.iter().any(|w| w.rewrites_content()) {
                session
                    .write_file_atomic(path, content.0.as_slice(), mode.0, owner, group)
                    .await
                    .with_context(|| format!("writing {path}"))?;
                Ok(())
            } else {
                // Same bytes: fix ownership/mode in place (chown first: it may clear mode bits).
                let mut cmd = String::new();
                if why.contains(&WriteReason::Owner) {
                    cmd.push_str(&format!("chown {}:{} -- {} && ", q(owner), q(group), q(path)));
                }
                cmd.push_str(&format!("chmod {mode} -- {}", q(path)));
                shell(session, &cmd).await.with_context(|| format!("fixing mode/owner of {path}"))
            }
        }
        Action::CreateUser { name, home, group_exists } => {
            let group = if *group_exists { format!("--gid {}", q(name)) } else { "--user-group".to_string() };
            let cmd = format!(
                "useradd --system --home-dir {} --no-create-home --shell /usr/sbin/nologin {group} -- {}",
                q(home),
                q(name)
            );
            shell(session, &cmd).await.with_context(|| format!("creating user {name}"))
        }
        Action::CreateDir { path, mode, owner, group } => {
            // install -d: parents as needed, the directory itself with exactly this mode/owner.
            let cmd = format!("install -d -m {mode} -o {} -g {} -- {}", q(owner), q(group), q(path));
            shell(session, &cmd).await.with_context(|| format!("creating directory {path}"))
        }
        Action::FixDir { path, mode, owner, group, .. } => {
            let cmd = format!("chown {}:{} -- {p} && chmod {mode} -- {p}", q(owner), q(group), p = q(path));
            shell(session, &cmd).await.with_context(|| format!("fixing directory {path}"))
        }
        Action::RemoveStaleTemp { path } | Action::RemoveFile { path } => {
            shell(session, &format!("rm -f -- {}", q(path))).await.with_context(|| format!("removing {path}"))
        }
        Action::DaemonReload { .. } => shell(session, "systemctl daemon-reload").await.context("systemctl daemon-reload"),
        Action::EnableUnit { unit } => {
            shell(session, &format!("systemctl enable --quiet -- {}", q(unit))).await.with_context(|| format!("enabling {unit}"))
        }
        // --no-block: a Type=notify etcd member blocks `start` until quorum; every host's
        // start is queued at once and the phase's wait watches them come up.
        Action::StartUnit { unit } => shell(session, &format!("systemctl start --no-block -- {}", q(unit)))
            .await
            .with_context(|| format!("starting {unit}")),
        Action::RestartUnit { unit, .. } => {
            // reset-failed clears the start rate limit a crash loop may have hit.
            let cmd = format!("systemctl reset-failed -- {u} 2>/dev/null; systemctl restart --no-block -- {u}", u = q(unit));
            shell(session, &cmd).await.with_context(|| format!("restarting {unit}"))
        }
        Action::StopUnit { unit } => {
            let cmd = format!("systemctl stop -- {u} && {{ systemctl reset-failed -- {u} 2>/dev/null || true; }}", u = q(unit));
            shell(session, &cmd).await.with_context(|| format!("stopping {unit}"))
        }
        Action::DisableUnit { unit } => shell(session, &format!("systemctl disable --quiet -- {}", q(unit)))
            .await
            .with_context(|| format!("disabling {unit}")),
        Action::RemoveDir { path } => shell(session, &format!("rmdir -- {}", q(path)))
            .await
            .with_context(|| format!("removing directory {path} (it is no longer empty? nothing else was deleted)")),
        Action::PurgeDir { path } => {
            refuse_dangerous_purge(path)?;
            shell(session, &format!("rm -rf --one-file-system -- {}", q(path)))
                .await
                .with_context(|| format!("purging {path}"))
        }
        Action::MoveAside { path, to } => {
            let cmd = format!("if [ -e {p} ]; then mv -T -- {p} {t}; fi", p = q(path), t = q(to));
            shell(session, &cmd).await.with_context(|| format!("moving {path} aside to {to}"))
        }
        Action::RestoreEtcdMember { restore, sha256 } => {
            // The upload was atomic; this proves the bytes are the verified snapshot's.
            let check = format!("echo {} | sha256sum -c --status -", q(&format!("{sha256}  {}", restore.snapshot)));
            shell(session, &check)
                .await
                .with_context(|| format!("the snapshot on the host ({}) is not the verified one", restore.snapshot))?;
            shell(session, &crate::etcd::restore_script::restore(restore))
                .await
                .with_context(|| format!("restoring etcd member {} into {}", restore.name, restore.data_dir))
        }
        Action::RollBackEtcdRestore { restore } => shell(session, &crate::etcd::restore_script::roll_back(restore))
            .await
            .with_context(|| format!("putting {}'s previous data dir back", restore.name)),
        // Not a host action: its phase (bootstrap-rbac, cluster-dns) sends it to kube-apiserver.
        Action::ApplyObject { kind, name, .. } => bail!("{kind} {name} is applied through the API, not over SSH"),
    }
}

async fn shell(session: &Session, cmd: &str) -> anyhow::Result<()> {
    session.exec_checked(cmd, None).await?;
    Ok(())
}

/// The data dir comes from the inventory: never let a typo there become `rm -rf /etc`.
fn refuse_dangerous_purge(path: &str) -> anyhow::Result<()> {
    let depth = path.split('/').filter(|c| !c.is_empty()).count();
    if !path.starts_with('/') || depth < 2 || path.split('/').any(|c| c == "..") {
        bail!("refusing to purge {path:?}: the etcd data dir must be an absolute path at least two levels deep");
    }
    const SYSTEM: [&str; 8] = ["/etc", "/usr", "/var/lib", "/var/log", "/home", "/root", "/boot", "/opt"];
    if SYSTEM.iter().any(|s| path.trim_end_matches('/') == *s) {
        bail!("refusing to purge {path:?}: a system directory");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_guard() {
        assert!(refuse_dangerous_purge("/var/lib/etcd").is_ok());
        assert!(refuse_dangerous_purge("/").is_err());
        assert!(refuse_dangerous_purge("/var").is_err());
        assert!(refuse_dangerous_purge("/var/lib").is_err());
        assert!(refuse_dangerous_purge("/var/lib/").is_err());
        assert!(refuse_dangerous_purge("var/lib/etcd").is_err());
        assert!(refuse_dangerous_purge("/var/lib/etcd/../..").is_err());
    }
}
