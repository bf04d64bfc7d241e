#!/bin/sh
# provision facts: everything `plan` needs to know about one host, in ONE round trip.
#
# Input on stdin, one request per line, "<kind><TAB><value>":
#   P  a managed path (file or directory): type, mode, owner, group, mtime, sha256
#   E  a path that only has to exist (preflight's required binaries): like P, never hashed
#      (hashing a host's containerd, runc and CNI plugins cost 0.4 s per plan)
#   S  a directory to scan for stale `.provision-tmp.*` files (left by a killed apply)
#   U  a managed systemd unit: load/active/unit-file state, daemon-reload need, start time
#   L  a directory whose entries to list (reset removes a directory only when nothing
#      but provision's files is in it)
#   N  a user name that must exist          G  a group name that must exist
#   T  a TCP port a managed daemon listens on: who listens on it now
#   V  an installed binary the plan may replace: the first line of its `--version`
#   K  "node": what a container runtime and a kubelet need from the host (swap, the
#      cgroup filesystem, the overlay and br_netfilter kernel features)
# Output: one record per line, fields separated by TABs, between "provision-facts 1"
# and "end" (so a truncated report is detected). Paths never contain TABs or newlines:
# the caller refuses such paths before sending them.
#
# Batching matters: one `stat`, one `sha256sum`, one `getent` and one `systemctl show`
# for all paths/units, rather than a process per path, keeps a no-op plan fast.
set -u
LC_ALL=C
export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
umask 077
tab=$(printf '\t')
nl='
'

paths=''
exist=''
scan=''
list=''
units=''
users=''
groups=''
ports=$nl
versions=''
node=''
while IFS= read -r line || [ -n "$line" ]; do
    kind=${line%%"$tab"*}
    value=${line#*"$tab"}
    [ "$kind" = "$line" ] && continue
    case $kind in
        P) paths=$paths$value$nl ;;
        E) exist=$exist$value$nl ;;
        S) scan=$scan$value$nl ;;
        L) list=$list$value$nl ;;
        U) units=$units$value$nl ;;
        N) users=$users$value$nl ;;
        G) groups=$groups$value$nl ;;
        T) ports=$ports$value$nl ;;
        V) versions=$versions$value$nl ;;
        K) node=$value ;;
    esac
done

echo "provision-facts 1"
echo "uid${tab}$(id -u)"
echo "arch${tab}$(uname -m)"
if [ -r /etc/os-release ]; then
    while IFS= read -r l || [ -n "$l" ]; do
        case $l in
            ID=* | VERSION_ID=* | PRETTY_NAME=*) echo "os${tab}$l" ;;
        esac
    done </etc/os-release
fi
if [ -d /run/systemd/system ]; then
    echo "systemd_running${tab}yes"
else
    echo "systemd_running${tab}no"
fi
if command -v systemctl >/dev/null 2>&1; then
    echo "systemd${tab}$(systemctl --version 2>/dev/null | head -n 1)"
else
    echo "systemd${tab}"
fi

# Managed paths. Missing ones are reported here; existing ones go to one stat call.
IFS=$nl
set --
regular=''
for p in $paths; do
    if [ -L "$p" ]; then
        echo "link${tab}$p${tab}$(readlink -- "$p")"
    elif [ -e "$p" ]; then
        set -- "$@" "$p"
        if [ -f "$p" ]; then regular=$regular$p$nl; fi
    else
        echo "missing${tab}$p"
    fi
done
for p in $exist; do
    if [ -L "$p" ]; then
        echo "link${tab}$p${tab}$(readlink -- "$p")"
    elif [ -e "$p" ]; then
        set -- "$@" "$p"
    else
        echo "missing${tab}$p"
    fi
done
if [ $# -gt 0 ]; then
    # %.9Y: mtime with nanoseconds, compared with the unit's start time (an interrupted
    # apply may have written a watched file without restarting its unit).
    stat -c "stat${tab}%f${tab}%a${tab}%U${tab}%G${tab}%.9Y${tab}%s${tab}%n" -- "$@" 2>&1 |
        while IFS= read -r l; do
            case $l in stat"$tab"*) echo "$l" ;; *) echo "error${tab}stat: $l" ;; esac
        done
