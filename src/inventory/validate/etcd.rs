//! [etcd]: timing, data directory, quota and scheduled snapshots.

use super::Part;
use crate::inventory::diagnostics::quoted;
use crate::inventory::locate::KeyPath;
use crate::inventory::report::Reporter;
use crate::inventory::schema::EtcdSettings;

fn key(name: &str) -> KeyPath {
    KeyPath::root().key("etcd").key(name)
}

/// etcd refuses to start with an election timeout above 50 s.
const MAX_ELECTION_TIMEOUT_MS: u64 = 50_000;
/// etcd warns above 8 GiB ("exceeds maximum recommended quota").
const MAX_RECOMMENDED_QUOTA: u64 = 8 * 1024 * 1024 * 1024;

pub fn check(part: &Part<EtcdSettings>, rep: &mut Reporter<'_>) {
    let e = &part.value;
    // etcd's own rule: it refuses to start unless election-timeout >= 5 x heartbeat-interval.
    let heartbeat = u64::from(e.heartbeat_interval_ms);
    let election = u64::from(e.election_timeout_ms);
    let timing_known = part.ok("heartbeat_interval_ms") && part.ok("election_timeout_ms");
    if timing_known && election < 5 * heartbeat {
        // Point at the value the operator wrote (often only the heartbeat was raised).
        let written = rep.is_written(&key("election_timeout_ms")) || !rep.is_written(&key("heartbeat_interval_ms"));
        rep.error(
            &key(if written { "election_timeout_ms" } else { "heartbeat_interval_ms" }),
            format!(
                "election_timeout_ms ({election} ms) is less than 5 x heartbeat_interval_ms ({heartbeat} ms), and etcd refuses to start (set election_timeout_ms to at least {})",
                5 * heartbeat
            ),
        );
    } else if part.ok("election_timeout_ms") && election > MAX_ELECTION_TIMEOUT_MS {
        rep.error(
            &key("election_timeout_ms"),
            format!("{election} ms is more than etcd accepts (expected at most {MAX_ELECTION_TIMEOUT_MS})"),
        );
    }
    let dir = &e.data_dir;
    let usable_dir = dir.starts_with('/')
        && dir != "/"
        && !dir.chars().any(char::is_whitespace)
        && !dir.split('/').any(|p| p == "..");
    if part.ok("data_dir") && !usable_dir {
        rep.error(&key("data_dir"), format!("{} is not usable as the data directory (expected an absolute path without spaces or \"..\", e.g. /var/lib/etcd)", quoted(dir)));
    }
    if part.ok("quota_backend_bytes") && e.quota_backend_bytes > MAX_RECOMMENDED_QUOTA {
        rep.warning(
            &key("quota_backend_bytes"),
            format!("{} bytes is above the 8 GiB (8589934592) etcd recommends as the maximum", e.quota_backend_bytes),
        );
    }
    if let Some(schedule) = e.backup_schedule.as_ref().filter(|_| part.ok("backup_schedule"))
        && schedule.trim().is_empty()
    {
        rep.error(
                &key("backup_schedule"),
                "is empty (give a systemd OnCalendar= expression such as \"daily\" or \"*-*-* 02:00:00\", or remove the key for no scheduled snapshots)",
            );
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::validate::testing::{diagnose, only_error, only_warning, with};

    #[test]
    fn election_timeout_is_at_least_five_heartbeats() {
        let e = only_error(&with("[etcd]\nheartbeat_interval_ms = 500\nelection_timeout_ms = 1000"));
        assert!(e.contains("etcd.election_timeout_ms: election_timeout_ms (1000 ms) is less than 5 x heartbeat_interval_ms (500 ms), and etcd refuses to start (set election_timeout_ms to at least 2500)"), "{e}");
        assert!(diagnose(&with("[etcd]\nheartbeat_interval_ms = 500\nelection_timeout_ms = 5000")).0.is_empty());
        // The default election timeout (1000) is checked against a raised heartbeat too.
        let e = only_error(&with("[etcd]\nheartbeat_interval_ms = 300"));
        assert!(e.contains(":26:25: etcd.heartbeat_interval_ms: election_timeout_ms (1000 ms) is less than 5 x heartbeat_interval_ms (300 ms)"), "{e}");
        assert!(only_error(&with("[etcd]\nheartbeat_interval_ms = 4294967295")).contains("at least 21474836475"));
    }

    #[test]
    fn election_timeout_has_etcds_upper_bound() {
        assert!(only_error(&with("[etcd]\nelection_timeout_ms = 60000")).contains("expected at most 50000"));
    }

    #[test]
    fn data_dir_is_absolute() {
        for bad in ["\"var/lib/etcd\"", "\"/\"", "\"/var/lib/my etcd\"", "\"/var/../etc\""] {
            let e = only_error(&with(&format!("[etcd]\ndata_dir = {bad}")));
            assert!(e.contains("etcd.data_dir:") && e.contains("is not usable as the data directory"), "{e}");
        }
    }

    #[test]
    fn quota_above_8_gib_warns() {
        assert!(
            only_warning(&with("[etcd]\nquota_backend_bytes = 17179869184"))
                .contains("warning: etcd.quota_backend_bytes")
        );
    }

    #[test]
    fn backup_schedule_is_not_empty() {
        assert!(only_error(&with("[etcd]\nbackup_schedule = \"  \"")).contains("etcd.backup_schedule: is empty"));
        assert!(diagnose(&with("[etcd]\nbackup_schedule = \"daily\"")).0.is_empty());
    }
}
