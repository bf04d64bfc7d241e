//! Key material without certificates: the service-account token signing key pair and the
//! encryption-at-rest key. Both are generated once and kept: replacing either would
//! invalidate existing tokens or make the Secrets stored in etcd unreadable.

use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::PublicKeyData;
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

use super::{CertEvent, EventKind, KeyPairPem, keys, store};
use crate::inventory::KeyAlgorithm;

pub const SA_KEY: &str = "sa.key";
pub const SA_PUB: &str = "sa.pub";
/// Base64 of 32 random bytes, the form EncryptionConfiguration takes.
pub const ENCRYPTION_KEY: &str = "encryption.key";
const ENCRYPTION_KEY_LEN: usize = 32;

pub fn service_account(pki_dir: &Path, alg: KeyAlgorithm) -> anyhow::Result<(KeyPairPem, CertEvent)> {
    let key_path = pki_dir.join(SA_KEY);
    let pub_path = pki_dir.join(SA_PUB);
    let private_pem = store::read_optional_text(&key_path)?.map(Zeroizing::new);
    let public_pem = store::read_optional_text(&pub_path)?;
    match (private_pem, public_pem) {
        (Some(private_pem), public_pem) => {
            let key = keys::load(&private_pem, &key_path.display().to_string())?;
            let derived = key.public_key_pem();
            let mut notes = Vec::new();
            if public_pem.as_deref() != Some(derived.as_str()) {
                // The public half is derived from the private key: rewriting it is safe.
                store::write_atomic(&pub_path, derived.as_bytes(), store::PUBLIC_FILE_MODE)?;
                notes.push(format!("{SA_PUB} rewritten from {SA_KEY}"));
            }
            if store::tighten(&key_path)? {
                notes.push(format!("{SA_KEY} was readable by others: mode set to 0600"));
            }
            if algorithm_of(&key) != Some(alg) {
                notes.push(format!(
                    "kept although pki.key_algorithm is {} (a new key would invalidate issued tokens)",
                    keys::label(alg)
                ));
            }
            let reason = if notes.is_empty() { "kept".to_string() } else { notes.join("; ") };
            let pair = KeyPairPem { public_pem: derived, private_pem };
            Ok((pair, CertEvent::service_account(EventKind::Reused, reason)))
        }
        (None, Some(_)) => bail!(
            "{} exists but the service-account private key {} is missing: restore it from your \
             backup, or delete {} to generate a new pair (service-account tokens already issued \
             then stop working)",
            pub_path.display(),
            key_path.display(),
            pub_path.display()
        ),
        (None, None) => {
            let key = keys::generate(alg)?;
            let pair = KeyPairPem { public_pem: key.public_key_pem(), private_pem: Zeroizing::new(key.serialize_pem()) };
            store::write_atomic(&key_path, pair.private_pem.as_bytes(), store::PRIVATE_FILE_MODE)?;
            store::write_atomic(&pub_path, pair.public_pem.as_bytes(), store::PUBLIC_FILE_MODE)?;
            let reason = format!("new {} key pair", keys::label(alg));
            Ok((pair, CertEvent::service_account(EventKind::Issued, reason)))
        }
    }
}

fn algorithm_of(key: &rcgen::KeyPair) -> Option<KeyAlgorithm> {
    let spki = key.subject_public_key_info();
    let (_, parsed) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki).ok()?;
    keys::algorithm_of(&parsed)
}

pub fn encryption_key(secrets_dir: &Path) -> anyhow::Result<(Zeroizing<Vec<u8>>, CertEvent)> {
    let path = secrets_dir.join(ENCRYPTION_KEY);
    if let Some(text) = store::read_optional(&path)?.map(Zeroizing::new) {
        let decoded = std::str::from_utf8(&text)
            .ok()
            .and_then(|t| STANDARD.decode(t.trim()).ok())
            .map(Zeroizing::new)
            .filter(|k| k.len() == ENCRYPTION_KEY_LEN);
        let Some(key) = decoded else {
            bail!(
                "{} is not the base64 of {ENCRYPTION_KEY_LEN} bytes. It encrypts the Secrets stored in \
                 etcd, so provision will not replace it: restore it from your backup.",
                path.display()
            );
        };
        let reason = if store::tighten(&path)? { "kept; mode set to 0600" } else { "kept" };
        return Ok((key, CertEvent::encryption_key(EventKind::Reused, reason.into())));
    }
    let mut key = Zeroizing::new(vec![0u8; ENCRYPTION_KEY_LEN]);
    rand::RngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut key).context("reading random bytes for the encryption key")?;
    let text = Zeroizing::new(format!("{}\n", STANDARD.encode(key.as_slice())));
    store::write_atomic(&path, text.as_bytes(), store::PRIVATE_FILE_MODE)?;
    Ok((key, CertEvent::encryption_key(EventKind::Issued, "new 32-byte key".into())))
}
