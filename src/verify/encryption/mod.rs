//! Encryption at rest, proven on the bytes etcd really holds:
//! - `encryption.stored-secrets`: every value under /registry/secrets/ carries the
//!   `k8s:enc:<provider>:v1:<key>:` prefix, DECRYPTS with a key of the encryption config,
//!   and decrypts to the protobuf Secret its etcd key names; plaintext ones are named.
//! - `encryption.new-secret`: a Secret created through kube-apiserver now is stored
//!   encrypted with the FIRST key of the config, and decrypts to the data just written
//!   (needs a kube-apiserver: skipped without one).
//!
//! The keys come from the encryption config on a control-plane host (what kube-apiserver
//! really uses); on a cluster without the Kubernetes tier, from the state directory's key
//! (the key render writes into the config as key1).

pub mod envelope;
pub mod k8s_proto;
pub mod keyring;
pub mod stored;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;

use crate::kube::api::ApiClient;
use super::material::Material;
use super::rbac::NO_APISERVER;
use super::report::{CheckResult, Status};
use crate::etcd::connect::{MemberClient, connect};
use crate::etcd::members::Member;
use crate::inventory::{EncryptionProvider, Inventory, KubernetesSource, Role};
use crate::render::paths;
use crate::ssh::Session;
use envelope::Provider;
use keyring::Keyring;
use stored::{SECRETS_PREFIX, Tally, Verdict};

pub const STORED: &str = "encryption.stored-secrets";
pub const NEW_SECRET: &str = "encryption.new-secret";
const STORED_TITLE: &str = "every Secret in etcd is encrypted and decrypts to itself with the configured key";
const NEW_TITLE: &str = "a Secret created through the API is stored encrypted with the first configured key";

/// The keys to decrypt with, or why there are none.
pub async fn load_keyring(
    inv: &Inventory,
    material: &Material,
    sessions: &BTreeMap<String, Session>,
) -> Result<Keyring, String> {
    if inv.artifacts.kubernetes == KubernetesSource::Skip {
        let provider = match inv.security.encryption {
            EncryptionProvider::Aescbc => Provider::Aescbc,
            EncryptionProvider::Secretbox => Provider::Secretbox,
        };
        let key = material
            .encryption_key
            .as_ref()
            .ok_or_else(|| format!("no encryption key at {}", material.encryption_key_path.display()))?;
        return Ok(Keyring::from_state_key(
            provider,
            key,
            format!(
                "{} (no encryption config on the hosts: artifacts.kubernetes = skip)",
                material.encryption_key_path.display()
            ),
        ));
    }
    let mut problems = Vec::new();
    for h in inv.hosts_with(Role::ControlPlane) {
        let Some(session) = sessions.get(&h.name) else {
            problems.push(format!("{}: not reachable", h.name));
            continue;
        };
        let command = format!("cat -- {}", crate::ssh::shell::quote(paths::ENCRYPTION_CONFIG));
        match session.exec(&command, None).await {
            Ok(out) if out.success() => {
                return Keyring::from_config(&out.stdout, format!("{} on {}", paths::ENCRYPTION_CONFIG, h.name));
            }
            Ok(out) => problems.push(format!("{}: {}", h.name, out.stderr_text().trim())),
            Err(e) => problems.push(format!("{}: {e}", h.name)),
        }
    }
    Err(format!("could not read {} from any control-plane host ({})", paths::ENCRYPTION_CONFIG, problems.join("; ")))
}

pub async fn stored_secrets(
    ring: &Result<Keyring, String>,
    member: Option<&Member>,
    material: &Material,
    limit: Duration,
) -> CheckResult {
    let fail = |e: String| CheckResult::cluster(STORED, STORED_TITLE, Status::Fail, e);
    let Some(member) = member else {
        return fail("no etcd member answered: cannot read the stored Secrets".into());
    };
    let mut client = match connect(member, &material.etcd_client, limit).await {
        Ok(c) => c,
        Err(p) => return fail(format!("{}: {p}", member.name)),
    };
    let values = match tokio::time::timeout(limit * 4, stored::list(&mut client, SECRETS_PREFIX)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            return fail(format!(
                "listing {SECRETS_PREFIX} on {}: {}",
                member.name,
                crate::etcd::explain::explain(&e, &member.client_url)
            ));
        }
        Err(_) => {
            return fail(format!(
                "listing {SECRETS_PREFIX} on {} took longer than {}s",
                member.name,
                (limit * 4).as_secs()
            ));
        }
    };
    judge_all(&values, ring).with_target(format!("{SECRETS_PREFIX} via {}", member.name))
}

