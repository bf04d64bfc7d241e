//! SSH transport on russh: one connection per host, reused for the whole run.
//!
//! API contract (used by plan/apply, etcd and verify):
//! ```ignore
//! let target = Target::for_host(&inventory, &host, &state);     // address, port, user, key, policy
//! let session = Session::connect(&target).await?;               // strict host keys, timeouts
//! let out = session.exec("systemctl is-active etcd", None).await?;   // runs as root (sudo -n when user != root)
//! out.status; out.stdout; out.stderr;
//! session.exec_checked(cmd, Some(stdin_bytes)).await?;          // Err(SshError::CommandFailed{tail of stderr}) on non-zero
//! session.write_file_atomic(path, bytes, mode, owner, group).await?; // temp file + fsync + chmod/chown + rename
//! ```
