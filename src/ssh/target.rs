//! Where and how to connect to one host, resolved from the inventory.
//!
//! Everything is resolved here, before any network traffic, so that a typo in the
//! inventory (a bad jump host, a zero timeout, `~` without HOME) is reported as a
//! setting error rather than as a confusing connection failure.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::inventory::{Host, HostKeyPolicy, Inventory};
use crate::state::StateDir;

use super::error::SshError;

/// The key files tried when `ssh.private_key` is not set, in this order (after ssh-agent).
pub const DEFAULT_KEY_FILES: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// One host to connect to, with everything the connection needs.
///
/// Build it with [`Target::for_host`]; the fields are public so tests and special
/// callers can adjust them (e.g. point `agent_socket` at a private agent).
#[derive(Debug, Clone)]
pub struct Target {
    /// The inventory name of the host; every message about this host starts with it.
    pub name: String,
    /// Address (or DNS name) the SSH connection goes to.
    pub address: String,
    pub port: u16,
    /// Login user: root, or a user with passwordless sudo.
    pub user: String,
    /// Which private keys are offered.
    pub credentials: Credentials,
    /// ssh-agent socket (SSH_AUTH_SOCK at the time the target was built).
    pub agent_socket: Option<PathBuf>,
    pub host_keys: HostKeyPolicy,
    pub known_hosts: KnownHostsFiles,
    /// Optional bastion; it is checked against the same known_hosts files, with the same
    /// policy and credentials as the target.
    pub jump: Option<JumpHost>,
    /// Limit for TCP connect + SSH handshake + authentication (+ the sudo check), in total.
    pub connect_timeout: Duration,
    /// Limit for each command (from opening its channel to its last byte of output).
    pub command_timeout: Duration,
}

/// Which private keys are offered to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `ssh.private_key`: only this key is offered. When the file is passphrase-protected,
    /// the same key is used from ssh-agent if the agent holds it.
    KeyFile(PathBuf),
    /// No key configured: every ssh-agent identity, then each of these files that exists.
    Default { candidates: Vec<PathBuf> },
}

/// The known_hosts files consulted, and the one new keys are pinned into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHostsFiles {
    /// The state directory's known_hosts: consulted first; `accept-new` pins into it.
    pub pin_file: PathBuf,
    /// Further files consulted read-only: the inventory's `ssh.known_hosts`, ~/.ssh/known_hosts.
    pub extra: Vec<PathBuf>,
}

impl KnownHostsFiles {
    /// All files, in the order they are searched.
    pub fn all(&self) -> Vec<PathBuf> {
        std::iter::once(self.pin_file.clone()).chain(self.extra.iter().cloned()).collect()
    }
}

/// A bastion host (`ssh.jump_host = "user@host:port"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHost {
    pub address: String,
    pub port: u16,
    pub user: String,
}

impl fmt::Display for JumpHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, endpoint(&self.address, self.port))
    }
}

impl Target {
    /// The target for `host`: ssh settings from `inventory` (with the host's overrides),
    /// key paths resolved against `inventory_dir` (`~/` expands to $HOME), pins in `state`.
    pub fn for_host(inventory: &Inventory, host: &Host, state: &StateDir, inventory_dir: &Path) -> Result<Target, SshError> {
        let ssh = &inventory.ssh;
        let setting_error = |setting: &str, reason: String| SshError::Config {
            host: host.name.clone(),
            setting: setting.to_string(),
            reason,
        };
        let home = home_dir();
        let user = host.ssh_user.clone().unwrap_or_else(|| ssh.user.clone());
        if user.is_empty() {
            return Err(setting_error("ssh.user", "the login user is empty".into()));
        }

        let credentials = match &ssh.private_key {
            Some(path) => Credentials::KeyFile(
                resolve_path(path, inventory_dir, home.as_deref()).map_err(|r| setting_error("ssh.private_key", r))?,
            ),
            None => Credentials::Default {
                candidates: home
                    .iter()
                    .flat_map(|h| DEFAULT_KEY_FILES.iter().map(move |f| h.join(".ssh").join(f)))
                    .collect(),
            },
        };

        let mut extra = Vec::new();
        if let Some(path) = &ssh.known_hosts {
            extra.push(resolve_path(path, inventory_dir, home.as_deref()).map_err(|r| setting_error("ssh.known_hosts", r))?);
        }
        if let Some(h) = &home {
            extra.push(h.join(".ssh").join("known_hosts"));
        }

        let jump = match &ssh.jump_host {
            Some(spec) => Some(parse_jump_host(spec, &user).map_err(|r| setting_error("ssh.jump_host", r))?),
            None => None,
        };

        if ssh.connect_timeout_secs == 0 {
            return Err(setting_error("ssh.connect_timeout_secs", "must be at least 1 second".into()));
        }
        if ssh.command_timeout_secs == 0 {
            return Err(setting_error("ssh.command_timeout_secs", "must be at least 1 second".into()));
        }

        Ok(Target {
            name: host.name.clone(),
            address: host.address.to_string(),
            port: host.ssh_port.unwrap_or(ssh.port),
            user,
            credentials,
            agent_socket: std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()).map(PathBuf::from),
            host_keys: ssh.host_keys,
            known_hosts: KnownHostsFiles { pin_file: state.known_hosts(), extra },
            jump,
            connect_timeout: Duration::from_secs(ssh.connect_timeout_secs),
            command_timeout: Duration::from_secs(ssh.command_timeout_secs),
        })
    }

    /// `user@address:port`, as shown in messages.
    pub fn endpoint(&self) -> String {
        format!("{}@{}", self.user, endpoint(&self.address, self.port))
    }
}

