//! Command line: one file per command; this file holds the root and the dispatch.

pub mod certs;
mod etcd;
mod exit;
pub mod lab;
pub mod output;
pub mod validate;
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
    Validate(validate::ValidateArgs),
    /// The cluster's certificates: `certs list` shows expiry and what apply would renew.
    Certs(certs::CertsArgs),
    /// Write every host's files (units, configs, certificates) into a directory, with a
    /// manifest, without touching any host.
    Render(render::RenderArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Etcd(args) => etcd::run(args, cli.output),
        Command::Lab(args) => lab::run(args, cli.output),
        Command::Validate(args) => validate::run(&args, cli.output),
        Command::Certs(args) => certs::run(args, cli.output),
        Command::Render(args) => render::run(args, cli.output),
    };
    exit::report(result, cli.output)
}
