//! `provision certs list`: every certificate of the cluster's PKI, its expiry, and what the
//! next render/apply will do with it. Read-only: it never creates or changes a PKI.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ExitCode;
use super::output::{OutputFormat, print_json, table};
use super::validate;
use crate::pki::{self, Listing, Status};

#[derive(Debug, Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub command: CertsCommand,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List every certificate: subject, SANs, issuer, expiry, and whether the next
    /// render/apply keeps, renews or re-issues it.
    ///
    /// Reads the PKI in .provision/<cluster>/pki beside the inventory; never creates one.
    ///
    /// Exit status: 0 every certificate is fine; 2 some certificate needs attention
    /// (inside its renewal window, expired, missing, or no longer matching the inventory)
    /// or the inventory is invalid; 1 other errors (e.g. no PKI yet).
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The inventory file.
    pub inventory: PathBuf,
}

pub fn run(args: CertsArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    match args.command {
        CertsCommand::List(list) => run_list(&list, format),
    }
}

fn run_list(args: &ListArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let loaded = validate::load_or_report(&args.inventory, format)?;
    let listing = pki::inspect(&loaded.inventory, &loaded.state_dir())?;
    match format {
        OutputFormat::Json => print_json(&listing)?,
        OutputFormat::Text => print!("{}", render_text(&listing)),
    }
    let attention = listing.certificates.iter().any(|c| c.status.needs_attention());
    Ok(if attention { ExitCode::INVALID } else { ExitCode::OK })
}

fn render_text(listing: &Listing) -> String {
    let rows = listing
        .certificates
        .iter()
        .map(|c| {
            let info = c.info.as_ref();
            vec![
                c.name.clone(),
                info.map(|i| i.subject.clone()).unwrap_or_default(),
                info.map(|i| i.issuer.clone()).unwrap_or_default(),
                info.map(|i| i.not_after.get(..10).unwrap_or(&i.not_after).to_string()).unwrap_or_default(),
                info.map(|i| i.days_left.to_string()).unwrap_or_default(),
                status_word(c.status).to_string(),
                // Last: the apiserver's list is long, and everything else stays aligned before it.
                info.map(|i| i.sans.join(",")).unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = format!(
        "PKI {} (renewal window: {} days)\n",
        listing.pki_dir.display(),
        listing.renew_before_days
    );
    out.push_str(&table(&["CERT", "SUBJECT", "ISSUER", "NOT AFTER", "DAYS LEFT", "STATUS", "SANS"], rows));
    out.push('\n');
    let notes: Vec<String> = listing
        .certificates
        .iter()
        .filter(|c| c.status != Status::Ok)
        .map(|c| format!("  {}: {} {}", c.name, status_word(c.status), c.reason.as_deref().unwrap_or("")))
        .collect();
    if !notes.is_empty() {
        out.push_str("\nNeeds attention (`provision apply` renews and re-issues leaves):\n");
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    out
}

/// Upper case for anything that is not fine, so it stands out in a long table.
fn status_word(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Renew => "RENEW",
        Status::Reissue => "REISSUE",
        Status::Expiring => "EXPIRING",
        Status::Expired => "EXPIRED",
        Status::Missing => "MISSING",
        Status::Extra => "extra",
    }
}
