//! What can go wrong talking to a host, in words an operator can act on.
//!
//! Every variant names the host (the inventory name, plus the address when it helps),
//! so a message read out of a parallel run over many hosts is never ambiguous.
//! No variant carries secrets: commands are shown in a short form, stdin never.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The step a connection or command was in when something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Resolving the name and opening the TCP connection.
    TcpConnect,
    /// SSH version exchange, key exchange and host key check.
    Handshake,
    /// Offering keys to the server.
    Authentication,
    /// Checking that sudo works without a password.
    SudoCheck,
    /// Opening the forwarded channel from the jump host to the target.
    JumpChannel,
    /// Opening a `direct-streamlocal` channel to a Unix socket on the host (its path).
    StreamLocal(String),
    /// Running a command (its short form).
    Command(String),
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::TcpConnect => f.write_str("opening the TCP connection"),
            Phase::Handshake => f.write_str("waiting for the SSH handshake (version exchange, key exchange)"),
            Phase::Authentication => f.write_str("authenticating"),
            Phase::SudoCheck => f.write_str("checking `sudo -n true`"),
            Phase::JumpChannel => f.write_str("opening the forwarded channel through the jump host"),
            Phase::StreamLocal(socket) => write!(f, "opening a channel to the socket {socket}"),
            Phase::Command(cmd) => write!(f, "running `{cmd}`"),
        }
    }
}

