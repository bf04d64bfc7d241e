//! The shell scripts `etcd restore` runs on each member (as root), rendered here as pure
//! functions so they can be read, unit-tested, and run for real against local etcd.
//!
//! Restoring one member:
//! 1. refuse if etcd is still running (its data dir must not change under it);
//! 2. run the official tool: `etcdutl snapshot restore` (etcd 3.5+) or, when there is no
//!    etcdutl, `ETCDCTL_API=3 etcdctl snapshot restore` (3.4); both check the snapshot's
//!    sha256 trailer. With an etcdutl that knows `--bump-revision` (3.6, later 3.5), the
//!    revision is bumped by 1e9 and marked compacted, as Kubernetes recommends, so watchers
//!    (kube-apiserver caches) never see revisions go backwards;
//! 3. the restore writes into `<data_dir>.restore-<stamp>` beside the data dir (same
//!    filesystem), then owner etcd:etcd and mode 0700 are set, then it is synced;
//! 4. swap: `<data_dir>` is renamed to `<data_dir>.before-restore-<stamp>` (kept until the
//!    cluster is healthy again) and the new dir renamed into place; the parent is synced.
//!
//! The restored data dir holds the new membership (names, peer URLs, a new cluster token):
//! etcd ignores `--initial-cluster*` flags when its data dir already has a WAL, so the
//! unit's flags need no change (tests/etcd_local.rs checks this against etcd 3.4).

use crate::ssh::shell::quote;

/// What one member's restore needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberRestore {
    /// Snapshot file on the host.
    pub snapshot: String,
    pub data_dir: String,
    /// Member name (the etcd `--name`).
    pub name: String,
    /// `name=https://addr:2380,...` for every member.
    pub initial_cluster: String,
    pub peer_url: String,
    /// A NEW cluster token: the restored cluster is a new cluster.
    pub token: String,
    /// Distinguishes this run's dirs: `<data_dir>.restore-<stamp>`.
    pub stamp: String,
    /// The data dir's owner and group (etcd runs as this user).
    pub owner: String,
    /// systemd unit that must not be running (None: do not check, e.g. local tests).
    pub unit: Option<String>,
}

impl MemberRestore {
    pub fn new_dir(&self) -> String {
        format!("{}.restore-{}", self.data_dir, self.stamp)
    }

    pub fn previous_dir(&self) -> String {
        format!("{}.before-restore-{}", self.data_dir, self.stamp)
    }
}

/// Prints `tool=...`, then restores and swaps; exits non-zero with a message on stderr
/// when anything fails (leaving the original data dir in place unless the swap happened).
pub fn restore(m: &MemberRestore) -> String {
    let unit_check = match &m.unit {
        Some(unit) => format!(
            "if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet {u}; then\n  \
             echo \"{u} is still running on this host: stop it before restoring\" >&2\n  exit 1\nfi\n",
            u = quote(unit)
        ),
        None => String::new(),
    };
    format!(
        r#"# provision: restore etcd member {name_display} from a snapshot
set -eu
PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin
snapshot={snapshot}
data_dir={data_dir}
new={new}
previous={previous}
{unit_check}if [ ! -f "$snapshot" ]; then echo "snapshot $snapshot missing on this host" >&2; exit 1; fi
rm -rf -- "$new"
log=$(mktemp)
trap 'rm -f -- "$log"' EXIT
set -- "$snapshot" --data-dir="$new" --name={name} --initial-cluster={initial_cluster} \
  --initial-cluster-token={token} --initial-advertise-peer-urls={peer_url}
if command -v etcdutl >/dev/null 2>&1; then
  if etcdutl snapshot restore --help 2>&1 | grep -q -- '--bump-revision'; then
    set -- "$@" --bump-revision=1000000000 --mark-compacted
  fi
  echo "tool=etcdutl $(etcdutl version 2>/dev/null | head -n1)"
  if ! etcdutl snapshot restore "$@" >"$log" 2>&1; then cat -- "$log" >&2; rm -rf -- "$new"; exit 1; fi
elif command -v etcdctl >/dev/null 2>&1; then
  echo "tool=etcdctl $(ETCDCTL_API=3 etcdctl version 2>/dev/null | head -n1)"
  if ! ETCDCTL_API=3 etcdctl snapshot restore "$@" >"$log" 2>&1; then cat -- "$log" >&2; rm -rf -- "$new"; exit 1; fi
else
  echo "neither etcdutl nor etcdctl is installed on this host: cannot restore" >&2
  exit 1
fi
chown -R {owner}:{owner} "$new"
chmod 0700 "$new"
sync
if [ -e "$data_dir" ]; then
  mv -T -- "$data_dir" "$previous"
  echo "previous=$previous"
fi
mv -T -- "$new" "$data_dir"
sync "$(dirname -- "$data_dir")" 2>/dev/null || sync
echo "restored=$data_dir"
"#,
        name_display = m.name.replace('\n', " "),
        snapshot = quote(&m.snapshot),
        data_dir = quote(&m.data_dir),
        new = quote(&m.new_dir()),
        previous = quote(&m.previous_dir()),
        name = quote(&m.name),
        initial_cluster = quote(&m.initial_cluster),
        token = quote(&m.token),
        peer_url = quote(&m.peer_url),
        owner = quote(&m.owner),
    )
}

