//! What `verify` found: one row per named check, each pass / warn / fail / skip with its
//! evidence (or the reason it was skipped), as a table for people and JSON for scripts.
//!
//! "warn" is a pass with something worth a look (a slow etcd member, with its figure): it
//! never makes `verify` fail, so a pass/fail does not depend on how fast the machine is.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Passed, with a warning in the evidence.
    Warn,
    Fail,
    Skip,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One host's part of a check (a check over several hosts keeps each host's evidence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostOutcome {
    pub host: String,
    pub status: Status,
    pub evidence: String,
}

impl HostOutcome {
    pub fn new(host: &str, status: Status, evidence: impl Into<String>) -> HostOutcome {
        HostOutcome { host: host.to_string(), status, evidence: evidence.into() }
    }
    pub fn pass(host: &str, evidence: impl Into<String>) -> HostOutcome {
        HostOutcome::new(host, Status::Pass, evidence)
    }
    pub fn fail(host: &str, evidence: impl Into<String>) -> HostOutcome {
        HostOutcome::new(host, Status::Fail, evidence)
    }
}

/// One named check. `hosts` lists the hosts it failed on (when it failed), else every
/// host it looked at; `per_host` keeps each host's own evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Stable name: "tls.certificate", "cis.1.1.11", "snapshot.restore", ...
    pub check: String,
    /// What it proves, in one line.
    pub title: String,
    /// What it looked at ("etcd client :2379"), when the name alone does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub status: Status,
    pub hosts: Vec<String>,
    /// What was seen; for a skipped check, why it was skipped. Never secret material.
    pub evidence: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_host: Vec<HostOutcome>,
}

impl CheckResult {
    /// A cluster-wide result (not tied to hosts).
    pub fn cluster(check: &str, title: &str, status: Status, evidence: impl Into<String>) -> CheckResult {
        CheckResult {
            check: check.to_string(),
            title: title.to_string(),
            target: None,
            status,
            hosts: Vec::new(),
            evidence: evidence.into(),
            per_host: Vec::new(),
        }
    }

    pub fn skipped(check: &str, title: &str, reason: impl Into<String>) -> CheckResult {
        CheckResult::cluster(check, title, Status::Skip, reason)
    }

    pub fn with_target(mut self, target: impl Into<String>) -> CheckResult {
        self.target = Some(target.into());
        self
    }

    pub fn with_hosts(mut self, hosts: Vec<String>) -> CheckResult {
        self.hosts = hosts;
        self
    }

    /// One result from each host's outcome: failed when any host failed (naming those
    /// hosts and only their evidence), passed when the rest passed, skipped when all skipped.
    pub fn from_hosts(check: &str, title: &str, outcomes: Vec<HostOutcome>) -> CheckResult {
        let failed: Vec<&HostOutcome> = outcomes.iter().filter(|o| o.status == Status::Fail).collect();
        let warned: Vec<&HostOutcome> = outcomes.iter().filter(|o| o.status == Status::Warn).collect();
        let (status, shown): (Status, Vec<&HostOutcome>) = if !failed.is_empty() {
            (Status::Fail, failed)
        } else if !warned.is_empty() {
            (Status::Warn, warned)
        } else if outcomes.iter().any(|o| o.status == Status::Pass) {
            (Status::Pass, outcomes.iter().collect())
        } else {
            (Status::Skip, outcomes.iter().collect())
        };
        let hosts = shown.iter().map(|o| o.host.clone()).collect();
        let evidence = summarize(&shown);
        CheckResult {
            check: check.to_string(),
            title: title.to_string(),
            target: None,
            status,
            hosts,
            evidence,
            per_host: outcomes,
        }
    }
}

/// A group's check names with their titles (what each proves), in report order.
pub struct Titles(pub &'static [(&'static str, &'static str)]);

impl Titles {
    pub fn of(&self, check: &str) -> &'static str {
        self.0.iter().find(|(c, _)| *c == check).map(|(_, t)| *t).unwrap_or("")
    }

    /// Every check of the group, skipped for `reason`.
    pub fn skipped(&self, reason: &str) -> Vec<CheckResult> {
        self.0.iter().map(|(c, t)| CheckResult::skipped(c, t, reason)).collect()
    }
}

/// "node1: x; node2: y", or "node1, node2, node3: x" when every host saw the same.
fn summarize(outcomes: &[&HostOutcome]) -> String {
    let Some(first) = outcomes.first() else {
        return "no host to check".into();
    };
    if outcomes.len() > 1 && outcomes.iter().all(|o| o.evidence == first.evidence) {
        let names: Vec<&str> = outcomes.iter().map(|o| o.host.as_str()).collect();
        return format!("{}: {}", names.join(", "), first.evidence);
    }
    outcomes.iter().map(|o| format!("{}: {}", o.host, o.evidence)).collect::<Vec<_>>().join("; ")
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cluster: String,
    pub inventory: String,
    pub ok: bool,
    pub passed: usize,
    /// Passed with a warning (counted apart from `passed`).
    pub warned: usize,
    pub failed: usize,
    pub skipped: usize,
    pub seconds: f64,
    pub checks: Vec<CheckResult>,
}

