//! What apply tells the operator while it runs: one `Event` type, three renderings.
//!
//! - `--output json`: one JSON object per line on stdout (for CI logs and scripts);
//! - text on a terminal: an indicatif bar per host (MultiProgress on stderr);
//! - text elsewhere (pipes, CI): one plain line per finished action on stdout.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::plan::action::{Action, Phase, Wait};
use crate::plan::rollout::Gate;
use crate::plan::render_text;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event<'a> {
    PhaseStart { phase: Phase, hosts: Vec<&'a str>, actions: usize },
    ActionDone { phase: Phase, host: &'a str, action: &'a Action, ms: u64 },
    WaitStart { phase: Phase, wait: &'a Wait },
    WaitDone { phase: Phase, wait: &'a Wait, ms: u64 },
    HostError { phase: Phase, host: &'a str, error: String },
    /// The verified etcd snapshot taken before the phase changed anything.
    SnapshotDone { phase: Phase, path: &'a str, size: u64, member: &'a str, ms: u64 },
    /// A rolling-restart stage begins (`stage` counts from 1).
    StageStart { phase: Phase, stage: usize, of: usize, host: &'a str },
    /// etcd leadership was handed over before restarting the leader.
    LeaderMoved { from: &'a str, to: &'a str, ms: u64 },
    /// An etcd member was removed from the cluster (`member remove`).
    MemberRemoved { member: &'a str, id: &'a str, ms: u64 },
    /// A joining etcd member was added to the cluster as a learner.
    LearnerAdded { member: &'a str, peer_url: &'a str, ms: u64 },
    /// The stage's gate held: the rollout moves on.
    GateDone { phase: Phase, host: &'a str, gate: &'a Gate, ms: u64 },
    PhaseEnd { phase: Phase, ok: bool, failed_hosts: Vec<&'a str>, ms: u64 },
    Summary { ok: bool, changes_made: usize, failed_hosts: Vec<String>, interrupted: bool, ms: u64, message: String },
}

enum Sink {
    Json,
    Bars { multi: MultiProgress, bars: BTreeMap<String, ProgressBar> },
    Lines,
}

/// Thread-safe: hosts report from their own tasks.
pub struct Reporter {
    sink: Mutex<Sink>,
}

impl Reporter {
    /// `json`: --output json. `host_totals`: actions per host, for the bars' lengths.
    pub fn new(json: bool, host_totals: &[(String, usize)]) -> Reporter {
        let sink = if json {
            Sink::Json
        } else if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{prefix:>12.bold} [{bar:25}] {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let mut bars = BTreeMap::new();
            for (host, total) in host_totals {
                let bar = multi.add(ProgressBar::new(*total as u64));
                bar.set_style(style.clone());
                bar.set_prefix(host.clone());
                bar.enable_steady_tick(Duration::from_millis(200));
                bars.insert(host.clone(), bar);
            }
            Sink::Bars { multi, bars }
        } else {
            Sink::Lines
        };
        Reporter { sink: Mutex::new(sink) }
    }

    pub fn emit(&self, event: Event<'_>) {
        let Ok(mut sink) = self.sink.lock() else { return };
        match &mut *sink {
            Sink::Json => {
                if let Ok(line) = serde_json::to_string(&event) {
                    println!("{line}");
                }
            }
            Sink::Lines => {
                if let Some(line) = text_line(&event) {
                    println!("{line}");
                }
            }
            Sink::Bars { multi, bars } => match &event {
                Event::ActionDone { host, action, .. } => {
                    if let Some(bar) = bars.get(*host) {
                        bar.inc(1);
                        bar.set_message(render_text::line(action));
                    }
                }
                Event::HostError { host, .. } => {
                    if let Some(bar) = bars.get(*host) {
                        bar.abandon_with_message("FAILED");
                    }
                    if let Some(line) = text_line(&event) {
                        let _ = multi.println(line);
                    }
                }
                Event::Summary { .. } => {
                    for bar in bars.values() {
                        if !bar.is_finished() {
                            bar.finish_with_message("done");
                        }
                    }
                }
                _ => {
                    if let Some(line) = text_line(&event) {
                        let _ = multi.println(line);
                    }
                }
            },
        }
    }
}

/// The plain-text form of an event (None: not worth a line).
fn text_line(event: &Event<'_>) -> Option<String> {
    Some(match event {
        Event::PhaseStart { phase, hosts, actions } => {
            if *actions == 0 {
                return None;
            }
            format!("== {phase}: {actions} actions on {}", hosts.join(", "))
        }
        Event::ActionDone { host, action, .. } => format!("{host}: {}", render_text::line(action)),
        Event::WaitStart { wait, .. } => format!("   {} ...", render_text::wait_line(wait)),
        Event::WaitDone { wait, ms, .. } => format!("   done in {:.1}s: {}", *ms as f64 / 1000.0, render_text::wait_line(wait)),
        Event::HostError { phase, host, error } => {
            // Errors often name the host already, and the full text (with its fix) was
            // printed with the plan for preflight problems: one line here.
            let error = error.strip_prefix(&format!("{host}: ")).unwrap_or(error);
            format!("{host}: FAILED in {phase}: {}", error.lines().next().unwrap_or_default())
        }
        Event::SnapshotDone { path, size, member, ms, .. } => format!(
            "   etcd snapshot saved (verified): {path} ({size} bytes from {member}, {:.1}s)",
            *ms as f64 / 1000.0
        ),
        Event::StageStart { phase, stage, of, host } => format!("== {phase} rolling restart {stage}/{of}: {host}"),
        Event::LeaderMoved { from, to, ms } => {
            format!("   etcd leadership moved from {from} to {to} in {:.1}s", *ms as f64 / 1000.0)
        }
        Event::MemberRemoved { member, id, ms } => {
            format!("   etcd member {member} ({id}) removed from the cluster in {:.1}s", *ms as f64 / 1000.0)
        }
        Event::LearnerAdded { member, peer_url, ms } => {
            format!("   etcd member {member} ({peer_url}) added as a learner in {:.1}s", *ms as f64 / 1000.0)
        }
        Event::GateDone { host, gate, ms, .. } => {
            format!("   gate passed on {host} in {:.1}s: {}", *ms as f64 / 1000.0, gate.describe())
        }
        Event::PhaseEnd { .. } => return None,
        Event::Summary { .. } => return None,
    })
}
