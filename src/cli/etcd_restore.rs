//! `provision etcd restore INVENTORY SNAPSHOT`: the snapshot verified, the restore planned
//! (`plan::restore`), shown and confirmed, then executed like any plan; a failure while
//! members are being restored runs the rollback plan.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use super::apply::execute_plan_at;
use super::etcd::{RestoreArgs, credentials};
use super::output::OutputFormat;
use super::plan::{print_plan, runtime};
use super::{ExitCode, Failure};
use crate::apply::Cancel;
use crate::etcd::health::{self, HealthOptions, Verdict};
use crate::etcd::restore::{MemberOutcome, RestoreReport, current_revision, preflight};
use crate::etcd::snapshot_file::{self, Depth};
use crate::plan::pipeline::{self, PipelineOptions, utc_stamp};
use crate::plan::restore::{RestoreRequest, member_restores, plan_restore, rollback_plan, running_apiservers};

/// The restore's etcd phase (members uploaded, stopped, restored, started): a host failing
/// there is rolled back.
const RESTORE_PHASE: usize = 2;

pub fn run(a: RestoreArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    // The snapshot is checked before anything else happens: a damaged file stops here.
    let info = snapshot_file::verify(&a.snapshot, Depth::Structure)
        .map_err(|e| Failure::new(ExitCode::INVALID, format!("{e}; nothing was changed")))?;
    if !a.yes && !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            ExitCode::INVALID,
            "refusing to restore without confirmation: there is no terminal to ask on; pass --yes to confirm",
        )
        .into());
    }
    let bytes = std::fs::read(&info.path).with_context(|| format!("cannot read {}", info.path.display()))?;
    let sha256 = crate::artifacts::checksum::sha256_hex(&bytes);
    let req = RestoreRequest {
        snapshot: Arc::new(bytes),
        sha256,
        stamp: utc_stamp(time::OffsetDateTime::now_utc()),
        keep_previous: a.keep_previous,
    };
    let opts = PipelineOptions { templates: None, binary_paths_only: true };
    runtime()?.block_on(async {
        let cancel = Cancel::on_ctrl_c();
        let prepared = pipeline::prepare(&a.inventory, &opts).await?;
        let inv = prepared.inventory();
        let members = super::etcd::etcd_members(inv, &a.inventory)?;
        let restores = member_restores(inv, &members, &req);
        // Room for the uploaded file and the restored copy (about the database's size).
        let need = info.db_size.saturating_mul(2) + info.file_size;
        let mut reports = prepared.gathered.reports.clone();
        let mut tools = Vec::new();
        for (host, found) in preflight(&prepared.gathered.sessions, &restores, need).await {
            match found {
                Ok(tool) => tools.push((host, tool)),
                Err(why) => {
                    if let Some(r) = reports.iter_mut().find(|r| r.host == host) {
                        r.problems.push(format!("{why} (nothing was changed)"));
                    }
                }
            }
        }
        let apiservers = running_apiservers(inv, &prepared.gathered.facts);
        let plan = plan_restore(inv, reports.clone(), &restores, &apiservers, &req);
        let shown = !a.yes && format == OutputFormat::Text;
        if shown {
            print_plan(&prepared, &plan, format)?;
            if !confirm(&inv.cluster.name, &info)? {
                prepared.close().await;
                return Err(Failure::new(ExitCode::ERROR, "not confirmed; nothing was changed").into());
            }
        }
        let wait = a.quorum_timeout;
        let (result, stopped) = execute_plan_at(&prepared, &plan, &cancel, wait, format, shown).await;
        if let Err(e) = result {
            let in_restore = matches!(stopped, Some((RESTORE_PHASE, true)));
            if in_restore {
                let rollback = rollback_plan(inv, reports, &restores, &apiservers);
                let never = Cancel::default();
                let (undone, _) = execute_plan_at(&prepared, &rollback, &never, wait, format, false).await;
                prepared.close().await;
                let message = match undone {
                    Ok(_) => "the restore failed on a member (above); every member's previous data was put back and \
                              etcd started again"
                        .to_string(),
                    Err(u) => format!(
                        "the restore failed on a member (above), and so did putting the previous data back ({u:#}); \
                         each member's previous data dir is {}",
                        restores.first().map(|r| r.previous_dir()).unwrap_or_default()
                    ),
                };
                return Err(Failure::new(ExitCode::ERROR, message).into());
            }
            prepared.close().await;
            let kept = restores.first().map(|r| r.previous_dir()).unwrap_or_default();
            return Err(Failure::new(
                ExitCode::ERROR,
                format!("{e:#}; each member's previous data dir is kept as {kept}"),
            )
            .into());
        }
        let creds = credentials(&a.tls, inv, &a.inventory)?;
        let health_opts = HealthOptions::for_cluster(inv, a.timeout);
        let health = health::check(&members, &creds, health_opts).await;
        let restored_revision = current_revision(&members, &creds, a.timeout).await.unwrap_or(0);
        prepared.close().await;
        let mut warnings = Vec::new();
        if health.verdict != Verdict::Healthy {
            warnings.push(format!("the restored cluster is {}", health.summary()));
        }
        let report = RestoreReport {
            snapshot: info.path.clone(),
            snapshot_revision: info.revision,
            restored_revision,
            cluster_token: req.token(&inv.cluster.name),
            members: restores
                .iter()
                .map(|r| MemberOutcome {
                    name: r.name.clone(),
                    tool: tools.iter().find(|(h, _)| *h == r.name).map(|(_, t)| t.clone()).unwrap_or_default(),
                    previous_dir: a.keep_previous.then(|| r.previous_dir()),
                })
                .collect(),
            apiserver_restarted: apiservers,
            verdict: health.verdict,
            seconds: started.elapsed().as_secs_f64(),
            warnings,
        };
        print_report(&report, &inv.cluster.name, format)?;
        Ok(ExitCode::OK)
    })
}

fn confirm(cluster: &str, info: &snapshot_file::SnapshotInfo) -> anyhow::Result<bool> {
    eprintln!(
        "This REPLACES the data of etcd cluster {cluster} with {} (revision {}); writes made after the snapshot are lost.",
        info.path.display(),
        info.revision
    );
    super::output::typed_cluster_name(&format!("Type the cluster name ({cluster}) to continue: "), cluster)
}

/// JSON: one last event line after the plan's events (`{"event":"restore","report":...}`).
fn print_report(report: &RestoreReport, cluster: &str, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::json!({ "event": "restore", "report": report })),
        OutputFormat::Text => {
            println!(
                "restored cluster {cluster} from {} in {:.1}s: snapshot revision {}, cluster now at revision {} ({:?})",
                report.snapshot.display(),
                report.seconds,
                report.snapshot_revision,
                report.restored_revision,
                report.verdict
            );
            for m in &report.members {
                let kept =
                    m.previous_dir.as_deref().map(|d| format!(", previous data kept in {d}")).unwrap_or_default();
                println!("  {}: restored with {}{kept}", m.name, m.tool);
            }
            for w in &report.warnings {
                println!("warning: {w}");
            }
        }
    }
    Ok(())
}
