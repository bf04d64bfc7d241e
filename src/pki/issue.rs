//! Signing certificates with rcgen from a spec: the CA profile and the leaf profile.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::spec::{LeafSpec, San, Subject};

/// Certificates start a little in the past so a host whose clock lags the operator's
/// machine by a few minutes does not reject them as "not yet valid".
const BACKDATE: Duration = Duration::minutes(5);

/// A self-signed CA: keyCertSign + cRLSign, CA:TRUE with pathlen 0 (it signs leaves only).
pub fn ca(subject: &Subject, key: &KeyPair, validity_days: u32, now: OffsetDateTime) -> anyhow::Result<String> {
    let mut params = base(subject, validity_days, now);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(key).with_context(|| format!("signing the CA certificate {subject}"))?;
    Ok(cert.pem())
}

/// A leaf certificate for `spec`, on `key`, signed by `issuer`. RSA leaves also get
/// keyEncipherment (TLS key transport with RSA needs it); ECDSA leaves sign only.
pub fn leaf(
    spec: &LeafSpec,
    key: &KeyPair,
    rsa: bool,
    issuer: &Issuer<'_, KeyPair>,
    validity_days: u32,
    now: OffsetDateTime,
) -> anyhow::Result<String> {
    let mut params = base(&spec.subject, validity_days, now);
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if rsa {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    if spec.server_auth {
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if spec.client_auth {
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    for san in &spec.sans {
        params.subject_alt_names.push(match san {
            San::Ip(ip) => SanType::IpAddress(*ip),
            San::Dns(name) => SanType::DnsName(
                name.clone().try_into().with_context(|| format!("{name:?} cannot be written as a DNS SAN"))?,
            ),
        });
    }
    let cert = params.signed_by(key, issuer).with_context(|| format!("signing the certificate {}", spec.id))?;
    Ok(cert.pem())
}

fn base(subject: &Subject, validity_days: u32, now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, subject.common_name.as_str());
    for o in &subject.organizations {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    params.distinguished_name = dn;
    let now = now.replace_nanosecond(0).unwrap_or(now);
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(i64::from(validity_days));
    // A random serial: rcgen's default derives it from the public key, and two
    // certificates must never share a serial.
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    serial[0] |= 0x01; // positive and never shorter than 16 bytes
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params
}
