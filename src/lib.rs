//! provision: hardened Kubernetes control planes the hard way, over SSH.
//!
//! The module tree follows one `provision apply`:
//! inventory -> pki -> render (desired state) -> ssh (facts) -> plan -> apply phases -> verify.

pub mod apply;
pub mod artifacts;
pub mod cis;
pub mod cli;
pub mod cri;
pub mod desired;
pub mod error_text;
pub mod etcd;
pub mod fsutil;
pub mod inventory;
pub mod kube;
pub mod lab;
pub mod pki;
pub mod plan;
pub mod render;
pub mod ssh;
pub mod state;
pub mod trust;
pub mod verify;
