//! `provision apply INVENTORY`: compute the plan once, print it, execute exactly it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::output::OutputFormat;
use super::plan::{print_plan, runtime};
use super::{ExitCode, Failure};
use crate::apply::cancel::EXIT_INTERRUPTED;
use crate::apply::events::{Event, Reporter};
use crate::apply::{self, ApplyContext, Cancel};
use crate::plan::membership::removals_to_confirm;
use crate::plan::pipeline::{self, PipelineOptions, Prepared};
use crate::plan::{Plan, render_text};
use crate::verify;

const LONG_ABOUT: &str = "\
Bring every host to the desired state: exactly the plan `provision plan` prints.

The plan is computed once (one round trip per host gathers its state), printed, then \
executed phase by phase: preflight, base (users, directories, shared files), etcd (all \
members' files, then all members started together, then a wait for quorum), kube-apiserver \
(then a wait for /readyz), controller-manager + scheduler, bootstrap RBAC (cluster objects \
applied through the API: templates/bootstrap-rbac.yaml), runtime, kubelet, cluster DNS (CoreDNS and \
the kube-dns Service at the kubelets' clusterDNS, applied the same way: templates/coredns.yaml). Hosts run in \
parallel inside a phase (at most ssh.parallelism at once). Files are written atomically (temp file + rename); a unit restarts \
only when a file it watches changed; daemon-reload runs only when a unit file changed. A \
second apply finds nothing to do and says so.

Changes to a running cluster are rolling stages the plan shows (docs/rollout.md): restarts \
of running units one host at a time behind a health gate (etcd: caught up, quorum held, the \
leader last after move-leader), after a verified etcd snapshot (--no-backup skips it). etcd \
membership follows the inventory one member at a time: a new member joins as a learner and \
is promoted; a member whose data is gone is replaced; a member the inventory no longer lists \
is removed (leadership moved first, its etcd stopped and disabled, data kept aside), which \
needs --yes or the cluster name typed at the prompt.

A host that fails (unreachable, a command failing) stops there while the others finish the \
phase; the run then stops before the next phase and names the failed hosts. Ctrl-C lets the \
steps in flight finish and stops (exit 130); run apply again to continue.

Progress: a bar per host on a terminal; plain lines otherwise; with --output json one JSON \
event per line: plan, phase-start, action-done, wait-start, wait-done, host-error, phase-end, \
summary, and verify (the report) after it.

After a successful apply, `provision verify` runs on the same connections (TLS, RBAC, \
encryption at rest, an etcd snapshot restored into a scratch directory, CIS checks on the \
running processes and files) and its table is printed (--no-verify skips it).

Exit status: 0 when every host is in its desired state and verified, 1 on any failure, 3 \
when the changes were made but a verify check failed, 130 when interrupted.";

/// Applied, but `verify` found a failing check.
pub const EXIT_VERIFY_FAILED: i32 = 3;

/// Make the changes `plan` shows, phase by phase, hosts in parallel.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct ApplyArgs {
    /// The inventory file (TOML), e.g. inventories/lab.toml.
    pub inventory: PathBuf,
    /// Directory of template overrides (files named like the embedded templates).
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// How long a phase waits for its units to be active / etcd to have quorum.
    #[arg(long, default_value_t = 180)]
    pub wait_timeout_secs: u64,
    /// Skip the `provision verify` run at the end.
    #[arg(long)]
    pub no_verify: bool,
    /// Skip the etcd snapshot taken before running etcd members are restarted.
    #[arg(long)]
    pub no_backup: bool,
    /// Confirm the removal of etcd members the inventory no longer lists (without a
    /// terminal to ask on, apply refuses such a plan unless given --yes).
    #[arg(long)]
    pub yes: bool,
}

