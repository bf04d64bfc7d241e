//! kube-scheduler on a control-plane host: its kubeconfig, its KubeSchedulerConfiguration
//! and kube-scheduler.service.

use super::builder::{HostBuilder, ROOT_0600};
use super::kubeconfig;
use super::paths;
use super::{HostCx, RenderCx};
use crate::desired::Component;
use crate::pki::CertId;

pub const UNIT: &str = "kube-scheduler.service";
pub const CONFIG_TEMPLATE: &str = "kube-scheduler.yaml";

pub(super) fn add(cx: &RenderCx, h: &HostCx, b: &mut HostBuilder) -> anyhow::Result<()> {
    let c = Component::KubeScheduler;
    let conf = kubeconfig::render(cx, h, &CertId::Scheduler, "system:kube-scheduler", &h.hctx.local_api_server_url)?;
    b.secret(paths::SCHEDULER_CONF, ROOT_0600, &conf, c)?;
    b.text(paths::SCHEDULER_CONFIG, ROOT_0600, cx.render(h, CONFIG_TEMPLATE)?, c)?;
    let unit = cx.render(h, UNIT)?;
    b.unit(UNIT, unit, c, &[paths::CA_CRT, paths::FRONT_PROXY_CA_CRT, paths::SCHEDULER_CONF, paths::SCHEDULER_CONFIG])
}
