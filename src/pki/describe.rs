//! A certificate described for people and scripts: what `certs list` and `Pki::describe` show.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::CertId;
use super::facts::CertFacts;

#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    /// None for a certificate file the inventory does not call for.
    pub id: Option<CertId>,
    /// File stem under the PKI directory, e.g. "etcd-server-node1".
    pub name: String,
    /// File name under the PKI directory, e.g. "etcd-server-node1.crt".
    pub file: String,
    pub subject: String,
    pub sans: Vec<String>,
    pub issuer: String,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    /// Whole days until not_after (negative once expired).
    pub days_left: i64,
    pub key_algorithm: String,
    pub is_ca: bool,
}

pub fn describe(id: Option<&CertId>, name: &str, facts: &CertFacts, now: OffsetDateTime) -> CertInfo {
    CertInfo {
        id: id.cloned(),
        name: name.to_string(),
        file: format!("{name}.crt"),
        subject: facts.subject_text.clone(),
        sans: facts.sans.iter().map(|s| s.to_string()).collect(),
        issuer: facts.issuer_text.clone(),
        not_before: rfc3339(facts.not_before),
        not_after: rfc3339(facts.not_after),
        days_left: facts.days_left(now),
        key_algorithm: facts.key_description.clone(),
        is_ca: facts.is_ca,
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}
