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
trap 'rm -f -- "$tmp" "$tmp.part"' EXIT

# etcdctl writes the database followed by its sha256, the form `snapshot restore` checks.
ETCDCTL_API=3 etcdctl --endpoints='{{ backup.endpoint }}' \
  --cacert='{{ backup.ca }}' --cert='{{ backup.cert }}' --key='{{ backup.key }}' \
  --dial-timeout=10s --command-timeout={{ backup.timeout_secs }}s \
  snapshot save "$tmp" >/dev/null

# The official tool reads the file back (bbolt consistency check) and gives the revision.
if command -v etcdutl >/dev/null 2>&1; then
  status=$(etcdutl snapshot status -w json "$tmp")
else
  status=$(ETCDCTL_API=3 etcdctl snapshot status -w json "$tmp")
fi
rev=$(printf '%s' "$status" | sed -n 's/.*"revision":\([0-9]*\).*/\1/p')
if [ -z "$rev" ]; then
  echo "cannot read the revision of the new snapshot: $status" >&2
  exit 1
fi
final="$dir/$prefix-$stamp-rev$rev.db"
mv -- "$tmp" "$final"
sync "$dir" 2>/dev/null || sync
echo "saved $final ($(wc -c < "$final") bytes, revision $rev)"

# Retention: the newest $keep snapshots of this cluster (names sort by time).
ls -1 -- "$dir" | grep -E "^$prefix-[0-9]{8}T[0-9]{6}Z-rev[0-9]+\.db\$" | sort | head -n "-$keep" |
  while read -r old; do
    rm -f -- "$dir/$old"
    echo "removed $old"
  done
