//! The three certificate authorities: created once, then only ever loaded. A CA that has
//! issued certificates is never replaced behind the operator's back: a missing or
//! mismatched CA file is an error that says what to do.

use std::path::Path;

use anyhow::bail;
use rcgen::{Issuer, KeyPair, PublicKeyData};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::facts::CertFacts;
use super::spec::ca_subject;
use super::{CertEvent, CertId, EventKind, Issued, issue, keys, store};
use crate::inventory::PkiSettings;

pub struct Ca {
    pub issued: Issued,
    pub issuer: Issuer<'static, KeyPair>,
    /// DER SubjectPublicKeyInfo, to check which certificates this CA signed.
    pub public_key_info: Vec<u8>,
}

pub fn ensure(dir: &Path, id: &CertId, settings: &PkiSettings, now: OffsetDateTime) -> anyhow::Result<(Ca, CertEvent)> {
    let stem = id.file_stem();
    let (crt_path, key_path) = (dir.join(format!("{stem}.crt")), dir.join(format!("{stem}.key")));
    let cert_pem = store::read_optional_text(&crt_path)?;
    let key_pem = store::read_optional_text(&key_path)?.map(Zeroizing::new);
    match (cert_pem, key_pem) {
        (None, None) => create(id, &crt_path, &key_path, settings, now),
        (Some(cert_pem), Some(key_pem)) => load(id, &crt_path, &key_path, cert_pem, key_pem, settings, now),
        (Some(_), None) => bail!(
            "{} exists but its private key {} is missing. The CA has signed the certificates the \
             hosts use, so provision will not silently make a new one: restore {} from your backup, \
             or, to start a new PKI for the whole cluster, move {} away and run again (every host \
             then gets new certificates).",
            crt_path.display(),
            key_path.display(),
            key_path.display(),
            dir.display()
        ),
        (None, Some(_)) => bail!(
            "{} exists but its certificate {} is missing: restore {} from your backup, or, if a \
             previous run was interrupted while creating this CA, delete {} and run again.",
            key_path.display(),
            crt_path.display(),
            crt_path.display(),
            key_path.display()
        ),
    }
}

fn create(id: &CertId, crt: &Path, key_path: &Path, settings: &PkiSettings, now: OffsetDateTime) -> anyhow::Result<(Ca, CertEvent)> {
    let key = keys::generate(settings.key_algorithm)?;
    let cert_pem = issue::ca(&ca_subject(id), &key, settings.ca_validity_days, now)?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    // Key first: an interrupted run leaves a key without a certificate, which the next run
    // reports, rather than a certificate nobody can sign with.
    store::write_atomic(key_path, key_pem.as_bytes(), store::PRIVATE_FILE_MODE)?;
    store::write_atomic(crt, cert_pem.as_bytes(), store::PUBLIC_FILE_MODE)?;
    let event = CertEvent::new(id, EventKind::Issued, format!("new CA, {} days", settings.ca_validity_days));
    Ok((build(cert_pem, key_pem, key, crt)?, event))
}

fn load(
    id: &CertId,
    crt: &Path,
    key_path: &Path,
    cert_pem: String,
    key_pem: Zeroizing<String>,
    settings: &PkiSettings,
    now: OffsetDateTime,
) -> anyhow::Result<(Ca, CertEvent)> {
    let what = crt.display().to_string();
    let facts = CertFacts::from_pem(&cert_pem, &what)?;
    let key = keys::load(&key_pem, &key_path.display().to_string())?;
    if key.subject_public_key_info() != facts.public_key_info {
        bail!(
            "{} does not belong to {}: restore the matching pair from your backup (provision will \
             not replace a CA that has signed the hosts' certificates)",
            key_path.display(),
            crt.display()
        );
    }
    if !facts.is_ca || !facts.key_cert_sign {
        bail!("{} is not a CA certificate (no CA:TRUE / keyCertSign): restore the CA from your backup", crt.display());
    }
    if facts.not_after <= now {
        bail!(
            "the CA {} expired on {}: every certificate it signed is invalid. CA rotation is not \
             automated yet: move {} away and run again to build a new PKI, then re-apply to every host.",
            crt.display(),
            facts.not_after.date(),
            crt.parent().map(|p| p.display().to_string()).unwrap_or_default()
        );
    }
    let mut notes = Vec::new();
    if store::tighten(key_path)? {
        notes.push(format!("{} was readable by others: mode set to 0600", key_path.display()));
    }
    let days_left = facts.days_left(now);
    if days_left < i64::from(settings.renew_before_days) {
        notes.push(format!("CA expires in {days_left} days: plan a CA rotation"));
    }
    if facts.key_algorithm != Some(settings.key_algorithm) {
        notes.push(format!(
            "CA key is {} while pki.key_algorithm is {}: the CA is kept (changing it means a CA rotation)",
            facts.key_description,
            keys::label(settings.key_algorithm)
        ));
    }
    let reason = if notes.is_empty() { format!("valid, {days_left} days left") } else { notes.join("; ") };
    let event = CertEvent::new(id, EventKind::Reused, reason);
    Ok((build(cert_pem, key_pem, key, crt)?, event))
}

fn build(cert_pem: String, key_pem: Zeroizing<String>, key: KeyPair, crt: &Path) -> anyhow::Result<Ca> {
    let public_key_info = key.subject_public_key_info();
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
        .map_err(|e| anyhow::anyhow!("{} cannot be used as an issuer ({e})", crt.display()))?;
    Ok(Ca { issued: Issued { cert_pem, key_pem }, issuer, public_key_info })
}
