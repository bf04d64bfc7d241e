//! Problems found in an inventory, each pinned to a file, line, column and key path,
//! printed like a compiler prints them so editors and people can jump to the spot.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The inventory cannot be used.
    Error,
    /// Usable, but probably not what the operator wants (e.g. an even etcd member count).
    Warning,
}

/// One problem. `line` and `column` are 1-based; they are absent only when the
/// problem concerns the whole file (it cannot be read, or is not UTF-8 text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    #[serde(skip)]
    pub severity: Severity,
    #[serde(serialize_with = "serialize_path")]
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Where in the document, e.g. `host[2].address` or `cluster.service_cidr`
    /// (array indexes count from 0, in file order). Empty for file-level problems.
    pub key: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

fn serialize_path<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.display().to_string())
}

impl fmt::Display for Diagnostic {
    /// `inventories/lab.toml:12:11: host[1].address: "10.0.0.300" is not an IP address ...`
    /// (warnings carry `warning: ` after the position).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        f.write_str(": ")?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one inventory: the error type of [`crate::inventory::load`].
/// Its `Display` lists all errors, one per line, then all warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Diagnostics {
    /// One error about the whole file (no line or key: it cannot be read or parsed).
    pub fn whole_file(path: &Path, message: String) -> Diagnostics {
        let mut d = Diagnostics::default();
        d.push(Diagnostic {
            severity: Severity::Error,
            file: path.to_path_buf(),
            line: None,
            column: None,
            key: String::new(),
            message,
        });
        d
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        match diagnostic.severity {
            Severity::Error => self.errors.push(diagnostic),
            Severity::Warning => self.warnings.push(diagnostic),
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Orders both lists by position so the output reads top to bottom like the file.
    pub(crate) fn sort(&mut self) {
        let position = |d: &Diagnostic| (d.line.unwrap_or(0), d.column.unwrap_or(0));
        self.errors.sort_by_key(position);
        self.warnings.sort_by_key(position);
    }
}

impl std::error::Error for Diagnostics {}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for d in self.errors.iter().chain(&self.warnings) {
            if !first {
                f.write_str("\n")?;
            }
            first = false;
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// User text for a message: quoted and escaped (no control characters reach the
/// terminal) and cut short, so a huge value cannot flood the output.
pub(crate) fn quoted(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head:?}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(severity: Severity, line: Option<usize>) -> Diagnostic {
        Diagnostic {
            severity,
            file: PathBuf::from("inventories/lab.toml"),
            line,
            column: line.map(|_| 11),
            key: "host[1].address".into(),
            message: "\"10.0.0.300\" is not an IP address (expected e.g. 10.0.0.3)".into(),
        }
    }

    #[test]
    fn displays_like_a_compiler() {
        assert_eq!(
            diag(Severity::Error, Some(12)).to_string(),
            "inventories/lab.toml:12:11: host[1].address: \"10.0.0.300\" is not an IP address (expected e.g. 10.0.0.3)"
        );
        assert!(
            diag(Severity::Warning, Some(12)).to_string().starts_with("inventories/lab.toml:12:11: warning: host[1]")
        );
        assert!(diag(Severity::Error, None).to_string().starts_with("inventories/lab.toml: host[1]"));
    }

    #[test]
    fn quoted_escapes_and_truncates() {
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
        assert_eq!(quoted(&"x".repeat(1000)), format!("{:?}...", "x".repeat(60)));
    }

    #[test]
    fn json_has_the_documented_fields() {
        let json = serde_json::to_value(diag(Severity::Error, Some(3))).unwrap();
        let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["column", "file", "key", "line", "message"]);
        assert_eq!(json["line"], 3);
    }

    #[test]
    fn push_files_by_severity_and_sort_orders_by_position() {
        let mut all = Diagnostics::default();
        all.push(diag(Severity::Error, Some(9)));
        all.push(diag(Severity::Warning, Some(2)));
        all.push(diag(Severity::Error, Some(4)));
        all.sort();
        assert_eq!(all.errors.iter().map(|d| d.line).collect::<Vec<_>>(), [Some(4), Some(9)]);
        assert_eq!(all.warnings.len(), 1);
        assert!(all.has_errors());
    }
}
