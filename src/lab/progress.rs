//! Named steps with timings: a spinner per step when stderr is a terminal, one line per
//! finished step otherwise (logs, CI), nothing when quiet (tests calling the library).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How long one step took, for the report and `--output json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepTiming {
    pub step: String,
    pub detail: String,
    pub seconds: f64,
}

#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    timings: Mutex<Vec<StepTiming>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Spinner,
    Lines,
    Quiet,
}

/// A running step; `detail` ends up on its finished line.
pub struct Step {
    bar: Option<ProgressBar>,
    detail: Mutex<String>,
}

impl Step {
    /// What the step is doing right now (shown next to the spinner).
    pub fn message(&self, msg: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg.into());
        }
    }

    /// The summary printed when the step finishes.
    pub fn detail(&self, detail: impl Into<String>) {
        if let Ok(mut d) = self.detail.lock() {
            *d = detail.into();
        }
    }

    /// Prints a line above the spinner (or plainly), e.g. a warning.
    pub fn note(&self, line: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.println(format!("  ! {}", line.as_ref())),
            None => eprintln!("  ! {}", line.as_ref()),
        }
    }
}

impl Progress {
    /// Spinners when stderr is a terminal, plain lines otherwise.
    pub fn for_stderr() -> Progress {
        let mode = if std::io::stderr().is_terminal() { Mode::Spinner } else { Mode::Lines };
        Progress { mode, timings: Mutex::new(Vec::new()) }
    }

    /// Records timings without printing anything.
    pub fn quiet() -> Progress {
        Progress { mode: Mode::Quiet, timings: Mutex::new(Vec::new()) }
    }

    /// Runs `f` as step `name`, timing it and showing its outcome.
    pub fn step<T>(&self, name: &str, f: impl FnOnce(&Step) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let bar = (self.mode == Mode::Spinner).then(|| {
            let bar = ProgressBar::new_spinner().with_prefix(name.to_string());
            if let Ok(style) = ProgressStyle::with_template("  {spinner} {prefix:<8} {wide_msg} {elapsed:>4}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        let step = Step { bar, detail: Mutex::new(String::new()) };
        let start = Instant::now();
        let result = f(&step);
        let seconds = start.elapsed().as_secs_f64();
        let detail = step.detail.lock().map(|d| d.clone()).unwrap_or_default();
        let mark = if result.is_ok() { "✓" } else { "✗" };
        let line = format!("  {mark} {name:<8} {detail:<52} {seconds:>6.2}s");
        if let Some(bar) = &step.bar {
            bar.finish_and_clear();
        }
        if self.mode != Mode::Quiet {
            eprintln!("{line}");
        }
        if let Ok(mut t) = self.timings.lock() {
            t.push(StepTiming { step: name.to_string(), detail, seconds });
        }
        result
    }

    pub fn timings(&self) -> Vec<StepTiming> {
        self.timings.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_steps_in_order_with_detail_even_on_failure() {
        let p = Progress::quiet();
        p.step("one", |s| {
            s.detail("did one");
            Ok(())
        })
        .unwrap();
        let err = p.step("two", |_| -> anyhow::Result<()> { anyhow::bail!("broke") });
        assert!(err.is_err());
        let t = p.timings();
        assert_eq!(t.iter().map(|t| t.step.as_str()).collect::<Vec<_>>(), ["one", "two"]);
        assert_eq!(t[0].detail, "did one");
        assert!(t.iter().all(|t| t.seconds >= 0.0));
    }
}
