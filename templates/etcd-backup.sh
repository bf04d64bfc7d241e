#!/bin/sh
# Managed by provision: changes are overwritten by the next `provision apply`.
# Takes a snapshot of etcd member {{ host.name }} over its client URL with its own
# certificate, names it <cluster>-<UTC time>-rev<revision>.db (as `provision etcd backup`
# does) and keeps the newest {{ backup.retention }} in {{ backup.dir }}.
set -eu
PATH=/usr/local/bin:/usr/bin:/bin
umask 077
dir='{{ backup.dir }}'
keep={{ backup.retention }}
prefix='{{ cluster.name }}'
stamp=$(date -u +%Y%m%dT%H%M%SZ)
tmp="$dir/.$prefix-$stamp.db.partial"
scratch=''
trap 'rm -f -- "$tmp" "$tmp.part"; [ -z "$scratch" ] || rm -rf -- "$scratch"' EXIT

# etcdctl writes the database followed by its sha256, the form `snapshot restore` checks.
ETCDCTL_API=3 etcdctl --endpoints='{{ backup.endpoint }}' \
  --cacert='{{ backup.ca }}' --cert='{{ backup.cert }}' --key='{{ backup.key }}' \
  --dial-timeout=10s --command-timeout={{ backup.timeout_secs }}s \
  snapshot save "$tmp" >/dev/null

# Verified before it counts: a trial restore into a scratch dir checks etcd's sha256 trailer
# (a truncated or bit-flipped file is refused) and rebuilds the member's data from the bbolt
# database; `snapshot status` then gives the revision for the name.
scratch="$dir/.verify-$stamp"
if command -v etcdutl >/dev/null 2>&1; then
  snap() { etcdutl "$@"; }
else
  snap() { ETCDCTL_API=3 etcdctl "$@"; }
fi
if ! out=$(snap snapshot restore "$tmp" --data-dir "$scratch" 2>&1); then
  echo "the new snapshot failed verification (trial restore): $out" >&2
  exit 1
fi
rm -rf -- "$scratch"
status=$(snap snapshot status -w json "$tmp")
rev=$(printf '%s' "$status" | sed -n 's/.*"revision":\([0-9]*\).*/\1/p')
if [ -z "$rev" ]; then
  echo "cannot read the revision of the new snapshot: $status" >&2
  exit 1
fi
final="$dir/$prefix-$stamp-rev$rev.db"
mv -- "$tmp" "$final"
sync "$dir" 2>/dev/null || sync
echo "saved $final ($(wc -c < "$final") bytes, revision $rev, verified by a trial restore)"

# Retention: the newest $keep snapshots of this cluster (names sort by time).
ls -1 -- "$dir" | grep -E "^$prefix-[0-9]{8}T[0-9]{6}Z-rev[0-9]+\.db\$" | sort | head -n "-$keep" |
  while read -r old; do
    rm -f -- "$dir/$old"
    echo "removed $old"
  done
