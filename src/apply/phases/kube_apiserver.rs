//! kube-apiserver: its certificates, kubeconfigs, encryption and audit config and unit
//! on the control-plane hosts, started together once etcd has quorum, then waited for
//! (unit `active`, then /readyz answering 200 on every host) before the controllers,
//! which talk to it, are started.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::future::join_all;

use crate::apply::{ApplyContext, PhaseResult};
use crate::kube::bootstrap;
use crate::pki::CertId;
use crate::plan::PhasePlan;

pub async fn run(plan: &PhasePlan, ctx: &ApplyContext<'_>) -> PhaseResult {
    super::prepare_start_wait(plan, ctx).await
}

/// Polls GET /readyz on each host's kube-apiserver (as the admin identity: readiness
/// needs an authenticated user, since anonymous auth is off) until 200 or the wait timeout.
pub async fn wait_ready(hosts: &[String], skip: &[String], ctx: &ApplyContext<'_>) -> anyhow::Result<()> {
    let deadline = Instant::now() + ctx.wait_timeout;
    let tasks = hosts.iter().filter(|h| !skip.contains(h)).map(|name| async move {
        let host = ctx.inventory.host(name).with_context(|| format!("{name}: not in the inventory"))?;
        let client = bootstrap::client_as(ctx.inventory, ctx.pki, host, &CertId::Admin, Duration::from_secs(5))?;
        let mut last;
        loop {
            match client.send(hyper::Method::GET, "/readyz", "text/plain", None).await {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) => last = r.describe(),
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() >= deadline {
                bail!("{name}: kube-apiserver is not ready ({}): {last}", client.url());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = ctx.cancel.cancelled() => bail!("interrupted while waiting for kube-apiserver on {name}"),
            }
        }
    });
    let errors: Vec<String> = join_all(tasks).await.into_iter().filter_map(|r| r.err()).map(|e| format!("{e:#}")).collect();
    if errors.is_empty() { Ok(()) } else { bail!("{}", errors.join("\n")) }
}
