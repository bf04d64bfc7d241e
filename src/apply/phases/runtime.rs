//! runtime: containerd, the kernel prerequisites and the pod routes of every kubelet
//! host, before the kubelets (which need the runtime's socket).

use crate::apply::{ApplyContext, PhaseResult};
use crate::plan::PhasePlan;

pub async fn run(plan: &PhasePlan, ctx: &ApplyContext<'_>) -> PhaseResult {
    super::prepare_start_wait(plan, ctx).await
}
