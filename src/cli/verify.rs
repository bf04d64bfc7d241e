//! `provision verify INVENTORY`: every named check, as a table or JSON.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::output::{OutputFormat, print_json};
use super::plan::runtime;
use super::{ExitCode, Failure, validate};
use crate::verify::{self, Group, Options};

const LONG_ABOUT: &str = "\
Prove the cluster is what the inventory claims, check by named check. Nothing is changed, \
except for a moment: a snapshot is restored into a scratch directory on one etcd host (then \
removed), and, when a kube-apiserver runs, one Secret named provision-verify-<random> is \
created and deleted.

Checks (each passes, warns, fails, or is skipped with the reason; a warning, e.g. a slow \
etcd member with its figure, passes):
  ssh.connect               every host is reachable over SSH (host key checked, login works)
  etcd.health               every member serves linearizable reads, no alarms, membership as listed
  units.active              every unit provision installs is active on its host
  tls.certificate           etcd client/peer, kube-apiserver, kubelet: chain to the RIGHT CA
                            (etcd CA / cluster CA) and valid for the host's address
  tls.min-version           TLS 1.0 and 1.1 ClientHellos are refused
  tls.plaintext             a plaintext HTTP request is not served
  tls.client-cert           etcd and kubelets refuse a client without a certificate
  encryption.stored-secrets every value under /registry/secrets/ is encrypted (k8s:enc:...),
                            decrypts with the configured key to the Secret it is stored as;
                            plaintext ones are named
  encryption.new-secret     a Secret created through the API is stored encrypted with the first key
  snapshot.take             a snapshot is taken; sha256 trailer and structure verified
  snapshot.restore          restored on an etcd host with the official tool into a scratch dir and
                            started: its revision and KV hash equal the live cluster's
  rbac.anonymous            anonymous GET /api/v1/namespaces gets 401
  rbac.authorization-mode   the running kube-apiserver has --authorization-mode with Node,RBAC
  rbac.unbound-identity     a fresh cluster-CA identity with no bindings gets 403 on Secrets
  rbac.admin                the admin identity lists Secrets
  files.private             keys, kubeconfigs, the encryption config: owner-only modes
  cis.<id>                  CIS Kubernetes Benchmark v1.12 checks on the running processes' flags
                            (/proc/<pid>/cmdline) and the files' modes and owners

Without a kube-apiserver (artifacts.kubernetes = \"skip\") the API checks are skipped and say \
so: they are proven only against a real cluster.

Exit status: 0 when every check passed (warned and skipped ones included), 1 when a check \
failed, 2 when verify could not run (invalid inventory, no PKI in the state directory).

With --output json, one object: {\"cluster\", \"inventory\", \"ok\", \"passed\", \"warned\", \
\"failed\", \"skipped\", \"seconds\", \"checks\": [{\"check\", \"title\", \"target\", \"status\": \
\"pass|warn|fail|skip\", \"hosts\", \"evidence\", \"per_host\": [...]}]}

Examples:
  provision verify inventories/lab.toml
  provision verify --only tls --only cis inventories/lab.toml
  provision --output json verify inventories/lab.toml | jq '.checks[] | select(.status == \"fail\")'";

/// Prove the cluster is what we claim: TLS, RBAC, encryption at rest, etcd snapshots, CIS
/// checks on the running hosts (exit 0 all passed, 1 a check failed, 2 could not run).
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct VerifyArgs {
    /// The inventory file (TOML), e.g. inventories/lab.toml.
    pub inventory: PathBuf,
    /// Run only this group of checks (repeat for several).
    #[arg(long, value_enum)]
    pub only: Vec<Group>,
    /// Limit in seconds for each network step (handshake, etcd call, API request).
    #[arg(long, default_value_t = 5)]
    pub timeout_secs: u64,
}

pub fn run(args: &VerifyArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let loaded = validate::load_or_report(&args.inventory, format)?;
    if args.timeout_secs == 0 {
        return Err(Failure::new(ExitCode::INVALID, "--timeout-secs must be at least 1").into());
    }
    let opts = Options {
        timeout: Duration::from_secs(args.timeout_secs),
        only: (!args.only.is_empty()).then(|| args.only.iter().copied().collect::<BTreeSet<_>>()),
    };
    let report = runtime()?
        .block_on(verify::run(&loaded, &opts))
        .map_err(|e| Failure::new(ExitCode::INVALID, format!("verify could not run: {e:#}")))?;
    match format {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => {
            let _ = writeln!(std::io::stdout().lock(), "{}", report.to_table());
        }
    }
    Ok(if report.ok { ExitCode::OK } else { ExitCode::ERROR })
}
