//! Asking a container runtime over CRI, the API the kubelet itself uses, rather than
//! the runtime's own API (`ctr` proves containerd answers, not that its CRI plugin does).
//!
//! ```ignore
//! let answer = cri::ask(&session, paths::CONTAINERD_SOCKET, Duration::from_secs(5)).await?;
//! println!("{}", answer.summary()); // CRI v1 containerd 1.6.20~ds1, RuntimeReady, NetworkReady
//! ```
//! The gRPC calls `runtime.v1.RuntimeService/Version` and `/Status` travel in an SSH
//! channel to the runtime's Unix socket (client.rs): nothing needs installing on the host.

pub mod answer;
mod client;
pub mod proto;

pub use answer::{Condition, CriAnswer};
pub use client::{CriError, ask};