/// The verdict on every stored Secret.
pub fn judge_all(values: &[(String, Vec<u8>)], ring: &Result<Keyring, String>) -> CheckResult {
    if values.is_empty() {
        return CheckResult::skipped(
            STORED,
            STORED_TITLE,
            format!("skipped: no Secret is stored under {SECRETS_PREFIX} yet (nothing to decrypt)"),
        );
    }
    let empty =
        Keyring { keys: Vec::new(), first_provider: String::new(), identity_listed: false, source: String::new() };
    let (ring, ring_error) = match ring {
        Ok(r) => (r, None),
        Err(e) => (&empty, Some(e.clone())),
    };
    let mut tally = Tally::default();
    for (key, value) in values {
        let verdict = match (&ring_error, stored::judge(key, value, ring)) {
            (Some(e), Verdict::Broken(_)) => Verdict::Broken(format!("no key to decrypt with: {e}")),
            (_, v) => v,
        };
        tally.add(key, verdict);
    }
    let status = if tally.ok() { Status::Pass } else { Status::Fail };
    CheckResult::cluster(STORED, STORED_TITLE, status, tally.evidence(&ring.source))
}

/// Creates a Secret through the API as admin, reads it raw from etcd, decrypts it, deletes it.
pub async fn new_secret(
    inv: &Inventory,
    ring: &Result<Keyring, String>,
    member: Option<&Member>,
    material: &Material,
    limit: Duration,
) -> CheckResult {
    if inv.artifacts.kubernetes == KubernetesSource::Skip {
        return CheckResult::skipped(NEW_SECRET, NEW_TITLE, NO_APISERVER);
    }
    let fail = |e: String| CheckResult::cluster(NEW_SECRET, NEW_TITLE, Status::Fail, e);
    let ring = match ring {
        Ok(r) => r,
        Err(e) => return fail(e.clone()),
    };
    let Some(admin) = material.admin.as_ref() else {
        return fail("the admin certificate is not in the state directory".into());
    };
    let Some(member) = member else {
        return fail("no etcd member answered: cannot read the Secret back raw".into());
    };
    let api = match ApiClient::new(
        &inv.cluster.api_endpoint,
        inv.cluster.api_port,
        &material.cluster_ca_pem,
        Some(admin),
        limit,
    ) {
        Ok(a) => a,
        Err(e) => return fail(format!("{e:#}")),
    };
    let name = format!("provision-verify-{:08x}", rand::random::<u32>());
    let marker = hex::encode(rand::random::<[u8; 16]>());
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "provision-verify"}},
        "type": "Opaque",
        "data": {"probe": STANDARD.encode(marker.as_bytes())},
    });
    let created = api.send(Method::POST, "/api/v1/namespaces/default/secrets", "application/json", Some(&body)).await;
    let result = match created {
        Ok(r) if r.status == 201 => read_back(ring, member, material, &name, marker.as_bytes(), limit).await,
        Ok(r) => fail(format!("creating Secret default/{name} as admin: {}", r.describe())),
        Err(e) => fail(format!("creating Secret default/{name}: {e:#}")),
    };
    let path = format!("/api/v1/namespaces/default/secrets/{name}");
    let deleted = api.send(Method::DELETE, &path, "application/json", None).await;
    match deleted {
        Ok(r) if r.status < 300 || r.status == 404 => result,
        Ok(r) => fail(format!("{}; and deleting it failed: {}", result.evidence, r.describe())),
        Err(e) => fail(format!("{}; and deleting it failed: {e:#}", result.evidence)),
    }
}

