//! Judging the raw values under /registry/secrets/ in etcd: each must carry the
//! encryption prefix, decrypt with a key of the configuration, and decrypt to the very
//! Secret its etcd key names (a value copied under another name would not).

use std::collections::BTreeMap;

use etcd_client::GetOptions;

use super::envelope;
use super::k8s_proto::{self, StoredSecret};
use super::keyring::Keyring;
use crate::etcd::connect::MemberClient;

/// kube-apiserver's default --etcd-prefix is /registry; Secrets live under it.
pub const SECRETS_PREFIX: &str = "/registry/secrets/";

/// What one stored value turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Encrypted, decrypted with (provider, key name), and it is the Secret its key names.
    Encrypted { provider: String, key_name: String },
    /// No `k8s:enc:` prefix: readable by anyone who reads etcd or its snapshots.
    Plaintext,
    /// Carries the prefix but could not be decrypted or is not the Secret it should be.
    Broken(String),
}

/// "default/db-password" from "/registry/secrets/default/db-password".
pub fn secret_path(etcd_key: &str) -> Option<(&str, &str)> {
    etcd_key.strip_prefix(SECRETS_PREFIX)?.split_once('/')
}

/// Decrypts a stored value; the Secret it holds, or why not.
pub fn open(value: &[u8], ring: &Keyring) -> Result<(String, String, StoredSecret), String> {
    let env = envelope::parse(value).ok_or("no k8s:enc: prefix")?;
    let key = ring.find(&env.provider, &env.key_name).ok_or_else(|| {
        format!("encrypted by {} key {:?}, which {} does not hold", env.provider, env.key_name, ring.source)
    })?;
    let plain = envelope::decrypt(key.provider, &key.secret, env.payload)
        .map_err(|e| format!("{} key {:?} from {}: {e}", env.provider, env.key_name, ring.source))?;
    let secret = k8s_proto::decode_secret(&plain).map_err(|e| {
        format!("decrypted with {} key {:?} but the result {e} (wrong key?)", env.provider, env.key_name)
    })?;
    Ok((env.provider, env.key_name, secret))
}

pub fn judge(etcd_key: &str, value: &[u8], ring: &Keyring) -> Verdict {
    if envelope::parse(value).is_none() {
        return Verdict::Plaintext;
    }
    match open(value, ring) {
        Ok((provider, key_name, secret)) => {
            let expected = secret_path(etcd_key);
            if expected != Some((secret.namespace.as_str(), secret.name.as_str())) {
                return Verdict::Broken(format!(
                    "decrypts to Secret {}/{}, not the one its key names",
                    secret.namespace, secret.name
                ));
            }
            Verdict::Encrypted { provider, key_name }
        }
        Err(e) => Verdict::Broken(e),
    }
}

