//! What an existing certificate file says, read with x509-parser into owned values so the
//! reuse check and `certs list` work on plain data.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::{Context, bail};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::keys;
use super::spec::{San, Subject};
use crate::inventory::KeyAlgorithm;

#[derive(Debug, Clone)]
pub struct CertFacts {
    pub der: Vec<u8>,
    /// The subject as openssl would print it (RFC 4514 order).
    pub subject_text: String,
    pub issuer_text: String,
    /// CN and O when the subject holds exactly one CN, any number of O and nothing else.
    pub subject: Option<Subject>,
    pub sans: BTreeSet<San>,
    /// SAN entries other than DNS names and IP addresses (e-mail, URI, ...).
    pub other_sans: usize,
    pub server_auth: bool,
    pub client_auth: bool,
    /// Extended key usages other than serverAuth and clientAuth.
    pub other_ekus: usize,
    pub digital_signature: bool,
    pub key_encipherment: bool,
    pub key_cert_sign: bool,
    pub is_ca: bool,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub key_algorithm: Option<KeyAlgorithm>,
    pub key_description: String,
    /// DER SubjectPublicKeyInfo, to match the certificate against a key file.
    pub public_key_info: Vec<u8>,
}

/// The DER bytes of the first CERTIFICATE block of a PEM file.
pub fn pem_to_der(pem: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("{what} is not a PEM file ({e})"))?;
    if block.label != "CERTIFICATE" {
        bail!("{what} holds a {} block, not a CERTIFICATE", block.label);
    }
    Ok(block.contents)
}

impl CertFacts {
    pub fn from_pem(pem: &str, what: &str) -> anyhow::Result<CertFacts> {
        let der = pem_to_der(pem, what)?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(|e| anyhow::anyhow!("{what} is not an X.509 certificate ({e})"))?;
        let facts = read(&cert).with_context(|| format!("reading {what}"))?;
        Ok(CertFacts { der, ..facts })
    }

    /// True when `issuer_public_key_info` (DER SPKI of the CA) verifies this certificate's signature.
    pub fn is_signed_by(&self, issuer_public_key_info: &[u8]) -> bool {
        let Ok((_, cert)) = X509Certificate::from_der(&self.der) else { return false };
        let Ok((_, spki)) = SubjectPublicKeyInfo::from_der(issuer_public_key_info) else { return false };
        cert.verify_signature(Some(&spki)).is_ok()
    }

    pub fn days_left(&self, now: OffsetDateTime) -> i64 {
        (self.not_after - now).whole_days()
    }
}

fn read(cert: &X509Certificate<'_>) -> anyhow::Result<CertFacts> {
    let mut facts = CertFacts {
        der: Vec::new(),
        subject_text: cert.subject().to_string(),
        issuer_text: cert.issuer().to_string(),
        subject: simple_subject(cert),
        sans: BTreeSet::new(),
        other_sans: 0,
        server_auth: false,
        client_auth: false,
        other_ekus: 0,
        digital_signature: false,
        key_encipherment: false,
        key_cert_sign: false,
        is_ca: cert.is_ca(),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        key_algorithm: keys::algorithm_of(cert.public_key()),
        key_description: keys::describe(cert.public_key()),
        public_key_info: cert.public_key().raw.to_vec(),
    };
    if let Some(san) = cert.subject_alternative_name().context("subjectAltName")? {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => {
                    facts.sans.insert(San::Dns(dns.to_string()));
                }
                GeneralName::IPAddress(bytes) => match ip_from_bytes(bytes) {
                    Some(ip) => {
                        facts.sans.insert(San::Ip(ip));
                    }
                    None => facts.other_sans += 1,
                },
                _ => facts.other_sans += 1,
            }
        }
    }
    if let Some(eku) = cert.extended_key_usage().context("extendedKeyUsage")? {
        let eku = &eku.value;
        facts.server_auth = eku.server_auth;
        facts.client_auth = eku.client_auth;
        facts.other_ekus = eku.other.len()
            + [eku.any, eku.code_signing, eku.email_protection, eku.time_stamping, eku.ocsp_signing]
                .iter()
                .filter(|b| **b)
                .count();
    }
    if let Some(ku) = cert.key_usage().context("keyUsage")? {
        facts.digital_signature = ku.value.digital_signature();
        facts.key_encipherment = ku.value.key_encipherment();
        facts.key_cert_sign = ku.value.key_cert_sign();
    }
    Ok(facts)
}

fn simple_subject(cert: &X509Certificate<'_>) -> Option<Subject> {
    let name = cert.subject();
    let cns: Vec<&str> = name.iter_common_name().filter_map(|a| a.as_str().ok()).collect();
    let orgs: Vec<String> = name.iter_organization().filter_map(|a| a.as_str().ok().map(str::to_string)).collect();
    let total = name.iter_attributes().count();
    match cns.as_slice() {
        [cn] if total == 1 + orgs.len() => Some(Subject { common_name: cn.to_string(), organizations: orgs }),
        _ => None,
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}