/// `address:port`, with IPv6 addresses in brackets.
pub(crate) fn endpoint(address: &str, port: u16) -> String {
    if address.contains(':') { format!("[{address}]:{port}") } else { format!("{address}:{port}") }
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// `~/x` -> $HOME/x; relative -> against the inventory's directory; absolute unchanged.
fn resolve_path(path: &Path, inventory_dir: &Path, home: Option<&Path>) -> Result<PathBuf, String> {
    let text = path.to_string_lossy();
    if text == "~" || text.starts_with("~/") {
        let home = home.ok_or_else(|| format!("{} starts with ~ but HOME is not set", path.display()))?;
        return Ok(match text.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => home.to_path_buf(),
        });
    }
    if text.starts_with('~') {
        return Err(format!("{}: only ~/ (your own home) is expanded, not ~user/", path.display()));
    }
    Ok(if path.is_absolute() { path.to_path_buf() } else { inventory_dir.join(path) })
}

/// Parses `[user@]host[:port]`; IPv6 addresses take brackets when a port follows.
/// The user defaults to the targets' login user, the port to 22.
pub(crate) fn parse_jump_host(spec: &str, default_user: &str) -> Result<JumpHost, String> {
    let spec = spec.trim();
    let (user, rest) = match spec.rsplit_once('@') {
        Some(("", _)) => return Err(format!("{spec:?}: the user before '@' is empty")),
        Some((u, r)) => (u.to_string(), r),
        None => (default_user.to_string(), spec),
    };
    let (address, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (addr, after) = inner.split_once(']').ok_or_else(|| format!("{spec:?}: '[' without ']'"))?;
        match after {
            "" => (addr.to_string(), 22),
            p => match p.strip_prefix(':') {
                Some(p) => (addr.to_string(), parse_port(p, spec)?),
                None => return Err(format!("{spec:?}: expected ':port' after ']'")),
            },
        }
    } else if rest.matches(':').count() > 1 {
        // A bare IPv6 address: no port possible without brackets.
        (rest.to_string(), 22)
    } else if let Some((addr, p)) = rest.split_once(':') {
        (addr.to_string(), parse_port(p, spec)?)
    } else {
        (rest.to_string(), 22)
    };
    if address.is_empty() {
        return Err(format!("{spec:?}: the host is empty (expected \"user@host:port\")"));
    }
    if address.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(format!("{spec:?}: {address:?} is not a host name or address"));
    }
    Ok(JumpHost { address, port, user })
}

