//! The PKI, built and kept on the operator's machine in the state directory.
//!
//! API contract (used by render, etcd and verify):
//! - `pki::ensure` loads what the state directory holds, reuses every certificate that is
//!   still valid and still names the right subject/SANs (byte for byte), issues what is
//!   missing or changed, renews what is inside its renewal window, and saves to disk
//!   (private keys 0600).
//! - `Pki::get(&CertId)` returns the PEM material of one certificate.
//! - `ensure_reporting` does the same and also says, per certificate, what it did and why.
//! - `inspect` compares what is on disk with the inventory without changing anything.
//!
//! Files under `state.pki_dir()`: `<stem>.crt` / `<stem>.key` (stems: `CertId::file_stem`),
//! `sa.key` / `sa.pub`; under `state.secrets_dir()`: `encryption.key` (base64).

mod ca;
mod describe;
mod facts;
mod inspect;
mod issue;
mod keys;
mod leaf;
mod parallel;
mod reuse;
mod secrets;
mod spec;
mod store;

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context, bail};
use serde::Serialize;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::inventory::{Inventory, PkiSettings};
use crate::state::StateDir;

pub use describe::CertInfo;
pub use inspect::{Listed, Listing, Status, inspect};
pub use secrets::{ENCRYPTION_KEY, SA_KEY, SA_PUB};
pub use spec::{ADMIN_GROUP, APISERVER_KUBELET_CLIENT_USER, CAS, runs_kubelet};

/// Every certificate (and key pair) provision manages.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", content = "host", rename_all = "kebab-case")]
pub enum CertId {
    ClusterCa,
    EtcdCa,
    FrontProxyCa,
    /// kube-apiserver serving certificate (shared by all control-plane hosts).
    ApiServer,
    ApiServerKubeletClient,
    ApiServerEtcdClient,
    FrontProxyClient,
    /// etcd server certificate of one etcd host (ServerAuth + ClientAuth).
    EtcdServer(String),
    /// etcd peer certificate of one etcd host (ServerAuth + ClientAuth).
    EtcdPeer(String),
    ControllerManager,
    Scheduler,
    /// group provision:cluster-admins, bound to cluster-admin after bootstrap.
    Admin,
    /// system:masters: break-glass only.
    SuperAdmin,
    /// system:node:<name> / system:nodes, for every host that runs a kubelet.
    Kubelet(String),
    KubeProxy,
}

/// PEM-encoded certificate and private key.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
}

/// Service-account token signing key pair (no certificate).
#[derive(Clone)]
pub struct KeyPairPem {
    pub public_pem: String,
    pub private_pem: Zeroizing<String>,
}

pub struct Pki {
    pub certs: BTreeMap<CertId, Issued>,
    pub service_account: KeyPairPem,
    /// 32 random bytes for the encryption-at-rest provider, generated once.
    pub encryption_key: Zeroizing<Vec<u8>>,
}

impl Pki {
    pub fn get(&self, id: &CertId) -> Option<&Issued> {
        self.certs.get(id)
    }

    /// Every certificate with its subject, SANs, issuer, validity and key algorithm.
    pub fn describe(&self) -> anyhow::Result<Vec<CertInfo>> {
        let now = OffsetDateTime::now_utc();
        self.certs
            .iter()
            .map(|(id, issued)| {
                let name = id.file_stem();
                let facts = facts::CertFacts::from_pem(&issued.cert_pem, &name)?;
                Ok(describe::describe(Some(id), &name, &facts, now))
            })
            .collect()
    }
}

/// What `ensure` did with one certificate or key, for apply/render to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertEvent {
    /// File stem for certificates ("etcd-server-node1"), "sa" or "encryption-key".
    pub name: String,
    /// None for the service-account key pair and the encryption key.
    pub id: Option<CertId>,
    pub kind: EventKind,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// Created where nothing existed.
    Issued,
    /// Replaced because it expires soon (or did).
    Renewed,
    /// Replaced because it no longer matched the inventory (or was damaged).
    Reissued,
    /// Kept byte for byte.
    Reused,
}

impl CertEvent {
    fn new(id: &CertId, kind: EventKind, reason: String) -> CertEvent {
        CertEvent { name: id.file_stem(), id: Some(id.clone()), kind, reason }
    }
    fn service_account(kind: EventKind, reason: String) -> CertEvent {
        CertEvent { name: "sa".into(), id: None, kind, reason }
    }
    fn encryption_key(kind: EventKind, reason: String) -> CertEvent {
        CertEvent { name: "encryption-key".into(), id: None, kind, reason }
    }
}

impl fmt::Display for CertEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            EventKind::Issued => "issued",
            EventKind::Renewed => "renewed",
            EventKind::Reissued => "reissued",
            EventKind::Reused => "reused",
        };
        write!(f, "{}: {kind} ({})", self.name, self.reason)
    }
}

