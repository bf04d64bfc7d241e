//! A prober that samples every etcd member's Status all along a command, and a client
//! on the first member (shared by tests/rollout_lab.rs and tests/membership_lab.rs).
#![allow(dead_code)]

use super::lab_cli::*;

#[derive(Debug, Default)]
pub struct ProbeLog {
    pub samples: usize,
    pub max_down: usize,
    /// Samples with two or more members down (must stay 0).
    pub two_down: usize,
    /// Longest stretch during which no answering member named a leader.
    pub longest_leaderless: std::time::Duration,
    /// (ms since start, member) of each transition from answering to not answering.
    pub went_down: Vec<(u128, String)>,
}

/// Samples every member's Status over etcd-client every ~100 ms until `stop` is set.
/// "Down" = the member does not answer Status within 1 s (its process is not serving).
pub fn prober(inventory: std::path::PathBuf, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> ProbeLog {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let EtcdAccess { members, creds, .. } = etcd_access(&inventory);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let mut log = ProbeLog::default();
        let start = Instant::now();
        let mut leaderless_since: Option<Instant> = None;
        let mut was_up: Vec<bool> = vec![true; members.len()];
        while !stop.load(Ordering::SeqCst) {
            let t = Instant::now();
            let answers = futures::future::join_all(members.iter().map(|m| {
                let creds = &creds;
                async move {
                    let limit = Duration::from_secs(1);
                    let deadline = tokio::time::Instant::now() + limit;
                    let mut c = provision::etcd::connect::connect(m, creds, limit).await.ok()?.client;
                    let s = provision::etcd::connect::within(deadline, limit, "status", &m.client_url, c.status())
                        .await
                        .ok()?;
                    Some(s.leader())
                }
            }))
            .await;
            let down = answers.iter().filter(|a| a.is_none()).count();
            for (i, a) in answers.iter().enumerate() {
                if was_up[i] && a.is_none() {
                    log.went_down.push((start.elapsed().as_millis(), members[i].name.clone()));
                }
                was_up[i] = a.is_some();
            }
            let has_leader = answers.iter().any(|a| a.is_some_and(|l| l != 0));
            match (has_leader, leaderless_since) {
                (false, None) => leaderless_since = Some(t),
                (true, Some(since)) => {
                    log.longest_leaderless = log.longest_leaderless.max(t - since);
                    leaderless_since = None;
                }
                _ => {}
            }
            log.samples += 1;
            log.max_down = log.max_down.max(down);
            if down >= 2 {
                log.two_down += 1;
            }
            tokio::time::sleep(Duration::from_millis(100).saturating_sub(t.elapsed())).await;
        }
        if let Some(since) = leaderless_since {
            log.longest_leaderless = log.longest_leaderless.max(since.elapsed());
        }
        log
    })
}

/// Runs `provision ARGS` while the prober samples `probed`'s members; half a second of
/// samples before (the prober reads the PKI first, under its lock: let it, before apply
/// does) and after. Returns the output, the wall time of the command alone, and the log.
pub fn run_while_probing(
    probed: &std::path::Path,
    args: &[&str],
) -> (std::process::Output, std::time::Duration, ProbeLog) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let probe = {
        let (probed, stop) = (probed.to_path_buf(), stop.clone());
        std::thread::spawn(move || prober(probed, stop))
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    let t = std::time::Instant::now();
    let out = provision(args);
    let wall = t.elapsed();
    std::thread::sleep(std::time::Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    (out, wall, probe.join().unwrap())
}

pub fn etcd_client_rt(inventory: &std::path::Path) -> (tokio::runtime::Runtime, etcd_client::Client) {
    let EtcdAccess { members, creds, .. } = etcd_access(inventory);
    let first = &members[0];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let connecting = provision::etcd::connect::connect(first, &creds, std::time::Duration::from_secs(5));
    let client = rt.block_on(connecting).unwrap_or_else(|p| panic!("{p}")).client;
    (rt, client)
}
