//! base: system users, directories and the files every component shares (CA
//! certificates). No services: nothing to start or wait for.

use crate::apply::{ApplyContext, PhaseResult};
use crate::plan::PhasePlan;

pub async fn run(plan: &PhasePlan, ctx: &ApplyContext<'_>) -> PhaseResult {
    // Users come first in each host's list: directories and files are owned by them.
    super::prepare_start_wait(plan, ctx).await
}
