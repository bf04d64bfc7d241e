//! SSH transport on russh: one connection per host, reused for the whole run.
//!
//! No `ssh` binary is involved: the protocol, host key checks and authentication are done
//! here, so behaviour does not depend on the operator's ~/.ssh/config.
//!
//! # Using it
//! ```ignore
//! use provision::ssh::{Session, Target};
//!
//! let target = Target::for_host(&inventory, &host, &state, inventory_dir)?; // no I/O yet
//! let session = Session::connect(&target).await?;       // TCP + handshake + host key + auth (+ sudo check)
//! let out = session.exec("systemctl is-active etcd", None).await?;  // non-zero status is not an error
//! if out.success() { /* out.stdout, out.stderr, out.status */ }
//! session.exec_checked("systemctl daemon-reload", None).await?;      // non-zero -> SshError::CommandFailed
//! session.exec_checked("install -d -m 0700 /etc/kubernetes/pki", None).await?;
//! session.write_file_atomic("/etc/kubernetes/pki/ca.key", key_pem, 0o600, "root", "root").await?;
//! ```
//!
//! # Contract
//! - [`Target::for_host`] resolves the inventory's `[ssh]` settings and the host's overrides:
//!   address, port, user, key (relative paths against the inventory's directory, `~/` is
//!   $HOME), ssh-agent (SSH_AUTH_SOCK), host key policy, known_hosts files, jump host,
//!   timeouts. Bad settings are [`SshError::Config`] naming the setting.
//! - [`Session::connect`] does everything within `ssh.connect_timeout_secs`. A [`Session`]
//!   is an `Arc`: clone it freely; commands open their own channel, so several may run at
//!   once on one connection (at most [`MAX_CONCURRENT_COMMANDS`] at a time; more wait).
//! - Commands run as root. A non-root login user must have passwordless sudo: connect
//!   checks `sudo -n true` and every command runs as `sudo -n -- sh -c '<command>'`.
//! - Each command is limited by `ssh.command_timeout_secs` ([`SshError::Timeout`]), or by
//!   the limit given to [`Session::exec_with_timeout`]; on timeout the command is sent
//!   SIGTERM, but may outlive us on the host. The session stays usable.
//! - Commands run with `sh -c` whatever the login shell is; stdin is streamed while output
//!   is read (multi-MB both ways is fine); output is collected until the channel closes.
//! - [`Session::write_file_atomic`] needs GNU coreutils on the host (mktemp, sync FILE,
//!   mv -T); stale temp files from a killed run are named [`TEMP_PREFIX`]`*`.
//! - Secrets go in `stdin` (or `write_file_atomic`'s content), never in the command line:
//!   the command line is visible in `ps` on the host, and its first line appears in errors.
//! - Host keys: `strict` (default) accepts only keys in the state directory's known_hosts,
//!   the inventory's `ssh.known_hosts` and ~/.ssh/known_hosts (OpenSSH format, hashed
//!   entries and `[host]:port` included). `accept-new` additionally pins unknown hosts into
//!   the state directory's known_hosts after a successful login. A changed key is always
//!   refused ([`SshError::HostKeyChanged`] shows both fingerprints, the file:line and the fix).
//! - Authentication is by public key only: `ssh.private_key` (ed25519, ecdsa, rsa; a
//!   passphrase-protected key must be loaded into ssh-agent), otherwise every ssh-agent key
//!   and then ~/.ssh/id_ed25519, id_ecdsa, id_rsa. Passwords are never used.
//! - [`Session::open_streamlocal`] gives a byte stream to a Unix socket on the host (sshd
//!   connects as the login user, not through sudo).
//! - Every error names the host; match on [`SshError`]'s variants to tell the kinds apart.

// SshError carries the facts its message needs (fingerprints, files, methods), which makes
// it larger than clippy likes; errors are rare and end a host's work, so no boxing.
#![allow(clippy::result_large_err)]

mod auth;
mod connect;
mod dial;
mod error;
mod exec;
mod host_key;
mod jump;
pub mod known_hosts;
mod session;
pub mod shell;
mod streamlocal;
mod target;
mod write;

pub use error::{Phase, SshError};
pub use exec::{NO_EXIT_STATUS, Output};
pub use session::{MAX_CONCURRENT_COMMANDS, Session};
pub use streamlocal::StreamLocal;
pub use target::{Credentials, DEFAULT_KEY_FILES, JumpHost, KnownHostsFiles, Target};
pub use write::TEMP_PREFIX;