/// The PKI and what `ensure_reporting` did to build it.
pub struct Ensured {
    pub pki: Pki,
    pub events: Vec<CertEvent>,
}

/// Loads, reuses, renews and issues everything; see the module documentation.
pub fn ensure(inventory: &Inventory, state: &StateDir) -> anyhow::Result<Pki> {
    ensure_reporting(inventory, state).map(|e| e.pki)
}

/// `ensure`, also returning one event per certificate and key (in a stable order).
pub fn ensure_reporting(inventory: &Inventory, state: &StateDir) -> anyhow::Result<Ensured> {
    let settings = &inventory.pki;
    check_settings(settings)?;
    let specs = spec::leaf_specs(inventory)?;
    let dir = state.pki_dir();
    state.prepare()?;
    let _lock = store::lock(&state.root().join(".pki.lock"))?;
    let now = OffsetDateTime::now_utc();

    let mut certs = BTreeMap::new();
    let mut events = Vec::new();
    let mut cas = BTreeMap::new();
    for id in &CAS {
        let (ca, event) = ca::ensure(&dir, id, settings, now).with_context(|| format!("the {id} certificate authority"))?;
        events.push(event);
        certs.insert(id.clone(), ca.issued.clone());
        cas.insert(id.clone(), ca);
    }
    // Decide first (cheap, reads files), then issue what is needed in parallel.
    let mut decisions = Vec::new();
    for spec in &specs {
        let ca = cas.get(&spec.issuer).with_context(|| format!("{} names an unknown issuer", spec.id))?;
        decisions.push((spec, ca, leaf::decide(&dir, spec, &ca.public_key_info, settings, now)?));
    }
    let outcomes = parallel::map(&decisions, |(spec, ca, decision)| -> anyhow::Result<(Issued, EventKind, String)> {
        Ok(match decision {
            leaf::Decision::Keep(issued) => {
                let (_, key_path) = leaf::paths(&dir, spec);
                let reason = if store::tighten(&key_path)? { "valid; key mode set to 0600" } else { "valid" };
                (issued.clone(), EventKind::Reused, reason.to_string())
            }
            leaf::Decision::Missing => (leaf::issue(&dir, spec, ca, settings, now)?, EventKind::Issued, "new".into()),
            leaf::Decision::Renew(why) => (leaf::issue(&dir, spec, ca, settings, now)?, EventKind::Renewed, why.clone()),
            leaf::Decision::Reissue(why) => {
                (leaf::issue(&dir, spec, ca, settings, now)?, EventKind::Reissued, why.clone())
            }
        })
    });
    for ((spec, _, _), outcome) in decisions.iter().zip(outcomes) {
        let (issued, kind, reason) = outcome.with_context(|| format!("the {} certificate", spec.id))?;
        events.push(CertEvent::new(&spec.id, kind, reason));
        certs.insert(spec.id.clone(), issued);
    }
    let (service_account, event) = secrets::service_account(&dir, settings.key_algorithm)?;
    events.push(event);
    let (encryption_key, event) = secrets::encryption_key(&state.secrets_dir())?;
    events.push(event);
    Ok(Ensured { pki: Pki { certs, service_account, encryption_key }, events })
}

/// Settings that would make every run re-issue everything, or overflow a date.
fn check_settings(s: &PkiSettings) -> anyhow::Result<()> {
    const MAX_DAYS: u32 = 100 * 366;
    for (name, days) in [("ca_validity_days", s.ca_validity_days), ("leaf_validity_days", s.leaf_validity_days)] {
        if days == 0 || days > MAX_DAYS {
            bail!("[pki] {name} = {days}: use a number of days between 1 and {MAX_DAYS}");
        }
    }
    if s.leaf_validity_days > s.ca_validity_days {
        bail!(
            "[pki] leaf_validity_days = {} exceeds ca_validity_days = {}: a certificate cannot \
             outlive the CA that signed it",
            s.leaf_validity_days,
            s.ca_validity_days
        );
    }
    if s.renew_before_days >= s.leaf_validity_days {
        bail!(
            "[pki] renew_before_days = {} is not below leaf_validity_days = {}: every run would renew \
             every certificate. Lower renew_before_days or raise leaf_validity_days.",
            s.renew_before_days,
            s.leaf_validity_days
        );
    }
    Ok(())
}

/// Key material is never shown: only which certificates exist and how long the PEM is.
impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &format_args!("<redacted>"))
            .finish()
    }
}

impl fmt::Debug for KeyPairPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPairPem")
            .field("public_pem", &format_args!("<{} bytes>", self.public_pem.len()))
            .field("private_pem", &format_args!("<redacted>"))
            .finish()
    }
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("certs", &self.certs)
            .field("service_account", &self.service_account)
            .field("encryption_key", &format_args!("<redacted>"))
            .finish()
    }
}

impl fmt::Debug for Ensured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ensured").field("pki", &self.pki).field("events", &self.events).finish()
    }
}

#[cfg(test)]
mod tests;