pub fn run(args: &ApplyArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let opts = PipelineOptions { templates: args.templates.clone(), ..Default::default() };
    runtime()?.block_on(async {
        let cancel = Cancel::on_ctrl_c();
        let prepared = pipeline::prepare(&args.inventory, &opts).await?;
        let mut plan = prepared.plan_apply();
        if args.no_backup {
            plan.phases.iter_mut().for_each(|p| p.snapshot = None);
        }
        let leaving = removals_to_confirm(&plan);
        let shown = !leaving.is_empty() && !args.yes && format == OutputFormat::Text;
        if !leaving.is_empty() && !args.yes {
            if let Err(e) = confirm_removals(&prepared, &plan, &leaving, format) {
                prepared.close().await;
                return Err(e);
            }
        }
        let mut result =
            execute_plan(&prepared, &plan, &cancel, Duration::from_secs(args.wait_timeout_secs), format, shown).await;
        if matches!(result, Ok(ExitCode::OK)) {
            write_admin_kubeconfig(&prepared, format)?;
            if !args.no_verify && !cancel.is_cancelled() {
                result = verify_after_apply(&prepared, format).await;
            }
        }
        prepared.close().await;
        result
    })
}

/// A plan that removes etcd members goes ahead only with the operator's yes: `--yes`, or
/// the cluster's name typed at the prompt. Nothing has changed when this refuses.
fn confirm_removals(prepared: &Prepared, plan: &Plan, leaving: &[String], format: OutputFormat) -> anyhow::Result<()> {
    let cluster = &prepared.inventory().cluster.name;
    let what = format!("remove etcd member(s) {} (not in the inventory)", leaving.join(", "));
    if !std::io::stdin().is_terminal() || format == OutputFormat::Json {
        return Err(Failure::new(
            ExitCode::ERROR,
            format!(
                "this apply would {what}: run it again with --yes to confirm, or list them in {} again if that was \
                 a mistake (nothing was changed)",
                prepared.loaded.path.display()
            ),
        )
        .into());
    }
    print_plan(prepared, plan, format)?;
    let prompt = format!("This apply will {what}. Type the cluster name ({cluster}) to confirm: ");
    if !super::output::typed_cluster_name(&prompt, cluster)? {
        return Err(Failure::new(ExitCode::ERROR, "not confirmed: nothing was changed").into());
    }
    Ok(())
}

/// The control-plane hosts' admin.conf, also in the state directory for the operator's
/// kubectl (0600, written only when it differs). None without a control plane.
fn write_admin_kubeconfig(prepared: &Prepared, format: OutputFormat) -> anyhow::Result<()> {
    let admin = prepared.desired.hosts.iter().flat_map(|h| &h.files).find(|f| f.path == crate::render::paths::ADMIN_CONF);
    let Some(admin) = admin else { return Ok(()) };
    let path = prepared.state.admin_kubeconfig();
    // Compared through the trusted-file reader: never through a link, only a file of ours.
    if crate::trust::read_ours(&path)?.as_deref() != Some(admin.content.as_slice()) {
        crate::fsutil::write_atomic(&path, &admin.content, 0o600)?;
    }
    if format == OutputFormat::Text {
        println!("admin kubeconfig: {} (kubectl --kubeconfig={0})", path.display());
    }
    Ok(())
}

/// `provision verify` over apply's own SSH sessions: the table (or one JSON event).
async fn verify_after_apply(prepared: &Prepared, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let opts = verify::Options { timeout: Duration::from_secs(5), only: None };
    let report = verify::run_with_sessions(&prepared.loaded, &opts, Some(&prepared.gathered.sessions))
        .await
        .map_err(|e| Failure::new(ExitCode::ERROR, format!("applied, but verify could not run: {e:#}")))?;
    match format {
        OutputFormat::Json => println!("{}", serde_json::json!({ "event": "verify", "report": report })),
        OutputFormat::Text => println!("\nverify:\n{}", report.to_table()),
    }
    if report.ok {
        Ok(ExitCode::OK)
    } else {
        let message = "applied, but verify found failing checks (see the table above)".to_string();
        Err(Failure { code: ExitCode(EXIT_VERIFY_FAILED), message, printed: false }.into())
    }
}

