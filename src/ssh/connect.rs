//! One SSH hop over an already open byte stream: handshake, host key check, authentication.
//!
//! Used for a direct connection (over TCP) and for both hops of a jump-host connection
//! (the bastion over TCP, the target over a direct-tcpip channel of the bastion).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::ssh_key::PublicKey;
use russh::{Preferred, client::Config};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};

use super::auth::{self, Keys};
use super::error::{Phase, SshError};
use super::host_key::{HostKeyCheck, RefusalContext, refusal};
use super::known_hosts::{KnownHosts, Verdict, lookup_name};
use super::target::{Target, endpoint};

pub(crate) type Handle = client::Handle<HostKeyCheck>;

/// One SSH server on the way: the target itself or its jump host.
pub(crate) struct Peer {
    /// Name used in errors: the inventory name, or "name (jump host user@addr:port)".
    pub host: String,
    pub address: String,
    pub port: u16,
    pub user: String,
}

impl Peer {
    pub fn target(t: &Target) -> Peer {
        Peer { host: t.name.clone(), address: t.address.clone(), port: t.port, user: t.user.clone() }
    }

    pub fn endpoint(&self) -> String {
        format!("{}@{}", self.user, endpoint(&self.address, self.port))
    }
}

/// An authenticated connection, and the host key to pin once the whole connect succeeded.
pub(crate) struct Opened {
    pub handle: Handle,
    pub pin: Option<(String, PublicKey)>,
}

/// What every hop shares.
pub(crate) struct Shared<'a> {
    pub target: &'a Target,
    pub known: Arc<KnownHosts>,
    pub keys: &'a mut Keys,
    pub deadline: Instant,
}

pub(crate) async fn open<S>(peer: &Peer, stream: S, shared: &mut Shared<'_>) -> Result<Opened, SshError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let target = shared.target;
    let lookup = lookup_name(&peer.address, peer.port);
    let (check, observed) = HostKeyCheck::new(shared.known.clone(), lookup.clone(), target.host_keys);
    let config = client_config(&shared.known, &lookup);
    let timeout = |phase| SshError::Timeout {
        host: peer.host.clone(),
        endpoint: peer.endpoint(),
        phase,
        after: target.connect_timeout,
    };

    let handshake = timeout_at(shared.deadline, client::connect_stream(config, stream, check)).await;
    let seen = observed.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut handle = match handshake {
        Err(_) => return Err(timeout(Phase::Handshake)),
        Ok(Err(e)) => {
            let ctx = RefusalContext {
                host: &peer.host,
                lookup: &lookup,
                address: &peer.address,
                port: peer.port,
                searched: target.known_hosts.all(),
                pin_file: target.known_hosts.pin_file.clone(),
            };
            if let Some(refused) = seen.as_ref().and_then(|s| refusal(ctx, s, target.host_keys)) {
                return Err(refused);
            }
            return Err(SshError::Protocol {
                host: peer.host.clone(),
                endpoint: peer.endpoint(),
                phase: Phase::Handshake,
                reason: describe_handshake_error(&e),
            });
        }
        Ok(Ok(handle)) => handle,
    };

    match timeout_at(shared.deadline, auth::authenticate(&mut handle, &peer.user, shared.keys)).await {
        Err(_) => return Err(timeout(Phase::Authentication)),
        Ok(Err(refused)) => {
            return Err(SshError::AuthRefused {
                host: peer.host.clone(),
                endpoint: peer.endpoint(),
                user: peer.user.clone(),
                tried: refused.tried,
                methods: refused.methods,
                notes: refused.notes,
            });
        }
        Ok(Ok(())) => {}
    }

    let pin = seen.filter(|s| matches!(s.verdict, Verdict::Unknown)).map(|s| (lookup, s.offered));
    Ok(Opened { handle, pin })
}

fn client_config(known: &KnownHosts, lookup: &str) -> Arc<Config> {
    let preferred = Preferred {
        key: Cow::Owned(known.preferred_algorithms(lookup, &Preferred::DEFAULT.key)),
        ..Preferred::DEFAULT
    };
    Arc::new(Config {
        preferred,
        nodelay: true,
        // A command may run for minutes without output; keepalives (answered by any
        // OpenSSH server) tell a slow command from a dead host: ~2 minutes to give up.
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        inactivity_timeout: None,
        ..Config::default()
    })
}

fn describe_handshake_error(e: &russh::Error) -> String {
    let closed = "the connection was closed during the SSH handshake (is it an SSH server? sshd may also \
                  refuse connections beyond MaxStartups or through TCP wrappers)";
    match e {
        russh::Error::Disconnect | russh::Error::HUP => closed.to_string(),
        russh::Error::IO(io)
            if matches!(io.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe) =>
        {
            closed.to_string()
        }
        other => other.to_string(),
    }
}
