//! Bootstrap RBAC: once kube-apiserver and the controllers run and before any kubelet
//! registers, the objects the cluster needs from the start (kube-apiserver's rights on
//! kubelets; the admin group bound to cluster-admin), server-side applied through the API
//! host's kube-apiserver. Retries while the apiserver warms up, until the wait timeout.
//!
//! Every phase of cluster objects (the phase table's `objects`: cluster-dns too) runs
//! here: its actions are all `ApplyObject`s on the API host, whatever the objects are.

use std::time::{Duration, Instant};

use crate::apply::events::Event;
use crate::apply::{ApplyContext, PhaseResult};
use crate::kube::bootstrap;
use crate::plan::action::Action;
use crate::plan::PhasePlan;

pub async fn run(plan: &PhasePlan, ctx: &ApplyContext<'_>) -> PhaseResult {
    let mut result = PhaseResult::default();
    let deadline = Instant::now() + ctx.wait_timeout;
    for h in &plan.hosts {
        let fail = |error: String, result: &mut PhaseResult| {
            ctx.reporter.emit(Event::HostError { phase: plan.phase, host: &h.host, error: error.clone() });
            result.failed.push((h.host.clone(), error));
        };
        let Some(host) = ctx.inventory.host(&h.host) else {
            fail(format!("{} is not in the inventory", h.host), &mut result);
            continue;
        };
        let client = match bootstrap::client(ctx.inventory, ctx.pki, host, Duration::from_secs(10)) {
            Ok(c) => c,
            Err(e) => {
                fail(format!("{e:#}"), &mut result);
                continue;
            }
        };
        for action in &h.actions {
            if ctx.cancel.is_cancelled() {
                break;
            }
            let Action::ApplyObject { object, .. } = action else {
                fail(format!("{} is not an API object", action.target()), &mut result);
                break;
            };
            let t = Instant::now();
            // Ctrl-C ends the retries at once (an apply already sent is atomic on the server).
            let applied = tokio::select! {
                r = bootstrap::apply(&client, object, deadline) => r,
                _ = ctx.cancel.cancelled() => break,
            };
            match applied {
                Ok(()) => {
                    result.done += 1;
                    let ms = t.elapsed().as_millis() as u64;
                    ctx.reporter.emit(Event::ActionDone { phase: plan.phase, host: &h.host, action, ms });
                }
                Err(e) => {
                    fail(format!("{e:#}"), &mut result);
                    break;
                }
            }
        }
    }
    result
}
