//! `provision artifacts fetch INVENTORY`: download and verify the cluster's binaries into
//! the cache without touching any host; with `--to DIR`, also lay them out for the
//! `directory` source (prepare an air-gapped site on a connected machine).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::ExitCode;
use super::output::{OutputFormat, print_json, table};
use super::validate;
use crate::artifacts::{self, Arch, Options, Progress, Resolved, SourceChoice, SourceKind};

#[derive(Debug, Args)]
pub struct ArtifactsArgs {
    #[command(subcommand)]
    pub command: ArtifactsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ArtifactsCommand {
    /// Download the cluster's Kubernetes and etcd binaries into the cache and verify them
    /// against the published checksums; never connects to a host.
    ///
    /// Every tier the inventory installs is downloaded from its base URL, even when the
    /// inventory's source is "directory": run this on a machine with internet access and
    /// carry the `--to` directory to the air-gapped site (docs/artifacts.md).
    ///
    /// Exit status: 0 when every binary is in the cache and verified; 2 when the inventory is
    /// invalid (every problem printed); 1 otherwise.
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The inventory file (versions, base URLs, cache_dir).
    pub inventory: PathBuf,
    /// Architectures to fetch (repeat or comma-separate: --arch amd64,arm64).
    #[arg(long = "arch", value_delimiter = ',', default_value = "amd64")]
    pub arches: Vec<Arch>,
    /// Also copy the binaries and their checksum files into DIR, in the layout the
    /// "directory" source reads (DIR/<arch>/ when several architectures are fetched).
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report<'a> {
    kubernetes_version: &'a str,
    etcd_version: &'a str,
    binaries: Vec<&'a Resolved>,
    exported: Vec<PathBuf>,
    notes: &'a [String],
}

pub fn run(args: ArtifactsArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    match args.command {
        ArtifactsCommand::Fetch(fetch) => run_fetch(&fetch, format),
    }
}

fn run_fetch(args: &FetchArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let loaded = validate::load_or_report(&args.inventory, format)?;
    let mut arches = args.arches.clone();
    arches.sort();
    arches.dedup();
    let opts = Options { progress: Progress::stderr(), sources: SourceChoice::DownloadAll, every_binary_for: arches };
    let fetched = artifacts::resolve_with(&loaded, &Default::default(), &opts)?;
    let exported = match &args.to {
        Some(dir) => artifacts::export_to(&fetched, dir)?,
        None => Vec::new(),
    };
    let report = Report {
        kubernetes_version: &fetched.kubernetes_version,
        etcd_version: &fetched.etcd_version,
        binaries: fetched.all().collect(),
        exported,
        notes: &fetched.notes,
    };
    match format {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => print!("{}", render_text(&report, args.to.as_deref())),
    }
    Ok(ExitCode::OK)
}

fn render_text(r: &Report, to: Option<&std::path::Path>) -> String {
    let rows = r
        .binaries
        .iter()
        .map(|b| {
            vec![
                b.binary.name().to_string(),
                b.arch.to_string(),
                artifacts::human_bytes(b.size),
                b.sha256.clone(),
                match b.origin.source {
                    SourceKind::Cache => "cache".to_string(),
                    SourceKind::Download => "downloaded".to_string(),
                    SourceKind::Directory => "directory".to_string(),
                },
                b.origin.path.display().to_string(),
            ]
        })
        .collect();
    let mut out = format!("Kubernetes {}, etcd {}\n", r.kubernetes_version, r.etcd_version);
    out.push_str(&table(&["BINARY", "ARCH", "SIZE", "SHA256", "SOURCE", "FILE"], rows));
    out.push('\n');
    for n in r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    if let Some(dir) = to {
        out.push_str(&format!(
            "\nWrote {} files to {}: set artifacts.kubernetes / artifacts.etcd = \"directory\" and artifacts.directory = \"{}\" at the air-gapped site.\n",
            r.exported.len(),
            dir.display(),
            dir.display()
        ));
    }
    out
}
