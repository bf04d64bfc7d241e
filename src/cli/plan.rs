//! `provision plan INVENTORY`: what apply would change on every host, without changing it.

use std::path::PathBuf;

use super::output::OutputFormat;
use super::{ExitCode, Failure};
use crate::plan::pipeline::{self, PipelineOptions, Prepared};
use crate::plan::{Plan, render_text};

const LONG_ABOUT: &str = "\
Show what `provision apply` would change on every host, without changing any host.

On this machine it does what apply would do first, because the plan compares their bytes: \
the PKI and the encryption key are made (or certificates in their renewal window renewed) in \
the state directory beside the inventory, and with ssh.host_keys = \"accept-new\" a new \
host's key is pinned there.

Connects to every host (one round trip each gathers the state of every managed file, \
directory, user and unit), compares it with the desired state rendered from the inventory \
and the PKI, and prints the changes per host:

  + create /etc/etcd/pki/server.key (0600 etcd:etcd, secret, 227 bytes, sha256 ...)
  ~ update /etc/etcd/etcd.conf.yml (content: 0644 root:root, sha256 ...)
  ↻ restart etcd.service (watched file changed: /etc/etcd/etcd.conf.yml)

`provision apply` computes this same plan and executes exactly it. Secrets are never \
shown: only their path, size and sha256.

Exit status: 0 when the hosts are up to date, 2 when changes are pending, 1 on error \
(a host unreachable or failing its preflight checks, a bad inventory, ...).

With --output json the plan is printed as one JSON object: {kind, cluster, hosts: [{host, \
address, os, arch, systemd, problems, warnings}], phases: [{phase, hosts: [{host, \
actions}], waits}], changes}.";

/// Show the changes apply would make on every host (exit 2 when there are any).
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct PlanArgs {
    /// The inventory file (TOML), e.g. inventories/lab.toml.
    pub inventory: PathBuf,
    /// Directory of template overrides (files named like the embedded templates).
    #[arg(long)]
    pub templates: Option<PathBuf>,
}

pub fn run(args: &PlanArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let opts = PipelineOptions { templates: args.templates.clone(), ..Default::default() };
    runtime()?.block_on(async {
        let prepared = pipeline::prepare(&args.inventory, &opts).await?;
        let plan = prepared.plan_apply();
        print_plan(&prepared, &plan, format)?;
        prepared.close().await;
        exit_code(&plan, format)
    })
}

pub fn print_plan(prepared: &Prepared, plan: &Plan, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => super::output::print_json(plan)?,
        OutputFormat::Text => {
            print_preamble(prepared);
            print!("{}", render_text::render(plan));
        }
    }
    Ok(())
}

/// Inventory warnings and the parts render left out, on stderr (they are not the plan).
pub fn print_preamble(prepared: &Prepared) {
    // A warning's Display already says "warning:" (after its file:line:column).
    for w in &prepared.loaded.warnings {
        eprintln!("{w}");
    }
    for s in &prepared.skipped {
        eprintln!("note: not rendered: {s}");
    }
    for n in &prepared.artifact_notes {
        eprintln!("note: binaries: {n}");
    }
}

/// 1 when a host failed preflight (the message names them), 2 with pending changes, else 0.
pub fn exit_code(plan: &Plan, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let failed = plan.failed_hosts();
    if !failed.is_empty() {
        let mut f = Failure::new(ExitCode::ERROR, format!("cannot plan for {}: see the problems above", failed.join(", ")));
        // The JSON plan on stdout already names the problems: no second JSON document.
        f.printed = format == OutputFormat::Json;
        return Err(f.into());
    }
    Ok(if plan.is_empty() { ExitCode::OK } else { ExitCode(2) })
}

/// The runtime the SSH sessions live on (hosts are worked on concurrently).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}
