//! Whether an existing leaf certificate can be kept as it is. A certificate is kept only
//! when every property provision controls still matches: anything else is re-issued, and
//! the reason says what differed so the operator sees why a host will get a new file.

use time::OffsetDateTime;

use super::facts::CertFacts;
use super::keys;
use super::spec::LeafSpec;
use crate::inventory::KeyAlgorithm;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// The certificate still says the right things but expires soon (or already did).
    Renew(String),
    /// The certificate no longer says what the inventory asks for.
    Reissue(String),
}

pub struct Expectations<'a> {
    pub spec: &'a LeafSpec,
    pub key_algorithm: KeyAlgorithm,
    /// DER SPKI of the CA that must have signed the certificate.
    pub issuer_public_key_info: &'a [u8],
    /// DER SPKI of the key file next to the certificate.
    pub key_public_key_info: &'a [u8],
    pub renew_before_days: u32,
    pub now: OffsetDateTime,
}

pub fn check(cert: &CertFacts, want: &Expectations<'_>) -> Verdict {
    let spec = want.spec;
    if cert.public_key_info != want.key_public_key_info {
        return Verdict::Reissue("the key file does not match the certificate".into());
    }
    if !cert.is_signed_by(want.issuer_public_key_info) {
        return Verdict::Reissue(format!("not signed by the current {}", spec.issuer));
    }
    if cert.subject.as_ref() != Some(&spec.subject) {
        return Verdict::Reissue(format!("subject changed: {} -> {}", cert.subject_text, spec.subject));
    }
    if cert.sans != spec.sans || cert.other_sans > 0 {
        let added: Vec<String> = spec.sans.difference(&cert.sans).map(|s| format!("+{s}")).collect();
        let removed: Vec<String> = cert.sans.difference(&spec.sans).map(|s| format!("-{s}")).collect();
        let mut changes = [added, removed].concat();
        if cert.other_sans > 0 {
            changes.push(format!("-{} other names", cert.other_sans));
        }
        return Verdict::Reissue(format!("SANs changed: {}", changes.join(" ")));
    }
    if cert.server_auth != spec.server_auth || cert.client_auth != spec.client_auth || cert.other_ekus > 0 {
        return Verdict::Reissue("extended key usages changed".into());
    }
    if cert.key_algorithm != Some(want.key_algorithm) {
        return Verdict::Reissue(format!(
            "key algorithm changed: {} -> {}",
            cert.key_description,
            keys::label(want.key_algorithm)
        ));
    }
    let rsa = keys::is_rsa(want.key_algorithm);
    if cert.is_ca || !cert.digital_signature || cert.key_encipherment != rsa || cert.key_cert_sign {
        return Verdict::Reissue("key usages or basic constraints differ from the leaf profile".into());
    }
    if cert.not_before > want.now {
        return Verdict::Reissue(format!("not valid before {} (clock change?)", cert.not_before));
    }
    let days_left = cert.days_left(want.now);
    if cert.not_after <= want.now {
        return Verdict::Renew(format!("expired on {}", cert.not_after.date()));
    }
    if days_left < i64::from(want.renew_before_days) {
        return Verdict::Renew(format!(
            "expires in {days_left} days (renew_before_days = {})",
            want.renew_before_days
        ));
    }
    Verdict::Keep
}
