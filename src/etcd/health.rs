//! Health of every member, probed in parallel, each under its own deadline.
//!
//! Per member, concurrently: Status (version, db size and size in use, leader, raft term,
//! index and applied index, learner, errors), a linearizable Get of the key "health" (what
//! `etcdctl endpoint health` does: it succeeds only when the member can confirm with a
//! quorum, so it is a real read through raft), the alarm list, and the member list.
//!
//! Verdict: a member is healthy when its read succeeded and it has no alarm. The cluster has
//! quorum when any member served a linearizable read (impossible without one). Healthy:
//! every member healthy with a leader, membership matching the inventory; degraded: quorum
//! but something that breaks the cluster's safety margin (a member unreachable, without a
//! leader, with an alarm, a stranger in the member list); no quorum: no member could serve
//! the read.
//!
//! A slow but answering member is a WARNING, never a failure: its figure is kept (table,
//! JSON, verify) but it does not change the verdict. Why: the time a read takes says how
//! loaded the machine is, not whether the cluster works; on emulated VMs a healthy member
//! answers in 1-3 s, and a verdict that depends on it fails on slow machines and passes
//! on fast ones for the same cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{AlarmAction, AlarmType};
use futures::future::join_all;
use serde::Serialize;
use tokio::time::Instant;

use super::connect::{connect, within};
use super::credentials::ClientCredentials;
use super::explain::{Problem, ProblemKind};
use super::members::Member;
use crate::inventory::Inventory;

#[derive(Debug, Clone, Copy)]
pub struct HealthOptions {
    /// Each member's whole probe must finish within this (a hung member costs this much).
    pub timeout: Duration,
    /// A health read slower than this marks the member slow (a warning, not a failure).
    pub slow_after: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions { timeout: Duration::from_secs(5), slow_after: Duration::from_secs(1) }
    }
}

impl HealthOptions {
    /// The options for the inventory's cluster, each probe limited to `timeout`: every
    /// caller (health, backup, restore, apply's quorum wait, verify) judges "slow" alike.
    pub fn for_cluster(inv: &Inventory, timeout: Duration) -> HealthOptions {
        HealthOptions { timeout, slow_after: Self::slow_after_for(inv.etcd.election_timeout_ms) }
    }

    /// When a read counts as slow on a cluster with this election timeout: 1 s, or half
    /// the election timeout when that is longer. A lab on emulated CPUs is given long raft
    /// timings on purpose (vagrant.toml: election 5000 ms), and its ~1.2 s reads are then
    /// normal; a read taking half the election timeout is a real risk on any cluster.
    pub fn slow_after_for(election_timeout_ms: u32) -> Duration {
        Duration::from_secs(1).max(Duration::from_millis(u64::from(election_timeout_ms) / 2))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Healthy,
    Degraded,
    NoQuorum,
}

impl Verdict {
    /// 0 healthy (warnings such as a slow member included), 1 degraded, 2 no quorum.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Healthy => 0,
            Verdict::Degraded => 1,
            Verdict::NoQuorum => 2,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    /// Member id as etcdctl prints it (hex).
    pub id: String,
    pub version: String,
    pub db_size: i64,
    pub db_size_in_use: i64,
    /// The leader this member follows (hex id; "0" when it has none).
    pub leader_id: String,
    pub is_leader: bool,
    pub raft_term: u64,
    pub raft_index: u64,
    pub raft_applied_index: u64,
    pub is_learner: bool,
    /// Errors etcd itself reports in Status (e.g. "NOSPACE" / corruption).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberHealth {
    pub name: String,
    pub endpoint: String,
    /// "healthy", "slow", "alarm", "unhealthy" or "unreachable".
    pub health: &'static str,
    pub healthy: bool,
    pub slow: bool,
    /// Milliseconds the health read took (when it succeeded).
    pub read_ms: Option<u64>,
    pub status: Option<MemberStatus>,
    pub alarms: Vec<String>,
    /// What failed, in plain words (deduplicated).
    pub problems: Vec<String>,
    /// What is worth a look but breaks nothing (a slow read, with its figure).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterHealth {
    pub verdict: Verdict,
    pub exit_code: i32,
    pub quorum: bool,
    /// Name of the leader most members follow (or its hex id if not in the inventory).
    pub leader: Option<String>,
    pub members: Vec<MemberHealth>,
    /// Cluster-level findings: membership mismatches, disagreement on the leader, ...
    pub notes: Vec<String>,
    /// Every member's warnings, prefixed with its name ("node2: slow: ...").
    pub warnings: Vec<String>,
    /// The cluster's member list, from the first member that answered (None: nobody did).
    #[serde(skip)]
    pub membership: Option<Vec<ListedMember>>,
}

impl ClusterHealth {
    pub fn healthy_count(&self) -> usize {
        self.members.iter().filter(|m| m.healthy).count()
    }

