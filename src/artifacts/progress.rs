//! Download progress on stderr: one bar per file (bytes, throughput, ETA) on a
//! terminal; one line per finished download otherwise (CI logs, `--output json`
//! piped into a file), so stdout stays clean for the table or the JSON.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    /// None: no bars (not a terminal, or turned off).
    multi: Option<MultiProgress>,
    /// Print a line per finished download when there are no bars.
    lines: bool,
}

pub struct Bar {
    pub bar: ProgressBar,
    label: String,
    started: Instant,
    lines: bool,
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn stderr() -> Progress {
        if std::io::stderr().is_terminal() {
            Progress { multi: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())), lines: false }
        } else {
            Progress { multi: None, lines: true }
        }
    }

    /// Nothing at all (tests, library callers that report on their own).
    pub fn silent() -> Progress {
        Progress { multi: None, lines: false }
    }

    pub fn bar(&self, label: &str) -> Bar {
        let bar = match &self.multi {
            Some(m) => {
                let bar = m.add(ProgressBar::no_length());
                let style = ProgressStyle::with_template(
                    "{msg:32} [{bar:30.cyan/blue}] {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} {eta:>4}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_message(label.to_string());
                bar
            }
            None => ProgressBar::hidden(),
        };
        Bar { bar, label: label.to_string(), started: Instant::now(), lines: self.lines }
    }
}

impl Bar {
    pub fn finish(&self, bytes: u64) {
        self.bar.finish_and_clear();
        if self.lines {
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "downloaded {}: {} in {:.1} s ({}/s)",
                self.label,
                human_bytes(bytes),
                secs,
                human_bytes((bytes as f64 / secs) as u64)
            );
        }
    }

    pub fn abandon(&self) {
        self.bar.abandon();
    }
}

pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
