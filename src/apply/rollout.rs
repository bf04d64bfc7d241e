//! Executes a phase's rolling-restart stages (`plan::rollout`) exactly in plan order:
//! per stage, hand etcd leadership over when the plan says so, restart the host's units
//! and wait until they are up, then hold the gate. A failed step or gate stops the
//! rollout there, naming the host and the reason; later hosts are not touched, and the
//! next plan restarts them (their unit files are newer than their processes).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::events::Event;
use super::{ApplyContext, PhaseResult};
use crate::etcd::Member;
use crate::etcd::backup::{self, BackupOptions};
use crate::etcd::connect::{connect, within};
use crate::etcd::credentials::ClientCredentials;
use crate::etcd::health::{self, ClusterHealth, HealthOptions};
use crate::plan::action::HostUnits;
use crate::plan::action::{Action, Phase};
use crate::plan::facts::shell_quote as q;
use crate::plan::membership::{RemoveMember, RemoveWhy};
use crate::plan::rollout::{Gate, Snapshot, Stage};

pub async fn run(phase: Phase, stages: &[Stage], ctx: &ApplyContext<'_>) -> PhaseResult {
    let mut result = PhaseResult::default();
    for (i, stage) in stages.iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            break;
        }
        ctx.reporter.emit(Event::StageStart { phase, stage: i + 1, of: stages.len(), host: &stage.host });
        if let Err(e) = run_stage(phase, stage, ctx, &mut result.done).await {
            let rest: Vec<&str> = stages[i + 1..].iter().map(|s| s.host.as_str()).collect();
            let untouched =
                if rest.is_empty() { String::new() } else { format!("; not restarted: {}", rest.join(", ")) };
            let error = format!("{e:#}");
            ctx.reporter.emit(Event::HostError { phase, host: &stage.host, error: error.clone() });
            result.wait_failures.push(format!(
                "{phase} rolling restart stopped at stage {}/{} on {}: {error}{untouched} (run apply again to continue)",
                i + 1,
                stages.len(),
                stage.host
            ));
            break;
        }
    }
    result
}

/// The plan's snapshot before the phase changes anything: streamed from the best member
/// (a healthy follower first), verified after writing, old ones pruned to `keep`.
pub async fn take_snapshot(phase: Phase, snapshot: &Snapshot, ctx: &ApplyContext<'_>) -> anyhow::Result<()> {
    let (members, creds, opts) = etcd_creds(ctx)?;
    let t = Instant::now();
    let health = health::check(&members, &creds, opts).await;
    let candidates = backup::candidates(&members, &health);
    if candidates.is_empty() {
        bail!("no etcd member answered for the snapshot before {}: {}", snapshot.because, health.summary());
    }
    let opts = BackupOptions {
        cluster: ctx.inventory.cluster.name.clone(),
        dir: PathBuf::from(&snapshot.dir),
        keep: Some(snapshot.keep),
        timeout: Duration::from_secs(30),
        progress: false,
    };
    let report = backup::backup(&candidates, &creds, &opts).await.context("etcd snapshot before the rollout")?;
    let path = report.path.display().to_string();
    ctx.reporter.emit(Event::SnapshotDone {
        phase,
        path: &path,
        size: report.size,
        member: &report.member,
        ms: t.elapsed().as_millis() as u64,
    });
    Ok(())
}