async fn read_back(
    ring: &Keyring,
    member: &Member,
    material: &Material,
    name: &str,
    marker: &[u8],
    limit: Duration,
) -> CheckResult {
    let fail = |e: String| CheckResult::cluster(NEW_SECRET, NEW_TITLE, Status::Fail, e);
    let key = format!("{SECRETS_PREFIX}default/{name}");
    let mut client: MemberClient = match connect(member, &material.etcd_client, limit).await {
        Ok(c) => c,
        Err(p) => return fail(format!("{}: {p}", member.name)),
    };
    let raw = match tokio::time::timeout(limit, client.client.get(key.clone(), None)).await {
        Ok(Ok(r)) => r.kvs().first().map(|kv| kv.value().to_vec()),
        Ok(Err(e)) => {
            return fail(format!("reading {key}: {}", crate::etcd::explain::explain(&e, &member.client_url)));
        }
        Err(_) => {
            return fail(format!("reading {key}: no answer within {}s", limit.as_secs()));
        }
    };
    let Some(raw) = raw else {
        return fail(format!(
            "the Secret was created but {key} is not in etcd (is kube-apiserver's --etcd-prefix /registry?)"
        ));
    };
    judge_new(&key, &raw, ring, marker)
}

/// The new Secret must be encrypted with the first key and hold exactly what was written.
pub fn judge_new(key: &str, raw: &[u8], ring: &Keyring, marker: &[u8]) -> CheckResult {
    let fail = |e: String| CheckResult::cluster(NEW_SECRET, NEW_TITLE, Status::Fail, e);
    if envelope::parse(raw).is_none() {
        return fail(format!("{key} is stored in PLAINTEXT (first provider for secrets: {})", ring.first_provider));
    }
    let (provider, key_name, secret) = match stored::open(raw, ring) {
        Ok(v) => v,
        Err(e) => return fail(format!("{key}: {e}")),
    };
    let first = ring.keys.first().map(|k| (k.provider.name().to_string(), k.name.clone()));
    if first.as_ref() != Some(&(provider.clone(), key_name.clone())) {
        return fail(format!(
            "{key} is encrypted with {provider} {key_name}, not the first configured key ({})",
            first.map(|(p, k)| format!("{p} {k}")).unwrap_or_else(|| "none".into())
        ));
    }
    if secret.data.get("probe").map(Vec::as_slice) != Some(marker) {
        return fail(format!("{key} decrypts to a Secret that does not hold the data just written"));
    }
    CheckResult::cluster(
        NEW_SECRET,
        NEW_TITLE,
        Status::Pass,
        format!(
            "{key}: prefix k8s:enc:{provider}:v1:{key_name}:, decrypted with the key from {} to Secret {}/{} holding the data written",
            ring.source, secret.namespace, secret.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::k8s_proto::{NewSecret, encode_secret};
    use super::*;

    #[test]
    fn the_new_secret_must_use_the_first_key_and_hold_the_marker() {
        let key = [5u8; 32];
        let ring = Keyring::from_state_key(Provider::Secretbox, &key, "k".into());
        let plain = encode_secret(&NewSecret {
            namespace: "default",
            name: "p",
            uid: "u",
            created_unix: 1,
            data: &[("probe", b"m1")],
        });
        let stored = envelope::encrypt(Provider::Secretbox, "key1", &key, &[1u8; 24], &plain).unwrap();
        let k = "/registry/secrets/default/p";
        assert_eq!(judge_new(k, &stored, &ring, b"m1").status, Status::Pass);
        assert!(judge_new(k, &stored, &ring, b"m2").evidence.contains("does not hold"));
        assert!(judge_new(k, &plain, &ring, b"m1").evidence.contains("PLAINTEXT"));
    }

    #[test]
    fn nothing_stored_is_a_skip_and_a_missing_keyring_fails_naming_why() {
        assert_eq!(judge_all(&[], &Err("no key".into())).status, Status::Skip);
        let key = [5u8; 32];
        let plain = encode_secret(&NewSecret { namespace: "default", name: "p", uid: "u", created_unix: 1, data: &[] });
        let stored = envelope::encrypt(Provider::Aescbc, "key1", &key, &[1u8; 16], &plain).unwrap();
        let r = judge_all(&[("/registry/secrets/default/p".into(), stored)], &Err("no encryption key at /x".into()));
        assert_eq!(r.status, Status::Fail);
        assert!(r.evidence.contains("no encryption key at /x"), "{}", r.evidence);
    }
}