/// Shared by apply, reset and restore: print the plan, run it, report, choose the exit code.
pub async fn execute_plan(
    prepared: &Prepared,
    plan: &Plan,
    cancel: &Cancel,
    wait_timeout: Duration,
    format: OutputFormat,
    plan_already_shown: bool,
) -> anyhow::Result<ExitCode> {
    execute_plan_at(prepared, plan, cancel, wait_timeout, format, plan_already_shown).await.0
}

/// As `execute_plan`, also saying where the run stopped (for restore's rollback):
/// the phase index and whether a host failed there (not only a wait).
pub async fn execute_plan_at(
    prepared: &Prepared,
    plan: &Plan,
    cancel: &Cancel,
    wait_timeout: Duration,
    format: OutputFormat,
    plan_already_shown: bool,
) -> (anyhow::Result<ExitCode>, Option<(usize, bool)>) {
    let mut stopped = None;
    let result = async {
        let json = format == OutputFormat::Json;
        if json {
            println!("{}", serde_json::json!({ "event": "plan", "plan": plan }));
        } else if !plan_already_shown && (!plan.is_empty() || !plan.failed_hosts().is_empty()) {
            print_plan(prepared, plan, format)?;
        }
        if cancel.is_cancelled() {
            return Err(Failure::new(ExitCode(EXIT_INTERRUPTED), "interrupted before any change").into());
        }
        if plan.is_empty() && plan.failed_hosts().is_empty() {
            let message = render_text::summary(plan);
            if json {
                let e = Event::Summary { ok: true, changes_made: 0, failed_hosts: vec![], interrupted: false, ms: 0, message };
                println!("{}", serde_json::to_string(&e)?);
            } else {
                println!("{message}");
            }
            return Ok(ExitCode::OK);
        }

        let totals: Vec<(String, usize)> =
            plan.hosts.iter().map(|h| (h.host.clone(), plan.host_actions(&h.host).count())).collect();
        let reporter = Reporter::new(json, &totals);
        let inventory = prepared.inventory();
        let ctx = ApplyContext {
            sessions: &prepared.gathered.sessions,
            inventory,
            state: &prepared.state,
            pki: &prepared.pki,
            reporter: &reporter,
            cancel,
            parallelism: inventory.ssh.parallelism.unwrap_or(inventory.hosts.len()).max(1),
            wait_timeout,
        };
        let started = Instant::now();
        let outcome = apply::execute(plan, &ctx).await;
        stopped = outcome.stopped_in.map(|i| (i, !outcome.failed_hosts.is_empty()));
        let failed: Vec<String> = outcome.failed_hosts.iter().map(|(h, _)| h.clone()).collect();
        let message = if outcome.interrupted {
            format!("interrupted after {} changes: run it again to finish", outcome.changes_made)
        } else if !failed.is_empty() {
            format!("{} changes made; FAILED on {}; stopped before the next phase", outcome.changes_made, failed.join(", "))
        } else if !outcome.wait_failures.is_empty() {
            format!("{} changes made; a phase did not become healthy:\n{}", outcome.changes_made, outcome.wait_failures.join("\n"))
        } else {
            format!("{} changes made in {:.1}s", outcome.changes_made, started.elapsed().as_secs_f64())
        };
        reporter.emit(Event::Summary {
            ok: outcome.ok(),
            changes_made: outcome.changes_made,
            failed_hosts: failed.clone(),
            interrupted: outcome.interrupted,
            ms: started.elapsed().as_millis() as u64,
            message: message.clone(),
        });
        if outcome.interrupted {
            if !json {
                eprintln!("{message}");
            }
            return Err(Failure { code: ExitCode(EXIT_INTERRUPTED), message, printed: true }.into());
        }
        if !outcome.ok() {
            if !json {
                // Each host's error was shown as it happened (host-error events).
                eprintln!("{message}");
            }
            return Err(Failure { code: ExitCode::ERROR, message, printed: true }.into());
        }
        if !json {
            println!("{message}");
        }
        Ok(ExitCode::OK)
    }
    .await;
    (result, stopped)
}
