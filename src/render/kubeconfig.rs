//! Kubeconfig files, all from the one `kubeconfig.yaml` template. Client certificate and
//! key are embedded (the files are secrets, 0600).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;

use super::builder::{HostBuilder, ROOT_0600, describe};
use super::paths;
use super::{HostCx, RenderCx};
use crate::desired::Component;
use crate::pki::CertId;

pub const TEMPLATE: &str = "kubeconfig.yaml";

#[derive(Serialize)]
struct KubeconfigCtx<'a> {
    cluster_name: &'a str,
    server: &'a str,
    user: &'a str,
    certificate_authority_data: String,
    client_certificate_data: String,
    client_key_data: String,
}

/// A kubeconfig for `id`, naming the user `user`, talking to `server`.
pub(super) fn render(cx: &RenderCx, h: &HostCx, id: &CertId, user: &str, server: &str) -> anyhow::Result<String> {
    let ca = cx.pki.get(&CertId::ClusterCa).ok_or_else(|| anyhow::anyhow!("the PKI holds no cluster CA"))?;
    let leaf = cx.pki.get(id).ok_or_else(|| anyhow::anyhow!("the PKI holds no {} certificate", describe(id)))?;
    let kc = KubeconfigCtx {
        cluster_name: &cx.inv.cluster.name,
        server,
        user,
        certificate_authority_data: B64.encode(ca.cert_pem.as_bytes()),
        client_certificate_data: B64.encode(leaf.cert_pem.as_bytes()),
        client_key_data: B64.encode(leaf.key_pem.as_bytes()),
    };
    // Secret material goes into a copy of the host context used for this one render only.
    let mut ctx = h.ctx.clone();
    ctx.insert("kubeconfig", &kc);
    cx.templates.render_secret(TEMPLATE, &ctx)
}

/// admin.conf (group provision:cluster-admins) on control-plane hosts, pointing at the
/// cluster's API endpoint.
pub(super) fn add_admin(cx: &RenderCx, h: &HostCx, b: &mut HostBuilder) -> anyhow::Result<()> {
    let server = &cx.base.cluster.api_server_url;
    let admin = render(cx, h, &CertId::Admin, "admin", server)?;
    b.secret(paths::ADMIN_CONF, ROOT_0600, &admin, Component::KubeApiserver)
}

/// super-admin.conf (system:masters, break-glass), pointing at the API endpoint. Not
/// installed on hosts: nothing there uses it, and a copy on every control-plane host
/// is an identity RBAC cannot revoke. It is kept in the operator's state directory.
pub(super) fn super_admin(cx: &RenderCx, h: &HostCx) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let server = &cx.base.cluster.api_server_url;
    render(cx, h, &CertId::SuperAdmin, "super-admin", server).map(zeroize::Zeroizing::new)
}