fi
set --
for p in $regular; do set -- "$@" "$p"; done
if [ $# -gt 0 ]; then
    sha256sum -- "$@" 2>&1 | while IFS= read -r l; do
        case $l in
            [0-9a-f]*"  "/*) echo "sha256${tab}${l%%  *}${tab}${l#*  }" ;;
            *) echo "error${tab}sha256sum: $l" ;;
        esac
    done
fi

# Temp files a killed apply left behind (names made by write_file_atomic).
for d in $scan; do
    for f in "$d"/.provision-tmp.*; do
        if [ -e "$f" ] || [ -L "$f" ]; then echo "stale${tab}$f"; fi
    done
done

for d in $list; do
    if [ -d "$d" ] && ! [ -L "$d" ]; then
        for f in "$d"/* "$d"/.[!.]* "$d"/..?*; do
            if [ -e "$f" ] || [ -L "$f" ]; then echo "entry${tab}$f"; fi
        done
    fi
done

set --
for u in $users; do set -- "$@" "$u"; done
if [ $# -gt 0 ]; then
    getent passwd "$@" | while IFS= read -r l; do echo "user${tab}${l%%:*}"; done
fi
set --
for g in $groups; do set -- "$@" "$g"; done
if [ $# -gt 0 ]; then
    getent group "$@" | while IFS= read -r l; do echo "group${tab}${l%%:*}"; done
fi

set --
for u in $units; do set -- "$@" "$u"; done
if [ $# -gt 0 ]; then
    props=Id,LoadState,ActiveState,SubState,UnitFileState,NeedDaemonReload,ExecMainStartTimestamp
    # --timestamp=us+utc (systemd >= 248) gives microseconds; older systemd: seconds.
    if out=$(systemctl show --timestamp=us+utc -p "$props" -- "$@" 2>&1) ||
        out=$(systemctl show -p "$props" -- "$@" 2>&1); then
        # systemctl separates the units' blocks by an empty line.
        echo "$out" | while IFS= read -r l; do
            if [ -n "$l" ]; then echo "unit${tab}$l"; else echo "unit_end"; fi
        done
        echo "unit_end"
    else
        echo "$out" | while IFS= read -r l; do echo "units_error${tab}$l"; done
    fi
fi

# Listening TCP sockets on the managed daemons' ports (port conflicts before a start).
if [ "$ports" != "$nl" ]; then
    if command -v ss >/dev/null 2>&1; then
        ss -Htlnp 2>/dev/null | while IFS= read -r l; do
            unset IFS
            # shellcheck disable=SC2086
            set -- $l
            local_addr=${4:-}
            port=${local_addr##*:}
            shift 5 2>/dev/null || set --
            case $ports in
                *"$nl$port$nl"*) echo "listen${tab}$local_addr${tab}$*" ;;
            esac
        done
    else
        echo "listen_unavailable"
    fi
fi
# Versions of the installed binaries the plan may replace (upgrades are judged against
# what runs, not against what an inventory once said). Bounded: a hung binary costs 10 s.
# Also the binaries the managed units RUN (their MainPID's executable): a change of source
# (Debian's /usr/bin/etcd to /usr/local/bin/etcd) is judged against what runs, too;
# otherwise 3.4 from a package -> 3.6 from a download would pass as a new install.
IFS=$nl
running=''
set --
for u in $units; do set -- "$@" "$u"; done
if [ $# -gt 0 ]; then
    for pid in $(systemctl show -p MainPID --value -- "$@" 2>/dev/null); do
        [ "$pid" -gt 0 ] 2>/dev/null || continue
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
        # Only a binary of a name the plan installs (V lines): with a preinstalled etcd,
        # the inventory's etcd_version does not describe what runs.
        case "$nl$versions" in *"/${exe##*/}$nl"*) ;; *) continue ;; esac
        case "$nl$versions$running" in *"$nl$exe$nl"*) continue ;; esac
        running=$running$exe$nl
    done
fi
for p in $versions$running; do
    if [ -f "$p" ] && [ -x "$p" ]; then
        v=$(timeout 10 "$p" --version 2>/dev/null | head -n 1 | tr -d '\t\r')
        echo "version${tab}$p${tab}$v"
    fi
done
unset IFS
# What pods need from the node. A kernel feature is "loaded" (in use now), "module" (modprobe
# finds it: a module or built in) or "missing". /proc/sys/net/bridge exists once br_netfilter
# is loaded; overlay shows in /proc/filesystems once registered.
if [ "$node" = node ]; then
    swap=0
    if [ -r /proc/swaps ]; then
        { read -r _ && while read -r _ _ size _; do swap=$((swap + size)); done; } </proc/swaps 2>/dev/null
    fi
    echo "node${tab}swap_kb${tab}$swap"
    echo "node${tab}cgroup${tab}$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"
    if grep -qw overlay /proc/filesystems 2>/dev/null; then o=loaded
    elif modprobe -n -q overlay 2>/dev/null; then o=module
    else o=missing; fi
    echo "node${tab}overlay${tab}$o"
    if [ -d /proc/sys/net/bridge ]; then b=loaded
    elif modprobe -n -q br_netfilter 2>/dev/null; then b=module
    else b=missing; fi
    echo "node${tab}br_netfilter${tab}$b"
fi
echo "end"
