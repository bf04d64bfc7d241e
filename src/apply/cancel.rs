//! Ctrl-C: stop at the next safe point. The first SIGINT lets in-flight steps finish
//! (an atomic write completes its rename; nothing new starts) and the run exits 130;
//! a second SIGINT exits at once (temp files left behind are removed by the next plan).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Cancel {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    requested: AtomicBool,
    notify: Notify,
}

pub const EXIT_INTERRUPTED: i32 = 130;

impl Cancel {
    /// A token that SIGINT triggers. Call inside the tokio runtime.
    pub fn on_ctrl_c() -> Cancel {
        let cancel = Cancel::default();
        let c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            eprintln!("\ninterrupted: finishing the steps in flight, then stopping (Ctrl-C again to quit now)");
            c.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(EXIT_INTERRUPTED);
            }
        });
        cancel
    }

    pub fn cancel(&self) {
        self.inner.requested.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }

    /// Resolves once cancelled (for `select!` in waits).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}