impl Report {
    pub fn new(cluster: &str, inventory: &str, checks: Vec<CheckResult>, seconds: f64) -> Report {
        let count = |s| checks.iter().filter(|c| c.status == s).count();
        let (passed, warned, failed, skipped) =
            (count(Status::Pass), count(Status::Warn), count(Status::Fail), count(Status::Skip));
        Report {
            cluster: cluster.to_string(),
            inventory: inventory.to_string(),
            ok: failed == 0,
            passed,
            warned,
            failed,
            skipped,
            seconds,
            checks,
        }
    }

    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    /// The table people read: one line per check, then a one-line summary.
    pub fn to_table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .checks
            .iter()
            .map(|c| {
                let check = match &c.target {
                    Some(t) => format!("{} ({t})", c.check),
                    None => c.check.clone(),
                };
                vec![check, c.status.word().to_string(), c.hosts.join(","), c.evidence.clone()]
            })
            .collect();
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::NOTHING);
        // Evidence can be long: wrap it to the terminal (or 160 columns when piped).
        t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        if t.width().is_none() {
            t.set_width(160);
        }
        t.set_header(["CHECK", "RESULT", "HOSTS", "EVIDENCE"]);
        for row in rows {
            t.add_row(row);
        }
        format!("{t}\n{}", self.summary())
    }

    pub fn summary(&self) -> String {
        let verdict = if self.ok { "verified" } else { "NOT verified" };
        let warned = if self.warned > 0 { format!(", {} warned", self.warned) } else { String::new() };
        format!(
            "{verdict}: {} passed{warned}, {} failed, {} skipped ({} checks in {:.1}s)",
            self.passed,
            self.failed,
            self.skipped,
            self.checks.len(),
            self.seconds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_host_fails_the_check_and_is_named_alone() {
        let r = CheckResult::from_hosts(
            "files.private",
            "t",
            vec![
                HostOutcome::pass("node1", "3 files private"),
                HostOutcome::fail("node2", "/etc/etcd/pki/server.key: mode 0644"),
                HostOutcome::pass("node3", "3 files private"),
            ],
        );
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.hosts, vec!["node2"]);
        assert_eq!(r.evidence, "node2: /etc/etcd/pki/server.key: mode 0644");
        assert_eq!(r.per_host.len(), 3);
    }

    #[test]
    fn identical_evidence_is_said_once() {
        let r = CheckResult::from_hosts("x", "t", vec![HostOutcome::pass("a", "same"), HostOutcome::pass("b", "same")]);
        assert_eq!((r.status, r.evidence.as_str()), (Status::Pass, "a, b: same"));
        let r = CheckResult::from_hosts("x", "t", vec![HostOutcome::pass("a", "1"), HostOutcome::pass("b", "2")]);
        assert_eq!(r.evidence, "a: 1; b: 2");
        let skipped = CheckResult::from_hosts("x", "t", vec![HostOutcome::new("a", Status::Skip, "why")]);
        assert_eq!(skipped.status, Status::Skip);
    }

    #[test]
    fn report_counts_and_verdict() {
        let checks = vec![
            CheckResult::cluster("a", "t", Status::Pass, "e"),
            CheckResult::skipped("b", "t", "no kube-apiserver"),
            CheckResult::cluster("c", "t", Status::Fail, "broken"),
        ];
        let r = Report::new("lab", "inventories/lab.toml", checks, 1.25);
        assert!(!r.ok);
        assert_eq!((r.passed, r.failed, r.skipped), (1, 1, 1));
        assert_eq!(r.failures().map(|c| c.check.as_str()).collect::<Vec<_>>(), vec!["c"]);
        let table = r.to_table();
        assert!(table.contains("FAIL") && table.contains("NOT verified: 1 passed, 1 failed, 1 skipped"), "{table}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["checks"][1]["status"], "skip");
        assert_eq!(json["ok"], false);
    }

    #[test]
    fn a_warning_passes_and_is_counted_apart() {
        let r = CheckResult::from_hosts(
            "x",
            "t",
            vec![HostOutcome::pass("a", "fine"), HostOutcome::new("b", Status::Warn, "slow: 2766 ms")],
        );
        assert_eq!((r.status, r.evidence.as_str()), (Status::Warn, "b: slow: 2766 ms"));
        let report = Report::new("lab", "i.toml", vec![r, CheckResult::cluster("y", "t", Status::Pass, "e")], 0.5);
        assert!(report.ok);
        assert_eq!((report.passed, report.warned, report.failed), (1, 1, 0));
        assert!(
            report.summary().starts_with("verified: 1 passed, 1 warned, 0 failed, 0 skipped"),
            "{}",
            report.summary()
        );
        assert_eq!(serde_json::to_value(&report).unwrap()["checks"][0]["status"], "warn");
    }
}
