//! Running a command on the host: one channel per command, stdin streamed while output
//! is read (so neither side can block the other on a full window), and output collected
//! until the channel ends (OpenSSH may send output after the exit status).

use std::fmt;
use std::time::Duration;

use russh::{ChannelMsg, Sig};
use tokio::time::{Instant, timeout_at};

use super::error::{Phase, SshError};
use super::session::{Session, needs_password};
use super::shell;

/// The exit status reported when the command died from a signal or reported none
/// (what OpenSSH's `ssh` returns in those cases too).
pub const NO_EXIT_STATUS: u32 = 255;

/// What a command produced.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit status; [`NO_EXIT_STATUS`] when killed by a signal.
    pub status: u32,
    /// The signal name (e.g. "KILL") when the command was killed by one.
    pub signal: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    /// Exit status 0 and no signal.
    pub fn success(&self) -> bool {
        self.status == 0 && self.signal.is_none()
    }

    /// stdout as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

// Output may hold secrets (a command may print a key): Debug shows sizes only.
impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("status", &self.status)
            .field("signal", &self.signal)
            .field("stdout_bytes", &self.stdout.len())
            .field("stderr_bytes", &self.stderr.len())
            .finish()
    }
}

impl Session {
    /// Runs `command` with `sh -c` as root (through `sudo -n` for a non-root login user) and
    /// returns its status and output; a non-zero status is NOT an error here.
    /// `stdin` is streamed to the command, then closed (EOF); with `None` stdin is empty.
    /// Secrets go in `stdin`, never in `command` (it is visible in `ps` and in errors).
    /// Errors: timeout (ssh.command_timeout_secs), connection lost, sudo needing a password.
    pub async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, SshError> {
        self.exec_as_named(command, &shell::short(command), stdin).await
    }