async fn run_stage(phase: Phase, stage: &Stage, ctx: &ApplyContext<'_>, done: &mut usize) -> anyhow::Result<()> {
    if let Gate::EtcdMember { member, .. } | Gate::EtcdJoin { member } = &stage.gate {
        quorum_without(member, ctx).await?;
    }
    // Leadership first: a member about to restart or leave hands it over while it serves.
    if let Some(to) = &stage.move_leader_to {
        let t = Instant::now();
        if move_leader(&stage.host, to, ctx).await? {
            ctx.reporter.emit(Event::LeaderMoved { from: &stage.host, to, ms: t.elapsed().as_millis() as u64 });
        }
    }
    if let Some(remove) = &stage.remove_member {
        let t = Instant::now();
        if remove_member(&stage.host, remove, ctx).await? {
            let ms = t.elapsed().as_millis() as u64;
            *done += 1;
            ctx.reporter.emit(Event::MemberRemoved { member: &stage.host, id: &remove.id, ms });
        }
    }
    if let Some(peer_url) = &stage.add_learner {
        let t = Instant::now();
        if add_learner(&stage.host, peer_url, ctx).await? {
            ctx.reporter.emit(Event::LearnerAdded { member: &stage.host, peer_url, ms: t.elapsed().as_millis() as u64 });
        }
    }
    for action in &stage.actions {
        let session = ctx.sessions.get(&stage.host).context("no SSH session (preflight did not connect)")?;
        let t = Instant::now();
        match action {
            Action::RestartUnit { unit, .. } | Action::StartUnit { unit } => restart_blocking(session, unit, ctx).await?,
            other => super::run_action::run(session, other).await?,
        }
        *done += 1;
        ctx.reporter.emit(Event::ActionDone { phase, host: &stage.host, action, ms: t.elapsed().as_millis() as u64 });
    }
    let t = Instant::now();
    gate(&stage.host, &stage.gate, ctx).await?;
    ctx.reporter.emit(Event::GateDone {
        phase,
        host: &stage.host,
        gate: &stage.gate,
        ms: t.elapsed().as_millis() as u64,
    });
    Ok(())
}

/// Blocking (unlike the start-together step): the rollout must know the old process is
/// gone before it judges the new one; Type=notify units return once ready.
async fn restart_blocking(session: &crate::ssh::Session, unit: &str, ctx: &ApplyContext<'_>) -> anyhow::Result<()> {
    let cmd = format!("systemctl reset-failed -- {u} 2>/dev/null; systemctl restart -- {u}", u = q(unit));
    let restarted = tokio::select! {
        r = tokio::time::timeout(ctx.wait_timeout, session.exec_checked(&cmd, None)) => r,
        _ = ctx.cancel.cancelled() => bail!("interrupted while restarting {unit}"),
    };
    let failed = match restarted {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => format!("{unit} failed to restart ({e:#})"),
        Err(_) => format!("{unit} did not come back within {}s", ctx.wait_timeout.as_secs()),
    };
    // The unit's own words say why (the systemctl error only says that it failed).
    let journal = super::wait_units::journal_tail(session, unit).await;
    let last = journal.lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>();
    // One line: the report names stage, host and reason on the line it starts.
    let why = failed.split_whitespace().collect::<Vec<_>>().join(" ");
    bail!("{why}; journal: {}", last.join(" | "))
}

async fn gate(host: &str, gate: &Gate, ctx: &ApplyContext<'_>) -> anyhow::Result<()> {
    let units_active = |units: &[String]| [HostUnits { host: host.to_string(), units: units.to_vec() }];
    match gate {
        Gate::EtcdMember { member, cluster_version } => {
            etcd_member_caught_up(member, ctx).await?;
            match cluster_version {
                Some(minor) => cluster_version_reached(minor, ctx).await,
                None => Ok(()),
            }
        }
        Gate::ApiserverReady { units } => {
            super::wait_units::wait(&units_active(units), &[], ctx).await?;
            super::phases::kube_apiserver::wait_ready(&[host.to_string()], &[], ctx).await
        }
        Gate::UnitsActive { units } => super::wait_units::wait(&units_active(units), &[], ctx).await,
        Gate::EtcdJoin { member } => {
            learner_caught_up_and_promoted(member, ctx).await?;
            etcd_member_caught_up(member, ctx).await
        }
        Gate::EtcdRemoved { member, id } => member_gone(member, id, ctx).await,
    }
}

