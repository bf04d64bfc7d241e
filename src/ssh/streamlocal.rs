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
    /// [`SshError::StreamLocalRefused`] when sshd says no (`prohibited` tells a forbidding
    /// sshd from a socket it could not connect to).
    pub async fn open_streamlocal(&self, socket: &str, limit: Duration) -> Result<StreamLocal, SshError> {
        let refused = |prohibited: bool, reason: String| SshError::StreamLocalRefused {
            host: self.inner.host.clone(),
            socket: socket.to_string(),
            prohibited,
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
                true,
                "sshd forbids forwarding to Unix sockets (AllowStreamLocalForwarding no / DisableForwarding yes)"
                    .into(),
            )),
            Ok(Err(russh::Error::ChannelOpenFailure(ChannelOpenFailure::ConnectFailed))) => Err(refused(
                false,
                format!("sshd could not connect to it as {:?} (missing, or not accessible to that user)", self.user()),
            )),
            Ok(Err(russh::Error::ChannelOpenFailure(other))) => Err(refused(false, format!("{other:?}"))),
            Ok(Err(e)) if self.inner.handle.is_closed() => Err(SshError::ConnectionLost {
                host: self.inner.host.clone(),
                phase: Phase::StreamLocal(socket.to_string()),
                reason: e.to_string(),
            }),
            Ok(Err(e)) => Err(refused(false, e.to_string())),
        }
    }
}
