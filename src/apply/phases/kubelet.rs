//! kubelet: last, once the control plane answers (it registers its node with it).
//! Present only when the desired state has kubelets.

use crate::apply::{ApplyContext, PhaseResult};
use crate::plan::PhasePlan;

pub async fn run(plan: &PhasePlan, ctx: &ApplyContext<'_>) -> PhaseResult {
    super::prepare_start_wait(plan, ctx).await
}
