//! `lab status`: per host its state, pid, whether sshd answers, uptime and memory.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::cgroup::Cgroups;
use super::host::{self, HostCtl, Observed};
use super::layout::{Lab, LabHost};
use super::{preflight, probe, procs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostState {
    Running,
    Stopped,
    Absent,
    /// Processes left without their boot loop; `lab up` recovers it.
    Stale,
}

impl std::fmt::Display for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HostState::Running => "running",
            HostState::Stopped => "stopped",
            HostState::Absent => "absent",
            HostState::Stale => "stale",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    #[serde(flatten)]
    pub host: LabHost,
    pub state: HostState,
    /// systemd-nspawn's pid (the boot loop's while between two boots).
    pub pid: Option<u32>,
    pub sshd: bool,
    pub uptime_seconds: Option<u64>,
    /// Memory of the host's processes: the sum of their proportional set sizes (pages
    /// shared with other processes, e.g. the image's libraries, counted by share).
    pub mem_mib: Option<f64>,
    pub expected: bool,
    /// Why a host is `stale`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabStatus {
    pub expected_hosts: u32,
    pub hosts: Vec<HostStatus>,
    pub all_running: bool,
}

/// The state of hosts node1..=`expected` (the last `lab up`'s count when None) and of
/// every other host that has a disk.
pub fn status(lab: &Lab, expected: Option<u32>) -> Result<LabStatus> {
    preflight::require_root("status")?;
    let cg = Cgroups::detect()?;
    let expected = expected.unwrap_or_else(|| lab.expected_hosts());
    let mut hosts = LabHost::first(expected);
    for h in lab.existing_hosts().unwrap_or_default() {
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    hosts.sort_by_key(|h| h.index);
    let statuses: Vec<HostStatus> = std::thread::scope(|scope| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|h| {
                let (cg, h) = (&cg, h.clone());
                scope.spawn(move || one(lab, cg, h, expected))
            })
            .collect();
        handles.into_iter().filter_map(|t| t.join().ok()).collect()
    });
    let all_running = statuses.iter().filter(|s| s.expected).all(|s| s.state == HostState::Running);
    Ok(LabStatus { expected_hosts: expected, hosts: statuses, all_running })
}

fn one(lab: &Lab, cg: &Cgroups, host: LabHost, expected: u32) -> HostStatus {
    let ctl = HostCtl::new(lab, cg, host.clone());
    let observed = ctl.observe();
    let (state, pid) = match &observed {
        Observed::Running { loop_pid, nspawn_pid } => (HostState::Running, Some(nspawn_pid.unwrap_or(*loop_pid))),
        Observed::Stale { .. } => (HostState::Stale, None),
        Observed::Stopped => (HostState::Stopped, None),
        Observed::Absent => (HostState::Absent, None),
    };
    let pids = cg.all_pids(&host.name);
    let mem_mib = (!pids.is_empty()).then(|| {
        pids.iter().filter_map(|&p| procs::pss_kib(p).or_else(|| procs::rss_kib(p))).sum::<u64>() as f64 / 1024.0
    });
    let sshd =
        state != HostState::Absent && probe::ssh_banner(host.address.into(), Duration::from_millis(500)).is_some();
    HostStatus {
        state,
        pid,
        sshd,
        uptime_seconds: (state == HostState::Running).then(|| host::uptime(&ctl.paths)).flatten().map(|d| d.as_secs()),
        mem_mib,
        expected: host.index <= expected,
        note: match observed {
            Observed::Stale { why } => Some(why),
            _ => None,
        },
        host,
    }
}

/// "1h02m", "3m05s", "42s".
pub fn human_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(42), "42s");
        assert_eq!(human_duration(185), "3m05s");
        assert_eq!(human_duration(3720), "1h02m");
    }
}
