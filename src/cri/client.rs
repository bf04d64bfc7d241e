//! CRI gRPC (tonic, HTTP/2) over an SSH `direct-streamlocal` channel to the runtime's
//! socket. The channel is opened first, so that an sshd refusing it is a typed error the
//! caller can fall back on; tonic's connector then hands out that one stream (a
//! reconnect, which one short exchange never needs, fails).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use tonic::transport::{Endpoint, Uri};

use super::answer::CriAnswer;
use super::proto::{self, StatusRequest, StatusResponse, VersionRequest, VersionResponse};
use crate::error_text::one_line;
use crate::ssh::{Session, SshError};

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// No channel to the socket (sshd forbids it, the socket is missing or not the login
    /// user's): CRI was not asked at all.
    #[error(transparent)]
    NoChannel(#[from] SshError),
    /// The channel opened, but no HTTP/2 conversation came about over it.
    #[error("no gRPC connection over the SSH channel to the socket: {0}")]
    NoConnection(String),
    #[error("no answer to {call} within {}s", after.as_secs_f64())]
    Timeout { call: &'static str, after: Duration },
    /// The runtime answered with a gRPC error (e.g. Unimplemented: the CRI plugin is off).
    #[error("{call} answered {code:?}: {message}")]
    Status { call: &'static str, code: tonic::Code, message: String },
}

/// Version, then Status, of the runtime behind `socket` on the session's host; each
/// step within `limit`.
pub async fn ask(session: &Session, socket: &str, limit: Duration) -> Result<CriAnswer, CriError> {
    let stream = session.open_streamlocal(socket, limit).await?;
    let once = Arc::new(Mutex::new(Some(stream)));
    let connector = tower::service_fn(move |_: Uri| {
        let taken = once.lock().ok().and_then(|mut s| s.take());
        async move {
            taken
                .map(TokioIo::new)
                .ok_or_else(|| std::io::Error::other("the SSH channel to the socket was used already"))
        }
    });
    // The authority is never resolved (the connector ignores it); gRPC only needs one.
    let channel = Endpoint::from_static("http://cri.sock")
        .connect_timeout(limit)
        .timeout(limit)
        .connect_with_connector(connector)
        .await
        .map_err(|e| CriError::NoConnection(one_line(&e)))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    let version: VersionResponse =
        unary(&mut grpc, proto::VERSION_PATH, "Version", VersionRequest { version: proto::API_VERSION.into() }, limit)
            .await?;
    let status: StatusResponse =
        unary(&mut grpc, proto::STATUS_PATH, "Status", StatusRequest { verbose: false }, limit).await?;
    Ok(CriAnswer::from_grpc(version, status))
}

async fn unary<Req, Resp>(
    grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
    path: &'static str,
    call: &'static str,
    request: Req,
    limit: Duration,
) -> Result<Resp, CriError>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let exchange = async {
        grpc.ready().await.map_err(|e| CriError::NoConnection(one_line(&e)))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        grpc.unary(tonic::Request::new(request), PathAndQuery::from_static(path), codec)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| CriError::Status { call, code: s.code(), message: s.message().to_string() })
    };
    tokio::time::timeout(limit, exchange).await.map_err(|_| CriError::Timeout { call, after: limit })?
}
