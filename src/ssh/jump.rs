//! Reaching a target through a bastion: SSH to the bastion, open a direct-tcpip channel
//! to the target's SSH port, and run the target's SSH session over that channel.
//!
//! The bastion is held to the same standard as the target (host key checked against the
//! same files with the same policy), because a forged bastion could read nothing of the
//! inner session but could still make us talk to a host of its choosing.

use russh::ChannelOpenFailure;
use tokio::time::timeout_at;

use super::connect::{self, Opened, Peer, Shared};
use super::dial::{self, Dial};
use super::error::{Phase, SshError};
use super::target::{JumpHost, Target};

/// Both hops: the target's connection and the bastion's (which must outlive it).
pub(crate) struct Hops {
    pub target: Opened,
    pub bastion: Opened,
}

pub(crate) async fn connect(target: &Target, jump: &JumpHost, shared: &mut Shared<'_>) -> Result<Hops, SshError> {
    let bastion_peer = Peer {
        host: format!("{} (jump host {jump})", target.name),
        address: jump.address.clone(),
        port: jump.port,
        user: jump.user.clone(),
    };
    let endpoint = bastion_peer.endpoint();
    let dial = Dial { host: &bastion_peer.host, address: &jump.address, port: jump.port, endpoint: &endpoint };
    let stream = dial::tcp(&dial, shared.deadline, target.connect_timeout).await?;
    let bastion = connect::open(&bastion_peer, stream, shared).await?;

    let target_peer = Peer::target(target);
    let channel = match timeout_at(
        shared.deadline,
        bastion.handle.channel_open_direct_tcpip(target.address.clone(), u32::from(target.port), "127.0.0.1", 0),
    )
    .await
    {
        Err(_) => {
            return Err(SshError::Timeout {
                host: target.name.clone(),
                endpoint: target_peer.endpoint(),
                phase: Phase::JumpChannel,
                after: target.connect_timeout,
            });
        }
        Ok(Err(e)) => {
            return Err(SshError::Unreachable {
                host: target.name.clone(),
                endpoint: format!("{} via jump host {jump}", target_peer.endpoint()),
                reason: explain_open_failure(&e),
            });
        }
        Ok(Ok(channel)) => channel,
    };
    let opened = connect::open(&target_peer, channel.into_stream(), shared).await?;
    Ok(Hops { target: opened, bastion })
}

fn explain_open_failure(e: &russh::Error) -> String {
    match e {
        russh::Error::ChannelOpenFailure(ChannelOpenFailure::ConnectFailed) => {
            "the jump host could not connect to it (refused, unreachable or timed out from the jump host)".to_string()
        }
        russh::Error::ChannelOpenFailure(ChannelOpenFailure::AdministrativelyProhibited) => {
            "the jump host forbids forwarding (sshd AllowTcpForwarding / PermitOpen)".to_string()
        }
        russh::Error::ChannelOpenFailure(other) => format!("the jump host refused the forwarded channel: {other:?}"),
        other => format!("the jump host could not forward the connection: {other}"),
    }
}
