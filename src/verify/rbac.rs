//! Authentication and authorization of the real Kubernetes API:
//! - `rbac.anonymous`: an anonymous GET /api/v1/namespaces gets 401 (403 would mean
//!   anonymous requests are authenticated and only authorization stopped this one);
//! - `rbac.authorization-mode`: the running kube-apiserver's --authorization-mode (read
//!   from /proc/<pid>/cmdline) includes Node and RBAC and not AlwaysAllow;
//! - `rbac.unbound-identity`: a client certificate signed by the cluster CA for a fresh
//!   name with no bindings (made in memory for this run, never stored) gets 403 listing
//!   Secrets: authenticated, and denied;
//! - `rbac.admin`: the admin identity (admin.conf's) lists Secrets.
//!
//! Without a kube-apiserver (artifacts.kubernetes = "skip") these are skipped: they are
//! proven only against a real cluster, never against a stand-in.

use std::time::Duration;

use anyhow::Context;
use hyper::Method;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use zeroize::Zeroizing;

use super::cis_hosts::Gathered;
use super::material::Material;
use super::report::{CheckResult, HostOutcome, Status, Titles};
use crate::inventory::{Inventory, KubernetesSource, Role};
use crate::kube::api::{ApiClient, ApiResponse, METADATA_ONLY};
use crate::pki::Issued;

pub const ANONYMOUS: &str = "rbac.anonymous";
pub const AUTHORIZATION_MODE: &str = "rbac.authorization-mode";
pub const UNBOUND: &str = "rbac.unbound-identity";
pub const ADMIN: &str = "rbac.admin";

pub const NO_APISERVER: &str = "skipped: no kube-apiserver on this cluster (artifacts.kubernetes = skip)";

const TITLES: Titles = Titles(&[
    (ANONYMOUS, "an anonymous request is not authenticated (401)"),
    (AUTHORIZATION_MODE, "kube-apiserver authorizes with Node and RBAC, never AlwaysAllow"),
    (UNBOUND, "a valid identity with no bindings is denied listing Secrets (403)"),
    (ADMIN, "the admin identity lists Secrets"),
]);

fn title(check: &str) -> &'static str {
    TITLES.of(check)
}

pub async fn run(inv: &Inventory, material: &Material, gathered: &Gathered, limit: Duration) -> Vec<CheckResult> {
    if inv.artifacts.kubernetes == KubernetesSource::Skip {
        return TITLES.skipped(NO_APISERVER);
    }
    let api = |identity: Option<&Issued>| {
        ApiClient::new(&inv.cluster.api_endpoint, inv.cluster.api_port, &material.cluster_ca_pem, identity, limit)
    };
    let anonymous = async {
        let r = match api(None) {
            Ok(c) => c.send(Method::GET, "/api/v1/namespaces", "application/json", None).await,
            Err(e) => Err(e),
        };
        judge_anonymous(r)
    };
    let unbound = async {
        let name = format!("provision-verify-{:08x}", rand::random::<u32>());
        let r = async {
            let ca = material.cluster_ca.as_ref().context("the cluster CA key is not in the state directory")?;
            let identity = fresh_identity(ca, &name)?;
            api(Some(&identity))?.send(Method::GET, "/api/v1/secrets?limit=1", METADATA_ONLY, None).await
        }
        .await;
        judge_unbound(&name, r)
    };
    let admin = async {
        let r = async {
            let admin = material.admin.as_ref().context("the admin certificate is not in the state directory")?;
            api(Some(admin))?.send(Method::GET, "/api/v1/secrets?limit=1", METADATA_ONLY, None).await
        }
        .await;
        judge_admin(r)
    };
    let (anonymous, unbound, admin) = tokio::join!(anonymous, unbound, admin);
    let endpoint = format!("https://{}:{}", inv.cluster.api_endpoint, inv.cluster.api_port);
    vec![
        anonymous.with_target(endpoint.clone()),
        authorization_mode(inv, gathered),
        unbound.with_target(endpoint.clone()),
        admin.with_target(endpoint),
    ]
}

