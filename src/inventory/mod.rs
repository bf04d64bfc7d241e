//! The inventory: a TOML file that describes the cluster and its hosts.

mod schema;

pub use schema::*;
