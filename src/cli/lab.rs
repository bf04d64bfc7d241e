//! `provision lab up | down | destroy | status`: local lab hosts (systemd-nspawn
//! containers on 127.0.1.N) to try provision on. Needs root.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ExitCode;
use super::output::{self, OutputFormat};
use crate::lab::{self, HostState, Lab, Progress, UpOptions, status::human_duration};

#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Boot lab hosts node1..N on 127.0.1.1..N (builds the image on first use).
    ///
    /// Idempotent: running hosts are left alone, stopped ones boot with their disks,
    /// leftovers of interrupted runs are cleaned up. Pins the hosts' sshd keys into the
    /// inventory's state dir (.provision/CLUSTER/known_hosts).
    Up {
        /// How many hosts (node1 ..= nodeN).
        #[arg(long, default_value_t = lab::DEFAULT_HOSTS, value_parser = clap::value_parser!(u32).range(1..=lab::MAX_HOSTS as i64))]
        hosts: u32,
        /// The lab inventory whose known_hosts receives the host keys.
        #[arg(long, default_value = "inventories/lab.toml")]
        inventory: PathBuf,
    },
    /// Power the hosts off cleanly; their disks (etcd data, ...) are kept for the next `up`.
    Down,
    /// `down`, then remove the hosts' disks.
    Destroy {
        /// Also remove the image (cached tarball and unpacked copy): the next `up` rebuilds it.
        #[arg(long)]
        image: bool,
    },
    /// Show each host's state, pid, sshd, uptime and memory (PSS of its processes).
    ///
    /// Exit status: 0 when every expected host runs, 2 when one does not.
    Status {
        /// Expected hosts (default: as many as the last `lab up` booted).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=lab::MAX_HOSTS as i64))]
        hosts: Option<u32>,
    },
}

pub fn run(args: LabArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let lab = Lab::system();
    let progress = Progress::for_stderr();
    match args.command {
        LabCommand::Up { hosts, inventory } => {
            let report = lab::up(&lab, &UpOptions { hosts, inventory }, &progress)?;
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            match format {
                OutputFormat::Json => output::print_json(&report)?,
                OutputFormat::Text => {
                    let rows = report
                        .hosts
                        .iter()
                        .map(|h| {
                            let action = match &h.note {
                                Some(note) => format!("{} ({note})", h.action),
                                None => h.action.to_string(),
                            };
                            vec![
                                h.host.name.clone(),
                                h.host.address.to_string(),
                                action,
                                h.boot_seconds.map(|s| format!("{s:.2}s")).unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect();
                    println!("{}", output::table(&["NAME", "ADDRESS", "ACTION", "BOOT"], rows));
                    println!("lab up: {} host(s) running, {:.1}s total", report.hosts.len(), report.total_seconds);
                    if let Some(first) = report.hosts.first() {
                        println!(
                            "try: ssh -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes root@{}",
                            report.key.display(),
                            report.known_hosts.display(),
                            first.host.address
                        );
                    }
                }
            }
            Ok(ExitCode::OK)
        }
        LabCommand::Down | LabCommand::Destroy { .. } => {
            if lab::testing::held_by_a_test() {
                eprintln!(
                    "note: a test holds the lab hosts ({}); it may fail when they go away",
                    lab.tests_lock_path().display()
                );
            }
            let (verb, report) = match args.command {
                LabCommand::Destroy { image } => ("destroyed", lab::destroy(&lab, image, &progress)?),
                _ => ("down", lab::down(&lab, &progress)?),
            };
            match format {
                OutputFormat::Json => output::print_json(&report)?,
                OutputFormat::Text => {
                    if report.hosts.is_empty() {
                        println!("lab {verb}: no lab hosts on this machine");
                    } else {
                        let rows = report
                            .hosts
                            .iter()
                            .map(|h| vec![h.host.name.clone(), h.host.address.to_string(), h.result.to_string()])
                            .collect();
                        println!("{}", output::table(&["NAME", "ADDRESS", "RESULT"], rows));
                        println!("lab {verb}: {} host(s), {:.1}s", report.hosts.len(), report.total_seconds);
                    }
                }
            }
            Ok(ExitCode::OK)
        }
        LabCommand::Status { hosts } => {
            let st = lab::status(&lab, hosts)?;
            match format {
                OutputFormat::Json => output::print_json(&st)?,
                OutputFormat::Text => {
                    let rows = st
                        .hosts
                        .iter()
                        .map(|h| {
                            vec![
                                h.host.name.clone(),
                                h.host.address.to_string(),
                                h.state.to_string(),
                                h.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                                if h.sshd { "yes" } else { "no" }.to_string(),
                                h.uptime_seconds.map(human_duration).unwrap_or_else(|| "-".into()),
                                h.mem_mib.map(|m| format!("{m:.0} MiB")).unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        output::table(&["NAME", "ADDRESS", "STATE", "PID", "SSHD", "UPTIME", "MEMORY"], rows)
                    );
                    for h in &st.hosts {
                        if let Some(note) = &h.note {
                            println!("{}: {note} (`provision lab up` recovers it)", h.host.name);
                        }
                    }
                    let running = st.hosts.iter().filter(|h| h.expected && h.state == HostState::Running).count();
                    println!("{running}/{} expected host(s) running", st.expected_hosts);
                }
            }
            Ok(if st.all_running { ExitCode::OK } else { ExitCode::INVALID })
        }
    }
}
