//! [security] audit settings against the CIS Kubernetes Benchmark, and [pki] lifetimes.

use super::Part;
use crate::inventory::locate::KeyPath;
use crate::inventory::report::Reporter;
use crate::inventory::schema::{PkiSettings, Security};

/// (key, CIS minimum, CIS check, kube-apiserver flag).
const AUDIT_MINIMA: &[(&str, u32, &str, &str)] = &[
    ("audit_log_maxage_days", 30, "1.2.17", "--audit-log-maxage"),
    ("audit_log_maxbackup", 10, "1.2.18", "--audit-log-maxbackup"),
    ("audit_log_maxsize_mb", 100, "1.2.19", "--audit-log-maxsize"),
];

pub fn check_audit(part: &Part<Security>, rep: &mut Reporter<'_>) {
    let s = &part.value;
    let at = |name: &str| KeyPath::root().key("security").key(name);
    if !part.ok("audit_log") {
        return;
    }
    if !s.audit_log {
        rep.warning(
            &at("audit_log"),
            "false fails CIS Kubernetes Benchmark check 1.2.16 (--audit-log-path): the API server keeps no audit trail",
        );
        return;
    }
    for (name, minimum, check, flag) in AUDIT_MINIMA {
        let value = match *name {
            "audit_log_maxage_days" => s.audit_log_maxage_days,
            "audit_log_maxbackup" => s.audit_log_maxbackup,
            _ => s.audit_log_maxsize_mb,
        };
        if part.ok(name) && value < *minimum {
            rep.warning(
                &at(name),
                format!("{value} is below {minimum}, the minimum of CIS Kubernetes Benchmark check {check} ({flag})"),
            );
        }
    }
}

pub fn check_pki(part: &Part<PkiSettings>, rep: &mut Reporter<'_>) {
    let p = &part.value;
    let at = |name: &str| KeyPath::root().key("pki").key(name);
    let known = |a: &str, b: &str| part.ok(a) && part.ok(b);
    if known("leaf_validity_days", "ca_validity_days") && p.leaf_validity_days > p.ca_validity_days {
        rep.error(
            &at("leaf_validity_days"),
            format!(
                "{} days is longer than ca_validity_days ({}): a certificate cannot outlive the CA that signs it",
                p.leaf_validity_days, p.ca_validity_days
            ),
        );
    }
    if known("renew_before_days", "leaf_validity_days") && p.renew_before_days >= p.leaf_validity_days {
        rep.error(
            &at("renew_before_days"),
            format!(
                "{} days is not less than leaf_validity_days ({}): every run would renew every certificate",
                p.renew_before_days, p.leaf_validity_days
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::validate::testing::{diagnose, only_error, only_warning, with};

    #[test]
    fn audit_values_below_cis_minima_warn_with_the_check() {
        let w = only_warning(&with("[security]\naudit_log_maxage_days = 7"));
        assert!(w.contains("warning: security.audit_log_maxage_days: 7 is below 30, the minimum of CIS Kubernetes Benchmark check 1.2.17 (--audit-log-maxage)"), "{w}");
        assert!(only_warning(&with("[security]\naudit_log_maxbackup = 3")).contains("check 1.2.18"));
        assert!(only_warning(&with("[security]\naudit_log_maxsize_mb = 10")).contains("check 1.2.19"));
        assert!(only_warning(&with("[security]\naudit_log = false")).contains("check 1.2.16"));
        assert_eq!(
            diagnose(&with(
                "[security]\naudit_log_maxage_days = 30\naudit_log_maxbackup = 10\naudit_log_maxsize_mb = 100"
            )),
            (vec![], vec![])
        );
    }

    #[test]
    fn leaf_certificates_live_within_the_ca() {
        let e = only_error(&with("[pki]\nca_validity_days = 365\nleaf_validity_days = 400"));
        assert!(e.contains("pki.leaf_validity_days: 400 days is longer than ca_validity_days (365)"), "{e}");
    }

    #[test]
    fn renewal_starts_before_expiry() {
        let e = only_error(&with("[pki]\nleaf_validity_days = 30"));
        assert!(e.contains("pki.renew_before_days: 30 days is not less than leaf_validity_days (30)"), "{e}");
        assert!(diagnose(&with("[pki]\nleaf_validity_days = 31")).0.is_empty());
    }
}
