//! The PKI as it is on disk, compared with the inventory, without changing anything:
//! what `provision certs list` prints. It never creates a PKI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;
use time::OffsetDateTime;

use super::describe::{CertInfo, describe};
use super::facts::CertFacts;
use super::leaf::{self, Decision};
use super::spec::{CAS, leaf_specs};
use super::{CertId, store};
use crate::inventory::Inventory;
use crate::state::StateDir;

#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub pki_dir: PathBuf,
    pub renew_before_days: u32,
    pub certificates: Vec<Listed>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Valid, matches the inventory, outside its renewal window.
    Ok,
    /// The next render/apply renews it (inside the renewal window, or expired).
    Renew,
    /// The next render/apply re-issues it (it no longer matches the inventory).
    Reissue,
    /// A CA inside its renewal window: CAs are not renewed automatically.
    Expiring,
    /// A CA past its expiry date.
    Expired,
    Missing,
    /// A certificate file the inventory no longer calls for (e.g. a removed host).
    Extra,
}

impl Status {
    /// Statuses an operator must act on (or that the next apply will act on).
    pub fn needs_attention(self) -> bool {
        !matches!(self, Status::Ok | Status::Extra)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub name: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// None when there is no readable certificate file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<CertInfo>,
}

pub fn inspect(inv: &Inventory, state: &StateDir) -> anyhow::Result<Listing> {
    let dir = state.pki_dir();
    if !state.check()? || !dir.is_dir() {
        bail!(
            "there is no PKI at {}: run `provision render` or `provision apply` first (certs list never creates one)",
            dir.display()
        );
    }
    let settings = &inv.pki;
    let now = OffsetDateTime::now_utc();
    let mut certificates = Vec::new();
    let mut ca_keys = Vec::new();
    for ca in &CAS {
        let (listed, spki) = ca_entry(&dir, ca, settings.renew_before_days, now)?;
        certificates.push(listed);
        ca_keys.push((ca.clone(), spki));
    }
    let specs = leaf_specs(inv)?;
    for spec in &specs {
        let name = spec.id.file_stem();
        let issuer_spki = ca_keys.iter().find(|(id, _)| *id == spec.issuer).and_then(|(_, s)| s.as_deref());
        let (status, reason) = match issuer_spki {
            None => (Status::Reissue, Some(format!("{} is missing or unreadable", spec.issuer))),
            Some(spki) => match leaf::decide(&dir, spec, spki, settings, now)? {
                Decision::Keep(_) => (Status::Ok, None),
                Decision::Missing => (Status::Missing, None),
                Decision::Renew(why) => (Status::Renew, Some(why)),
                Decision::Reissue(why) => (Status::Reissue, Some(why)),
            },
        };
        let info = read_info(&dir, Some(&spec.id), &name, now)?;
        certificates.push(Listed { name, status, reason, info });
    }
    let expected: BTreeSet<String> =
        CAS.iter().map(CertId::file_stem).chain(specs.iter().map(|s| s.id.file_stem())).collect();
    for name in crt_stems(&dir)?.difference(&expected) {
        let info = read_info(&dir, None, name, now)?;
        let reason = Some("not in the inventory (a removed host?); delete it when no host uses it".to_string());
        certificates.push(Listed { name: name.clone(), status: Status::Extra, reason, info });
    }
    Ok(Listing { pki_dir: dir, renew_before_days: settings.renew_before_days, certificates })
}

/// The CA row, and its public key when the CA can sign (certificate and key both present).
fn ca_entry(dir: &Path, ca: &CertId, renew_before_days: u32, now: OffsetDateTime) -> anyhow::Result<(Listed, Option<Vec<u8>>)> {
    let name = ca.file_stem();
    let Some(pem) = store::read_optional_text(&dir.join(format!("{name}.crt")))? else {
        return Ok((Listed { name, status: Status::Missing, reason: None, info: None }, None));
    };
    let facts = match CertFacts::from_pem(&pem, &format!("{name}.crt")) {
        Ok(f) => f,
        Err(e) => {
            let listed = Listed { name, status: Status::Reissue, reason: Some(format!("{e:#}")), info: None };
            return Ok((listed, None));
        }
    };
    let info = Some(describe(Some(ca), &name, &facts, now));
    let key_present = dir.join(format!("{name}.key")).is_file();
    let days_left = facts.days_left(now);
    let (status, reason) = if !key_present {
        (Status::Missing, Some(format!("{name}.key is missing: restore it from your backup")))
    } else if facts.not_after <= now {
        (Status::Expired, Some(format!("expired on {}", facts.not_after.date())))
    } else if days_left < i64::from(renew_before_days) {
        (Status::Expiring, Some(format!("CA expires in {days_left} days: plan a CA rotation")))
    } else {
        (Status::Ok, None)
    };
    Ok((Listed { name, status, reason, info }, Some(facts.public_key_info)))
}

fn read_info(dir: &Path, id: Option<&CertId>, name: &str, now: OffsetDateTime) -> anyhow::Result<Option<CertInfo>> {
    let Some(pem) = store::read_optional_text(&dir.join(format!("{name}.crt")))? else { return Ok(None) };
    Ok(CertFacts::from_pem(&pem, name).ok().map(|f| describe(id, name, &f, now)))
}

fn crt_stems(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut stems = BTreeSet::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".crt").filter(|s| !s.starts_with('.')) {
            stems.insert(stem.to_string());
        }
    }
    Ok(stems)
}
