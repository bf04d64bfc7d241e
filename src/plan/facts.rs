//! Facts about one host, gathered in ONE round trip: the embedded POSIX sh script
//! `facts.sh` runs through a single exec, reads the managed paths/units/users on stdin
//! and prints a line-oriented report that `parse` turns into `HostFacts`.
//!
//! Why a script rather than one command per path: fact gathering is what makes peers
//! slow (kubespray spends most of a run on it); one exec per host keeps a no-op plan
//! close to the cost of a single ssh command.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::desired::DesiredHost;

/// The script, embedded in the binary: what runs on the hosts is what was tested.
pub const FACTS_SCRIPT: &str = include_str!("facts.sh");

/// What to ask a host about. Built from the desired state (plus extras such as the
/// etcd data dir that reset may purge, and the ports preflight checks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactsRequest {
    pub paths: BTreeSet<String>,
    /// Paths that only have to exist: stat'ed like `paths`, never hashed.
    pub exist: BTreeSet<String>,
    pub scan_dirs: BTreeSet<String>,
    /// Directories whose entries are listed (reset: is anything foreign in them?).
    pub list_dirs: BTreeSet<String>,
    /// In the order they are sent: `systemctl show` answers in that order.
    pub units: Vec<String>,
    pub users: BTreeSet<String>,
    pub groups: BTreeSet<String>,
    pub ports: BTreeSet<u16>,
    /// Installed binaries whose `--version` to report (the ones the plan may replace).
    pub versions: BTreeSet<String>,
    /// Ask what pods need from the host (hosts with the runtime tier): [`NodeFacts`].
    pub node: bool,
}

impl FactsRequest {
    /// Everything the plan needs to know about `host`'s managed state.
    pub fn for_host(host: &DesiredHost) -> FactsRequest {
        let mut req = FactsRequest::default();
        for dir in &host.dirs {
            req.paths.insert(dir.path.clone());
            req.list_dirs.insert(dir.path.clone());
            req.users.insert(dir.owner.clone());
            req.groups.insert(dir.group.clone());
        }
        for file in &host.files {
            req.paths.insert(file.path.clone());
            if let Some(guard) = &file.only_while_missing {
                req.paths.insert(guard.clone());
            }
            req.users.insert(file.owner.clone());
            req.groups.insert(file.group.clone());
            if let Some(parent) = parent_dir(&file.path) {
                req.scan_dirs.insert(parent.to_string());
            }
            if super::versions::Product::of_binary(&file.path).is_some() {
                req.versions.insert(file.path.clone());
            }
        }
        // Asked of every host: a retired file is removed wherever it is left.
        req.paths.extend(crate::desired::RETIRED_FILES.iter().map(|p| p.to_string()));
        for user in &host.users {
            req.users.insert(user.name.clone());
            req.groups.insert(user.name.clone());
        }
        for unit in &host.units {
            if !req.units.contains(&unit.name) {
                req.units.push(unit.name.clone());
            }
        }
        req
    }

    /// The script's stdin. Refuses names the line protocol cannot carry (a render bug,
    /// never user input reaching the shell: values are data on stdin, not arguments).
    pub fn to_stdin(&self) -> anyhow::Result<Vec<u8>> {
        let mut out = String::new();
        let mut put = |kind: char, value: &str| -> anyhow::Result<()> {
            if value.is_empty() || value.chars().any(|c| c.is_control()) {
                bail!("cannot ask a host about {value:?}: empty or contains control characters");
            }
            out.push(kind);
            out.push('\t');
            out.push_str(value);
            out.push('\n');
            Ok(())
        };
        for p in &self.paths {
            if !p.starts_with('/') {
                bail!("managed path {p:?} is not absolute");
            }
            put('P', p)?;
        }
        // A path asked both ways is hashed: sent as P only.
        for p in self.exist.difference(&self.paths) {
            if !p.starts_with('/') {
                bail!("required path {p:?} is not absolute");
            }
            put('E', p)?;
        }
        for d in &self.scan_dirs {
            put('S', d)?;
        }
        for d in &self.list_dirs {
            put('L', d)?;
        }
        for u in &self.units {
            put('U', u)?;
        }
        for u in &self.users {
            put('N', u)?;
        }
        for g in &self.groups {
            put('G', g)?;
        }
        for p in &self.ports {
            put('T', &p.to_string())?;
        }
        for v in &self.versions {
            put('V', v)?;
        }
        if self.node {
            put('K', "node")?;
        }
        Ok(out.into_bytes())
    }
}

