//! One leaf certificate on disk: decide whether the files there can be kept, and issue a
//! new pair when they cannot. The decision is shared by `ensure` (which acts on it) and
//! `inspect` (which only reports it).

use std::path::{Path, PathBuf};

use rcgen::PublicKeyData;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::ca::Ca;
use super::facts::CertFacts;
use super::reuse::{self, Expectations, Verdict};
use super::spec::LeafSpec;
use super::{Issued, issue, keys, store};
use crate::inventory::PkiSettings;

pub enum Decision {
    /// The files on disk, byte for byte.
    Keep(Issued),
    Missing,
    Renew(String),
    Reissue(String),
}

pub fn paths(dir: &Path, spec: &LeafSpec) -> (PathBuf, PathBuf) {
    let stem = spec.id.file_stem();
    (dir.join(format!("{stem}.crt")), dir.join(format!("{stem}.key")))
}

pub fn decide(
    dir: &Path,
    spec: &LeafSpec,
    issuer_public_key_info: &[u8],
    settings: &PkiSettings,
    now: OffsetDateTime,
) -> anyhow::Result<Decision> {
    let (crt, key_path) = paths(dir, spec);
    let cert_pem = store::read_optional_text(&crt)?;
    let key_pem = store::read_optional_text(&key_path)?.map(Zeroizing::new);
    let (cert_pem, key_pem) = match (cert_pem, key_pem) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => return Ok(Decision::Missing),
        (Some(_), None) => return Ok(Decision::Reissue("the key file is missing".into())),
        (None, Some(_)) => return Ok(Decision::Reissue("the certificate file is missing".into())),
    };
    // A damaged leaf is simply replaced: it carries no trust others depend on.
    let facts = match CertFacts::from_pem(&cert_pem, &crt.display().to_string()) {
        Ok(f) => f,
        Err(e) => return Ok(Decision::Reissue(format!("{e:#}"))),
    };
    let key = match keys::load(&key_pem, &key_path.display().to_string()) {
        Ok(k) => k,
        Err(e) => return Ok(Decision::Reissue(format!("{e:#}"))),
    };
    let key_public_key_info = key.subject_public_key_info();
    let want = Expectations {
        spec,
        key_algorithm: settings.key_algorithm,
        issuer_public_key_info,
        key_public_key_info: &key_public_key_info,
        renew_before_days: settings.renew_before_days,
        now,
    };
    Ok(match reuse::check(&facts, &want) {
        Verdict::Keep => Decision::Keep(Issued { cert_pem, key_pem }),
        Verdict::Renew(why) => Decision::Renew(why),
        Verdict::Reissue(why) => Decision::Reissue(why),
    })
}

/// A new key and certificate for `spec`, written to disk (key 0600, written first).
pub fn issue(dir: &Path, spec: &LeafSpec, ca: &Ca, settings: &PkiSettings, now: OffsetDateTime) -> anyhow::Result<Issued> {
    let (crt, key_path) = paths(dir, spec);
    let key = keys::generate(settings.key_algorithm)?;
    let rsa = keys::is_rsa(settings.key_algorithm);
    let cert_pem = issue::leaf(spec, &key, rsa, &ca.issuer, settings.leaf_validity_days, now)?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    store::write_atomic(&key_path, key_pem.as_bytes(), store::PRIVATE_FILE_MODE)?;
    store::write_atomic(&crt, cert_pem.as_bytes(), store::PUBLIC_FILE_MODE)?;
    Ok(Issued { cert_pem, key_pem })
}
