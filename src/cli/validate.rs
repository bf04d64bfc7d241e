//! `provision validate INVENTORY`: checks an inventory without touching any host,
//! and the shared "load the inventory or print every problem" step of other commands.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::output::OutputFormat;
use super::{ExitCode, Failure};
use crate::inventory::{self, Diagnostic, Diagnostics, Loaded};

const LONG_ABOUT: &str = "\
Check an inventory file without connecting to any host.

Every problem is reported in one run, each as FILE:LINE:COLUMN: KEY: MESSAGE (the way a \
compiler reports errors, so editors can jump to it), saying what is wrong and what would be valid:

  inventories/lab.toml:12:11: host[1].address: \"10.0.0.300\" is not an IP address (expected e.g. 10.0.0.3)

What is checked:
  - TOML syntax; unknown keys (naming the closest known key), wrong types, missing keys
  - cluster and host names (DNS labels); host names and addresses unique
  - kubernetes_version X.Y.Z with a supported minor (1.32, 1.33, 1.34); etcd_version 3.4.x-3.6.x
  - IP addresses and CIDR ranges; the Service and Pod ranges disjoint, large enough, and
    outside every host address and the API endpoint
  - roles: etcd on an odd number of hosts (an even count is a warning), at least one
    control-plane host, no empty or repeated roles
  - etcd timing (election timeout at least 5 x heartbeat), ports that clash, certificate
    lifetimes, artifact sources, jump host syntax
  - audit log settings against the CIS Kubernetes Benchmark minima (warnings)

Warnings are printed but do not make the inventory invalid.

Exit status: 0 when valid, 2 when invalid or unreadable (every problem is printed to stderr).

With --output json, one object is printed on stdout:
  {\"valid\": bool, \"file\", \"errors\": [{\"file\", \"line\", \"column\", \"key\", \"message\"}], \"warnings\": [...]}
  and, when valid, \"cluster\": {\"name\", \"hosts\", \"etcd\", \"control_plane\", \"worker\"}

Examples:
  provision validate inventories/lab.toml
  provision validate --output json inventories/example-ha.toml | jq -r '.errors[].message'

Every key, its default and its rules: docs/inventory.md; inventories/example-ha.toml shows them all.";

/// Check an inventory file: every problem at once, with file:line:column.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct ValidateArgs {
    /// The inventory file (TOML), e.g. inventories/lab.toml.
    pub inventory: PathBuf,
}

pub fn run(args: &ValidateArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let result = inventory::load(&args.inventory);
    match format {
        OutputFormat::Json => {
            let report = json_report(&args.inventory, &result);
            print_stdout(&serde_json::to_string_pretty(&report)?);
            Ok(if result.is_ok() { ExitCode::OK } else { ExitCode::INVALID })
        }
        OutputFormat::Text => match result {
            Ok(loaded) => {
                print_stderr(&loaded.warnings);
                print_stdout(&summary(&loaded));
                Ok(ExitCode::OK)
            }
            Err(problems) => {
                print_problems(&args.inventory, &problems);
                Err(Failure::already_printed(ExitCode::INVALID).into())
            }
        },
    }
}

/// For commands that start from an inventory: the loaded inventory, with its warnings
/// printed to stderr; or, when invalid, every problem printed (stderr, or the JSON
/// report on stdout) and a failure that exits with status 2.
pub fn load_or_report(path: &Path, format: OutputFormat) -> anyhow::Result<Loaded> {
    match inventory::load(path) {
        Ok(loaded) => {
            print_stderr(&loaded.warnings);
            Ok(loaded)
        }
        Err(problems) => {
            match format {
                OutputFormat::Json => {
                    let report = json_report(path, &Err(problems));
                    print_stdout(&serde_json::to_string_pretty(&report)?);
                }
                OutputFormat::Text => print_problems(path, &problems),
            }
            Err(Failure::already_printed(ExitCode::INVALID).into())
        }
    }
}

/// "ok: inventories/lab.toml: cluster lab, 3 hosts (3 etcd, 3 control-plane, 0 worker)"
pub fn summary(loaded: &Loaded) -> String {
    let (etcd, control_plane, worker) = loaded.role_counts();
    let hosts = loaded.inventory.hosts.len();
    format!(
        "ok: {}: cluster {}, {hosts} host{} ({etcd} etcd, {control_plane} control-plane, {worker} worker)",
        loaded.path.display(),
        loaded.inventory.cluster.name,
        if hosts == 1 { "" } else { "s" },
    )
}

fn json_report(path: &Path, result: &Result<Loaded, Diagnostics>) -> serde_json::Value {
    match result {
        Ok(loaded) => {
            let (etcd, control_plane, worker) = loaded.role_counts();
            json!({
                "valid": true,
                "file": path.display().to_string(),
                "errors": [],
                "warnings": loaded.warnings,
                "cluster": {
                    "name": loaded.inventory.cluster.name,
                    "hosts": loaded.inventory.hosts.len(),
                    "etcd": etcd,
                    "control_plane": control_plane,
                    "worker": worker,
                },
            })
        }
        Err(problems) => json!({
            "valid": false,
            "file": path.display().to_string(),
            "errors": problems.errors,
            "warnings": problems.warnings,
        }),
    }
}

fn print_problems(path: &Path, problems: &Diagnostics) {
    print_stderr(&problems.errors);
    print_stderr(&problems.warnings);
    let (e, w) = (problems.errors.len(), problems.warnings.len());
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut stderr = std::io::stderr().lock();
    let _ =
        writeln!(stderr, "error: {} is not valid: {e} error{}, {w} warning{}", path.display(), plural(e), plural(w));
}

fn print_stderr(diagnostics: &[Diagnostic]) {
    let mut stderr = std::io::stderr().lock();
    for d in diagnostics {
        let _ = writeln!(stderr, "{d}");
    }
}

/// Like println!, without the panic when stdout is a closed pipe (`| head`).
fn print_stdout(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}
