//! The PKI, built and kept on the operator's machine in the state directory.
//!
//! API contract (used by render, etcd and verify):
//! - `Pki::ensure` loads what the state directory holds, reuses every certificate that is
//!   still valid and still names the right subject/SANs (byte for byte), issues what is
//!   missing or changed, renews what is inside its renewal window, and saves to disk
//!   (private keys 0600).
//! - `Pki::get(&CertId)` returns the PEM material of one certificate.

use std::collections::BTreeMap;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::inventory::Inventory;
use crate::state::StateDir;

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
}

/// What `ensure` is called with.
pub fn ensure(_inventory: &Inventory, _state: &StateDir) -> anyhow::Result<Pki> {
    anyhow::bail!("pki::ensure is being implemented")
}
