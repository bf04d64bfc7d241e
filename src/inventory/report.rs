//! Collects diagnostics while the checks run, turning spans and key paths into
//! file:line:column so no check has to know about positions.

use std::ops::Range;
use std::path::Path;

use toml::de::DeTable;

use super::diagnostics::{Diagnostic, Diagnostics, Severity};
use super::locate::{KeyPath, LineIndex, find_exact, find_span};

pub struct Reporter<'a> {
    file: &'a Path,
    text: &'a str,
    lines: LineIndex,
    root: Option<&'a DeTable<'a>>,
    found: Diagnostics,
}

impl<'a> Reporter<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Reporter<'a> {
        Reporter { file, text, lines: LineIndex::new(text), root: None, found: Diagnostics::default() }
    }

    /// The parsed document, used to find where a key path was written.
    pub fn with_document(mut self, root: &'a DeTable<'a>) -> Reporter<'a> {
        self.root = Some(root);
        self
    }

    /// A problem at an exact span (the walker knows the span of what it looks at).
    pub fn at(&mut self, severity: Severity, span: Range<usize>, key: &KeyPath, message: impl Into<String>) {
        let (line, column) = self.lines.position(self.text, span.start);
        self.found.push(Diagnostic {
            severity,
            file: self.file.to_path_buf(),
            line: Some(line),
            column: Some(column),
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// An error at the value `key` names (or where it should have been written).
    pub fn error(&mut self, key: &KeyPath, message: impl Into<String>) {
        self.located(Severity::Error, key, message.into());
    }

    /// A warning at the value `key` names (or where it should have been written).
    pub fn warning(&mut self, key: &KeyPath, message: impl Into<String>) {
        self.located(Severity::Warning, key, message.into());
    }

    fn located(&mut self, severity: Severity, key: &KeyPath, message: String) {
        let span = self.root.map(|root| find_span(root, key)).unwrap_or(0..0);
        self.at(severity, span, key, message);
    }

    /// Whether the operator wrote `key` (false for a default or a missing key).
    pub fn is_written(&self, key: &KeyPath) -> bool {
        self.root.is_some_and(|root| find_exact(root, key).is_some())
    }

    pub fn error_count(&self) -> usize {
        self.found.errors.len()
    }

    pub fn finish(mut self) -> Diagnostics {
        self.found.sort();
        self.found
    }
}
