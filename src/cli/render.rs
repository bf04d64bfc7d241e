//! `provision render INVENTORY --out DIR [--templates DIR]`: builds (or reuses) the PKI
//! and writes, per host, exactly the files apply would install, with a manifest.

use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;

use super::exit::ExitCode;
use super::output::{OutputFormat, print_json, table};
use crate::inventory::{Inventory, Role};
use crate::render::output::{HostSummary, write_tree};
use crate::render::{Skipped, Templates, render};
use crate::state::StateDir;

/// Render every host's files into a directory, to read them before applying.
///
/// Each host gets DIR/<host>/ holding its files at their absolute paths
/// (DIR/node1/etc/systemd/system/etcd.service, ...) and DIR/<host>/manifest.json listing
/// every file and directory with mode, owner, group, sha256 and component. Private keys
/// are written 0600. Certificates are issued into the state directory
/// (.provision/<cluster>/ beside the inventory) when missing and reused otherwise.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The inventory file (TOML).
    pub inventory: PathBuf,
    /// Directory to write into: empty, new, or an earlier render's output (replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Directory of template overrides: a file there replaces the embedded template of
    /// the same name (e.g. kube-apiserver.service).
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

#[derive(Serialize)]
struct Summary<'a> {
    cluster: &'a str,
    out: String,
    hosts: Vec<HostSummary>,
    skipped: &'a [Skipped],
    overridden_templates: Vec<Overridden>,
    certificates_issued: usize,
}

#[derive(Serialize)]
struct Overridden {
    template: String,
    file: String,
}

pub fn run(args: RenderArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    // Validated (file:line, exit 2) before anything on disk is touched: the cluster
    // name becomes a directory, and every value ends up in a file on the hosts.
    let loaded = super::validate::load_or_report(&args.inventory, format)?;
    let inventory = loaded.inventory;
    let templates = Templates::load(args.templates.as_deref())?;
    // --out is checked (ours, no link, nobody else can write) before any key is made.
    crate::trust::owned_dir(&args.out).with_context(|| format!("--out {}", args.out.display()))?;
    let state = StateDir::beside(&args.inventory, &inventory.cluster.name);
    let ensured = crate::pki::ensure_reporting(&inventory, &state)
        .with_context(|| format!("cannot prepare the PKI in {}", state.root().display()))?;
    let issued = ensured.events.iter().filter(|e| e.kind != crate::pki::EventKind::Reused).count();
    let rendered = render(&inventory, &ensured.pki, &templates)?;
    state.keep_operator_files(&rendered)?;
    let hosts = write_tree(&rendered, &args.out)?;

    let summary = Summary {
        cluster: &inventory.cluster.name,
        out: args.out.display().to_string(),
        hosts,
        skipped: &rendered.skipped,
        overridden_templates: rendered
            .overridden_templates
            .iter()
            .map(|(t, f)| Overridden { template: t.clone(), file: f.clone() })
            .collect(),
        certificates_issued: issued,
    };
    match format {
        OutputFormat::Json => print_json(&summary)?,
        OutputFormat::Text => print_text(&summary, &inventory),
    }
    Ok(ExitCode::OK)
}

fn print_text(s: &Summary, inv: &Inventory) {
    let roles = |name: &str| -> String {
        inv.hosts
            .iter()
            .find(|h| h.name == name)
            .map(|h| {
                [(Role::Etcd, "etcd"), (Role::ControlPlane, "control-plane"), (Role::Worker, "worker")]
                    .iter()
                    .filter(|(r, _)| h.has(*r))
                    .map(|(_, n)| *n)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    println!("Rendered cluster \"{}\" into {}", s.cluster, s.out);
    let rows = s
        .hosts
        .iter()
        .map(|h| {
            vec![
                h.host.clone(),
                roles(&h.host),
                h.files.to_string(),
                h.secrets.to_string(),
                h.dirs.to_string(),
                h.units.iter().map(|u| u.trim_end_matches(".service")).collect::<Vec<_>>().join(","),
            ]
        })
        .collect();
    println!("{}", table(&["HOST", "ROLES", "FILES", "SECRETS", "DIRS", "UNITS"], rows));
    let total: usize = s.hosts.iter().map(|h| h.files).sum();
    println!("{} files on {} hosts; certificates issued or renewed now: {}", total, s.hosts.len(), s.certificates_issued);
    for sk in s.skipped {
        println!("Skipped: {} ({})", sk.what, sk.why);
    }
    for o in &s.overridden_templates {
        println!("Template {} taken from {}", o.template, o.file);
    }
    println!("Each host's manifest.json lists modes, owners and sha256 of every file.");
}