/// Errors of the SSH transport. Callers match on the kind (e.g. to tell an unreachable
/// host from a refused key); the Display text is the full explanation for the operator.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{host}: cannot reach {endpoint}: {reason}")]
    Unreachable { host: String, endpoint: String, reason: String },

    #[error("{host}: timed out after {}s while {phase} ({endpoint}){hint}", after.as_secs_f32(), hint = timeout_hint(phase))]
    Timeout { host: String, endpoint: String, phase: Phase, after: Duration },

    #[error(
        "{host}: {endpoint} refused authentication as {user:?}; tried: {tried}; the server accepts: {methods}{notes}\n  \
         fix: add one of these public keys to ~{user}/.ssh/authorized_keys on the host, or point ssh.private_key at the right key",
        tried = list_or_none(tried),
        methods = list_or_none(methods),
        notes = notes_suffix(notes)
    )]
    AuthRefused {
        host: String,
        endpoint: String,
        user: String,
        /// The keys offered, as "source (TYPE SHA256:...)".
        tried: Vec<String>,
        /// The authentication methods the server said it would accept.
        methods: Vec<String>,
        /// Extra facts (agent unreachable, encrypted keys skipped, ...).
        notes: Vec<String>,
    },

    #[error(
        "{host}: no usable SSH key for {user:?}: {}\n  fix: set ssh.private_key in the inventory, or load a key into ssh-agent (ssh-add) and set SSH_AUTH_SOCK",
        notes.join("; ")
    )]
    NoCredentials { host: String, user: String, notes: Vec<String> },

    #[error(
        "{host}: the private key {} is protected by a passphrase; provision never prompts for passphrases\n  \
         fix: load it into ssh-agent (`ssh-add {}`) and run provision with SSH_AUTH_SOCK set",
        path.display(), path.display()
    )]
    EncryptedKey { host: String, path: PathBuf },

    #[error("{host}: cannot use the private key {}: {reason}", path.display())]
    KeyFile { host: String, path: PathBuf, reason: String },

    #[error(
        "{host}: user {user:?} needs a password for sudo (`sudo -n true` said: {detail})\n  \
         fix: log in as root, or give {user:?} passwordless sudo (e.g. `{user} ALL=(ALL) NOPASSWD: ALL` in /etc/sudoers.d/)"
    )]
    SudoNeedsPassword { host: String, user: String, detail: String },

    #[error("{host}: user {user:?} cannot use sudo (`sudo -n true` exited with {status}: {detail})\n  fix: log in as root, or give {user:?} passwordless sudo")]
    SudoUnavailable { host: String, user: String, status: u32, detail: String },

    #[error(
        "{host}: HOST KEY CHANGED for {lookup}: the host offered {key_type} {offered}, but {}:{line} pins {expected_type} {expected}. \
         Someone may be intercepting the connection, or the host was reinstalled. Connection refused.\n  \
         fix: check the host's real key out of band (on its console: `ssh-keygen -lf /etc/ssh/ssh_host_{}_key.pub`); \
         only if it is {offered}, remove the old pin with `ssh-keygen -R '{lookup}' -f {}` and connect again",
        file.display(), key_file_stem(key_type), file.display()
    )]
    HostKeyChanged {
        host: String,
        /// The name looked up in known_hosts: `addr` or `[addr]:port`.
        lookup: String,
        key_type: String,
        offered: String,
        expected_type: String,
        expected: String,
        file: PathBuf,
        line: usize,
    },

    #[error(
        "{host}: the host key of {lookup} ({key_type} {offered}) is revoked by {}:{line}; connection refused",
        file.display()
    )]
    HostKeyRevoked { host: String, lookup: String, key_type: String, offered: String, file: PathBuf, line: usize },

    #[error(
        "{host}: unknown host key for {lookup}: {key_type} {offered} is in none of: {}. Host keys are checked strictly.\n  \
         fix: after checking that fingerprint on the host (`ssh-keygen -lf /etc/ssh/ssh_host_{}_key.pub`), either set \
         ssh.host_keys = \"accept-new\" in the inventory for one run (it pins the key into {}), or add the key yourself: \
         `ssh-keyscan -p {port} {address} >> {}`",
        files_list(searched), key_file_stem(key_type), pin_file.display(), pin_file.display()
    )]
    UnknownHostKey {
        host: String,
        lookup: String,
        address: String,
        port: u16,
        key_type: String,
        offered: String,
        searched: Vec<PathBuf>,
        pin_file: PathBuf,
    },

    #[error("{host}: cannot record the host key in {}: {reason}", file.display())]
    KnownHostsWrite { host: String, file: PathBuf, reason: String },

    #[error("{host}: cannot read known_hosts file {}: {reason}", file.display())]
    KnownHostsRead { host: String, file: PathBuf, reason: String },

    #[error("{host}: `{command}` failed with {status}{signal}{stderr}", signal = signal_suffix(signal), stderr = stderr_suffix(stderr_tail))]
    CommandFailed {
        host: String,
        /// Short form of the command (first line, truncated); never stdin.
        command: String,
        status: u32,
        signal: Option<String>,
        /// The last lines of stderr.
        stderr_tail: String,
    },

    #[error("{host}: SSH protocol error with {endpoint} while {phase}: {reason}")]
    Protocol { host: String, endpoint: String, phase: Phase, reason: String },

    #[error("{host}: connection lost while {phase}: {reason}")]
    ConnectionLost { host: String, phase: Phase, reason: String },

    /// sshd would not open a `direct-streamlocal@openssh.com` channel to `socket`. OpenSSH
    /// gives the same answer whether the socket is missing, not the login user's, or such
    /// channels are forbidden (AllowStreamLocalForwarding no): `reason` says so.
    #[error("{host}: sshd did not open a channel to the socket {socket}: {reason}")]
    StreamLocalRefused { host: String, socket: String, reason: String },

    #[error("{host}: cannot {what}: {reason}")]
    InvalidRequest { host: String, what: String, reason: String },

    #[error("{host}: invalid SSH setting {setting}: {reason}")]
    Config { host: String, setting: String, reason: String },
}

