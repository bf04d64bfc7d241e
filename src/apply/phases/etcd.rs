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
use crate::etcd::Member;
use crate::etcd::credentials::ClientCredentials;
use crate::etcd::health::{self, HealthOptions};
use crate::plan::PhasePlan;

pub async fn run(plan: &PhasePlan, ctx: &ApplyContext<'_>) -> PhaseResult {
    super::prepare_start_wait(plan, ctx).await
}

/// Waits until every member (except hosts that already failed) serves a linearizable
/// read over mTLS with no alarm: the etcd helper's health probe, the same check as
/// `provision etcd health`.
pub async fn wait_quorum(members: &[String], skip: &[String], ctx: &ApplyContext<'_>) -> anyhow::Result<()> {
    let wanted: Vec<Member> = crate::etcd::members(ctx.inventory)
        .into_iter()
        .filter(|m| members.contains(&m.name) && !skip.contains(&m.name))
        .collect();
    if wanted.is_empty() {
        bail!("no etcd member left to wait for");
    }
    let creds = ClientCredentials::from_pki(ctx.pki, &ctx.state.pki_dir())?;
    let opts = HealthOptions::for_cluster(ctx.inventory, Duration::from_secs(3));
    let deadline = Instant::now() + ctx.wait_timeout;
    loop {
        let health = health::check(&wanted, &creds, opts).await;
        let sick: Vec<String> = health
            .members
            .iter()
            .filter(|m| !m.healthy)
            .map(|m| format!("{}: {}", m.name, m.problems.join("; ")))
            .collect();
        if health.quorum && sick.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "etcd is not healthy after {}s: {}{}",
                ctx.wait_timeout.as_secs(),
                health.summary(),
                if sick.is_empty() { String::new() } else { format!(" ({})", sick.join(", ")) }
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            _ = ctx.cancel.cancelled() => bail!("interrupted while waiting for etcd quorum"),
        }
    }
}
