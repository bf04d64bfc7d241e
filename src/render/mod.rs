//! render: inventory + PKI -> the desired state of every host (files, directories,
//! users, units), from tera templates (templates/, embedded; overridable per file).
//!
//! Which host gets what follows its roles: an etcd member gets etcd; a control-plane
//! host gets kube-apiserver, kube-controller-manager, kube-scheduler and the admin
//! kubeconfigs; control-plane and worker hosts get a kubelet and kube-proxy, and (unless
//! `artifacts.runtime = "skip"`) the container runtime and pod network (`runtime`). With
//! `artifacts.kubernetes = "skip"` only the etcd tier (and the runtime tier, when
//! `artifacts.runtime` asks for it) is rendered and `Rendered::skipped` says so.

pub mod builder;
pub mod context;
pub mod paths;
pub mod templates;

pub mod output;

mod apiserver;
mod controller_manager;
mod etcd;
pub mod etcd_backup;
mod kubeconfig;
mod kubelet;
pub mod pod_network;
pub mod runtime;
mod scheduler;
mod security_files;

/// The units the plan names outside render (membership, restore, the etcd rollout).
pub use apiserver::UNIT as APISERVER_UNIT;
pub use etcd::UNIT as ETCD_UNIT;

use serde::Serialize;

use crate::desired::{Component, DesiredState};
use crate::inventory::{Host, Inventory, KubernetesSource, Role, RuntimeSource};
use crate::pki::{CertId, Pki};
use builder::{HostBuilder, ROOT_0600, ROOT_0700, ROOT_0755};
use context::{BaseCtx, HostCtx};
pub use templates::Templates;

/// A part of the cluster render left out on purpose, and why (printed by the CLI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub what: String,
    pub why: String,
}

/// Secret text kept on the operator's machine only; Debug shows its size, never it.
#[derive(Clone)]
pub struct SecretText(zeroize::Zeroizing<String>);

impl SecretText {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretText(<{} bytes>)", self.0.len())
    }
}

#[derive(Debug, Clone)]
pub struct Rendered {
    /// One entry per inventory host, in inventory order.
    pub desired: DesiredState,
    /// The break-glass super-admin kubeconfig (system:masters): for the operator's state
    /// directory only, never a host (RBAC cannot revoke it). None without a control plane.
    pub super_admin_conf: Option<SecretText>,
    pub skipped: Vec<Skipped>,
    /// (template name, file) for every template replaced from --templates.
    pub overridden_templates: Vec<(String, String)>,
}

impl Rendered {
    /// True when only the etcd tier was rendered (artifacts.kubernetes = "skip").
    pub fn kubernetes_skipped(&self) -> bool {
        !self.skipped.is_empty()
    }
}

/// What every component module gets.
pub(crate) struct RenderCx<'a> {
    pub inv: &'a Inventory,
    pub pki: &'a Pki,
    pub templates: &'a Templates,
    pub base: BaseCtx,
}

pub(crate) struct HostCx<'a> {
    pub host: &'a Host,
    pub ctx: tera::Context,
    pub hctx: HostCtx,
}

impl RenderCx<'_> {
    pub fn render(&self, h: &HostCx, template: &str) -> anyhow::Result<String> {
        self.templates.render(template, &h.ctx)
    }
}

/// Renders the desired state of every host.
pub fn render(inv: &Inventory, pki: &Pki, templates: &Templates) -> anyhow::Result<Rendered> {
    let base = BaseCtx::new(inv)?;
    let kubernetes = inv.artifacts.kubernetes != KubernetesSource::Skip;
    let runtime = inv.artifacts.runtime_source() != RuntimeSource::Skip;
    let mut skipped = Vec::new();
    if kubernetes {
        context::kubernetes_minor(&inv.cluster.kubernetes_version)?;
    } else {
        skipped.push(Skipped {
            what: "kubernetes tier (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubeconfigs)"
                .to_string(),
            why: "artifacts.kubernetes = \"skip\": only etcd is installed".to_string(),
        });
    }
    let cx = RenderCx { inv, pki, templates, base };
    let mut hosts = Vec::with_capacity(inv.hosts.len());
    let mut super_admin_conf = None;
    let slices = crate::inventory::pod_slices::of_inventory(inv)?;
    for host in &inv.hosts {
        let hctx = cx.base.host(inv, host);
        let mut ctx = cx.base.for_host(&hctx)?;
        // Only hosts with a kubelet have a pod network: a template using it elsewhere fails.
        if let Some(net) = pod_network::for_host(&slices, &host.name) {
            ctx.insert("pod_network", &net);
        }
        let h = HostCx { host, ctx, hctx };
        let mut b = HostBuilder::new(&host.name);
        if host.has(Role::Etcd) {
            etcd::add(&cx, &h, &mut b)?;
            etcd_backup::add(&cx, &h, &mut b)?;
        }
        if kubernetes {
            let control_plane = host.has(Role::ControlPlane);
            let node = host.runs_kubelet();
            if node {
                kubernetes_base(&cx, &mut b)?;
            }
            if control_plane {
                apiserver::add(&cx, &h, &mut b)?;
                controller_manager::add(&cx, &h, &mut b)?;
                scheduler::add(&cx, &h, &mut b)?;
                kubeconfig::add_admin(&cx, &h, &mut b)?;
                if super_admin_conf.is_none() {
                    super_admin_conf = Some(SecretText(kubeconfig::super_admin(&cx, &h)?));
                }
            }
            if node {
                kubelet::add(&cx, &h, &mut b)?;
            }
        }
        if runtime && host.runs_kubelet() {
            runtime::add(&cx, &h, &mut b)?;
        }
        let desired = b.finish()?;
        hosts.push(desired);
    }
    Ok(Rendered {
        desired: DesiredState { hosts },
        super_admin_conf,
        skipped,
        overridden_templates: templates.overridden(),
    })
}

/// What every Kubernetes host needs before any component: /etc/kubernetes and the
/// cluster CA certificate (the kubelet's client CA, CIS 4.1.7/4.1.8).
fn kubernetes_base(cx: &RenderCx, b: &mut HostBuilder) -> anyhow::Result<()> {
    b.dir(paths::KUBERNETES_DIR, ROOT_0755, Component::Base);
    // 0700: only root (every daemon but etcd runs as root) reads the PKI.
    b.dir(paths::PKI_DIR, ROOT_0700, Component::Base);
    b.cert(cx.pki, &CertId::ClusterCa, paths::CA_CRT, ROOT_0600, None, Component::Base)
}
