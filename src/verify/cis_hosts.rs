//! The CIS Kubernetes Benchmark checks (src/cis, the same code that checks rendered
//! output) run on what the hosts really run: flags from /proc/<pid>/cmdline, modes and
//! owners from stat. One result per benchmark id, over every host that should run the
//! daemon the check is about; a daemon that should run but does not fails the check.

use std::collections::BTreeMap;

use super::host_facts::{HostFacts, expected_units, unit_of};
use super::report::{CheckResult, HostOutcome};
use crate::cis::{self, HostView};
use crate::inventory::{Inventory, KubernetesSource};

/// Facts per host (inventory order), or why they could not be read.
pub type Gathered = Vec<(String, Result<HostFacts, String>)>;

pub fn run(inv: &Inventory, gathered: &Gathered) -> Vec<CheckResult> {
    let views: BTreeMap<&str, Result<HostView, String>> = gathered
        .iter()
        .map(|(host, facts)| {
            let view = facts.as_ref().map_err(Clone::clone).and_then(|f| f.view().map_err(|e| format!("{e:#}")));
            (host.as_str(), view)
        })
        .collect();
    let mut results = Vec::new();
    let mut not_applicable = Vec::new();
    for check in cis::catalog() {
        let Some(unit) = unit_of(check.process) else {
            continue;
        };
        let hosts: Vec<&str> =
            inv.hosts.iter().filter(|h| expected_units(inv, h).contains(&unit)).map(|h| h.name.as_str()).collect();
        if hosts.is_empty() {
            not_applicable.push(check.id);
            continue;
        }
        let outcomes = hosts
            .iter()
            .map(|&host| match views.get(host) {
                Some(Ok(view)) if view.runs(check.process) => {
                    let r = check.evaluate(view);
                    if r.passed { HostOutcome::pass(host, r.evidence) } else { HostOutcome::fail(host, r.evidence) }
                }
                Some(Ok(_)) => HostOutcome::fail(
                    host,
                    format!("{} is not running ({unit}), so its command line cannot be checked", check.process),
                ),
                Some(Err(e)) => HostOutcome::fail(host, format!("could not read the host: {e}")),
                None => HostOutcome::fail(host, "not reached"),
            })
            .collect();
        let title = if check.manual { format!("{} (benchmark: manual)", check.title) } else { check.title.to_string() };
        results.push(CheckResult::from_hosts(&format!("cis.{}", check.id), &title, outcomes));
    }
    if !not_applicable.is_empty() {
        let why = if inv.artifacts.kubernetes == KubernetesSource::Skip {
            "skipped: no Kubernetes components on this cluster (artifacts.kubernetes = skip)".to_string()
        } else {
            "skipped: no host runs the daemons these checks are about".to_string()
        };
        results.push(
            CheckResult::skipped("cis", "CIS checks of components this cluster does not run", why)
                .with_target(compact_ids(&not_applicable)),
        );
    }
    results
}

/// "1.1.1-1.1.6, 1.1.13-1.4.2, 4.1.1-4.2.14": consecutive catalog entries folded.
fn compact_ids(ids: &[&str]) -> String {
    let catalog: Vec<&str> = cis::catalog().iter().map(|c| c.id).collect();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for id in ids {
        let Some(i) = catalog.iter().position(|c| c == id) else {
            continue;
        };
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == i => *end = i,
            _ => runs.push((i, i)),
        }
    }
    runs.iter()
        .map(|&(a, b)| if a == b { catalog[a].to_string() } else { format!("{}-{}", catalog[a], catalog[b]) })
        .collect::<Vec<_>>()
        .join(", ")
}