pub fn parent_dir(path: &str) -> Option<&str> {
    let idx = path.rfind('/')?;
    Some(if idx == 0 { "/" } else { &path[..idx] })
}

/// Nanoseconds since the Unix epoch (file mtimes, unit start times).
pub type EpochNanos = i128;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum PathState {
    Missing,
    File(FileStat),
    Dir(Ownership),
    Link {
        target: String,
    },
    /// A socket, fifo or device where a file or directory is expected.
    Other {
        raw_mode: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ownership {
    pub mode: u32,
    pub owner: String,
    pub group: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileStat {
    #[serde(flatten)]
    pub own: Ownership,
    pub size: u64,
    pub mtime: Option<EpochNanos>,
    /// None when sha256sum could not read it (reported as an error line too).
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnitState {
    /// loaded, not-found, masked, bad-setting, error
    pub load_state: String,
    /// active, inactive, failed, activating, deactivating, reloading
    pub active_state: String,
    pub sub_state: String,
    /// enabled, disabled, static, masked, "" (no unit file), ...
    pub unit_file_state: String,
    /// systemd has an older copy of the unit file than the disk.
    pub need_daemon_reload: bool,
    /// When the running main process started (None: not running, or not parseable).
    pub started_at: Option<EpochNanos>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub address: String,
    pub port: u16,
    /// ss's process column, e.g. `users:(("etcd",pid=81,fd=7))`.
    pub process: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    pub id: String,
    pub version_id: String,
    pub pretty_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    pub uid: Option<u32>,
    pub arch: String,
    pub os: OsRelease,
    pub systemd_running: bool,
    /// Major version from `systemctl --version` (None: no systemctl).
    pub systemd_version: Option<u32>,
    pub paths: BTreeMap<String, PathState>,
    pub stale_temps: Vec<String>,
    /// Entries (full paths) of the listed directories.
    pub dir_entries: BTreeMap<String, Vec<String>>,
    pub users: BTreeSet<String>,
    pub groups: BTreeSet<String>,
    pub units: BTreeMap<String, UnitState>,
    /// `systemctl show` failed (e.g. systemd is not PID 1).
    pub units_error: Option<String>,
    pub listeners: Vec<Listener>,
    /// false when `ss` is missing: port conflicts were not checked.
    pub listeners_known: bool,
    /// First line of `--version` of each asked binary that exists (path -> line).
    pub versions: BTreeMap<String, String>,
    /// Lines the script reported as errors (unreadable files, ...).
    pub errors: Vec<String>,
    /// Present when asked (`FactsRequest::node`).
    pub node: Option<NodeFacts>,
}

/// What a container runtime and a kubelet need from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeFacts {
    /// Total size of the active swap areas (/proc/swaps), in KiB.
    pub swap_kb: u64,
    /// The filesystem type of /sys/fs/cgroup: "cgroup2fs" on a cgroup v2 (unified) host.
    pub cgroup_fs: String,
    pub overlay: KernelFeature,
    pub br_netfilter: KernelFeature,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelFeature {
    /// In use now.
    Loaded,
    /// modprobe finds it (a module, or built in): loaded at the next boot or by the kernel unit.
    Module,
    #[default]
    Missing,
}

impl HostFacts {
    pub fn path(&self, path: &str) -> &PathState {
        self.paths.get(path).unwrap_or(&PathState::Missing)
    }
    pub fn unit(&self, name: &str) -> Option<&UnitState> {
        self.units.get(name)
    }
}

/// Parses the script's report. `req` is what was asked: units are matched by order,
/// every asked path must be answered, and the report must be complete ("end").
pub fn parse(report: &str, req: &FactsRequest) -> anyhow::Result<HostFacts> {
    let mut lines = report.lines();
    match lines.next() {
        Some("provision-facts 1") => {}
        Some(other) => bail!("unexpected first line of the facts report: {other:?}"),
        None => bail!("the facts report is empty"),
    }
    let mut facts = HostFacts { listeners_known: true, ..HostFacts::default() };
    let mut stats: BTreeMap<String, (u32, Ownership, u64, Option<EpochNanos>)> = BTreeMap::new();
    let mut sums: BTreeMap<String, String> = BTreeMap::new();
    let mut unit_blocks: Vec<BTreeMap<String, String>> = Vec::new();
    let mut block: BTreeMap<String, String> = BTreeMap::new();
    let mut units_error: Vec<String> = Vec::new();
    let mut ended = false;

    for (n, line) in lines.enumerate() {
        let lineno = n + 2;
        let mut f = line.split('\t');
        let kind = f.next().unwrap_or_default();
        let rest: Vec<&str> = f.collect();
        let field = |i: usize| -> anyhow::Result<&str> {
            rest.get(i)
                .copied()
                .with_context(|| format!("facts report line {lineno} ({kind}) is missing field {}", i + 1))
        };
        match kind {
            "uid" => facts.uid = field(0)?.parse().ok(),
            "arch" => facts.arch = field(0)?.to_string(),
            "os" => {
                let (k, v) = field(0)?.split_once('=').unwrap_or(("", ""));
                let v = v.trim_matches('"').to_string();
                match k {
                    "ID" => facts.os.id = v,
                    "VERSION_ID" => facts.os.version_id = v,
                    "PRETTY_NAME" => facts.os.pretty_name = v,
                    _ => {}
                }
            }
            "systemd_running" => facts.systemd_running = field(0)? == "yes",
            "systemd" => {
                // "systemd 252 (252.39-1~deb12u2)"
                facts.systemd_version = field(0)?.split_whitespace().nth(1).and_then(|v| v.parse().ok());
            }
            "missing" => {
                facts.paths.insert(field(0)?.to_string(), PathState::Missing);
            }
            "link" => {
                facts.paths.insert(field(0)?.to_string(), PathState::Link { target: field(1)?.to_string() });
            }
            "stat" => {
                let raw =
                    u32::from_str_radix(field(0)?, 16).with_context(|| format!("facts line {lineno}: raw mode"))?;
                let mode = u32::from_str_radix(field(1)?, 8).with_context(|| format!("facts line {lineno}: mode"))?;
                let own = Ownership { mode, owner: field(2)?.to_string(), group: field(3)?.to_string() };
                let mtime = parse_epoch(field(4)?);
                let size = field(5)?.parse().unwrap_or(0);
                // The path is the last field: rejoin in case (it cannot, but be exact) it held a TAB.
                let path = rest[6..].join("\t");
                if path.is_empty() {
                    bail!("facts report line {lineno}: stat without a path");
                }
                stats.insert(path, (raw, own, size, mtime));
            }
            "sha256" => {
                sums.insert(rest[1..].join("\t"), field(0)?.to_string());
            }
            "stale" => facts.stale_temps.push(field(0)?.to_string()),
            "entry" => {
                let path = field(0)?;
                if let Some(parent) = parent_dir(path) {
                    facts.dir_entries.entry(parent.to_string()).or_default().push(path.to_string());
                }
            }
            "user" => {
                facts.users.insert(field(0)?.to_string());
            }
            "group" => {
                facts.groups.insert(field(0)?.to_string());
            }
            "unit" => {
                if let Some((k, v)) = field(0)?.split_once('=') {
                    block.insert(k.to_string(), v.to_string());
                }
            }
            "unit_end" => {
                if !block.is_empty() {
                    unit_blocks.push(std::mem::take(&mut block));
                }
            }
            "units_error" => units_error.push(rest.join(" ")),
            "listen" => {
                let addr = field(0)?;
                if let Some((a, p)) = addr.rsplit_once(':') {
                    if let Ok(port) = p.parse() {
                        facts.listeners.push(Listener {
                            address: a.trim_matches(['[', ']']).to_string(),
                            port,
                            process: rest.get(1).copied().unwrap_or_default().to_string(),
                        });
                    }
                }
            }
            "listen_unavailable" => facts.listeners_known = false,
            "version" => {
                facts.versions.insert(field(0)?.to_string(), rest.get(1).copied().unwrap_or_default().to_string());
            }
            "node" => {
                let node = facts.node.get_or_insert_with(NodeFacts::default);
                let value = rest.get(1).copied().unwrap_or_default();
                let feature = || match value {
                    "loaded" => KernelFeature::Loaded,
                    "module" => KernelFeature::Module,
                    _ => KernelFeature::Missing,
                };
                match field(0)? {
                    "swap_kb" => node.swap_kb = value.parse().unwrap_or(0),
                    "cgroup" => node.cgroup_fs = value.to_string(),
                    "overlay" => node.overlay = feature(),
                    "br_netfilter" => node.br_netfilter = feature(),
                    _ => {}
                }
            }
            "error" => facts.errors.push(rest.join(" ")),
            "end" => {
                ended = true;
                break;
            }
            "" => {}
            other => bail!("facts report line {lineno}: unknown record {other:?}"),
        }
    }
    if !ended {
        bail!("the facts report is truncated (no \"end\" line): the connection or the script was interrupted");
    }

    for (path, (raw, own, size, mtime)) in stats {
        let state = match raw & 0o170000 {
            0o100000 => PathState::File(FileStat { own, size, mtime, sha256: sums.remove(&path) }),
            0o040000 => PathState::Dir(own),
            _ => PathState::Other { raw_mode: raw },
        };
        facts.paths.insert(path, state);
    }
    for p in req.paths.iter().chain(&req.exist) {
        if !facts.paths.contains_key(p) {
            bail!("the facts report does not mention {p}");
        }
    }

    if !units_error.is_empty() {
        facts.units_error = Some(units_error.join("; "));
    } else if !req.units.is_empty() {
        if unit_blocks.len() != req.units.len() {
            bail!("asked systemd about {} units, got {} answers", req.units.len(), unit_blocks.len());
        }
        for (name, props) in req.units.iter().zip(unit_blocks) {
            let get = |k: &str| props.get(k).cloned().unwrap_or_default();
            facts.units.insert(
                name.clone(),
                UnitState {
                    load_state: get("LoadState"),
                    active_state: get("ActiveState"),
                    sub_state: get("SubState"),
                    unit_file_state: get("UnitFileState"),
                    need_daemon_reload: get("NeedDaemonReload") == "yes",
                    started_at: parse_systemd_timestamp(&get("ExecMainStartTimestamp")),
                },
            );
        }
    }
    Ok(facts)
}

/// "1795343239.744244471" (stat %.9Y) or "1795343239" (older coreutils).
fn parse_epoch(s: &str) -> Option<EpochNanos> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i128 = secs.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    while digits.len() < 9 {
        digits.push('0');
    }
    Some(secs * 1_000_000_000 + digits.parse::<i128>().ok()?)
}

/// "Sun 2026-11-22 10:00:00.123456 UTC" (`--timestamp=us+utc`). Any other shape
/// (empty: never started; local-time formats of old systemd) yields None, which turns
/// the "watched file newer than the process" check off for that unit.
fn parse_systemd_timestamp(s: &str) -> Option<EpochNanos> {
    use time::macros::format_description;
    let fmt = format_description!(
        "[weekday repr:short] [year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6] UTC"
    );
    let t = time::PrimitiveDateTime::parse(s.trim(), &fmt).ok()?.assume_utc();
    Some(t.unix_timestamp_nanos())
}

/// Runs the script on a host through ONE exec and parses the report.
pub async fn gather(session: &crate::ssh::Session, req: &FactsRequest) -> anyhow::Result<HostFacts> {
    let stdin = req.to_stdin()?;
    // The request is the script's stdin, so the script itself is passed as `sh -c` text.
    let cmd = format!("sh -c {}", shell_quote(FACTS_SCRIPT));
    let out = session.exec(&cmd, Some(&stdin)).await?;
    if !out.success() {
        bail!("the facts script exited with status {}: {}", out.status, out.stderr_text().trim());
    }
    parse(&out.stdout_text(), req)
}

/// Single-quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(paths: &[&str], units: &[&str]) -> FactsRequest {
        FactsRequest {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            units: units.iter().map(|u| u.to_string()).collect(),
            ..FactsRequest::default()
        }
    }

    const REPORT: &str = "provision-facts 1
uid\t0
arch\tx86_64
os\tPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"
os\tVERSION_ID=\"12\"
os\tID=debian
systemd_running\tyes
systemd\tsystemd 252 (252.39-1~deb12u2)
missing\t/etc/etcd/pki/ca.crt
link\t/etc/systemd/system/etcd.service\t/dev/null
stat\t8180\t600\tetcd\tetcd\t1795343239.744244471\t227\t/etc/etcd/pki/server.key
stat\t41c0\t700\tetcd\tetcd\t1795343239\t4096\t/var/lib/etcd
sha256\t98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4\t/etc/etcd/pki/server.key
stale\t/etc/etcd/pki/.provision-tmp.x1
entry\t/var/lib/etcd/member
user\tetcd
group\tetcd
unit\tNeedDaemonReload=no
unit\tExecMainStartTimestamp=Sun 2026-11-22 10:00:00.123456 UTC
unit\tId=etcd.service
unit\tLoadState=loaded
unit\tActiveState=active
unit\tSubState=running
unit\tUnitFileState=enabled
unit_end
unit\tId=kubelet.service
unit\tLoadState=not-found
unit\tActiveState=inactive
unit\tSubState=dead
unit\tUnitFileState=
unit\tNeedDaemonReload=no
unit\tExecMainStartTimestamp=
unit_end
unit_end
listen\t127.0.1.1:2379\tusers:((\"etcd\",pid=81,fd=7))
listen\t[::]:2380\t
node\tswap_kb\t2097148
node\tcgroup\tcgroup2fs
node\toverlay\tloaded
node\tbr_netfilter\tmodule
end
";

    #[test]
    fn parses_every_record_kind() {
        let r = req(
            &["/etc/etcd/pki/ca.crt", "/etc/systemd/system/etcd.service", "/etc/etcd/pki/server.key", "/var/lib/etcd"],
            &["etcd.service", "kubelet.service"],
        );
        let f = parse(REPORT, &r).unwrap();
        assert_eq!(f.uid, Some(0));
        assert_eq!(f.arch, "x86_64");
        assert_eq!(f.os.id, "debian");
        assert_eq!(f.os.version_id, "12");
        assert!(f.systemd_running);
        assert_eq!(f.systemd_version, Some(252));
        assert_eq!(f.path("/etc/etcd/pki/ca.crt"), &PathState::Missing);
        assert_eq!(f.path("/etc/systemd/system/etcd.service"), &PathState::Link { target: "/dev/null".into() });
        match f.path("/etc/etcd/pki/server.key") {
            PathState::File(s) => {
                assert_eq!(s.own, Ownership { mode: 0o600, owner: "etcd".into(), group: "etcd".into() });
                assert_eq!(s.size, 227);
                assert_eq!(s.mtime, Some(1795343239_744244471));
                assert_eq!(
                    s.sha256.as_deref(),
                    Some("98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            f.path("/var/lib/etcd"),
            &PathState::Dir(Ownership { mode: 0o700, owner: "etcd".into(), group: "etcd".into() })
        );
        assert_eq!(f.stale_temps, vec!["/etc/etcd/pki/.provision-tmp.x1".to_string()]);
        assert_eq!(f.dir_entries["/var/lib/etcd"], vec!["/var/lib/etcd/member".to_string()]);
        assert!(f.users.contains("etcd") && f.groups.contains("etcd"));
        let etcd = f.unit("etcd.service").unwrap();
        assert_eq!(etcd.active_state, "active");
        assert_eq!(etcd.unit_file_state, "enabled");
        assert!(!etcd.need_daemon_reload);
        // 2026-11-22T10:00:00.123456Z
        assert_eq!(etcd.started_at, Some(1795341600_123456000));
        let kubelet = f.unit("kubelet.service").unwrap();
        assert_eq!(kubelet.load_state, "not-found");
        assert_eq!(kubelet.started_at, None);
        assert_eq!(f.listeners.len(), 2);
        assert_eq!(f.listeners[0].address, "127.0.1.1");
        assert_eq!(f.listeners[0].port, 2379);
        assert_eq!(f.listeners[1].address, "::");
        let node = f.node.unwrap();
        assert_eq!((node.swap_kb, node.cgroup_fs.as_str()), (2097148, "cgroup2fs"));
        assert_eq!((node.overlay, node.br_netfilter), (KernelFeature::Loaded, KernelFeature::Module));
    }

    /// A path that only has to exist is stat'ed, never hashed (preflight's binaries).
    #[test]
    fn a_required_path_is_stated_not_hashed() {
        let req = FactsRequest {
            exist: ["/bin/sh".to_string(), "/nonexistent/provision".to_string()].into(),
            ..FactsRequest::default()
        };
        let f = parse(&run_script_locally(&req), &req).unwrap();
        assert!(
            matches!(f.path("/bin/sh"), PathState::File(s) if s.sha256.is_none())
                || matches!(f.path("/bin/sh"), PathState::Link { .. })
        );
        assert_eq!(f.path("/nonexistent/provision"), &PathState::Missing);
        // Asked both ways, the managed path wins: hashed.
        let both = FactsRequest {
            paths: ["/etc/hostname".to_string()].into(),
            exist: ["/etc/hostname".to_string()].into(),
            ..FactsRequest::default()
        };
        let f = parse(&run_script_locally(&both), &both).unwrap();
        assert!(
            matches!(f.path("/etc/hostname"), PathState::File(s) if s.sha256.is_some()),
            "{:?}",
            f.path("/etc/hostname")
        );
    }

    /// The script itself on this machine: the `node` records come out and parse.
    #[test]
    fn the_script_reports_the_node_when_asked() {
        let req = FactsRequest { node: true, ..FactsRequest::default() };
        let out = run_script_locally(&req);
        let f = parse(&out, &req).unwrap();
        let node = f.node.expect("node facts");
        assert!(!node.cgroup_fs.is_empty(), "{node:?}");
        let mangled = parse(&out.replace("node\t", "x"), &req);
        assert!(mangled.is_err(), "an unknown record is an error");
    }

    #[test]
    fn a_truncated_report_is_an_error() {
        let cut = &REPORT[..REPORT.find("user\tetcd").unwrap()];
        let err = parse(cut, &FactsRequest::default()).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn an_unanswered_path_is_an_error() {
        let err = parse(REPORT, &req(&["/etc/other"], &[])).unwrap_err().to_string();
        assert!(err.contains("/etc/other"), "{err}");
    }

    #[test]
    fn unit_answers_must_match_the_question() {
        let err = parse(REPORT, &req(&[], &["etcd.service"])).unwrap_err().to_string();
        assert!(err.contains("2 answers"), "{err}");
    }

    #[test]
    fn systemctl_failure_is_kept_not_fatal() {
        let report = "provision-facts 1\nunits_error\tSystem has not been booted with systemd\nend\n";
        let f = parse(report, &req(&[], &["etcd.service"])).unwrap();
        assert!(f.units_error.unwrap().contains("not been booted"));
        assert!(f.units.is_empty());
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse("", &FactsRequest::default()).is_err());
        assert!(parse("HTTP/1.1 200 OK\nend\n", &FactsRequest::default()).is_err());
        assert!(parse("provision-facts 1\nstat\tzz\nend\n", &FactsRequest::default()).is_err());
    }

    #[test]
    fn epoch_and_timestamps() {
        assert_eq!(parse_epoch("12.5"), Some(12_500_000_000));
        assert_eq!(parse_epoch("12"), Some(12_000_000_000));
        assert_eq!(parse_epoch("x"), None);
        assert_eq!(parse_systemd_timestamp(""), None);
        assert_eq!(parse_systemd_timestamp("Sun 2026-11-22 10:00:00 CET"), None);
    }

    #[test]
    fn stdin_refuses_control_characters() {
        let mut r = req(&["/etc/a\nb"], &[]);
        assert!(r.to_stdin().is_err());
        r = req(&["relative"], &[]);
        assert!(r.to_stdin().is_err());
        let ok = req(&["/etc/a b"], &["etcd.service"]).to_stdin().unwrap();
        assert_eq!(String::from_utf8(ok).unwrap(), "P\t/etc/a b\nU\tetcd.service\n");
    }

    /// The real script under the real /bin/sh, on real files.
    #[test]
    fn the_script_reports_real_files() {
        use sha2::{Digest, Sha256};
        use std::os::unix::fs::{PermissionsExt, symlink};
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_str().unwrap().to_string();
        let dir = format!("{root}/pki dir");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        let key = format!("{dir}/server.key");
        std::fs::write(&key, b"secret bytes").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let stale = format!("{dir}/.provision-tmp.k3j2");
        std::fs::write(&stale, b"half").unwrap();
        let link = format!("{root}/masked.service");
        symlink("/dev/null", &link).unwrap();
        let missing = format!("{root}/nope");

        let mut req = req(&[dir.as_str(), key.as_str(), link.as_str(), missing.as_str()], &[]);
        req.scan_dirs.insert(dir.clone());
        req.list_dirs.insert(dir.clone());
        req.users.insert("root".into());
        req.users.insert("no-such-user-here".into());
        req.groups.insert("root".into());
        let out = run_script_locally(&req);
        let f = parse(&out, &req).unwrap_or_else(|e| panic!("{e:#}\n{out}"));

        let me = whoami();
        match f.path(&key) {
            PathState::File(st) => {
                assert_eq!(st.own.mode, 0o600);
                assert_eq!(st.own.owner, me);
                assert_eq!(st.size, 12);
                assert_eq!(st.sha256.as_deref(), Some(hex::encode(Sha256::digest(b"secret bytes")).as_str()));
                let mtime = std::fs::metadata(&key).unwrap().modified().unwrap();
                let nanos = mtime.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i128;
                assert_eq!(st.mtime, Some(nanos));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(f.path(&dir), PathState::Dir(o) if o.mode == 0o750));
        assert_eq!(f.path(&link), &PathState::Link { target: "/dev/null".into() });
        assert_eq!(f.path(&missing), &PathState::Missing);
        assert_eq!(f.stale_temps, vec![stale.clone()]);
        let mut entries = f.dir_entries[&dir].clone();
        entries.sort();
        assert_eq!(entries, vec![stale, key]);
        assert!(f.users.contains("root"));
        assert!(!f.users.contains("no-such-user-here"));
        assert!(f.groups.contains("root"));
        assert!(f.uid.is_some());
        assert!(!f.arch.is_empty());
    }

    #[test]
    fn the_script_asks_systemd_about_units() {
        let req = req(&[], &["provision-test-nonexistent.service"]);
        let out = run_script_locally(&req);
        let f = parse(&out, &req).unwrap_or_else(|e| panic!("{e:#}\n{out}"));
        if f.systemd_running {
            let u = f.unit("provision-test-nonexistent.service").expect("answered");
            assert_eq!(u.load_state, "not-found");
            assert_eq!(u.active_state, "inactive");
        } else {
            // No systemd as PID 1 on this machine: the failure is reported, not fatal.
            assert!(f.units_error.is_some(), "{out}");
        }
    }

    fn run_script_locally(req: &FactsRequest) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(FACTS_SCRIPT)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&req.to_stdin().unwrap()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    fn whoami() -> String {
        let out = std::process::Command::new("id").arg("-un").output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}
