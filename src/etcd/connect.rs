//! One mTLS client per member, and deadlines around every call.
//!
//! Each client talks to exactly one member (no balancing): health must say which member
//! answered, and backup must know which member it streams from. etcd-client connects
//! lazily, and a member that accepts TCP but never answers (a SIGSTOPped or wedged etcd)
//! leaves a request waiting forever inside tonic's balancer, whose own timeouts do not
//! apply there; so every call is wrapped in `within`, which enforces a deadline itself.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use tokio::time::Instant;

use super::credentials::ClientCredentials;
use super::explain::{Problem, ProblemKind, explain};
use super::members::Member;

/// A client bound to one member.
pub struct MemberClient {
    pub member: Member,
    pub client: Client,
}

/// Builds the client for `member`; no network traffic happens until the first call.
pub async fn connect(member: &Member, creds: &ClientCredentials, timeout: Duration) -> Result<MemberClient, Problem> {
    let options = ConnectOptions::new().with_tls(creds.tls()).with_connect_timeout(timeout).with_timeout(timeout);
    let connecting = Client::connect([member.client_url.as_str()], Some(options));
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(client)) => Ok(MemberClient { member: member.clone(), client }),
        Ok(Err(e)) => Err(explain(&e, &member.client_url)),
        Err(_) => Err(Problem::timeout(timeout, "connecting")),
    }
}

/// Runs one etcd call, failing with a plain-words `Problem` when it errors or when
/// `deadline` passes first. `doing` completes "no answer within 5s while ...".
pub async fn within<T, F>(
    deadline: Instant,
    total: Duration,
    doing: &str,
    endpoint: &str,
    call: F,
) -> Result<T, Problem>
where
    F: Future<Output = Result<T, etcd_client::Error>>,
{
    match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            let p = explain(&e, endpoint);
            // tonic's own per-request timeout reads "Timeout expired": say it the same way.
            if p.kind == ProblemKind::Timeout { Err(Problem::timeout(total, doing)) } else { Err(p) }
        }
        Err(_) => Err(Problem::timeout(total, doing)),
    }
}
