//! Waiting for units to be up: `active` with no job pending (a `--no-block` restart
//! is queued as a job; until it ran, the OLD process still shows `active`).
//!
//! Fails fast instead of sitting out the timeout: a unit that is `failed`, or that
//! systemd restarted 3 more times since the wait began (Restart=on-failure loops show
//! as `activating`, never `failed`), fails the wait with the end of its journal.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::future::join_all;

use super::ApplyContext;
use crate::plan::action::HostUnits;
use crate::plan::facts::shell_quote;
use crate::ssh::Session;

const CRASH_LOOP_RESTARTS: u64 = 3;

pub async fn wait(hosts: &[HostUnits], skip: &[String], ctx: &ApplyContext<'_>) -> anyhow::Result<()> {
    let tasks = hosts.iter().filter(|h| !skip.contains(&h.host)).map(|h| async move {
        let session = ctx.sessions.get(&h.host).with_context(|| format!("{}: no SSH session", h.host))?;
        wait_host(session, &h.units, ctx).await.with_context(|| h.host.clone())
    });
    let errors: Vec<String> = join_all(tasks).await.into_iter().filter_map(|r| r.err()).map(|e| format!("{e:#}")).collect();
    if errors.is_empty() { Ok(()) } else { bail!("{}", errors.join("\n")) }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Status {
    active_state: String,
    sub_state: String,
    job: bool,
    restarts: u64,
}

async fn wait_host(session: &Session, units: &[String], ctx: &ApplyContext<'_>) -> anyhow::Result<()> {
    let list: Vec<String> = units.iter().map(|u| shell_quote(u)).collect();
    let cmd = format!("systemctl show -p ActiveState,SubState,Job,NRestarts -- {}", list.join(" "));
    let deadline = Instant::now() + ctx.wait_timeout;
    let mut baseline: Option<Vec<u64>> = None;
    loop {
        let out = session.exec_checked(&cmd, None).await.context("asking systemd about the units")?;
        let statuses = parse_show(&String::from_utf8_lossy(&out.stdout));
        if statuses.len() != units.len() {
            bail!("systemd answered about {} units, asked about {}", statuses.len(), units.len());
        }
        let base = baseline.get_or_insert_with(|| statuses.iter().map(|s| s.restarts).collect());
        let mut pending = Vec::new();
        for ((unit, s), base) in units.iter().zip(&statuses).zip(base.iter()) {
            let crash_loop = s.restarts >= base + CRASH_LOOP_RESTARTS;
            if s.active_state == "failed" || crash_loop {
                let journal = journal_tail(session, unit).await;
                let what = if crash_loop { "keeps crashing (restarted by systemd)" } else { "failed" };
                bail!("{unit} {what}; last journal lines:\n{journal}");
            }
            if s.active_state != "active" || s.job {
                pending.push(format!("{unit} is {}/{}", s.active_state, s.sub_state));
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("not active after {}s: {}", ctx.wait_timeout.as_secs(), pending.join(", "));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = ctx.cancel.cancelled() => bail!("interrupted while waiting for {}", pending.join(", ")),
        }
    }
}

/// `systemctl show` for several units: blocks of KEY=VALUE separated by empty lines.
fn parse_show(out: &str) -> Vec<Status> {
    let mut all = Vec::new();
    let mut cur: BTreeMap<&str, &str> = BTreeMap::new();
    let mut flush = |cur: &mut BTreeMap<&str, &str>| {
        if !cur.is_empty() {
            all.push(Status {
                active_state: cur.get("ActiveState").unwrap_or(&"").to_string(),
                sub_state: cur.get("SubState").unwrap_or(&"").to_string(),
                // "Job=" (none) or "Job=1234"; some versions print nothing when none.
                job: cur.get("Job").is_some_and(|j| !j.is_empty() && *j != "0"),
                restarts: cur.get("NRestarts").and_then(|n| n.parse().ok()).unwrap_or(0),
            });
            cur.clear();
        }
    };
    for line in out.lines() {
        match line.split_once('=') {
            Some((k, v)) => {
                cur.insert(k, v);
            }
            None => flush(&mut cur),
        }
    }
    flush(&mut cur);
    all
}

pub(crate) async fn journal_tail(session: &Session, unit: &str) -> String {
    let cmd = format!("journalctl -u {} -n 15 --no-pager -o cat 2>&1", shell_quote(unit));
    match session.exec(&cmd, None).await {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim_end().to_string(),
        Err(e) => format!("(journal unavailable: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks_in_order() {
        let out = "ActiveState=active\nSubState=running\nJob=\nNRestarts=0\n\nNRestarts=4\nActiveState=activating\nSubState=auto-restart\nJob=812\n";
        let s = parse_show(out);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], Status { active_state: "active".into(), sub_state: "running".into(), job: false, restarts: 0 });
        assert_eq!(s[1], Status { active_state: "activating".into(), sub_state: "auto-restart".into(), job: true, restarts: 4 });
    }
}