fn etcd_creds(ctx: &ApplyContext<'_>) -> anyhow::Result<(Vec<Member>, ClientCredentials, HealthOptions)> {
    let members = crate::etcd::members(ctx.inventory);
    let creds = ClientCredentials::from_pki(ctx.pki, &ctx.state.pki_dir())?;
    Ok((members, creds, HealthOptions::for_cluster(ctx.inventory, Duration::from_secs(3))))
}

/// Waits until the members other than `member` hold a quorum on their own (healthy), so
/// restarting `member` cannot lose it: e.g. a member still starting after an interrupted
/// apply, or a dead host, makes the rollout wait (then stop), never take a second one down.
async fn quorum_without(member: &str, ctx: &ApplyContext<'_>) -> anyhow::Result<()> {
    let (members, creds, opts) = etcd_creds(ctx)?;
    let quorum = crate::etcd::members::quorum(members.len());
    let deadline = Instant::now() + ctx.wait_timeout;
    loop {
        let health = health::check(&members, &creds, opts).await;
        let others: Vec<&str> =
            health.members.iter().filter(|m| m.healthy && m.name != member).map(|m| m.name.as_str()).collect();
        if others.len() >= quorum {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "restarting {member} would leave {} healthy of {} members ({}) and quorum needs {quorum}: \
                 bring the other members back first ({})",
                others.len(),
                members.len(),
                others.join(", "),
                health.summary()
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = ctx.cancel.cancelled() => bail!("interrupted while waiting for the etcd members other than {member}"),
        }
    }
}

/// The restarted member answers, the cluster has a leader and quorum, and the member's
/// applied index reached the leader's raft index as read when the member first answered
/// (it has replayed what it missed while down).
async fn etcd_member_caught_up(member: &str, ctx: &ApplyContext<'_>) -> anyhow::Result<()> {
    let (members, creds, opts) = etcd_creds(ctx)?;
    let deadline = Instant::now() + ctx.wait_timeout;
    let mut target: Option<u64> = None;
    loop {
        let health = health::check(&members, &creds, opts).await;
        let why_not = match member_progress(&health, member) {
            Ok((applied, leader_index)) => {
                let t = *target.get_or_insert(leader_index);
                if applied >= t {
                    return Ok(());
                }
                format!("applied raft index {applied}, leader's {t}")
            }
            Err(reason) => reason,
        };
        if Instant::now() >= deadline {
            bail!("etcd member {member} not ready after {}s: {why_not}", ctx.wait_timeout.as_secs());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = ctx.cancel.cancelled() => bail!("interrupted while waiting for etcd member {member}"),
        }
    }
}