    /// One sentence for the end of the table.
    pub fn summary(&self) -> String {
        let n = self.members.len();
        let ok = self.healthy_count();
        let leader = self.leader.as_deref().map(|l| format!(", leader {l}")).unwrap_or_default();
        let warned = match self.warnings.len() {
            0 => String::new(),
            1 => "; 1 warning".to_string(),
            w => format!("; {w} warnings"),
        };
        match self.verdict {
            Verdict::Healthy => format!("healthy: {ok}/{n} members healthy{leader}{warned}"),
            Verdict::Degraded => format!("degraded: {ok}/{n} members healthy, quorum held{leader}{warned}"),
            Verdict::NoQuorum => {
                let reachable = self.members.iter().filter(|m| m.status.is_some()).count();
                format!("NO QUORUM: no member could serve a linearizable read ({reachable}/{n} reachable)")
            }
        }
    }
}

/// What one member's probe collected before assessment.
#[derive(Debug)]
pub struct Probe {
    pub member: Member,
    pub status: Result<MemberStatus, Problem>,
    pub read: Result<Duration, Problem>,
    /// (member id, alarm name) for the whole cluster, as this member reported it.
    pub alarms: Result<Vec<(u64, String)>, Problem>,
    /// Every cluster member, as this member reported it.
    pub member_list: Result<Vec<ListedMember>, Problem>,
}

/// One entry of etcd's member list: what membership changes are planned from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedMember {
    /// Member id (hex, as etcdctl prints it).
    pub id: String,
    /// Empty for a member added but not started yet.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl ListedMember {
    /// The member serves at this peer URL (compared without a trailing slash).
    pub fn has_peer_url(&self, url: &str) -> bool {
        self.peer_urls.iter().any(|u| same_url(u, url))
    }
}

/// Probes every member in parallel and assesses the cluster.
pub async fn check(members: &[Member], creds: &ClientCredentials, opts: HealthOptions) -> ClusterHealth {
    let probes = join_all(members.iter().map(|m| probe(m, creds, opts))).await;
    assess(probes, opts)
}

pub async fn probe(member: &Member, creds: &ClientCredentials, opts: HealthOptions) -> Probe {
    let deadline = Instant::now() + opts.timeout;
    let t = opts.timeout;
    let ep = member.client_url.as_str();
    let client = match tokio::time::timeout_at(deadline, connect(member, creds, t)).await {
        Ok(Ok(c)) => c.client,
        Ok(Err(p)) => return Probe::failed(member, p),
        Err(_) => return Probe::failed(member, Problem::timeout(t, "connecting")),
    };
    let (mut c1, mut c2, mut c3, mut c4) = (client.clone(), client.clone(), client.clone(), client);
    let status = async {
        let s = within(deadline, t, "reading status", ep, c1.status()).await?;
        let id = s.header().map(|h| h.member_id()).unwrap_or(0);
        Ok(MemberStatus {
            id: format!("{id:x}"),
            version: s.version().to_string(),
            db_size: s.db_size(),
            db_size_in_use: s.raft_used_db_size(),
            leader_id: format!("{:x}", s.leader()),
            is_leader: id != 0 && id == s.leader(),
            raft_term: s.raft_term(),
            raft_index: s.raft_index(),
            raft_applied_index: s.raft_applied_index(),
            is_learner: s.is_learner(),
            errors: s.errors().to_vec(),
        })
    };
    let read = async {
        // Retried while the cluster is electing a leader: that is a transient state a
        // healthy member leaves within an election timeout, and the deadline still holds.
        loop {
            let started = Instant::now();
            match within(deadline, t, "reading the health key", ep, c2.get("health", None)).await {
                Ok(_) => return Ok(started.elapsed()),
                Err(p) if p.kind == ProblemKind::PermissionDenied => return Ok(started.elapsed()),
                Err(p) if p.is_transient() && Instant::now() + Duration::from_millis(200) < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(p) => return Err(p),
            }
        }
    };
    let alarms = async {
        let r = within(deadline, t, "listing alarms", ep, c3.alarm(AlarmAction::Get, AlarmType::None, None)).await?;
        Ok(r.alarms().iter().map(|a| (a.member_id(), alarm_name(a.alarm()))).collect())
    };
    let member_list = async {
        let r = within(deadline, t, "listing members", ep, c4.member_list()).await?;
        Ok(r.members()
            .iter()
            .map(|m| ListedMember {
                id: format!("{:x}", m.id()),
                name: m.name().to_string(),
                peer_urls: m.peer_urls().to_vec(),
                client_urls: m.client_urls().to_vec(),
                is_learner: m.is_learner(),
            })
            .collect())
    };
    let (status, read, alarms, member_list) = tokio::join!(status, read, alarms, member_list);
    Probe { member: member.clone(), status, read, alarms, member_list }
}

