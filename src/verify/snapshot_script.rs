//! The script that restores a snapshot (streamed on stdin) into a scratch directory on an
//! etcd host, starts a throw-away etcd on it and reports its revision and KV hash.
//!
//! Why this shape:
//! - the official tool restores (`etcdutl snapshot restore`, or `etcdctl` on 3.4), so a
//!   snapshot that only provision could read would fail here;
//! - the scratch etcd listens on UNIX sockets inside the 0700 scratch directory (etcd's
//!   `unix://localhost:N` URLs are socket files named `localhost:N` in its working
//!   directory): no port can clash with the real member, no other user can connect, and
//!   the copy of the cluster's data is never reachable over the network;
//! - a trap stops the scratch etcd and removes the directory whatever happens; the
//!   script then checks the directory is gone and says so.

/// Exit codes the caller turns into plain words.
pub const NO_TOOL: i32 = 3;
pub const RESTORE_FAILED: i32 = 4;
pub const DID_NOT_START: i32 = 5;

/// `revision`: the snapshot's revision (the KV hash is taken at it).
pub fn script(revision: i64) -> String {
    format!(
        r#"# provision verify: restore a snapshot into a scratch dir, start it, report, clean up
set -eu
PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin
export ETCDCTL_API=3
umask 077
scratch=$(mktemp -d /var/tmp/provision-verify-restore.XXXXXX)
pid=
cleanup() {{
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  cd /
  rm -rf -- "$scratch"
}}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
cd "$scratch"
echo "scratch=$scratch"
cat > snapshot.db
if ! command -v etcd >/dev/null 2>&1; then echo "there is no etcd binary on this host" >&2; exit {NO_TOOL}; fi
if ! command -v etcdctl >/dev/null 2>&1; then echo "etcdctl is not installed on this host: the restored copy cannot be queried" >&2; exit {NO_TOOL}; fi
set -- snapshot.db --data-dir="$scratch/data" --name=verify \
  --initial-cluster=verify=unix://localhost:2380 --initial-advertise-peer-urls=unix://localhost:2380 \
  --initial-cluster-token=provision-verify
if command -v etcdutl >/dev/null 2>&1; then
  echo "tool=etcdutl $(etcdutl version 2>/dev/null | head -n1 | sed 's/.*: //')"
  etcdutl snapshot restore "$@" >restore.log 2>&1 || {{ tail -n 20 restore.log >&2; exit {RESTORE_FAILED}; }}
else
  echo "tool=etcdctl $(etcdctl version 2>/dev/null | head -n1 | sed 's/.*: //')"
  etcdctl snapshot restore "$@" >restore.log 2>&1 || {{ tail -n 20 restore.log >&2; exit {RESTORE_FAILED}; }}
fi
etcd --name=verify --data-dir="$scratch/data" \
  --listen-client-urls=unix://localhost:2379 --advertise-client-urls=unix://localhost:2379 \
  --listen-peer-urls=unix://localhost:2380 --initial-advertise-peer-urls=unix://localhost:2380 \
  --initial-cluster=verify=unix://localhost:2380 \
  --heartbeat-interval=10 --election-timeout=100 --logger=zap --log-outputs=stderr >etcd.log 2>&1 &
pid=$!
echo "etcd=$(etcd --version 2>/dev/null | head -n1 | sed 's/.*: //')"
ctl() {{ etcdctl --endpoints=unix://localhost:2379 --dial-timeout=2s --command-timeout=5s "$@"; }}
tries=0
until ctl endpoint status -w json >status.json 2>status.err; do
  tries=$((tries + 1))
  if [ "$tries" -ge 150 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "the restored copy did not start:" >&2; tail -n 15 etcd.log >&2; tail -n 3 status.err >&2
    exit {DID_NOT_START}
  fi
  sleep 0.1
done
echo "status=$(cat status.json)"
if ctl endpoint hashkv --rev={revision} -w json >hashkv.json 2>hashkv.err; then
  echo "hashkv=$(cat hashkv.json)"
else
  echo "hashkv-error=$(tail -n 1 hashkv.err)"
fi
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
pid=
cd /
rm -rf -- "$scratch"
if [ -e "$scratch" ]; then echo "removed=no"; else echo "removed=yes"; fi
"#
    )
}

/// What the script reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reported {
    pub scratch: String,
    pub tool: String,
    pub etcd: String,
    pub revision: Option<i64>,
    pub hash: Option<u32>,
    pub hash_error: Option<String>,
    pub removed: bool,
}

pub fn parse(stdout: &str) -> Reported {
    let mut r = Reported::default();
    for line in stdout.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "scratch" => r.scratch = v.to_string(),
            "tool" => r.tool = v.trim().to_string(),
            "etcd" => r.etcd = v.trim().to_string(),
            "status" => {
                r.revision = serde_json::from_str::<serde_json::Value>(v)
                    .ok()
                    .and_then(|j| j.get(0)?.get("Status")?.get("header")?.get("revision")?.as_i64());
            }
            "hashkv" => {
                r.hash = serde_json::from_str::<serde_json::Value>(v)
                    .ok()
                    .and_then(|j| j.get(0)?.get("HashKV")?.get("hash")?.as_u64())
                    .and_then(|h| u32::try_from(h).ok());
            }
            "hashkv-error" => r.hash_error = Some(v.to_string()),
            "removed" => r.removed = v == "yes",
            _ => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcdctl_json_is_read() {
        let out = "scratch=/var/tmp/provision-verify-restore.abc\ntool=etcdctl 3.4.23\netcd=3.4.23\n\
            status=[{\"Endpoint\":\"unix://localhost:2379\",\"Status\":{\"header\":{\"cluster_id\":1,\"member_id\":2,\"revision\":1234,\"raft_term\":2},\"version\":\"3.4.23\"}}]\n\
            hashkv=[{\"Endpoint\":\"unix://localhost:2379\",\"HashKV\":{\"header\":{\"revision\":1234},\"hash\":3735928559,\"compact_revision\":-1}}]\n\
            removed=yes\n";
        let r = parse(out);
        assert_eq!(r.tool, "etcdctl 3.4.23");
        assert_eq!(r.revision, Some(1234));
        assert_eq!(r.hash, Some(0xdeadbeef));
        assert!(r.removed);
    }

    #[test]
    fn the_script_takes_the_hash_at_the_snapshot_revision_and_cleans_up() {
        let s = script(42);
        assert!(s.contains("hashkv --rev=42"));
        assert!(s.contains("trap cleanup EXIT"));
        assert!(s.contains("unix://localhost:2379"));
        assert!(!s.contains("http://"), "the scratch etcd never listens on TCP");
    }
}
