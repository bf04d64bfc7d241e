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
    if part.ok("data_dir")
        && let Err(why) = check_data_dir(&e.data_dir)
    {
        rep.error(
            &key("data_dir"),
            format!("{} is not usable as the data directory: {why} (e.g. /var/lib/etcd)", quoted(&e.data_dir)),
        );
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

/// Directories apply must never chown to etcd and chmod 0700 (nor anything below them):
/// the system's own trees, world-writable scratch space, root's home, other daemons' state.
const SYSTEM_TREES: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/lost+found",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
    "/var/lock",
    "/var/run",
    "/var/tmp",
    "/var/lib/kubelet",
    "/var/lib/kube-proxy",
    "/var/log/kubernetes",
];
/// Shared parents: a data dir may live below them, never be one of them.
const SHARED_PARENTS: &[&str] = &[
    "/home",
    "/media",
    "/mnt",
    "/opt",
    "/srv",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/local",
    "/var/log",
    "/var/mail",
    "/var/opt",
    "/var/spool",
];

/// apply creates the data dir, chowns it to etcd and sets 0700 (as root), and the path
/// goes on etcd's command line and into scripts: only a canonical absolute path, of
/// plain characters, outside the system's directories.
fn check_data_dir(dir: &str) -> Result<(), String> {
    if !dir.starts_with('/') {
        return Err("expected an absolute path".into());
    }
    if let Some(c) = dir.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))) {
        return Err(format!("{c:?} is not allowed (use letters, digits, '.', '_', '-' and '/')"));
    }
    if dir.len() > 1 && dir.ends_with('/') || dir.contains("//") {
        return Err("write it in canonical form (no \"//\", no trailing '/')".into());
    }
    if dir.split('/').skip(1).any(|p| p == "." || p == "..") {
        return Err("write it in canonical form (no \".\" or \"..\" parts)".into());
    }
    if dir == "/" || SHARED_PARENTS.contains(&dir) {
        return Err("a shared system directory, which apply would make etcd's own (give a directory below it)".into());
    }
    if let Some(tree) =
        SYSTEM_TREES.iter().find(|t| dir == **t || dir.strip_prefix(**t).is_some_and(|r| r.starts_with('/')))
    {
        return Err(format!("inside {tree}, a system directory apply must not chown or chmod"));
    }
    Ok(())
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
    fn data_dir_is_canonical_plain_and_outside_system_directories() {
        for bad in [
            "var/lib/etcd",
            "/",
            "//",
            "/var/lib/my etcd",
            "/var/../etc",
            "/etc",
            "/usr/lib",
            "/var/lib//etcd",
            "/var/lib/etcd/",
            "/var/lib/./etcd",
            "/var/lib/etcd'x",
            "/var/lib/$(id)",
            "/var/lib/`id`",
            "/boot/etcd",
            "/proc/1",
            "/var/lib",
            "/srv",
            "/tmp/etcd",
            "/var/run/etcd",
            "/etc/etcd",
            "/var/lib/kubelet/etcd",
            "/lib64",
            "/root/etcd",
        ] {
            let e = only_error(&with(&format!("[etcd]\ndata_dir = \"{bad}\"")));
            assert!(e.contains("etcd.data_dir:") && e.contains("is not usable as the data directory"), "{bad}: {e}");
        }
        for good in ["/var/lib/etcd", "/srv/etcd", "/data/etcd-1", "/var/lib/etcd.d/member_0", "/libdata/etcd"] {
            assert!(diagnose(&with(&format!("[etcd]\ndata_dir = \"{good}\""))).0.is_empty(), "{good}");
        }
        let e = only_error(&with("[etcd]\ndata_dir = \"/usr/lib/etcd\""));
        assert!(e.ends_with("\"/usr/lib/etcd\" is not usable as the data directory: inside /usr, a system directory apply must not chown or chmod (e.g. /var/lib/etcd)"), "{e}");
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
