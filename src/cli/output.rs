//! Output helpers shared by the commands: tables for people, JSON for scripts.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// A table with a header row, printed without borders (like kubectl / etcdctl -w table).
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(header.iter().map(|h| h.to_string()));
    for row in rows {
        t.add_row(row);
    }
    t.to_string()
}

pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Shows `prompt` on the terminal and reads one line: true when it is exactly `cluster`.
/// The one confirmation of reset, restore and removing etcd members (typing the name,
/// not "y", so a habit cannot confirm the wrong cluster).
pub fn typed_cluster_name(prompt: &str, cluster: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, Write};
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| anyhow::anyhow!("reading the confirmation: {e}"))?;
    Ok(line.trim() == cluster)
}
