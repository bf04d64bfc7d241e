//! kube-apiserver: its certificates, kubeconfigs, encryption and audit config and unit
//! on the control-plane hosts, started together once etcd has quorum, then waited for
//! (`active` on every host) before the controllers, which talk to it, are started.

use crate::apply::{ApplyContext, PhaseResult};
use crate::plan::PhasePlan;

pub async fn run(plan: &PhasePlan, ctx: &ApplyContext<'_>) -> PhaseResult {
    super::prepare_start_wait(plan, ctx).await
}
