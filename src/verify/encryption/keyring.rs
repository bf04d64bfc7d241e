//! The keys that may have encrypted a stored Secret, read from an EncryptionConfiguration
//! (apiserver.config.k8s.io/v1) the way kube-apiserver reads it: the provider list of
//! the entry that covers `secrets`, in order (the first one encrypts new writes).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_yaml_ng::Value;
use zeroize::Zeroizing;

use super::envelope::Provider;

pub struct Key {
    pub provider: Provider,
    pub name: String,
    pub secret: Zeroizing<Vec<u8>>,
}

/// Keys in provider order, and where they came from. Debug never shows key bytes.
pub struct Keyring {
    pub keys: Vec<Key>,
    /// The first provider for secrets ("aescbc", "secretbox", "identity", "kms", ...).
    pub first_provider: String,
    /// The configuration lists `identity` (plaintext reads allowed, e.g. during migration).
    pub identity_listed: bool,
    /// "/etc/kubernetes/encryption-config.yaml on node1", for the evidence.
    pub source: String,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self.keys.iter().map(|k| format!("{}:{}", k.provider.name(), k.name)).collect();
        f.debug_struct("Keyring")
            .field("keys", &keys)
            .field("first_provider", &self.first_provider)
            .field("source", &self.source)
            .finish()
    }
}

impl Keyring {
    /// The one key render puts into the encryption config (name key1) from the state
    /// directory, for clusters whose config is not on any host to read.
    pub fn from_state_key(provider: Provider, key: &[u8], source: String) -> Keyring {
        Keyring {
            keys: vec![Key { provider, name: "key1".into(), secret: Zeroizing::new(key.to_vec()) }],
            first_provider: provider.name().into(),
            identity_listed: true,
            source,
        }
    }

    /// Parses an EncryptionConfiguration. Errors name the problem, never a key.
    pub fn from_config(yaml: &[u8], source: String) -> Result<Keyring, String> {
        let doc: Value = serde_yaml_ng::from_slice(yaml)
            .map_err(|e| format!("{source} is not valid YAML: {}", e.to_string().replace('\n', " ")))?;
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind != "EncryptionConfiguration" {
            return Err(format!("{source} is not an EncryptionConfiguration (kind {kind:?})"));
        }
        let resources = doc.get("resources").and_then(Value::as_sequence).cloned().unwrap_or_default();
        let entry = resources
            .iter()
            .find(|r| {
                r.get("resources")
                    .and_then(Value::as_sequence)
                    .is_some_and(|l| l.iter().any(|x| matches!(x.as_str(), Some("secrets") | Some("*.*") | Some("*."))))
            })
            .ok_or_else(|| format!("{source}: no provider list covers secrets (they are stored in plaintext)"))?;
        let providers = entry.get("providers").and_then(Value::as_sequence).cloned().unwrap_or_default();
        let mut ring = Keyring { keys: Vec::new(), first_provider: String::new(), identity_listed: false, source };
        for (i, p) in providers.iter().enumerate() {
            let Some((name, body)) = p.as_mapping().and_then(|m| m.iter().next()) else {
                continue;
            };
            let name = name.as_str().unwrap_or("").to_string();
            if i == 0 {
                ring.first_provider = name.clone();
            }
            if name == "identity" {
                ring.identity_listed = true;
            }
            let Some(provider) = Provider::from_name(&name) else {
                continue;
            };
            for k in body.get("keys").and_then(Value::as_sequence).cloned().unwrap_or_default() {
                let key_name = k.get("name").and_then(Value::as_str).unwrap_or("").to_string();
                let secret = k
                    .get("secret")
                    .and_then(Value::as_str)
                    .and_then(|s| STANDARD.decode(s.trim()).ok())
                    .map(Zeroizing::new)
                    .ok_or_else(|| format!("{}: {name} key {key_name:?} has no base64 secret", ring.source))?;
                ring.keys.push(Key { provider, name: key_name, secret });
            }
        }
        if ring.first_provider.is_empty() {
            return Err(format!("{}: the provider list for secrets is empty", ring.source));
        }
        Ok(ring)
    }

    pub fn find(&self, provider: &str, key_name: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.provider.name() == provider && k.name == key_name)
    }

    /// "aescbc key1 (+1 more)"
    pub fn describe(&self) -> String {
        match self.keys.first() {
            Some(k) if self.keys.len() == 1 => format!("{} {}", k.provider.name(), k.name),
            Some(k) => format!("{} {} (+{} more)", k.provider.name(), k.name, self.keys.len() - 1),
            None => "no aescbc/secretbox key".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources:\n      - secrets\n    providers:\n      - secretbox:\n          keys:\n            - name: key2\n              secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n      - aescbc:\n          keys:\n            - name: key1\n              secret: c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcyEhISE=\n      - identity: {}\n";

    #[test]
    fn providers_in_order_with_their_keys() {
        let ring = Keyring::from_config(CONFIG.as_bytes(), "test".into()).unwrap();
        assert_eq!(ring.first_provider, "secretbox");
        assert!(ring.identity_listed);
        assert_eq!(ring.keys.len(), 2);
        assert_eq!(ring.find("aescbc", "key1").unwrap().secret.as_slice(), b"secret-key-material-32-bytes!!!!");
        assert!(ring.find("aescbc", "key2").is_none());
        let dbg = format!("{ring:?}");
        assert!(!dbg.contains("c2VjcmV0") && !dbg.contains("secret-key"), "{dbg}");
    }

    #[test]
    fn bad_configs_are_named_without_keys() {
        let e = Keyring::from_config(b"kind: Other\n", "x.yaml".into()).unwrap_err();
        assert!(e.contains("not an EncryptionConfiguration"));
        let no_secrets = CONFIG.replace("- secrets", "- configmaps");
        assert!(Keyring::from_config(no_secrets.as_bytes(), "x".into()).unwrap_err().contains("plaintext"));
        let bad = CONFIG.replace("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "zz-not-base64");
        let e = Keyring::from_config(bad.as_bytes(), "x".into()).unwrap_err();
        assert!(e.contains("key2") && !e.contains("zz-not") && !e.contains("c2VjcmV0"), "{e}");
    }
}
