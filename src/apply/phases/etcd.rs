//! etcd: every member's files first, then every member started/restarted TOGETHER,
//! then a wait for a healthy quorum before anything that needs etcd starts.
//!
//! Why together: etcd's unit is Type=notify and a member reports ready only once the
//! cluster has quorum, so a blocking `systemctl start` on the first member would wait
//! for members that have not been started yet. Starts are `--no-block` and issued to
//! all members at once (not bounded by ssh.parallelism).

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::apply::{ApplyContext, PhaseResult};
use crate::plan::PhasePlan;

pub async fn run(plan: &PhasePlan, ctx: &ApplyContext<'_>) -> PhaseResult {
    super::prepare_start_wait(plan, ctx).await
}

/// Waits until every member (except the hosts that already failed) serves clients.
pub async fn wait_quorum(members: &[String], skip: &[String], ctx: &ApplyContext<'_>) -> anyhow::Result<()> {
    let mut addrs = Vec::new();
    for m in members.iter().filter(|m| !skip.contains(m)) {
        let Some(host) = ctx.inventory.hosts.iter().find(|h| &h.name == m) else {
            bail!("etcd member {m} is not in the inventory");
        };
        addrs.push((m.clone(), std::net::SocketAddr::new(host.address, ctx.inventory.etcd.client_port)));
    }
    let deadline = Instant::now() + ctx.wait_timeout;
    loop {
        let mut down = Vec::new();
        for (name, addr) in &addrs {
            let ok = matches!(
                tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await,
                Ok(Ok(_))
            );
            if !ok {
                down.push(format!("{name} ({addr})"));
            }
        }
        if down.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "etcd did not reach quorum within {}s: no answer from {}",
                ctx.wait_timeout.as_secs(),
                down.join(", ")
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            _ = ctx.cancel.cancelled() => bail!("interrupted while waiting for etcd quorum"),
        }
    }
}
