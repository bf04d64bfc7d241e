//! The phases, one file each, and the steps they share: run the hosts' actions in
//! parallel, then start/restart the units of every host together, then wait.

pub mod base;
pub mod bootstrap_rbac;
pub mod controllers;
pub mod etcd;
pub mod kube_apiserver;
pub mod kubelet;
pub mod node_prereqs;
pub mod preflight;
pub mod runtime;

use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use tokio::sync::Semaphore;

use super::events::Event;
use super::{ApplyContext, PhaseResult, run_action};
use crate::plan::action::{Action, Phase};
use crate::plan::{HostSteps, PhasePlan};

pub async fn run(plan: &PhasePlan, ctx: &ApplyContext<'_>) -> PhaseResult {
    match plan.phase {
        Phase::Preflight => preflight::run(plan, ctx).await,
        Phase::Base => base::run(plan, ctx).await,
        Phase::Etcd => etcd::run(plan, ctx).await,
        Phase::KubeApiserver => kube_apiserver::run(plan, ctx).await,
        Phase::Controllers => controllers::run(plan, ctx).await,
        Phase::BootstrapRbac => bootstrap_rbac::run(plan, ctx).await,
        Phase::Runtime => runtime::run(plan, ctx).await,
        Phase::Kubelet => kubelet::run(plan, ctx).await,
        // Cluster objects like bootstrap RBAC's: the same server-side apply through the API.
        Phase::ClusterDns => bootstrap_rbac::run(plan, ctx).await,
    }
}

/// Which of a host's actions a step runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Users, directories, files, daemon-reload, enable: everything but starts.
    Prepare,
    /// Start/restart (`--no-block`): run for all hosts at once, after every Prepare.
    Start,
}

impl Step {
    fn includes(self, a: &Action) -> bool {
        match self {
            Step::Prepare => !a.is_service_start(),
            Step::Start => a.is_service_start(),
        }
    }
}

/// A service phase: prepare every host, then start them together, then wait.
/// Hosts that failed to prepare are not started and not waited for.
pub async fn prepare_start_wait(plan: &PhasePlan, ctx: &ApplyContext<'_>) -> PhaseResult {
    if let Some(snapshot) = &plan.snapshot
        && let Err(e) = super::rollout::take_snapshot(plan.phase, snapshot, ctx).await
    {
        // Nothing of the phase ran: the cluster is as it was.
        let error = format!("{e:#} (nothing was changed in this phase; --no-backup skips the snapshot)");
        return PhaseResult { wait_failures: vec![error], ..Default::default() };
    }
    let mut result = run_step(plan.phase, &plan.hosts, Step::Prepare, ctx, &[]).await;
    if ctx.cancel.is_cancelled() {
        return result;
    }
    let skip: Vec<String> = result.failed.iter().map(|(h, _)| h.clone()).collect();
    let started = run_step(plan.phase, &plan.hosts, Step::Start, ctx, &skip).await;
    result.done += started.done;
    result.failed.extend(started.failed);
    if ctx.cancel.is_cancelled() {
        return result;
    }
    let skip: Vec<String> = result.failed.iter().map(|(h, _)| h.clone()).collect();
    for wait in &plan.waits {
        let t = Instant::now();
        ctx.reporter.emit(Event::WaitStart { phase: plan.phase, wait });
        let r = match wait {
            crate::plan::Wait::UnitsActive { hosts } => super::wait_units::wait(hosts, &skip, ctx).await,
            crate::plan::Wait::EtcdQuorum { members } => etcd::wait_quorum(members, &skip, ctx).await,
            crate::plan::Wait::ApiserverReady { hosts } => kube_apiserver::wait_ready(hosts, &skip, ctx).await,
        };
        match r {
            Ok(()) => ctx.reporter.emit(Event::WaitDone { phase: plan.phase, wait, ms: t.elapsed().as_millis() as u64 }),
            Err(e) => {
                result.wait_failures.push(format!("{e:#}"));
                return result;
            }
        }
    }
    if result.failed.is_empty() && !plan.stages.is_empty() {
        let rolled = super::rollout::run(plan.phase, &plan.stages, ctx).await;
        result.done += rolled.done;
        result.failed.extend(rolled.failed);
        result.wait_failures.extend(rolled.wait_failures);
    }
    result
}

/// Runs `step` of every host's actions: hosts in parallel (bounded by parallelism, except
/// starts, which are quick `--no-block` calls that must reach every member together),
/// each host's actions in order, stopping that host at its first error.
pub async fn run_step(
    phase: Phase,
    hosts: &[HostSteps],
    step: Step,
    ctx: &ApplyContext<'_>,
    skip: &[String],
) -> PhaseResult {
    let limit = if step == Step::Start { hosts.len().max(1) } else { ctx.parallelism.max(1) };
    let semaphore = Arc::new(Semaphore::new(limit));
    let tasks = hosts.iter().filter(|h| !skip.contains(&h.host)).map(|h| {
        let semaphore = semaphore.clone();
        async move {
            let _permit = semaphore.acquire().await;
            run_host(phase, h, step, ctx).await
        }
    });
    let mut result = PhaseResult::default();
    for (done, failure) in join_all(tasks).await {
        result.done += done;
        result.failed.extend(failure);
    }
    result
}

async fn run_host(phase: Phase, h: &HostSteps, step: Step, ctx: &ApplyContext<'_>) -> (usize, Option<(String, String)>) {
    let Some(session) = ctx.sessions.get(&h.host) else {
        let error = "no SSH session (preflight did not connect)".to_string();
        ctx.reporter.emit(Event::HostError { phase, host: &h.host, error: error.clone() });
        return (0, Some((h.host.clone(), error)));
    };
    let mut done = 0;
    for action in h.actions.iter().filter(|a| step.includes(a)) {
        // The safe point: nothing new starts after Ctrl-C; a step in flight finishes.
        if ctx.cancel.is_cancelled() {
            break;
        }
        let t = Instant::now();
        match run_action::run(session, action).await {
            Ok(()) => {
                done += 1;
                ctx.reporter.emit(Event::ActionDone { phase, host: &h.host, action, ms: t.elapsed().as_millis() as u64 });
            }
            Err(e) => {
                let error = format!("{e:#}");
                ctx.reporter.emit(Event::HostError { phase, host: &h.host, error: error.clone() });
                return (done, Some((h.host.clone(), error)));
            }
        }
    }
    (done, None)
}