fn parse_port(text: &str, spec: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{spec:?}: {text:?} is not a port number (1-65535)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jh(a: &str, p: u16, u: &str) -> JumpHost {
        JumpHost { address: a.into(), port: p, user: u.into() }
    }

    #[test]
    fn jump_host_forms() {
        assert_eq!(parse_jump_host("bastion", "root"), Ok(jh("bastion", 22, "root")));
        assert_eq!(parse_jump_host("ops@bastion:2222", "root"), Ok(jh("bastion", 2222, "ops")));
        assert_eq!(parse_jump_host("10.0.0.1:22", "admin"), Ok(jh("10.0.0.1", 22, "admin")));
        assert_eq!(parse_jump_host("[fd00::1]:2200", "root"), Ok(jh("fd00::1", 2200, "root")));
        assert_eq!(parse_jump_host("u@fd00::1", "root"), Ok(jh("fd00::1", 22, "u")));
        assert_eq!(parse_jump_host("[fd00::1]", "root"), Ok(jh("fd00::1", 22, "root")));
    }

    #[test]
    fn jump_host_errors_say_what_is_wrong() {
        assert!(parse_jump_host("@h", "root").unwrap_err().contains("user"));
        assert!(parse_jump_host("h:0", "root").unwrap_err().contains("port"));
        assert!(parse_jump_host("h:ssh", "root").unwrap_err().contains("port"));
        assert!(parse_jump_host("u@", "root").unwrap_err().contains("host is empty"));
        assert!(parse_jump_host("[::1", "root").unwrap_err().contains("']'"));
        assert!(parse_jump_host("[::1]x", "root").unwrap_err().contains(":port"));
    }

    #[test]
    fn paths_resolve_against_inventory_dir_and_home() {
        let home = Some(Path::new("/home/op"));
        let inv = Path::new("/srv/cluster");
        assert_eq!(resolve_path(Path::new("keys/id"), inv, home), Ok(PathBuf::from("/srv/cluster/keys/id")));
        assert_eq!(resolve_path(Path::new("~/.ssh/id"), inv, home), Ok(PathBuf::from("/home/op/.ssh/id")));
        assert_eq!(resolve_path(Path::new("/abs/id"), inv, home), Ok(PathBuf::from("/abs/id")));
        assert!(resolve_path(Path::new("~/x"), inv, None).unwrap_err().contains("HOME"));
        assert!(resolve_path(Path::new("~bob/x"), inv, home).unwrap_err().contains("~user"));
    }

    fn inventory(ssh: &str) -> Inventory {
        let text = format!(
            r#"
[cluster]
name = "c1"
kubernetes_version = "1.34.2"
etcd_version = "3.5.21"
api_endpoint = "10.0.0.1"
service_cidr = "10.96.0.0/12"
pod_cidr = "10.244.0.0/16"

[ssh]
{ssh}

[[host]]
name = "node1"
address = "10.0.0.1"
roles = ["etcd"]

[[host]]
name = "node2"
address = "10.0.0.2"
roles = ["etcd"]
ssh_port = 2222
ssh_user = "admin"
"#
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn for_host_resolves_settings_and_overrides() {
        let inv = inventory(
            r#"private_key = "keys/id_ed25519"
known_hosts = "/etc/ssh/ssh_known_hosts"
jump_host = "ops@bastion:2200"
host_keys = "accept-new"
connect_timeout_secs = 7
command_timeout_secs = 70"#,
        );
        let state = StateDir::at("/srv/c/.provision/c1");
        let t = Target::for_host(&inv, &inv.hosts[1], &state, Path::new("/srv/c")).unwrap();
        assert_eq!(t.name, "node2");
        assert_eq!((t.address.as_str(), t.port, t.user.as_str()), ("10.0.0.2", 2222, "admin"));
        assert_eq!(t.credentials, Credentials::KeyFile(PathBuf::from("/srv/c/keys/id_ed25519")));
        assert_eq!(t.host_keys, HostKeyPolicy::AcceptNew);
        assert_eq!(t.known_hosts.pin_file, PathBuf::from("/srv/c/.provision/c1/known_hosts"));
        assert_eq!(t.known_hosts.all()[1], PathBuf::from("/etc/ssh/ssh_known_hosts"));
        assert_eq!(t.jump, Some(jh("bastion", 2200, "ops")));
        assert_eq!((t.connect_timeout.as_secs(), t.command_timeout.as_secs()), (7, 70));
        assert_eq!(t.endpoint(), "admin@10.0.0.2:2222");

        let t1 = Target::for_host(&inv, &inv.hosts[0], &state, Path::new("/srv/c")).unwrap();
        assert_eq!((t1.port, t1.user.as_str()), (22, "root"));
    }

    #[test]
    fn for_host_defaults_and_setting_errors() {
        let inv = inventory("");
        let state = StateDir::at("/s");
        let t = Target::for_host(&inv, &inv.hosts[0], &state, Path::new("/srv")).unwrap();
        assert_eq!(t.host_keys, HostKeyPolicy::Strict);
        assert!(t.jump.is_none());
        match &t.credentials {
            Credentials::Default { candidates } => {
                let names: Vec<_> = candidates.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
                assert_eq!(names, DEFAULT_KEY_FILES);
            }
            other => panic!("{other:?}"),
        }

        let bad = inventory(r#"jump_host = "ops@bastion:http""#);
        let e = Target::for_host(&bad, &bad.hosts[0], &state, Path::new("/srv")).unwrap_err();
        assert!(e.to_string().starts_with("node1: invalid SSH setting ssh.jump_host"), "{e}");
        let bad = inventory("connect_timeout_secs = 0");
        let e = Target::for_host(&bad, &bad.hosts[0], &state, Path::new("/srv")).unwrap_err();
        assert!(e.to_string().contains("ssh.connect_timeout_secs"), "{e}");
    }

    #[test]
    fn endpoints_bracket_ipv6() {
        assert_eq!(endpoint("10.0.0.1", 22), "10.0.0.1:22");
        assert_eq!(endpoint("fd00::1", 2222), "[fd00::1]:2222");
    }
}
