//! An authenticated connection to one host, shared by every command sent to it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::inventory::HostKeyPolicy;

use super::auth;
use super::connect::{self, Handle, Opened, Peer, Shared};
use super::dial::{self, Dial};
use super::error::{Phase, SshError};
use super::host_key::{Observed, RefusalContext, refusal};
use super::jump;
use super::known_hosts::{self, KnownHosts, PinOutcome};
use super::target::Target;

/// How many commands run at once on one connection. OpenSSH's sshd allows 10 sessions per
/// connection (MaxSessions); more concurrent execs wait for a free slot instead of failing.
pub const MAX_CONCURRENT_COMMANDS: usize = 8;

/// An authenticated SSH connection to one host. Cheap to clone (an `Arc`); every clone
/// uses the same connection; commands open their own channels and may run concurrently.
#[derive(Clone)]
pub struct Session {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub host: String,
    pub endpoint: String,
    pub user: String,
    /// Commands go through `sudo -n` (the login user is not root).
    pub sudo: bool,
    pub handle: Handle,
    /// The bastion's connection carries ours: it must live as long as we do.
    _bastion: Option<Handle>,
    pub command_timeout: Duration,
    pub slots: Semaphore,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.inner.host)
            .field("endpoint", &self.inner.endpoint)
            .field("sudo", &self.inner.sudo)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects, checks the host key, authenticates, and (for a non-root user) checks that
    /// `sudo -n` works. All of it within `target.connect_timeout`.
    pub async fn connect(target: &Target) -> Result<Session, SshError> {
        let deadline = Instant::now() + target.connect_timeout;
        let files = target.known_hosts.all();
        let known = Arc::new(KnownHosts::load(&files).map_err(|(file, e)| SshError::KnownHostsRead {
            host: target.name.clone(),
            file,
            reason: e.to_string(),
        })?);
        let mut keys = auth::gather(target).await?;
        let mut shared = Shared { target, known, keys: &mut keys, deadline };

        let peer = Peer::target(target);
        let (opened, bastion) = match &target.jump {
            None => {
                let endpoint = peer.endpoint();
                let d = Dial { host: &target.name, address: &target.address, port: target.port, endpoint: &endpoint };
                let stream = dial::tcp(&d, deadline, target.connect_timeout).await?;
                (connect::open(&peer, stream, &mut shared).await?, None)
            }
            Some(j) => {
                let hops = jump::connect(target, j, &mut shared).await?;
                (hops.target, Some(hops.bastion))
            }
        };

        // Pin only now: a host we could not log in to (wrong address?) is not pinned.
        if let Some(b) = &bastion {
            record_pin(target, &format!("{} (jump host)", target.name), b).await?;
        }
        record_pin(target, &target.name, &opened).await?;

        let session = Session {
            inner: Arc::new(Inner {
                host: target.name.clone(),
                endpoint: peer.endpoint(),
                user: target.user.clone(),
                sudo: target.user != "root",
                handle: opened.handle,
                _bastion: bastion.map(|b| b.handle),
                command_timeout: target.command_timeout,
                slots: Semaphore::new(MAX_CONCURRENT_COMMANDS),
            }),
        };
        if session.inner.sudo {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
            session.check_sudo(left).await?;
        }
        Ok(session)
    }

    /// The inventory name of the host.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The login user.
    pub fn user(&self) -> &str {
        &self.inner.user
    }

    /// True when commands are wrapped in `sudo -n` (the login user is not root).
    pub fn uses_sudo(&self) -> bool {
        self.inner.sudo
    }

    /// Closes the connection (and the jump host's). Commands still running fail.
    pub async fn close(&self) {
        let _ = self.inner.handle.disconnect(russh::Disconnect::ByApplication, "", "en").await;
        if let Some(b) = &self.inner._bastion {
            let _ = b.disconnect(russh::Disconnect::ByApplication, "", "en").await;
        }
    }

    /// `sudo -n true`, with messages forced to English so "password is required" is recognised.
    async fn check_sudo(&self, limit: Duration) -> Result<(), SshError> {
        let out = self.run_raw("LC_ALL=C sudo -n true", "sudo -n true", None, limit, Phase::SudoCheck).await?;
        if out.success() {
            return Ok(());
        }
        let mut detail = super::shell::tail(&out.stderr, 3);
        let stdout = super::shell::tail(&out.stdout, 3);
        if !stdout.is_empty() {
            // e.g. a nologin shell explains itself on stdout
            detail = if detail.is_empty() { stdout } else { format!("{detail}; stdout: {stdout}") };
        }
        if needs_password(&out.stderr) {
            return Err(SshError::SudoNeedsPassword { host: self.inner.host.clone(), user: self.inner.user.clone(), detail });
        }
        Err(SshError::SudoUnavailable {
            host: self.inner.host.clone(),
            user: self.inner.user.clone(),
            status: out.status,
            detail: if detail.is_empty() { "no message".into() } else { detail },
        })
    }
}

/// sudo's messages when it would have to prompt (`-n` forbids it).
pub(super) fn needs_password(stderr: &[u8]) -> bool {
    let text = String::from_utf8_lossy(stderr);
    text.contains("a password is required") || text.contains("a terminal is required")
}

async fn record_pin(target: &Target, who: &str, opened: &Opened) -> Result<(), SshError> {
    let Some((lookup, key)) = opened.pin.clone() else { return Ok(()) };
    debug_assert_eq!(target.host_keys, HostKeyPolicy::AcceptNew);
    let file = target.known_hosts.pin_file.clone();
    let write_error = |reason: String| SshError::KnownHostsWrite { host: who.to_string(), file: file.clone(), reason };
    let (f, l, k) = (file.clone(), lookup.clone(), key.clone());
    let outcome = tokio::task::spawn_blocking(move || known_hosts::pin(&f, &l, &k))
        .await
        .map_err(|e| write_error(e.to_string()))?
        .map_err(|e| write_error(e.to_string()))?;
    match outcome {
        PinOutcome::Added | PinOutcome::AlreadyPresent => Ok(()),
        // Another run pinned a different key for this host while we were connecting.
        PinOutcome::Conflict(verdict) => {
            let ctx = RefusalContext {
                host: who,
                lookup: &lookup,
                address: &target.address,
                port: target.port,
                searched: target.known_hosts.all(),
                pin_file: file.clone(),
            };
            Err(refusal(ctx, &Observed { offered: key, verdict }, HostKeyPolicy::Strict)
                .unwrap_or_else(|| write_error("the file changed while pinning".into())))
        }
    }
}
