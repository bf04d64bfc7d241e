//! kube-controller-manager on a control-plane host: the cluster CA key (it signs kubelet
//! and other CSRs), its kubeconfig and kube-controller-manager.service.

use super::builder::{HostBuilder, ROOT_0600};
use super::kubeconfig;
use super::paths;
use super::{HostCx, RenderCx};
use crate::desired::Component;
use crate::pki::CertId;

pub const UNIT: &str = "kube-controller-manager.service";

pub(super) fn add(cx: &RenderCx, h: &HostCx, b: &mut HostBuilder) -> anyhow::Result<()> {
    let c = Component::KubeControllerManager;
    b.cert(cx.pki, &CertId::ClusterCa, paths::CA_CRT, ROOT_0600, Some((paths::CA_KEY, ROOT_0600)), c)?;
    let conf = kubeconfig::render(
        cx,
        h,
        &CertId::ControllerManager,
        "system:kube-controller-manager",
        &h.hctx.local_api_server_url,
    )?;
    b.secret(paths::CONTROLLER_MANAGER_CONF, ROOT_0600, &conf, c)?;
    let unit = cx.render(h, UNIT)?;
    b.unit(
        UNIT,
        unit,
        c,
        &[paths::CA_CRT, paths::CA_KEY, paths::SA_KEY, paths::FRONT_PROXY_CA_CRT, paths::CONTROLLER_MANAGER_CONF],
    )
}