/// A client certificate for `cn` (no groups) signed by the cluster CA, in memory only.
pub fn fresh_identity(ca: &Issued, cn: &str) -> anyhow::Result<Issued> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|_| anyhow::anyhow!("the cluster CA key does not load"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).context("the cluster CA certificate")?;
    let key = KeyPair::generate().context("generating a key")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::hours(1);
    let cert = params.signed_by(&key, &issuer).context("signing the throw-away identity")?;
    Ok(Issued { cert_pem: cert.pem(), key_pem: Zeroizing::new(key.serialize_pem()) })
}

fn unreachable(check: &str, e: &anyhow::Error) -> CheckResult {
    CheckResult::cluster(check, title(check), Status::Fail, format!("could not ask the API: {e:#}"))
}

pub fn judge_anonymous(r: anyhow::Result<ApiResponse>) -> CheckResult {
    let r = match r {
        Ok(r) => r,
        Err(e) => return unreachable(ANONYMOUS, &e),
    };
    let (status, evidence) = match r.status {
        401 => (Status::Pass, format!("GET /api/v1/namespaces without credentials: {}", r.describe())),
        403 => (
            Status::Fail,
            format!(
                "{}: anonymous requests are authenticated as system:anonymous (set --anonymous-auth=false); \
                 only authorization refused this one",
                r.describe()
            ),
        ),
        200..=299 => (Status::Fail, format!("{}: an anonymous client listed namespaces", r.describe())),
        _ => (Status::Fail, format!("unexpected answer {}", r.describe())),
    };
    CheckResult::cluster(ANONYMOUS, title(ANONYMOUS), status, evidence)
}

pub fn judge_unbound(name: &str, r: anyhow::Result<ApiResponse>) -> CheckResult {
    let r = match r {
        Ok(r) => r,
        Err(e) => return unreachable(UNBOUND, &e),
    };
    let (status, evidence) = match r.status {
        403 => (Status::Pass, format!("{name} (cluster CA, no bindings): {}", r.describe())),
        401 => (
            Status::Fail,
            format!(
                "{name} was not even authenticated ({}): kube-apiserver does not trust the cluster CA for clients \
                 (--client-ca-file)",
                r.describe()
            ),
        ),
        200..=299 => (Status::Fail, format!("{name}, bound to nothing, listed Secrets: {}", r.describe())),
        _ => (Status::Fail, format!("{name}: unexpected answer {}", r.describe())),
    };
    CheckResult::cluster(UNBOUND, title(UNBOUND), status, evidence)
}

pub fn judge_admin(r: anyhow::Result<ApiResponse>) -> CheckResult {
    let r = match r {
        Ok(r) => r,
        Err(e) => return unreachable(ADMIN, &e),
    };
    let kind = r.kind().unwrap_or_default();
    let (status, evidence) = match r.status {
        200 if kind.ends_with("List") => (Status::Pass, format!("GET /api/v1/secrets as admin: {}", r.describe())),
        200 => (Status::Fail, format!("HTTP 200 but the answer is not a list ({kind:?})")),
        403 => (
            Status::Fail,
            format!("{}: admin is not bound to cluster-admin (the post-bootstrap RBAC step is missing)", r.describe()),
        ),
        _ => (Status::Fail, format!("admin could not list Secrets: {}", r.describe())),
    };
    CheckResult::cluster(ADMIN, title(ADMIN), status, evidence)
}

/// From the facts of every control-plane host: the running apiserver's flag.
pub fn authorization_mode(inv: &Inventory, gathered: &Gathered) -> CheckResult {
    let outcomes = inv
        .hosts_with(Role::ControlPlane)
        .map(|h| {
            let facts = gathered.iter().find(|(n, _)| n == &h.name).map(|(_, f)| f);
            match facts {
                Some(Ok(f)) => match f.flags("kube-apiserver.service") {
                    Some(flags) => {
                        let mode = flags.iter().rev().find(|(n, _)| n == "authorization-mode").map(|(_, v)| v.clone());
                        judge_mode(&h.name, mode.as_deref())
                    }
                    None => HostOutcome::fail(&h.name, "kube-apiserver is not running"),
                },
                Some(Err(e)) => HostOutcome::fail(&h.name, format!("could not read the host: {e}")),
                None => HostOutcome::fail(&h.name, "not reached"),
            }
        })
        .collect();
    CheckResult::from_hosts(AUTHORIZATION_MODE, title(AUTHORIZATION_MODE), outcomes)
}

