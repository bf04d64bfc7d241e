//! `provision reset INVENTORY [--purge-data] [--yes]`: undo what apply installed.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use super::apply::execute_plan;
use super::output::OutputFormat;
use super::plan::{print_plan, runtime};
use super::{ExitCode, Failure};
use crate::apply::Cancel;
use crate::plan::pipeline::{self, PipelineOptions};
use crate::plan::render_text;

const LONG_ABOUT: &str = "\
Stop and disable provision's units and remove every file and directory provision installed \
(exactly the managed paths of the desired state), then daemon-reload.

The reset is planned like an apply: the plan is printed first, then confirmed. A directory \
is removed only when nothing but provision's files is in it; users are kept. The etcd data \
directory is kept unless --purge-data is given. A second reset finds nothing to remove.

Without a terminal to confirm on, --yes is required.

Exit status: 0 when done (or nothing to remove), 1 on failure or when not confirmed, 130 \
when interrupted.";

/// Remove what apply installed (the plan is shown and confirmed first).
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct ResetArgs {
    /// The inventory file (TOML), e.g. inventories/lab.toml.
    pub inventory: PathBuf,
    /// Also delete the etcd data directory (every key in the cluster is lost).
    #[arg(long)]
    pub purge_data: bool,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Directory of template overrides (files named like the embedded templates).
    #[arg(long)]
    pub templates: Option<PathBuf>,
}

pub fn run(args: &ResetArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stdin().is_terminal();
    if !args.yes && !interactive {
        return Err(Failure::new(
            ExitCode::ERROR,
            "reset needs confirmation and stdin is not a terminal: run it with --yes",
        )
        .into());
    }
    let opts = PipelineOptions { templates: args.templates.clone(), binary_paths_only: true };
    runtime()?.block_on(async {
        let cancel = Cancel::on_ctrl_c();
        let prepared = pipeline::prepare(&args.inventory, &opts).await?;
        let plan = prepared.plan_reset(args.purge_data);
        let nothing = plan.is_empty() && plan.failed_hosts().is_empty();
        if !args.yes && !nothing {
            print_plan(&prepared, &plan, format)?;
            if !confirm(&prepared.inventory().cluster.name, args.purge_data)? {
                prepared.close().await;
                return Err(Failure::new(ExitCode::ERROR, "reset cancelled: nothing was changed").into());
            }
        }
        if nothing && format == OutputFormat::Text {
            // Still show the notes (e.g. the kept data dir), then "nothing to remove".
            print!("{}", render_text::render(&plan));
            prepared.close().await;
            return Ok(ExitCode::OK);
        }
        let result = execute_plan(&prepared, &plan, &cancel, Duration::from_secs(60), format, !args.yes).await;
        prepared.close().await;
        result
    })
}

fn confirm(cluster: &str, purge: bool) -> anyhow::Result<bool> {
    let extra = if purge { " AND DELETE ALL ETCD DATA" } else { "" };
    let prompt = format!("Reset cluster {cluster:?} on these hosts{extra}? Type the cluster name to confirm: ");
    super::output::typed_cluster_name(&prompt, cluster)
}