impl SshError {
    /// The inventory host name the error is about.
    pub fn host(&self) -> &str {
        match self {
            SshError::Unreachable { host, .. }
            | SshError::Timeout { host, .. }
            | SshError::AuthRefused { host, .. }
            | SshError::NoCredentials { host, .. }
            | SshError::StreamLocalRefused { host, .. }
            | SshError::EncryptedKey { host, .. }
            | SshError::KeyFile { host, .. }
            | SshError::SudoNeedsPassword { host, .. }
            | SshError::SudoUnavailable { host, .. }
            | SshError::HostKeyChanged { host, .. }
            | SshError::HostKeyRevoked { host, .. }
            | SshError::UnknownHostKey { host, .. }
            | SshError::KnownHostsWrite { host, .. }
            | SshError::KnownHostsRead { host, .. }
            | SshError::CommandFailed { host, .. }
            | SshError::Protocol { host, .. }
            | SshError::ConnectionLost { host, .. }
            | SshError::InvalidRequest { host, .. }
            | SshError::Config { host, .. } => host,
        }
    }
}

fn timeout_hint(phase: &Phase) -> &'static str {
    match phase {
        Phase::TcpConnect => "; is the address right and is a firewall dropping packets?",
        Phase::Handshake => "; something accepted the connection but did not answer as an SSH server",
        Phase::Command(_) => "; raise ssh.command_timeout_secs if the command is legitimately slow",
        _ => "",
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() { "(none)".to_string() } else { items.join(", ") }
}

fn notes_suffix(notes: &[String]) -> String {
    if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) }
}

fn files_list(files: &[PathBuf]) -> String {
    files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn signal_suffix(signal: &Option<String>) -> String {
    signal.as_ref().map(|s| format!(" (killed by signal {s})")).unwrap_or_default()
}

fn stderr_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        "; stderr was empty".to_string()
    } else {
        format!("; stderr ends with:\n{}", indent(tail.trim_end()))
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// The file name part sshd uses for a host key of this type (`ssh_host_<stem>_key`).
fn key_file_stem(key_type: &str) -> &'static str {
    match key_type {
        t if t.starts_with("ssh-ed25519") => "ed25519",
        t if t.starts_with("ecdsa") => "ecdsa",
        t if t.starts_with("ssh-rsa") || t.starts_with("rsa") => "rsa",
        _ => "*",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_key_message_names_both_fingerprints_file_and_fix() {
        let e = SshError::HostKeyChanged {
            host: "node1".into(),
            lookup: "[10.0.0.1]:2222".into(),
            key_type: "ssh-ed25519".into(),
            offered: "SHA256:new".into(),
            expected_type: "ssh-ed25519".into(),
            expected: "SHA256:old".into(),
            file: "/state/known_hosts".into(),
            line: 3,
        };
        let text = e.to_string();
        assert!(text.starts_with("node1: HOST KEY CHANGED"), "{text}");
        assert!(text.contains("SHA256:new") && text.contains("SHA256:old"), "{text}");
        assert!(text.contains("/state/known_hosts:3"), "{text}");
        assert!(text.contains("ssh-keygen -R '[10.0.0.1]:2222' -f /state/known_hosts"), "{text}");
        assert!(text.contains("ssh_host_ed25519_key.pub"), "{text}");
    }

    #[test]
    fn command_failure_shows_indented_stderr_tail() {
        let e = SshError::CommandFailed {
            host: "n".into(),
            command: "false".into(),
            status: 1,
            signal: None,
            stderr_tail: "a\nb\n".into(),
        };
        assert_eq!(e.to_string(), "n: `false` failed with 1; stderr ends with:\n    a\n    b");
        assert_eq!(e.host(), "n");
    }

    #[test]
    fn auth_refusal_lists_methods() {
        let e = SshError::AuthRefused {
            host: "n".into(),
            endpoint: "root@10.0.0.1:22".into(),
            user: "root".into(),
            tried: vec!["key file /k (ED25519 SHA256:x)".into()],
            methods: vec!["publickey".into()],
            notes: vec![],
        };
        let text = e.to_string();
        assert!(text.contains("tried: key file /k (ED25519 SHA256:x)"), "{text}");
        assert!(text.contains("the server accepts: publickey"), "{text}");
    }
}
