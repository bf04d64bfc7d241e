//! Exit codes that mean something, and the one place errors are printed.

use super::output::OutputFormat;

/// 0: success (or nothing to do); 1: an error; 2: invalid input, pending changes or
/// no quorum, depending on the command (each command's --help says which). Command-line
/// mistakes: see `usage_error_code` in cli/mod.rs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitCode(pub i32);

impl ExitCode {
    pub const OK: ExitCode = ExitCode(0);
    pub const ERROR: ExitCode = ExitCode(1);
    pub const INVALID: ExitCode = ExitCode(2);
}

/// An error that carries the exit code it should end the process with. The message
/// has already been written for the user when `printed` is true.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: ExitCode,
    pub message: String,
    pub printed: bool,
}

impl Failure {
    pub fn new(code: ExitCode, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into(), printed: false }
    }
    /// The command already told the user (e.g. a list of inventory problems).
    pub fn already_printed(code: ExitCode) -> Failure {
        Failure { code, message: String::new(), printed: true }
    }
}

pub fn report(result: anyhow::Result<ExitCode>, format: OutputFormat) -> i32 {
    match result {
        Ok(code) => code.0,
        Err(err) => {
            let (code, printed) = match err.downcast_ref::<Failure>() {
                Some(f) => (f.code, f.printed),
                None => (ExitCode::ERROR, false),
            };
            if !printed {
                match format {
                    OutputFormat::Json => {
                        let chain: Vec<String> = err.chain().map(|c| c.to_string()).collect();
                        println!("{}", serde_json::json!({ "error": chain.join(": ") }));
                    }
                    OutputFormat::Text => eprintln!("error: {err:#}"),
                }
            }
            code.0
        }
    }
}
