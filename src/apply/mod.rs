//! apply: executes a plan, exactly that plan, phase by phase.
//!
//! Hosts run in parallel inside a phase (bounded by `ssh.parallelism`); a host that
//! fails stops there while the others finish the phase; the run then stops before the
//! next phase. Ctrl-C lets the steps in flight finish (atomic writes complete) and
//! stops; the next plan picks up where it left off.

pub mod cancel;
pub mod events;
pub mod phases;
pub mod rollout;
pub mod run_action;
pub mod wait_units;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::inventory::Inventory;
use crate::pki::Pki;
use crate::plan::{Phase, Plan};
use crate::ssh::Session;
use crate::state::StateDir;
pub use cancel::Cancel;
use events::{Event, Reporter};

/// Everything a phase needs besides its part of the plan.
pub struct ApplyContext<'a> {
    pub sessions: &'a BTreeMap<String, Session>,
    pub inventory: &'a Inventory,
    pub state: &'a StateDir,
    /// The etcd client certificate for the quorum wait comes from here.
    pub pki: &'a Pki,
    pub reporter: &'a Reporter,
    pub cancel: &'a Cancel,
    /// Hosts worked on at once.
    pub parallelism: usize,
    /// How long a phase waits for its units / etcd quorum.
    pub wait_timeout: Duration,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub changes_made: usize,
    /// Host and the reason, in the order they failed.
    pub failed_hosts: Vec<(String, String)>,
    pub interrupted: bool,
    /// A wait (etcd quorum, units active) failed: the phase is not healthy.
    pub wait_failures: Vec<String>,
    /// The index (in `plan.phases`) of the phase the run stopped in, when it stopped.
    pub stopped_in: Option<usize>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failed_hosts.is_empty() && !self.interrupted && self.wait_failures.is_empty()
    }
}

/// What one phase did.
#[derive(Debug, Default)]
pub struct PhaseResult {
    pub done: usize,
    pub failed: Vec<(String, String)>,
    pub wait_failures: Vec<String>,
}

pub async fn execute(plan: &Plan, ctx: &ApplyContext<'_>) -> Outcome {
    let mut outcome = Outcome::default();
    // Hosts that failed preflight (unreachable, not root, ...) are reported first; the
    // others still run the preflight phase, and the run stops after it.
    for h in &plan.hosts {
        if !h.problems.is_empty() {
            let error = h.problems.join("; ");
            ctx.reporter.emit(Event::HostError { phase: Phase::Preflight, host: &h.host, error: error.clone() });
            outcome.failed_hosts.push((h.host.clone(), error));
        }
    }
    for (index, phase_plan) in plan.phases.iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            outcome.interrupted = true;
            break;
        }
        let started = Instant::now();
        let hosts: Vec<&str> = phase_plan.hosts.iter().map(|h| h.host.as_str()).collect();
        let actions = phase_plan.hosts.iter().map(|h| h.actions.len()).sum::<usize>()
            + phase_plan.stages.iter().map(|s| s.actions.len()).sum::<usize>();
        ctx.reporter.emit(Event::PhaseStart { phase: phase_plan.phase, hosts, actions });
        let result = phases::run(phase_plan, ctx).await;
        outcome.changes_made += result.done;
        let failed: Vec<&str> = result.failed.iter().map(|(h, _)| h.as_str()).collect();
        let ok = failed.is_empty() && result.wait_failures.is_empty();
        ctx.reporter.emit(Event::PhaseEnd {
            phase: phase_plan.phase,
            ok,
            failed_hosts: failed,
            ms: started.elapsed().as_millis() as u64,
        });
        outcome.failed_hosts.extend(result.failed);
        outcome.wait_failures.extend(result.wait_failures);
        if ctx.cancel.is_cancelled() {
            outcome.interrupted = true;
            outcome.stopped_in = Some(index);
            break;
        }
        if !outcome.ok() {
            outcome.stopped_in = Some(index);
            break;
        }
    }
    outcome
}
