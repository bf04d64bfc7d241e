//! The plan: what apply will do, as data.
//!
//! `plan = diff(desired, facts)`: per phase, per host, ordered actions, then the waits
//! that gate the next phase. `provision plan` prints it; `provision apply` computes it
//! once and executes exactly it; `provision reset` builds a reset plan the same way.

pub mod action;
pub mod diff;
pub mod facts;
pub mod pipeline;
pub mod render_text;
pub mod reset;

use serde::Serialize;

pub use action::{Action, Phase, Wait};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanKind {
    Apply,
    Reset,
}

/// The whole plan. Its JSON form is the `--output json` of `provision plan`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub kind: PlanKind,
    pub cluster: String,
    /// Every inventory host, with what preflight learnt (or why it failed).
    pub hosts: Vec<HostReport>,
    /// The phases the desired state has, in order (empty ones included: stable shape).
    pub phases: Vec<PhasePlan>,
    /// Number of actions (waits excluded): 0 means the hosts are up to date.
    pub changes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub address: String,
    pub os: Option<String>,
    pub arch: Option<String>,
    pub systemd: Option<u32>,
    /// Why the host cannot be worked on (unreachable, not root, port taken, ...).
    /// A plan with any failed host is an error: apply stops after preflight.
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhasePlan {
    pub phase: Phase,
    /// Hosts that have actions in this phase, in inventory order.
    pub hosts: Vec<HostSteps>,
    pub waits: Vec<Wait>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostSteps {
    pub host: String,
    pub actions: Vec<Action>,
}

impl Plan {
    pub fn failed_hosts(&self) -> Vec<&str> {
        self.hosts.iter().filter(|h| !h.problems.is_empty()).map(|h| h.host.as_str()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.changes == 0 && self.phases.iter().all(|p| p.waits.is_empty())
    }

    /// The actions of one host, phase by phase (for the per-host text view).
    pub fn host_actions<'a>(&'a self, host: &'a str) -> impl Iterator<Item = (Phase, &'a Action)> + 'a {
        self.phases.iter().flat_map(move |p| {
            p.hosts.iter().filter(move |h| h.host == host).flat_map(move |h| h.actions.iter().map(move |a| (p.phase, a)))
        })
    }

    pub(crate) fn count_changes(&mut self) {
        self.changes = self.phases.iter().flat_map(|p| &p.hosts).map(|h| h.actions.len()).sum();
    }
}
