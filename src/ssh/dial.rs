//! Opening the TCP connection, with errors that say why a host cannot be reached.

use std::io;

use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::error::{Phase, SshError};

/// Who we are dialing, for messages.
pub(crate) struct Dial<'a> {
    /// The host name used in errors (inventory name, or "name (jump host ...)").
    pub host: &'a str,
    pub address: &'a str,
    pub port: u16,
    /// `user@address:port`, for messages.
    pub endpoint: &'a str,
}

/// Resolves and connects, trying each resolved address in turn, all before `deadline`.
pub(crate) async fn tcp(d: &Dial<'_>, deadline: Instant, limit: std::time::Duration) -> Result<TcpStream, SshError> {
    let timeout = || SshError::Timeout {
        host: d.host.to_string(),
        endpoint: d.endpoint.to_string(),
        phase: Phase::TcpConnect,
        after: limit,
    };
    let unreachable = |reason: String| SshError::Unreachable {
        host: d.host.to_string(),
        endpoint: d.endpoint.to_string(),
        reason,
    };
    let addrs: Vec<_> = match timeout_at(deadline, tokio::net::lookup_host((d.address, d.port))).await {
        Err(_) => return Err(timeout()),
        Ok(Err(e)) => return Err(unreachable(format!("cannot resolve {:?}: {e}", d.address))),
        Ok(Ok(addrs)) => addrs.collect(),
    };
    if addrs.is_empty() {
        return Err(unreachable(format!("{:?} resolves to no address", d.address)));
    }
    let mut reasons = Vec::new();
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(timeout()),
            Ok(Ok(stream)) => {
                // Commands are small request/response exchanges: latency beats batching.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => reasons.push(explain(&e, d.port)),
        }
    }
    reasons.dedup();
    Err(unreachable(reasons.join("; ")))
}

fn explain(e: &io::Error, port: u16) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => format!("connection refused (is sshd running and listening on port {port}?)"),
        io::ErrorKind::TimedOut => "connection timed out".to_string(),
        io::ErrorKind::HostUnreachable => "no route to host".to_string(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".to_string(),
        io::ErrorKind::AddrNotAvailable => format!("address not available: {e}"),
        _ => e.to_string(),
    }
}
