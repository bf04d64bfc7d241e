//! etcd on an etcd member: the etcd user, its data directory, its own PKI under
//! /etc/etcd/pki (owned by etcd, which reads it as that user) and etcd.service.

use super::builder::{ETCD_0600, ETCD_0700, HostBuilder, ROOT_0600, ROOT_0755};
use super::paths;
use super::{HostCx, RenderCx};
use crate::desired::Component;
use crate::pki::CertId;

pub const UNIT: &str = "etcd.service";
const BOOTSTRAP_DROPIN_TEMPLATE: &str = "etcd-bootstrap.conf";

pub(super) fn add(cx: &RenderCx, h: &HostCx, b: &mut HostBuilder) -> anyhow::Result<()> {
    let c = Component::Etcd;
    let name = &h.host.name;
    let data_dir = &cx.inv.etcd.data_dir;
    b.user("etcd", data_dir, c);
    b.dir(paths::ETCD_DIR, ROOT_0755, c);
    b.dir(paths::ETCD_PKI_DIR, ETCD_0700, c);
    // etcd refuses to start on a data dir that is not 0700 (and CIS 1.1.11/1.1.12).
    b.dir(data_dir, ETCD_0700, c);

    b.cert(cx.pki, &CertId::EtcdCa, paths::ETCD_CA_CRT, ETCD_0600, None, c)?;
    b.cert(
        cx.pki,
        &CertId::EtcdServer(name.clone()),
        paths::ETCD_SERVER_CRT,
        ETCD_0600,
        Some((paths::ETCD_SERVER_KEY, ETCD_0600)),
        c,
    )?;
    b.cert(
        cx.pki,
        &CertId::EtcdPeer(name.clone()),
        paths::ETCD_PEER_CRT,
        ETCD_0600,
        Some((paths::ETCD_PEER_KEY, ETCD_0600)),
        c,
    )?;

    // Not watched by the unit, and written only while the member has no data (`member/`
    // appears at its first start): the inventory's member list can change without any
    // running member noticing. Joining an existing cluster is a membership step of the plan.
    b.dir(paths::ETCD_DROPIN_DIR, ROOT_0755, c);
    let bootstrap = cx.render(h, BOOTSTRAP_DROPIN_TEMPLATE)?;
    b.text_until(paths::ETCD_BOOTSTRAP_DROPIN, ROOT_0600, bootstrap, c, &format!("{data_dir}/member"))?;

    let unit = cx.render(h, UNIT)?;
    b.unit(
        UNIT,
        unit,
        c,
        &[paths::ETCD_CA_CRT, paths::ETCD_SERVER_CRT, paths::ETCD_SERVER_KEY, paths::ETCD_PEER_CRT, paths::ETCD_PEER_KEY],
    )
}