    /// Like [`Session::exec`], but a non-zero exit status is [`SshError::CommandFailed`]
    /// naming the host, the command (short form) and the tail of stderr.
    pub async fn exec_checked(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, SshError> {
        self.exec_checked_named(command, &shell::short(command), stdin).await
    }

    /// Like [`Session::exec`], with its own time limit instead of ssh.command_timeout_secs
    /// (a quick probe that should fail fast, or a download that may take long).
    pub async fn exec_with_timeout(&self, command: &str, stdin: Option<&[u8]>, limit: Duration) -> Result<Output, SshError> {
        self.exec_inner(command, &shell::short(command), stdin, limit).await
    }

    /// exec_checked with `display` as the command's name in messages.
    pub(super) async fn exec_checked_named(&self, command: &str, display: &str, stdin: Option<&[u8]>) -> Result<Output, SshError> {
        let out = self.exec_as_named(command, display, stdin).await?;
        if out.success() {
            return Ok(out);
        }
        Err(SshError::CommandFailed {
            host: self.inner.host.clone(),
            command: display.to_string(),
            status: out.status,
            signal: out.signal.clone(),
            stderr_tail: shell::tail(&out.stderr, 12),
        })
    }

    async fn exec_as_named(&self, command: &str, display: &str, stdin: Option<&[u8]>) -> Result<Output, SshError> {
        self.exec_inner(command, display, stdin, self.inner.command_timeout).await
    }

    async fn exec_inner(&self, command: &str, display: &str, stdin: Option<&[u8]>, limit: Duration) -> Result<Output, SshError> {
        // Always `sh`, whatever the login shell is (bash, zsh, ...): commands are POSIX sh.
        let line = if self.inner.sudo { shell::under_sudo(command) } else { shell::under_sh(command) };
        let out = self.run_raw(&line, display, stdin, limit, Phase::Command(display.to_string())).await?;
        if self.inner.sudo && out.status == 1 && needs_password(&out.stderr) {
            return Err(SshError::SudoNeedsPassword {
                host: self.inner.host.clone(),
                user: self.inner.user.clone(),
                detail: shell::tail(&out.stderr, 3),
            });
        }
        Ok(out)
    }

    /// Runs exactly `line` (no sudo wrapping) within `limit`.
    pub(super) async fn run_raw(
        &self,
        line: &str,
        display: &str,
        stdin: Option<&[u8]>,
        limit: Duration,
        phase: Phase,
    ) -> Result<Output, SshError> {
        let _slot = self.inner.slots.acquire().await.map_err(|_| self.lost(display, "the session is closed".into()))?;
        let deadline = Instant::now() + limit;
        let timeout = || SshError::Timeout {
            host: self.inner.host.clone(),
            endpoint: self.inner.endpoint.clone(),
            phase: phase.clone(),
            after: limit,
        };

        let channel = match timeout_at(deadline, self.open_channel()).await {
            Err(_) => return Err(timeout()),
            Ok(Err(e)) if self.inner.handle.is_closed() => {
                return Err(self.lost(display, format!("the connection is closed (dropped by the host or by an earlier error: {e})")));
            }
            Ok(Err(e)) => return Err(self.lost(display, format!("cannot open a channel: {e}"))),
            Ok(Ok(c)) => c,
        };
        let (mut reader, writer) = channel.split();
        writer.exec(true, line).await.map_err(|e| self.lost(display, e.to_string()))?;

        let feed = async {
            if let Some(data) = stdin {
                writer.data(data).await?;
            }
            writer.eof().await
        };
        tokio::pin!(feed);
        let mut fed = false;
        let mut out = Output::default();
        let mut status = None;

        let collect = async {
            loop {
                tokio::select! {
                    // A command that exits without reading all of stdin makes this fail
                    // (like a broken pipe); its exit status is what matters, as with ssh.
                    _ = &mut feed, if !fed => fed = true,
                    msg = reader.wait() => match msg {
                        None => return Ok(()),
                        Some(ChannelMsg::Data { data }) => out.stdout.extend_from_slice(&data),
                        Some(ChannelMsg::ExtendedData { data, ext: 1 }) => out.stderr.extend_from_slice(&data),
                        Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
                        Some(ChannelMsg::ExitSignal { signal_name, .. }) => out.signal = Some(signal_label(&signal_name)),
                        Some(ChannelMsg::Failure) => return Err("the server refused to run the command".to_string()),
                        Some(_) => {}
                    },
                }
            }
        };
        match timeout_at(deadline, collect).await {
            Err(_) => {
                // Best effort: ask sshd to stop the command, then drop the channel. A process
                // that ignores TERM (or runs under sudo, which relays it) may outlive us.
                let _ = writer.signal(Sig::TERM).await;
                let _ = writer.close().await;
                return Err(timeout());
            }
            Ok(Err(reason)) => {
                return Err(SshError::Protocol {
                    host: self.inner.host.clone(),
                    endpoint: self.inner.endpoint.clone(),
                    phase: phase.clone(),
                    reason,
                });
            }
            Ok(Ok(())) => {}
        }
        match (status, &out.signal) {
            (Some(s), _) => out.status = s,
            (None, Some(_)) => out.status = NO_EXIT_STATUS,
            (None, None) => {
                return Err(self.lost(display, "the channel closed before the command reported an exit status".into()));
            }
        }
        Ok(out)
    }

    /// Opens a session channel, retrying while sshd refuses it. sshd limits sessions per
    /// connection (MaxSessions, 10 by default, often lower on hardened hosts) and frees one
    /// only when our CLOSE for it arrives, which may trail behind the next OPEN: a refusal
    /// here usually means "not yet". The caller's deadline bounds the retries.
    async fn open_channel(&self) -> Result<russh::Channel<russh::client::Msg>, russh::Error> {
        let mut pause = Duration::from_millis(20);
        loop {
            match self.inner.handle.channel_open_session().await {
                Err(russh::Error::ChannelOpenFailure(_)) if !self.inner.handle.is_closed() => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    fn lost(&self, display: &str, reason: String) -> SshError {
        SshError::ConnectionLost { host: self.inner.host.clone(), phase: Phase::Command(display.to_string()), reason }
    }
}

fn signal_label(sig: &Sig) -> String {
    match sig {
        Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}
