//! kube-controller-manager and kube-scheduler: independent of each other, both need
//! the apiserver, so they share one phase after it.

use crate::apply::{ApplyContext, PhaseResult};
use crate::plan::PhasePlan;

pub async fn run(plan: &PhasePlan, ctx: &ApplyContext<'_>) -> PhaseResult {
    super::prepare_start_wait(plan, ctx).await
}
