//! The node agents on control-plane and worker hosts: kubelet (config, kubeconfig,
//! serving certificate, kubelet.service) and kube-proxy (config, kubeconfig,
//! kube-proxy.service). Both belong to the Kubelet component: apply's node phase.

use super::builder::{HostBuilder, ROOT_0600, ROOT_0700};
use super::kubeconfig;
use super::paths;
use super::{HostCx, RenderCx};
use crate::desired::Component;
use crate::pki::CertId;

pub const KUBELET_UNIT: &str = "kubelet.service";
pub const KUBELET_CONFIG_TEMPLATE: &str = "kubelet-config.yaml";
pub const KUBE_PROXY_UNIT: &str = "kube-proxy.service";
pub const KUBE_PROXY_CONFIG_TEMPLATE: &str = "kube-proxy-config.yaml";

pub(super) fn add(cx: &RenderCx, h: &HostCx, b: &mut HostBuilder) -> anyhow::Result<()> {
    let c = Component::Kubelet;
    let id = CertId::Kubelet(h.host.name.clone());
    let server = &cx.base.cluster.api_server_url;

    b.dir(paths::KUBELET_DIR, ROOT_0700, c);
    b.dir(paths::KUBELET_PKI_DIR, ROOT_0700, c);
    // The node's certificate is both its client identity (system:node:<name>) and the
    // kubelet's serving certificate, which the apiserver verifies against the cluster CA
    // (--kubelet-certificate-authority).
    b.cert(cx.pki, &id, paths::KUBELET_CRT, ROOT_0600, Some((paths::KUBELET_KEY, ROOT_0600)), c)?;
    let conf = kubeconfig::render(cx, h, &id, &format!("system:node:{}", h.host.name), server)?;
    b.secret(paths::KUBELET_KUBECONFIG, ROOT_0600, &conf, c)?;
    b.text(paths::KUBELET_CONFIG, ROOT_0600, cx.render(h, KUBELET_CONFIG_TEMPLATE)?, c)?;
    let unit = cx.render(h, KUBELET_UNIT)?;
    b.unit(
        KUBELET_UNIT,
        unit,
        c,
        &[paths::CA_CRT, paths::KUBELET_CRT, paths::KUBELET_KEY, paths::KUBELET_KUBECONFIG, paths::KUBELET_CONFIG],
    )?;

    b.dir(paths::KUBE_PROXY_DIR, ROOT_0700, c);
    let conf = kubeconfig::render(cx, h, &CertId::KubeProxy, "system:kube-proxy", server)?;
    b.secret(paths::KUBE_PROXY_KUBECONFIG, ROOT_0600, &conf, c)?;
    b.text(paths::KUBE_PROXY_CONFIG, ROOT_0600, cx.render(h, KUBE_PROXY_CONFIG_TEMPLATE)?, c)?;
    let unit = cx.render(h, KUBE_PROXY_UNIT)?;
    b.unit(KUBE_PROXY_UNIT, unit, c, &[paths::KUBE_PROXY_KUBECONFIG, paths::KUBE_PROXY_CONFIG])
}
