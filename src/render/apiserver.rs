//! kube-apiserver on a control-plane host: its certificates, the service-account keys,
//! the security configuration files and kube-apiserver.service.

use super::builder::{HostBuilder, ROOT_0600, ROOT_0644, ROOT_0700};
use super::paths;
use super::security_files;
use super::{HostCx, RenderCx};
use crate::desired::Component;
use crate::pki::CertId;

pub const UNIT: &str = "kube-apiserver.service";

pub(super) fn add(cx: &RenderCx, h: &HostCx, b: &mut HostBuilder) -> anyhow::Result<()> {
    let c = Component::KubeApiserver;
    let pki = cx.pki;
    let key = |p| Some((p, ROOT_0600));
    b.cert(pki, &CertId::ApiServer, paths::APISERVER_CRT, ROOT_0600, key(paths::APISERVER_KEY), c)?;
    b.cert(
        pki,
        &CertId::ApiServerKubeletClient,
        paths::APISERVER_KUBELET_CLIENT_CRT,
        ROOT_0600,
        key(paths::APISERVER_KUBELET_CLIENT_KEY),
        c,
    )?;
    b.cert(
        pki,
        &CertId::ApiServerEtcdClient,
        paths::APISERVER_ETCD_CLIENT_CRT,
        ROOT_0600,
        key(paths::APISERVER_ETCD_CLIENT_KEY),
        c,
    )?;
    b.cert(pki, &CertId::FrontProxyCa, paths::FRONT_PROXY_CA_CRT, ROOT_0600, None, c)?;
    b.cert(
        pki,
        &CertId::FrontProxyClient,
        paths::FRONT_PROXY_CLIENT_CRT,
        ROOT_0600,
        key(paths::FRONT_PROXY_CLIENT_KEY),
        c,
    )?;
    // The etcd CA again, root-owned under /etc/kubernetes/pki: the apiserver verifies etcd
    // with it (CIS 1.2.26 / 2.7: a CA separate from the cluster CA).
    b.dir(paths::PKI_ETCD_DIR, ROOT_0700, c);
    b.cert(pki, &CertId::EtcdCa, paths::ETCD_CA_FOR_APISERVER, ROOT_0600, None, c)?;
    // The controller-manager signs tokens with sa.key too; it is installed in this (earlier) phase.
    b.text(paths::SA_PUB, ROOT_0644, pki.service_account.public_pem.clone(), c)?;
    b.secret(paths::SA_KEY, ROOT_0600, pki.service_account.private_pem.as_str(), c)?;

    security_files::add(cx, h, b)?;

    let unit = cx.render(h, UNIT)?;
    let mut watches = vec![
        paths::CA_CRT,
        paths::APISERVER_CRT,
        paths::APISERVER_KEY,
        paths::APISERVER_KUBELET_CLIENT_CRT,
        paths::APISERVER_KUBELET_CLIENT_KEY,
        paths::APISERVER_ETCD_CLIENT_CRT,
        paths::APISERVER_ETCD_CLIENT_KEY,
        paths::FRONT_PROXY_CA_CRT,
        paths::FRONT_PROXY_CLIENT_CRT,
        paths::FRONT_PROXY_CLIENT_KEY,
        paths::ETCD_CA_FOR_APISERVER,
        paths::SA_PUB,
        paths::SA_KEY,
        paths::ENCRYPTION_CONFIG,
        paths::ADMISSION_CONFIG,
        paths::EVENT_RATE_LIMIT_CONFIG,
    ];
    if cx.inv.security.audit_log {
        watches.push(paths::AUDIT_POLICY);
    }
    b.unit(UNIT, unit, c, &watches)
}