/// etcd's `/version` on any member says `"etcdcluster":"<minor>.…"`: the leader raised the
/// cluster version after every member runs the new minor (its own schedule: seconds).
async fn cluster_version_reached(minor: &str, ctx: &ApplyContext<'_>) -> anyhow::Result<()> {
    use crate::pki::CertId;
    let ca = ctx.pki.get(&CertId::EtcdCa).context("the etcd CA is missing from the PKI")?;
    let identity = ctx.pki.get(&CertId::ApiServerEtcdClient).context("the etcd client certificate is missing")?;
    let members = crate::etcd::members(ctx.inventory);
    let port = ctx.inventory.etcd.client_port;
    let deadline = Instant::now() + ctx.wait_timeout;
    let want = format!("{minor}.");
    let clients = members
        .iter()
        .map(|m| {
            let client =
                crate::kube::api::ApiClient::new(&m.address.to_string(), port, &ca.cert_pem, Some(identity), Duration::from_secs(3))?;
            Ok((m, client))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut last = String::new();
    loop {
        for (m, client) in &clients {
            match client.send(hyper::Method::GET, "/version", "application/json", None).await {
                Ok(r) if r.status == 200 => {
                    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                    let cluster = v["etcdcluster"].as_str().unwrap_or_default().to_string();
                    if cluster.starts_with(&want) {
                        return Ok(());
                    }
                    last = format!("cluster version {cluster} on {}", m.name);
                    break;
                }
                Ok(r) => last = format!("{}: {}", m.name, r.describe()),
                Err(e) => last = format!("{}: {e:#}", m.name),
            }
        }
        if Instant::now() >= deadline {
            bail!("the etcd cluster version did not reach {minor} within {}s ({last})", ctx.wait_timeout.as_secs());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = ctx.cancel.cancelled() => bail!("interrupted while waiting for the etcd cluster version {minor}"),
        }
    }
}

/// (member's applied index, leader's raft index) when the member is healthy and the
/// cluster has a leader and quorum; otherwise why not, in plain words.
fn member_progress(health: &ClusterHealth, member: &str) -> Result<(u64, u64), String> {
    if !health.quorum {
        return Err(health.summary());
    }
    let leader = health
        .members
        .iter()
        .find_map(|m| m.status.as_ref().filter(|s| s.is_leader))
        .ok_or_else(|| "the cluster has no leader".to_string())?;
    let m = health.members.iter().find(|m| m.name == member).ok_or_else(|| format!("{member} is not a member"))?;
    if !m.healthy {
        return Err(if m.problems.is_empty() { m.health.to_string() } else { m.problems.join("; ") });
    }
    let status = m.status.as_ref().ok_or_else(|| "no status".to_string())?;
    Ok((status.raft_applied_index, leader.raft_index))
}

/// Hands leadership from `from` to `to` when `from` leads now (`MoveLeader` must be
/// sent to the leader). False when `from` no longer leads (nothing to do). The target
/// must be healthy: a leader is never handed to a member that cannot serve. `from` may be
/// a member the inventory no longer lists (about to be removed): it is reached at the
/// client URL the member list gives.
async fn move_leader(from: &str, to: &str, ctx: &ApplyContext<'_>) -> anyhow::Result<bool> {
    let (members, creds, opts) = etcd_creds(ctx)?;
    let mut health = health::check(&members, &creds, opts).await;
    let mut members = members;
    if !members.iter().any(|m| m.name == from) {
        // A leaving member: probed too, at the client URL the member list gives.
        members = with_listed(members, &health);
        health = health::check(&members, &creds, opts).await;
    }
    let status = |name: &str| health.members.iter().find(|m| m.name == name).filter(|m| m.healthy);
    if !status(from).and_then(|m| m.status.as_ref()).is_some_and(|s| s.is_leader) {
        return Ok(false);
    }
    let target = status(to)
        .and_then(|m| m.status.as_ref())
        .with_context(|| format!("cannot move etcd leadership to {to}: it is not healthy ({})", health.summary()))?;
    let target_id = crate::etcd::members::numeric_id(&target.id)?;
    let member = members.iter().find(|m| m.name == from).context("the leader is not in the member list")?;
    let mut client = connect(member, &creds, opts.timeout).await.map_err(|p| anyhow::anyhow!("{p}"))?.client;
    let t = opts.timeout.max(Duration::from_secs(10));
    within(
        tokio::time::Instant::now() + t,
        t,
        "moving the leadership",
        &member.client_url,
        client.move_leader(target_id),
    )
    .await
    .map_err(|p| anyhow::anyhow!("moving etcd leadership from {from} to {to}: {p}"))?;
    Ok(true)
}

/// The inventory's members plus the cluster members it no longer lists (reached at the
/// first client URL the member list gives), so a leaving member can be probed.
fn with_listed(mut members: Vec<Member>, health: &ClusterHealth) -> Vec<Member> {
    for l in health.membership.iter().flatten() {
        if l.name.is_empty() || members.iter().any(|m| l.has_peer_url(&m.peer_url)) {
            continue;
        }
        let (Some(client_url), Some(peer_url)) = (l.client_urls.first(), l.peer_urls.first()) else { continue };
        let Ok(address) = crate::plan::membership::peer_host(peer_url).parse() else { continue };
        members.push(Member { name: l.name.clone(), address, client_url: client_url.clone(), peer_url: peer_url.clone() });
    }
    members
}

/// `member remove` of the id the plan names, through a healthy voting member the
/// inventory lists. False when the id is gone already (an earlier, interrupted apply).
/// For a member the inventory no longer lists, checked again now: the inventory's
/// healthy members alone must hold the smaller cluster's quorum.
async fn remove_member(name: &str, remove: &RemoveMember, ctx: &ApplyContext<'_>) -> anyhow::Result<bool> {
    let (mut client, t, list, health) = members_via_voter(ctx, &format!("removing {name}")).await?;
    let deadline = || tokio::time::Instant::now() + t;
    let id = crate::etcd::members::numeric_id(&remove.id)?;
    let Some(entry) = list.members().iter().find(|m| m.id() == id) else { return Ok(false) };
    if remove.why == RemoveWhy::NotInInventory {
        let voters = list.members().iter().filter(|m| !m.is_learner()).count() - usize::from(!entry.is_learner());
        let quorum = crate::etcd::members::quorum(voters);
        let healthy = health.healthy_count();
        if healthy < quorum {
            bail!(
                "removing {name} would leave {voters} members with {healthy} healthy, and quorum needs {quorum}: \
                 bring the inventory's members back first ({})",
                health.summary()
            );
        }
    }
    within(deadline(), t, "removing a member", "the cluster", client.member_remove(id))
        .await
        .map_err(|p| anyhow::anyhow!("removing etcd member {name} ({}): {p}", remove.id))?;
    Ok(true)
}

/// The removed id is gone from the member list and the inventory's members hold quorum
/// with a leader.
async fn member_gone(member: &str, id: &str, ctx: &ApplyContext<'_>) -> anyhow::Result<()> {
    let (members, creds, opts) = etcd_creds(ctx)?;
    let deadline = Instant::now() + ctx.wait_timeout;
    loop {
        let health = health::check(&members, &creds, opts).await;
        let listed = health.membership.as_ref().map(|l| l.iter().any(|m| m.id == id));
        let why_not = match listed {
            None => format!("no member answered the member list ({})", health.summary()),
            Some(true) => format!("{member} ({id}) is still in the member list"),
            Some(false) if !health.quorum || health.leader.is_none() => health.summary(),
            Some(false) => return Ok(()),
        };
        if Instant::now() >= deadline {
            bail!("etcd member {member} not removed after {}s: {why_not}", ctx.wait_timeout.as_secs());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = ctx.cancel.cancelled() => bail!("interrupted while waiting for etcd member {member} to be gone"),
        }
    }
}

/// `member add` of `name` at `peer_url` as a learner, through a healthy voting member.
/// False when the cluster already lists that peer URL (an earlier, interrupted apply added
/// it): adding is done, the start and the gate continue from there.
async fn add_learner(name: &str, peer_url: &str, ctx: &ApplyContext<'_>) -> anyhow::Result<bool> {
    let (mut client, t, list, _) = members_via_voter(ctx, &format!("adding {name}")).await?;
    let deadline = || tokio::time::Instant::now() + t;
    if list.members().iter().any(|m| m.peer_urls().iter().any(|u| u.trim_end_matches('/') == peer_url)) {
        return Ok(false);
    }
    // etcd refuses a member add ("unhealthy cluster") until every member has been connected
    // for its health interval (5 s, --strict-reconfig-check): a cluster started a moment ago
    // gets there by itself, so that answer is retried until the wait timeout.
    let give_up = Instant::now() + ctx.wait_timeout;
    loop {
        let options = etcd_client::MemberAddOptions::new().with_is_learner();
        match within(deadline(), t, "adding a learner", "the cluster", client.member_add([peer_url], Some(options))).await
        {
            Ok(_) => return Ok(true),
            Err(p) if p.to_string().contains("unhealthy cluster") && Instant::now() < give_up => {}
            Err(p) => bail!("adding etcd member {name} ({peer_url}) as a learner: {p}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = ctx.cancel.cancelled() => bail!("interrupted while adding etcd member {name}"),
        }
    }
}

/// A client on a healthy voting member (member add/promote are refused by learners).
/// A healthy voter's client, its call limit, and the health check that chose it.
async fn voting_client(ctx: &ApplyContext<'_>) -> anyhow::Result<(etcd_client::Client, Duration, ClusterHealth)> {
    let (members, creds, opts) = etcd_creds(ctx)?;
    let health = health::check(&members, &creds, opts).await;
    let voter = health
        .members
        .iter()
        .find(|m| m.healthy && m.status.as_ref().is_some_and(|s| !s.is_learner))
        .and_then(|m| members.iter().find(|x| x.name == m.name))
        .with_context(|| format!("no healthy voting etcd member to change membership through ({})", health.summary()))?;
    let t = opts.timeout.max(Duration::from_secs(10));
    let client = connect(voter, &creds, t).await.map_err(|p| anyhow::anyhow!("{p}"))?.client;
    Ok((client, t, health))
}

/// A voter's client, its call limit, the member list it gives, read before `doing` (a
/// membership change is decided on the list read through the member that makes it), and
/// the cluster's health read just before.
async fn members_via_voter(
    ctx: &ApplyContext<'_>,
    doing: &str,
) -> anyhow::Result<(etcd_client::Client, Duration, etcd_client::MemberListResponse, ClusterHealth)> {
    let (mut client, t, health) = voting_client(ctx).await?;
    let list = within(tokio::time::Instant::now() + t, t, "listing members", "the cluster", client.member_list())
        .await
        .map_err(|p| anyhow::anyhow!("listing etcd members before {doing}: {p}"))?;
    Ok((client, t, list, health))
}

/// Waits until the learner `member` has applied what the leader had when the learner
/// first answered, then promotes it (retried while etcd says the learner is not in sync).
async fn learner_caught_up_and_promoted(member: &str, ctx: &ApplyContext<'_>) -> anyhow::Result<()> {
    let (members, creds, opts) = etcd_creds(ctx)?;
    let deadline = Instant::now() + ctx.wait_timeout;
    let mut target: Option<u64> = None;
    let mut why_not;
    loop {
        let health = health::check(&members, &creds, opts).await;
        let leader_index = health.members.iter().find_map(|m| m.status.as_ref().filter(|s| s.is_leader)).map(|s| s.raft_index);
        let me = health.members.iter().find(|m| m.name == member).and_then(|m| m.status.as_ref());
        match (me, leader_index) {
            (Some(s), _) if !s.is_learner => return Ok(()), // promoted already (an earlier apply)
            (Some(s), Some(leader)) => {
                let t = *target.get_or_insert(leader);
                if s.raft_applied_index >= t {
                    let id = crate::etcd::members::numeric_id(&s.id)?;
                    let (mut client, to, _) = voting_client(ctx).await?;
                    match within(tokio::time::Instant::now() + to, to, "promoting", "the cluster", client.member_promote(id))
                        .await
                    {
                        Ok(_) => return Ok(()),
                        Err(p) => why_not = format!("promote refused: {p}"),
                    }
                } else {
                    why_not = format!("learner applied raft index {}, leader's {t}", s.raft_applied_index);
                }
            }
            (None, _) => why_not = format!("learner {member} does not answer yet"),
            (Some(_), None) => why_not = "the cluster has no leader".to_string(),
        }
        if Instant::now() >= deadline {
            bail!("etcd learner {member} not promoted after {}s: {why_not}", ctx.wait_timeout.as_secs());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            _ = ctx.cancel.cancelled() => bail!("interrupted while waiting for etcd learner {member}"),
        }
    }
}
