//! The apiserver's security configuration: encryption at rest, audit policy, admission
//! configuration (PodSecurity defaults, EventRateLimit) and the audit log directory.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::builder::{HostBuilder, ROOT_0600, ROOT_0700};
use super::paths;
use super::{HostCx, RenderCx};
use crate::desired::Component;

pub const ENCRYPTION_TEMPLATE: &str = "encryption-config.yaml";
pub const AUDIT_TEMPLATE: &str = "audit-policy.yaml";
pub const ADMISSION_TEMPLATE: &str = "admission-config.yaml";
pub const EVENT_RATE_LIMIT_TEMPLATE: &str = "eventratelimit.yaml";

pub(super) fn add(cx: &RenderCx, h: &HostCx, b: &mut HostBuilder) -> anyhow::Result<()> {
    let c = Component::KubeApiserver;
    let key = &cx.pki.encryption_key;
    // aescbc takes 16, 24 or 32 byte keys, secretbox exactly 32.
    if key.len() != 32 {
        anyhow::bail!("the encryption key in the state directory is {} bytes; 32 are required", key.len());
    }
    let mut ctx = h.ctx.clone();
    ctx.insert("encryption_key_b64", &B64.encode(key.as_slice()));
    let encryption = cx.templates.render_secret(ENCRYPTION_TEMPLATE, &ctx)?;
    b.secret(paths::ENCRYPTION_CONFIG, ROOT_0600, &encryption, c)?;

    b.text(paths::ADMISSION_CONFIG, ROOT_0600, cx.render(h, ADMISSION_TEMPLATE)?, c)?;
    b.text(paths::EVENT_RATE_LIMIT_CONFIG, ROOT_0600, cx.render(h, EVENT_RATE_LIMIT_TEMPLATE)?, c)?;
    if cx.inv.security.audit_log {
        b.text(paths::AUDIT_POLICY, ROOT_0600, cx.render(h, AUDIT_TEMPLATE)?, c)?;
        // The audit log records who did what: root only.
        b.dir(paths::LOG_DIR, ROOT_0700, c);
        b.dir(paths::AUDIT_LOG_DIR, ROOT_0700, c);
    }
    Ok(())
}
