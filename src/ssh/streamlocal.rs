//! A byte stream to a Unix socket on the host: sshd's `direct-streamlocal@openssh.com`
//! channel (what `ssh -L local:/remote.sock` uses). Lets a client in this process speak a
//! socket's own protocol (containerd's CRI gRPC) without any tool installed on the host.
//!
//! sshd connects to the socket as the LOGIN user (no sudo is involved), so a root-only
//! socket answers only a root login; sshd may also forbid such channels altogether
//! (`AllowStreamLocalForwarding no`, or `DisableForwarding yes`).

use std::time::Duration;

use russh::ChannelOpenFailure;
use russh::client::Msg;
use tokio::time::timeout;

use super::error::{Phase, SshError};
use super::session::Session;

/// The channel as an `AsyncRead + AsyncWrite` stream.
pub type StreamLocal = russh::ChannelStream<Msg>;

impl Session {
    /// Opens a channel to the Unix socket `socket` on the host, within `limit`.
    /// [`SshError::StreamLocalRefused`] when sshd says no.
    pub async fn open_streamlocal(&self, socket: &str, limit: Duration) -> Result<StreamLocal, SshError> {
        let refused = |reason: String| SshError::StreamLocalRefused {
            host: self.inner.host.clone(),
            socket: socket.to_string(),
            reason,
        };
        match timeout(limit, self.inner.handle.channel_open_direct_streamlocal(socket)).await {
            Err(_) => Err(SshError::Timeout {
                host: self.inner.host.clone(),
                endpoint: self.inner.endpoint.clone(),
                phase: Phase::StreamLocal(socket.to_string()),
                after: limit,
            }),
            Ok(Ok(channel)) => Ok(channel.into_stream()),
            Ok(Err(russh::Error::ChannelOpenFailure(ChannelOpenFailure::AdministrativelyProhibited))) => Err(refused(
                "sshd forbids forwarding to Unix sockets (AllowStreamLocalForwarding / DisableForwarding)".into(),
            )),
            // OpenSSH (9.2 measured) answers "connect failed" also when it refuses the
            // forwarding by configuration; its log says which ("refused streamlocal port forward").
            Ok(Err(russh::Error::ChannelOpenFailure(ChannelOpenFailure::ConnectFailed))) => Err(refused(format!(
                "the socket is missing or not {:?}'s to open, or sshd forbids forwarding to Unix sockets \
                 (AllowStreamLocalForwarding no)",
                self.user()
            ))),
            Ok(Err(russh::Error::ChannelOpenFailure(other))) => Err(refused(format!("{other:?}"))),
            Ok(Err(e)) if self.inner.handle.is_closed() => Err(SshError::ConnectionLost {
                host: self.inner.host.clone(),
                phase: Phase::StreamLocal(socket.to_string()),
                reason: e.to_string(),
            }),
            Ok(Err(e)) => Err(refused(e.to_string())),
        }
    }
}
