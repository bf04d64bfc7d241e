//! Command line: one file per command; this file holds the root and the dispatch.

pub mod certs;
pub mod apply;
mod etcd;
mod etcd_restore;
pub mod artifacts;
mod exit;
pub mod lab;
pub mod output;
pub mod plan;
pub mod reset;
pub mod validate;
pub mod verify;
mod render;

use clap::{Parser, Subcommand};

pub use exit::{ExitCode, Failure};
use output::OutputFormat;

/// Build hardened, highly available Kubernetes control planes the hard way over SSH.
///
/// A TOML inventory describes the cluster. `provision plan` shows what would change on
/// every host; `provision apply` makes exactly those changes; a second apply changes nothing.
#[derive(Debug, Parser)]
#[command(name = "provision", version, propagate_version = true)]
pub struct Cli {
    /// Output format: human-readable text, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// etcd operator tools: health, backup, verify, restore.
    Etcd(etcd::EtcdArgs),
    /// Local lab hosts: Debian machines with systemd and sshd as systemd-nspawn
    /// containers on 127.0.1.N (root only).
    Lab(lab::LabArgs),
    Plan(plan::PlanArgs),
    Apply(apply::ApplyArgs),
    Reset(reset::ResetArgs),
    Validate(validate::ValidateArgs),
    /// The cluster's certificates: `certs list` shows expiry and what apply would renew.
    Certs(certs::CertsArgs),
    /// Write every host's files (units, configs, certificates) into a directory, with a
    /// manifest, without touching any host.
    Render(render::RenderArgs),
    Verify(verify::VerifyArgs),
    /// The Kubernetes and etcd binaries: `artifacts fetch` downloads and verifies them
    /// into the cache (and `--to DIR` prepares a directory for air-gapped sites).
    Artifacts(artifacts::ArtifactsArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are "errors" to clap, with exit code 0.
            return if e.exit_code() == 0 { 0 } else { usage_error_code(std::env::args().skip(1)) };
        }
    };
    let result = match cli.command {
        Command::Etcd(args) => etcd::run(args, cli.output),
        Command::Lab(args) => lab::run(args, cli.output),
        Command::Plan(args) => plan::run(&args, cli.output),
        Command::Apply(args) => apply::run(&args, cli.output),
        Command::Reset(args) => reset::run(&args, cli.output),
        Command::Validate(args) => validate::run(&args, cli.output),
        Command::Certs(args) => certs::run(args, cli.output),
        Command::Render(args) => render::run(args, cli.output),
        Command::Verify(args) => verify::run(&args, cli.output),
        Command::Artifacts(args) => artifacts::run(args, cli.output),
    };
    exit::report(result, cli.output)
}

/// The exit code of a command-line mistake (unknown flag, missing argument). clap's is 2,
/// "invalid input"; but `plan` documents 2 as "changes pending", `etcd health` as "no
/// quorum", `lab status` as "a host is down", and apply/reset do not use 2 at all, so a
/// script would misread a typo there: under those commands a mistake is 1, their "error".
fn usage_error_code(args: impl IntoIterator<Item = String>) -> i32 {
    let mut args = args.into_iter();
    // The first word that is not an option names the command (--output takes a value).
    while let Some(arg) = args.next() {
        if arg == "--output" {
            args.next();
        } else if !arg.starts_with('-') {
            return match arg.as_str() {
                "plan" | "apply" | "reset" | "etcd" | "lab" => 1,
                _ => 2,
            };
        }
    }
    2
}

#[cfg(test)]
mod tests {
    use super::usage_error_code;

    fn code(line: &str) -> i32 {
        usage_error_code(line.split_whitespace().map(String::from))
    }

    #[test]
    fn a_usage_mistake_never_reads_as_a_documented_outcome() {
        // 2 would mean "changes pending" / "no quorum" / "a host is down" there.
        assert_eq!(code("plan --templtes x inv.toml"), 1);
        assert_eq!(code("--output json plan"), 1);
        assert_eq!(code("--output=json etcd health --bogus inv.toml"), 1);
        assert_eq!(code("lab status --hosts 0"), 1);
        assert_eq!(code("apply"), 1);
        assert_eq!(code("reset --purge"), 1);
        // Elsewhere 2 is "invalid input" or "could not run": clap's 2 stays.
        assert_eq!(code("validate"), 2);
        assert_eq!(code("verify --only nope inv.toml"), 2);
        assert_eq!(code("--output text certs list"), 2);
        assert_eq!(code("--bogus"), 2);
        assert_eq!(code(""), 2);
    }
}
