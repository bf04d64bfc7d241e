//! Shared test support: the fixture inventories and a small real PKI (rcgen, ECDSA P-256)
//! standing in for `pki::ensure` in tests that must not depend on the state directory.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use provision::inventory::{Inventory, Role};
use provision::pki::{CertId, Issued, KeyPairPem, Pki};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use zeroize::Zeroizing;

pub const INVENTORIES: &[&str] = &["lab", "vagrant", "ha"];

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{name}.toml"))
}

pub fn inventory(name: &str) -> Inventory {
    let text = std::fs::read_to_string(fixture_path(name)).expect("fixture exists");
    toml::from_str(&text).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The inventory with the Kubernetes tier switched on (the lab skips it).
pub fn with_kubernetes(mut inv: Inventory) -> Inventory {
    inv.artifacts.kubernetes = provision::inventory::KubernetesSource::Download;
    inv
}

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(cn: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, cn);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let cert = p.self_signed(&key).unwrap();
    Ca { pem: cert.pem(), issuer: Issuer::new(p, key) }
}

fn leaf(ca: &Ca, cn: &str, org: Option<&str>, sans: Vec<String>, server: bool, client: bool) -> Issued {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(sans).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    if let Some(o) = org {
        p.distinguished_name.push(DnType::OrganizationName, o);
    }
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    if server {
        p.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if client {
        p.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    Issued { cert_pem: cert.pem(), key_pem: Zeroizing::new(key.serialize_pem()) }
}

fn ca_issued(ca: &Ca) -> Issued {
    // CA private keys are not needed in these tests except the cluster CA key, which the
    // controller-manager gets; a real PEM key stands in for it.
    Issued { cert_pem: ca.pem.clone(), key_pem: Zeroizing::new(ca.issuer.key().serialize_pem()) }
}

/// A complete PKI for `inv`: every certificate render asks for.
pub fn fixture_pki(inv: &Inventory) -> Pki {
    let cluster = ca("kubernetes");
    let etcd = ca("etcd-ca");
    let front = ca("front-proxy-ca");
    let mut certs = BTreeMap::new();
    certs.insert(CertId::ClusterCa, ca_issued(&cluster));
    certs.insert(CertId::EtcdCa, ca_issued(&etcd));
    certs.insert(CertId::FrontProxyCa, ca_issued(&front));
    let mut api_sans: Vec<String> = vec!["kubernetes".into(), "kubernetes.default".into(), inv.cluster.api_endpoint.clone()];
    api_sans.extend(inv.hosts_with(Role::ControlPlane).map(|h| h.address.to_string()));
    certs.insert(CertId::ApiServer, leaf(&cluster, "kube-apiserver", None, api_sans, true, false));
    certs.insert(
        CertId::ApiServerKubeletClient,
        leaf(&cluster, "kube-apiserver-kubelet-client", Some("kubeadm:cluster-admins"), vec![], false, true),
    );
    certs.insert(CertId::ApiServerEtcdClient, leaf(&etcd, "kube-apiserver-etcd-client", None, vec![], false, true));
    certs.insert(CertId::FrontProxyClient, leaf(&front, "front-proxy-client", None, vec![], false, true));
    for h in inv.hosts_with(Role::Etcd) {
        let sans = vec![h.name.clone(), h.address.to_string(), "127.0.0.1".into()];
        certs.insert(CertId::EtcdServer(h.name.clone()), leaf(&etcd, &h.name, None, sans.clone(), true, true));
        certs.insert(CertId::EtcdPeer(h.name.clone()), leaf(&etcd, &h.name, None, sans, true, true));
    }
    for h in inv.hosts.iter().filter(|h| h.has(Role::ControlPlane) || h.has(Role::Worker)) {
        let sans = vec![h.name.clone(), h.address.to_string()];
        certs.insert(
            CertId::Kubelet(h.name.clone()),
            leaf(&cluster, &format!("system:node:{}", h.name), Some("system:nodes"), sans, true, true),
        );
    }
    let client = |cn: &str, o: Option<&str>| leaf(&cluster, cn, o, vec![], false, true);
    certs.insert(CertId::ControllerManager, client("system:kube-controller-manager", None));
    certs.insert(CertId::Scheduler, client("system:kube-scheduler", None));
    certs.insert(CertId::Admin, client("admin", Some("provision:cluster-admins")));
    certs.insert(CertId::SuperAdmin, client("super-admin", Some("system:masters")));
    certs.insert(CertId::KubeProxy, client("system:kube-proxy", Some("system:node-proxier")));
    let sa = KeyPair::generate().unwrap();
    let mut key = vec![0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
    Pki {
        certs,
        service_account: KeyPairPem { public_pem: sa.public_key_pem(), private_pem: Zeroizing::new(sa.serialize_pem()) },
        encryption_key: Zeroizing::new(key),
    }
}