/// Every key and value under `prefix`, in pages (a cluster may hold many Secrets).
pub async fn list(client: &mut MemberClient, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, etcd_client::Error> {
    const PAGE: i64 = 500;
    let end = prefix_end(prefix.as_bytes());
    let mut from = prefix.as_bytes().to_vec();
    let mut out = Vec::new();
    loop {
        let resp =
            client.client.get(from.clone(), Some(GetOptions::new().with_range(end.clone()).with_limit(PAGE))).await?;
        let kvs = resp.kvs();
        for kv in kvs {
            out.push((String::from_utf8_lossy(kv.key()).into_owned(), kv.value().to_vec()));
        }
        match (resp.more(), kvs.last()) {
            (true, Some(last)) => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => return Ok(out),
        }
    }
}

/// The smallest key after every key starting with `prefix` (etcd's range end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A summary of many verdicts: counts per provider/key, and the names of the bad ones.
#[derive(Debug, Default)]
pub struct Tally {
    pub encrypted: BTreeMap<String, usize>,
    pub plaintext: Vec<String>,
    pub broken: Vec<(String, String)>,
}

impl Tally {
    pub fn add(&mut self, etcd_key: &str, verdict: Verdict) {
        let name = etcd_key.strip_prefix(SECRETS_PREFIX).unwrap_or(etcd_key).to_string();
        match verdict {
            Verdict::Encrypted { provider, key_name } => {
                *self.encrypted.entry(format!("{provider} {key_name}")).or_default() += 1;
            }
            Verdict::Plaintext => self.plaintext.push(name),
            Verdict::Broken(why) => self.broken.push((name, why)),
        }
    }

    pub fn total(&self) -> usize {
        self.encrypted.values().sum::<usize>() + self.plaintext.len() + self.broken.len()
    }

    pub fn ok(&self) -> bool {
        self.plaintext.is_empty() && self.broken.is_empty()
    }

    /// Evidence: the failures first (by name, at most 20 each), then the counts.
    pub fn evidence(&self, source: &str) -> String {
        let mut parts = Vec::new();
        if !self.plaintext.is_empty() {
            parts.push(format!(
                "{} stored in PLAINTEXT: {}",
                self.plaintext.len(),
                list_some(self.plaintext.iter().map(String::as_str))
            ));
        }
        if !self.broken.is_empty() {
            let shown: Vec<String> = self.broken.iter().take(20).map(|(n, why)| format!("{n} ({why})")).collect();
            let more = self.broken.len().saturating_sub(20);
            parts.push(format!(
                "{} not decryptable to their Secret: {}{}",
                self.broken.len(),
                shown.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            ));
        }
        let counts: Vec<String> = self.encrypted.iter().map(|(k, n)| format!("{n} with {k}")).collect();
        if !counts.is_empty() {
            parts.push(format!(
                "{} decrypted to the Secret their key names ({}; keys from {source})",
                self.encrypted.values().sum::<usize>(),
                counts.join(", ")
            ));
        }
        parts.join("; ")
    }
}

fn list_some<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = names.collect();
    let shown = all.iter().take(20).copied().collect::<Vec<_>>().join(", ");
    match all.len().saturating_sub(20) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::envelope::Provider;
    use super::super::k8s_proto::{NewSecret, encode_secret};
    use super::*;

    fn ring(key: &[u8]) -> Keyring {
        Keyring::from_state_key(Provider::Aescbc, key, "test key".into())
    }

    fn stored(ns: &str, name: &str, key: &[u8]) -> Vec<u8> {
        let plain = encode_secret(&NewSecret { namespace: ns, name, uid: "u", created_unix: 1, data: &[("k", b"v")] });
        envelope::encrypt(Provider::Aescbc, "key1", key, &[3u8; 16], &plain).unwrap()
    }

    #[test]
    fn encrypted_plaintext_wrong_key_and_swapped_values() {
        let key = [1u8; 32];
        let r = ring(&key);
        let good = stored("default", "a", &key);
        assert_eq!(
            judge("/registry/secrets/default/a", &good, &r),
            Verdict::Encrypted { provider: "aescbc".into(), key_name: "key1".into() }
        );
        let plain = encode_secret(&NewSecret { namespace: "default", name: "b", uid: "u", created_unix: 1, data: &[] });
        assert_eq!(judge("/registry/secrets/default/b", &plain, &r), Verdict::Plaintext);
        // The value of a copied under b's name: decrypts, but to the wrong Secret.
        assert!(
            matches!(judge("/registry/secrets/default/b", &good, &r), Verdict::Broken(m) if m.contains("default/a"))
        );
        let wrong = ring(&[2u8; 32]);
        assert!(
            matches!(judge("/registry/secrets/default/a", &good, &wrong), Verdict::Broken(m) if m.contains("key1"))
        );
        let mut other_name = good.clone();
        other_name[18..22].copy_from_slice(b"key9");
        assert!(
            matches!(judge("/registry/secrets/default/a", &other_name, &r), Verdict::Broken(m) if m.contains("does not hold"))
        );
    }

    #[test]
    fn tally_names_the_bad_ones() {
        let mut t = Tally::default();
        t.add("/registry/secrets/default/a", Verdict::Encrypted { provider: "aescbc".into(), key_name: "key1".into() });
        t.add("/registry/secrets/kube-system/token", Verdict::Plaintext);
        assert!(!t.ok());
        assert_eq!(t.total(), 2);
        let e = t.evidence("here");
        assert!(e.starts_with("1 stored in PLAINTEXT: kube-system/token"), "{e}");
        assert!(e.contains("1 with aescbc key1"), "{e}");
        assert_eq!(prefix_end(b"/registry/secrets/"), b"/registry/secrets0".to_vec());
        assert_eq!(secret_path("/registry/secrets/ns/n"), Some(("ns", "n")));
    }
}