/// Undoes the swap when the restored cluster must be abandoned before it started:
/// the restored dir moves aside to `<data_dir>.failed-restore-<stamp>`, the previous one back.
pub fn roll_back(m: &MemberRestore) -> String {
    format!(
        r#"# provision: put etcd member {name}'s previous data dir back
set -eu
data_dir={data_dir}
previous={previous}
failed={failed}
if [ -d "$previous" ]; then
  if [ -e "$data_dir" ]; then mv -T -- "$data_dir" "$failed"; fi
  mv -T -- "$previous" "$data_dir"
  sync "$(dirname -- "$data_dir")" 2>/dev/null || sync
  echo "rolled-back=$data_dir"
fi
rm -rf -- {new}
"#,
        name = m.name.replace('\n', " "),
        data_dir = quote(&m.data_dir),
        previous = quote(&m.previous_dir()),
        failed = quote(&format!("{}.failed-restore-{}", m.data_dir, m.stamp)),
        new = quote(&m.new_dir()),
    )
}

/// Removes the previous data dir once the restored cluster is healthy.
pub fn drop_previous(m: &MemberRestore) -> String {
    format!(
        "# provision: remove etcd member {}'s pre-restore data dir\nrm -rf -- {}\n",
        m.name.replace('\n', " "),
        quote(&m.previous_dir())
    )
}

/// `key=value` lines the scripts print, as pairs.
pub fn parse_report(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MemberRestore {
        MemberRestore {
            snapshot: "/var/lib/provision-restore/snap shot.db".into(),
            data_dir: "/var/lib/etcd".into(),
            name: "node1".into(),
            initial_cluster: "node1=https://10.0.0.1:2380,node2=https://10.0.0.2:2380".into(),
            peer_url: "https://10.0.0.1:2380".into(),
            token: "lab-restore-20261122T101500Z".into(),
            stamp: "20261122T101500Z".into(),
            owner: "etcd".into(),
            unit: Some("etcd.service".into()),
        }
    }

    #[test]
    fn restore_script_quotes_and_names_everything() {
        let s = restore(&sample());
        assert!(s.starts_with("# provision: restore etcd member node1"));
        assert!(s.contains("snapshot='/var/lib/provision-restore/snap shot.db'"));
        assert!(s.contains("new='/var/lib/etcd.restore-20261122T101500Z'"));
        assert!(s.contains("previous='/var/lib/etcd.before-restore-20261122T101500Z'"));
        assert!(s.contains("--initial-cluster-token='lab-restore-20261122T101500Z'"));
        assert!(s.contains("systemctl is-active --quiet 'etcd.service'"));
        assert!(s.contains("chown -R 'etcd':'etcd'") && s.contains("chmod 0700"));
        assert!(s.contains("ETCDCTL_API=3 etcdctl snapshot restore"));
        // The restore tool writes beside the data dir, never into it.
        assert!(!s.contains("--data-dir=\"$data_dir\""));
    }

    #[test]
    fn script_is_valid_sh() {
        for script in [restore(&sample()), roll_back(&sample()), drop_previous(&sample())] {
            let out = std::process::Command::new("sh").arg("-n").arg("-c").arg(&script).output().expect("sh");
            assert!(out.status.success(), "{}\n{}", script, String::from_utf8_lossy(&out.stderr));
        }
    }

    #[test]
    fn report_lines_parse() {
        let r = parse_report(
            "tool=etcdctl etcdctl version: 3.4.23\nprevious=/var/lib/etcd.before\nrestored=/var/lib/etcd\n",
        );
        assert_eq!(r[0], ("tool".into(), "etcdctl etcdctl version: 3.4.23".into()));
        assert_eq!(r[2].1, "/var/lib/etcd");
    }
}
