//! Operator-side etcd tools: health, backup, snapshot verification and restore, spoken
//! to over mTLS with etcd-client (no etcdctl on the operator's machine).
//!
//! - `members`: the etcd members an inventory describes and their URLs.
//! - `credentials` + `connect`: one mTLS client per member, every call under a deadline.
//! - `explain`: turns transport/TLS/gRPC errors into plain words naming the member.
//! - `health`: per-member status, a real (linearizable) read, alarms; the cluster verdict.
//! - `backup` + `retention`: stream a snapshot to disk atomically, keep the newest N.
//! - `snapshot_file`: verify a snapshot file (sha256 trailer, bbolt structure) before use.
//! - `restore`: restore every member from a snapshot over SSH.

pub mod backup;
pub mod connect;
pub mod credentials;
pub mod explain;
pub mod health;
pub mod members;
pub mod restore;
pub mod restore_script;
pub mod retention;
pub mod snapshot_file;

pub use members::{Member, members};
