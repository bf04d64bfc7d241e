//! Talking to the cluster's Kubernetes API: the HTTPS client (verify's checks use it too)
//! and the objects apply owns in the cluster (bootstrap RBAC, CoreDNS).

pub mod api;
pub mod bootstrap;
pub mod cluster_dns;
pub mod objects;
pub mod pod_security;
