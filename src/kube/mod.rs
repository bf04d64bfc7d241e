//! Talking to the cluster's Kubernetes API: the HTTPS client (verify's checks use it too)
//! and the objects apply owns in the cluster (the bootstrap RBAC).

pub mod api;
pub mod bootstrap;
pub mod objects;