fn alarm_name(t: AlarmType) -> String {
    match t {
        AlarmType::Nospace => "NOSPACE".into(),
        AlarmType::Corrupt => "CORRUPT".into(),
        AlarmType::None => "NONE".into(),
    }
}

impl Probe {
    fn failed(member: &Member, p: Problem) -> Probe {
        Probe {
            member: member.clone(),
            status: Err(p.clone()),
            read: Err(p.clone()),
            alarms: Err(p.clone()),
            member_list: Err(p),
        }
    }
}

/// Turns the probes into the per-member table and the cluster verdict (pure: unit-tested).
pub fn assess(probes: Vec<Probe>, opts: HealthOptions) -> ClusterHealth {
    let mut notes = Vec::new();
    // Alarms are cluster-wide: merge every member's answer, keyed by member id.
    let mut alarms_by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut alarms_known = false;
    for p in &probes {
        if let Ok(list) = &p.alarms {
            alarms_known = true;
            for (id, name) in list {
                let v = alarms_by_id.entry(format!("{id:x}")).or_default();
                if !v.contains(name) {
                    v.push(name.clone());
                }
            }
        }
    }
    let id_to_name: BTreeMap<String, String> =
        probes.iter().filter_map(|p| p.status.as_ref().ok().map(|s| (s.id.clone(), p.member.name.clone()))).collect();

    let mut members = Vec::new();
    for p in &probes {
        let mut problems: Vec<String> = Vec::new();
        match (&p.status, &p.read) {
            // The same failure twice (a dead or hung member): say it once.
            (Err(s), Err(r)) if s.kind == r.kind => problems.push(s.message.clone()),
            (s, r) => {
                if let Err(e) = s {
                    problems.push(format!("status: {e}"));
                }
                if let Err(e) = r {
                    problems.push(format!("health read: {e}"));
                }
            }
        }
        let status = p.status.as_ref().ok().cloned();
        let alarms = status.as_ref().and_then(|s| alarms_by_id.get(&s.id).cloned()).unwrap_or_default();
        if let Some(s) = &status {
            if s.leader_id == "0" {
                problems.push("the member has no leader".into());
            }
            for e in &s.errors {
                problems.push(format!("etcd reports: {e}"));
            }
        }
        let read_ok = p.read.is_ok();
        let read_ms = p.read.as_ref().ok().map(|d| d.as_millis() as u64);
        let slow = p.read.as_ref().is_ok_and(|d| *d > opts.slow_after);
        let mut warnings = Vec::new();
        if slow {
            warnings.push(format!(
                "slow: the health read took {} ms (slow above {} ms)",
                read_ms.unwrap_or(0),
                opts.slow_after.as_millis()
            ));
        }
        let healthy = read_ok && alarms.is_empty();
        let health = if !alarms.is_empty() {
            "alarm"
        } else if !read_ok && status.is_none() {
            "unreachable"
        } else if !read_ok {
            "unhealthy"
        } else if slow {
            "slow"
        } else {
            "healthy"
        };
        members.push(MemberHealth {
            name: p.member.name.clone(),
            endpoint: p.member.client_url.clone(),
            health,
            healthy,
            slow,
            read_ms,
            status,
            alarms,
            problems,
            warnings,
        });
    }
    for (id, names) in &alarms_by_id {
        if !id_to_name.contains_key(id) {
            notes.push(format!("alarm {} raised on member {id}, which is not in the inventory", names.join(",")));
        }
    }
    if !alarms_known && !probes.is_empty() {
        notes.push("alarms unknown: no member answered the alarm list".into());
    }

    let quorum = probes.iter().any(|p| p.read.is_ok());
    // The leader the members that can read follow (they agree when healthy).
    let mut leader_votes: BTreeMap<String, usize> = BTreeMap::new();
    for (m, p) in members.iter().zip(&probes) {
        if let (Some(s), Ok(_)) = (&m.status, &p.read)
            && s.leader_id != "0"
        {
            *leader_votes.entry(s.leader_id.clone()).or_default() += 1;
        }
    }
    if leader_votes.len() > 1 {
        notes.push(format!(
            "members disagree on the leader: {}",
            leader_votes
                .keys()
                .map(|id| id_to_name.get(id).cloned().unwrap_or_else(|| id.clone()))
                .collect::<Vec<_>>()
                .join(" vs ")
        ));
    }
    let leader = leader_votes
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(id, _)| id_to_name.get(id).cloned().unwrap_or_else(|| id.clone()));

    // Membership: the member list (from any member that answered) against the inventory.
    let membership = probes.iter().find_map(|p| p.member_list.as_ref().ok()).cloned();
    if let Some(list) = &membership {
        for listed in list {
            let known = probes.iter().any(|p| listed.has_peer_url(&p.member.peer_url));
            if !known {
                let shown = if listed.name.is_empty() { "(unstarted)" } else { &listed.name };
                notes.push(format!("cluster member {shown} at {} is not in the inventory", listed.peer_urls.join(",")));
            }
        }
        for p in &probes {
            if !list.iter().any(|l| l.has_peer_url(&p.member.peer_url)) {
                notes.push(format!(
                    "inventory host {} ({}) is not a member of the cluster",
                    p.member.name, p.member.peer_url
                ));
            }
        }
    }

    let verdict = if !quorum {
        Verdict::NoQuorum
    } else if members.iter().all(|m| m.healthy && m.problems.is_empty()) && notes.is_empty() {
        Verdict::Healthy
    } else {
        Verdict::Degraded
    };
    let warnings = members.iter().flat_map(|m| m.warnings.iter().map(move |w| format!("{}: {w}", m.name))).collect();
    ClusterHealth { verdict, exit_code: verdict.exit_code(), quorum, leader, members, notes, warnings, membership }
}