pub fn judge_mode(host: &str, mode: Option<&str>) -> HostOutcome {
    let Some(mode) = mode else {
        // The default is AlwaysAllow.
        return HostOutcome::fail(host, "--authorization-mode is not set (the default is AlwaysAllow)");
    };
    let modes: Vec<&str> = mode.split(',').map(str::trim).collect();
    let mut missing: Vec<&str> = ["Node", "RBAC"].into_iter().filter(|m| !modes.contains(m)).collect();
    if modes.contains(&"AlwaysAllow") {
        missing.push("no AlwaysAllow");
    }
    if missing.is_empty() {
        HostOutcome::pass(host, format!("--authorization-mode={mode}"))
    } else {
        HostOutcome::fail(host, format!("--authorization-mode={mode}: needs {}", missing.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> anyhow::Result<ApiResponse> {
        Ok(ApiResponse { status, body: body.as_bytes().to_vec() })
    }

    const FORBIDDEN: &str = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"secrets is forbidden: User \"provision-verify-1\" cannot list resource \"secrets\" in API group \"\" at the cluster scope","reason":"Forbidden","code":403}"#;
    const UNAUTHORIZED: &str = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;

    #[test]
    fn anonymous_must_be_unauthorized() {
        assert_eq!(judge_anonymous(resp(401, UNAUTHORIZED)).status, Status::Pass);
        let partial = judge_anonymous(resp(
            403,
            r#"{"kind":"Status","message":"namespaces is forbidden: User \"system:anonymous\" cannot list","code":403}"#,
        ));
        assert_eq!(partial.status, Status::Fail);
        assert!(partial.evidence.contains("--anonymous-auth=false"));
        assert_eq!(judge_anonymous(resp(200, r#"{"kind":"NamespaceList"}"#)).status, Status::Fail);
        let down = judge_anonymous(Err(anyhow::anyhow!("cannot connect to 10.0.0.1:6443: connection refused")));
        assert!(down.status == Status::Fail && down.evidence.contains("connection refused"));
    }

    #[test]
    fn an_unbound_identity_must_be_authenticated_and_denied() {
        let ok = judge_unbound("provision-verify-1", resp(403, FORBIDDEN));
        assert_eq!(ok.status, Status::Pass);
        assert!(
            ok.evidence.contains("cannot list resource \\\"secrets\\\"")
                || ok.evidence.contains("cannot list resource \"secrets\"")
        );
        assert!(judge_unbound("x", resp(401, UNAUTHORIZED)).evidence.contains("--client-ca-file"));
        assert_eq!(judge_unbound("x", resp(200, r#"{"kind":"PartialObjectMetadataList"}"#)).status, Status::Fail);
    }

    #[test]
    fn admin_must_list() {
        assert_eq!(judge_admin(resp(200, r#"{"kind":"PartialObjectMetadataList","items":[]}"#)).status, Status::Pass);
        assert!(judge_admin(resp(403, FORBIDDEN)).evidence.contains("cluster-admin"));
    }

    #[test]
    fn authorization_modes() {
        assert_eq!(judge_mode("cp1", Some("Node,RBAC")).status, Status::Pass);
        assert!(judge_mode("cp1", Some("RBAC")).evidence.contains("needs Node"));
        assert!(judge_mode("cp1", Some("AlwaysAllow,Node,RBAC")).evidence.contains("no AlwaysAllow"));
        assert!(judge_mode("cp1", None).evidence.contains("AlwaysAllow"));
    }

    #[test]
    fn fresh_identities_chain_to_the_cluster_ca_and_are_new_each_time() {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca = Issued { cert_pem: p.self_signed(&key).unwrap().pem(), key_pem: Zeroizing::new(key.serialize_pem()) };
        let a = fresh_identity(&ca, "provision-verify-a").unwrap();
        let b = fresh_identity(&ca, "provision-verify-b").unwrap();
        assert_ne!(a.cert_pem, b.cert_pem);
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(a.cert_pem.as_bytes())
            .map(|d: rustls::pki_types::CertificateDer| d.to_vec())
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(cert.subject().iter_common_name().next().unwrap().as_str().unwrap(), "provision-verify-a");
        let ca_der: rustls::pki_types::CertificateDer =
            rustls::pki_types::pem::PemObject::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert!(cert.verify_signature(Some(ca_cert.public_key())).is_ok());
    }
}