/// URLs compare without a trailing slash.
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: u8) -> Member {
        Member {
            name: format!("m{i}"),
            address: format!("10.0.0.{i}").parse().expect("ip"),
            client_url: format!("https://10.0.0.{i}:2379"),
            peer_url: format!("https://10.0.0.{i}:2380"),
        }
    }

    fn status(id: u64, leader: u64) -> MemberStatus {
        MemberStatus {
            id: format!("{id:x}"),
            version: "3.4.23".into(),
            db_size: 1,
            db_size_in_use: 1,
            leader_id: format!("{leader:x}"),
            is_leader: id == leader,
            raft_term: 2,
            raft_index: 10,
            raft_applied_index: 10,
            is_learner: false,
            errors: vec![],
        }
    }

    fn listed(name: &str, peer: &str) -> ListedMember {
        ListedMember {
            id: "1".into(),
            name: name.into(),
            peer_urls: vec![peer.into()],
            client_urls: vec![],
            is_learner: false,
        }
    }

    fn list() -> Vec<ListedMember> {
        (1..=3).map(|i| listed(&format!("m{i}"), &format!("https://10.0.0.{i}:2380"))).collect()
    }

    fn good(i: u8, leader: u64) -> Probe {
        Probe {
            member: member(i),
            status: Ok(status(i as u64, leader)),
            read: Ok(Duration::from_millis(3)),
            alarms: Ok(vec![]),
            member_list: Ok(list()),
        }
    }

    fn down(i: u8) -> Probe {
        Probe::failed(&member(i), Problem::timeout(Duration::from_secs(5), "connecting"))
    }

    #[test]
    fn all_good_is_healthy_with_the_leader_named() {
        let h = assess(vec![good(1, 1), good(2, 1), good(3, 1)], HealthOptions::default());
        assert_eq!(h.verdict, Verdict::Healthy);
        assert_eq!(h.exit_code, 0);
        assert_eq!(h.leader.as_deref(), Some("m1"));
        assert!(h.members[0].status.as_ref().is_some_and(|s| s.is_leader));
    }

    #[test]
    fn one_down_is_degraded_two_down_no_quorum() {
        let h = assess(vec![good(1, 2), good(2, 2), down(3)], HealthOptions::default());
        assert_eq!(h.verdict, Verdict::Degraded);
        assert_eq!(h.members[2].health, "unreachable");
        assert!(h.members[2].problems[0].contains("no answer within 5s"), "{:?}", h.members[2].problems);

        let mut lone = good(1, 0);
        lone.read = Err(Problem::timeout(Duration::from_secs(5), "reading the health key"));
        lone.alarms = Err(Problem::timeout(Duration::from_secs(5), "listing alarms"));
        let h = assess(vec![lone, down(2), down(3)], HealthOptions::default());
        assert_eq!(h.verdict, Verdict::NoQuorum);
        assert_eq!(h.exit_code, 2);
        assert_eq!(h.members[0].health, "unhealthy");
        assert!(h.members[0].problems.iter().any(|p| p.contains("no leader")));
    }

    #[test]
    fn alarms_slow_members_and_strangers_degrade() {
        let mut p1 = good(1, 1);
        p1.alarms = Ok(vec![(2, "NOSPACE".into())]);
        let h = assess(vec![p1, good(2, 1), good(3, 1)], HealthOptions::default());
        assert_eq!(h.verdict, Verdict::Degraded);
        assert_eq!(h.members[1].alarms, vec!["NOSPACE".to_string()]);
        assert_eq!(h.members[1].health, "alarm");


        let mut p = good(1, 1);
        let mut l = list();
        l.push(listed("m9", "https://10.0.0.9:2380"));
        p.member_list = Ok(l);
        let h = assess(vec![p, good(2, 1), good(3, 1)], HealthOptions::default());
        assert_eq!(h.verdict, Verdict::Degraded);
        assert!(h.notes[0].contains("m9"), "{:?}", h.notes);
    }

    /// A slow but answering member breaks nothing: healthy, exit 0, the figure kept as a
    /// warning (the Vagrant lab's 2766 ms read under QEMU emulation once failed CI).
    #[test]
    fn a_slow_member_is_a_warning_with_its_figure_not_a_failure() {
        let mut slow = good(3, 1);
        slow.read = Ok(Duration::from_millis(2766));
        let h = assess(vec![good(1, 1), good(2, 1), slow], HealthOptions::default());
        assert_eq!((h.verdict, h.exit_code), (Verdict::Healthy, 0));
        assert_eq!(h.members[2].health, "slow");
        assert!(h.members[2].healthy && h.members[2].slow && h.members[2].problems.is_empty());
        assert_eq!(h.warnings, vec!["m3: slow: the health read took 2766 ms (slow above 1000 ms)".to_string()]);
        assert!(h.summary().starts_with("healthy: 3/3 members healthy, leader m1; 1 warning"), "{}", h.summary());
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["members"][2]["read_ms"], 2766);
        assert_eq!(json["warnings"][0], "m3: slow: the health read took 2766 ms (slow above 1000 ms)");

        // Slow and down together: the down member decides, the slow one stays a warning.
        let mut slow = good(2, 1);
        slow.read = Ok(Duration::from_millis(1500));
        let h = assess(vec![good(1, 1), slow, down(3)], HealthOptions::default());
        assert_eq!((h.verdict, h.exit_code), (Verdict::Degraded, 1));
        assert_eq!(h.warnings.len(), 1);
    }

    #[test]
    fn slow_follows_long_election_timeouts_only() {
        assert_eq!(HealthOptions::slow_after_for(1000), Duration::from_secs(1));
        assert_eq!(HealthOptions::slow_after_for(5000), Duration::from_millis(2500));
    }
}
