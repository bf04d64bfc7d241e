//! What each section and key of the inventory may hold, as data: the walker in
//! `walk.rs` checks a parsed document against it so that ALL unknown keys, wrong
//! types and missing keys are reported at once (serde stops at the first).
//!
//! It mirrors the serde types in `schema.rs`; a unit test below proves that the two
//! list the same keys and the same enum values, so they cannot drift apart.

/// The kind of value a key holds, with the rules checked before semantic validation.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A one-line string (no control characters: values end up in unit files and flags).
    Text,
    /// A non-empty one-line string naming a file or directory.
    Path,
    Bool,
    /// An integer within the inclusive range.
    Int {
        min: i128,
        max: i128,
    },
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// An IPv4 or IPv6 address.
    Ip,
    /// A CIDR range such as 10.32.0.0/24.
    Cidr,
    /// An array of role names.
    Roles,
}

#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    /// A valid value as written in TOML, shown in messages ("expected e.g. ...").
    pub example: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `[name]`, written once.
    Table,
    /// `[[name]]`, repeated.
    ArrayOfTables,
}

#[derive(Debug)]
pub struct Section {
    pub name: &'static str,
    pub shape: Shape,
    pub required: bool,
    pub fields: &'static [Field],
}

impl Section {
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
    pub fn field_names(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.fields.iter().map(|f| f.name)
    }
}

pub const ROLES: &[&str] = &["etcd", "control-plane", "worker"];
pub const HOST_KEY_POLICIES: &[&str] = &["strict", "accept-new"];
pub const ENCRYPTION_PROVIDERS: &[&str] = &["aescbc", "secretbox"];
pub const POD_SECURITY_LEVELS: &[&str] = &["restricted", "baseline", "privileged"];
pub const KEY_ALGORITHMS: &[&str] = &["ecdsa-p256", "ecdsa-p384", "rsa2048", "rsa3072", "rsa4096"];
pub const KUBERNETES_SOURCES: &[&str] = &["download", "directory", "skip"];
pub const ETCD_SOURCES: &[&str] = &["download", "directory", "preinstalled"];
pub const RUNTIME_SOURCES: &[&str] = &["preinstalled", "download", "directory", "skip"];

const PORT: Kind = Kind::Int { min: 1, max: 65535 };
const U32: Kind = Kind::Int { min: 0, max: u32::MAX as i128 };
/// Certificate lifetimes are capped at 100 years so date arithmetic can never overflow.
const DAYS: Kind = Kind::Int { min: 1, max: 36_500 };
/// Timeouts are capped at a day: longer is a typo, and deadlines stay far from overflow.
const TIMEOUT: Kind = Kind::Int { min: 1, max: 86_400 };

const fn req(name: &'static str, kind: Kind, example: &'static str) -> Field {
    Field { name, kind, required: true, example }
}
const fn opt(name: &'static str, kind: Kind, example: &'static str) -> Field {
    Field { name, kind, required: false, example }
}

pub const CLUSTER: Section = Section {
    name: "cluster",
    shape: Shape::Table,
    required: true,
    fields: &[
        req("name", Kind::Text, "\"lab\""),
        req("kubernetes_version", Kind::Text, "\"1.34.2\""),
        req("etcd_version", Kind::Text, "\"3.5.21\""),
        req("api_endpoint", Kind::Text, "\"10.0.0.10\""),
        opt("api_port", PORT, "6443"),
        req("service_cidr", Kind::Cidr, "\"10.32.0.0/24\""),
        req("pod_cidr", Kind::Cidr, "\"10.200.0.0/16\""),
        opt("cluster_domain", Kind::Text, "\"cluster.local\""),
    ],
};

pub const SSH: Section = Section {
    name: "ssh",
    shape: Shape::Table,
    required: false,
    fields: &[
        opt("user", Kind::Text, "\"root\""),
        opt("private_key", Kind::Path, "\"~/.ssh/id_ed25519\""),
        opt("port", PORT, "22"),
        opt("host_keys", Kind::Choice(HOST_KEY_POLICIES), "\"strict\""),
        opt("known_hosts", Kind::Path, "\"~/.ssh/known_hosts\""),
        opt("jump_host", Kind::Text, "\"admin@bastion.example.com:22\""),
        opt("connect_timeout_secs", TIMEOUT, "10"),
        opt("command_timeout_secs", TIMEOUT, "300"),
        opt("parallelism", Kind::Int { min: 1, max: 65_535 }, "10"),
    ],
};

pub const SECURITY: Section = Section {
    name: "security",
    shape: Shape::Table,
    required: false,
    fields: &[
        opt("encryption", Kind::Choice(ENCRYPTION_PROVIDERS), "\"aescbc\""),
        opt("audit_log", Kind::Bool, "true"),
        opt("audit_log_maxage_days", U32, "30"),
        opt("audit_log_maxbackup", U32, "10"),
        opt("audit_log_maxsize_mb", U32, "100"),
        opt("pod_security", Kind::Choice(POD_SECURITY_LEVELS), "\"restricted\""),
    ],
};

pub const PKI: Section = Section {
    name: "pki",
    shape: Shape::Table,
    required: false,
    fields: &[
        opt("key_algorithm", Kind::Choice(KEY_ALGORITHMS), "\"ecdsa-p256\""),
        opt("ca_validity_days", DAYS, "3650"),
        opt("leaf_validity_days", DAYS, "365"),
        opt("renew_before_days", Kind::Int { min: 0, max: 36_500 }, "30"),
    ],
};

pub const ETCD: Section = Section {
    name: "etcd",
    shape: Shape::Table,
    required: false,
    fields: &[
        opt("client_port", PORT, "2379"),
        opt("peer_port", PORT, "2380"),
        opt("data_dir", Kind::Path, "\"/var/lib/etcd\""),
        opt("heartbeat_interval_ms", Kind::Int { min: 1, max: u32::MAX as i128 }, "100"),
        opt("election_timeout_ms", Kind::Int { min: 1, max: u32::MAX as i128 }, "1000"),
        opt("quota_backend_bytes", Kind::Int { min: 1, max: u64::MAX as i128 }, "8589934592"),
        opt("backup_schedule", Kind::Text, "\"daily\""),
        opt("backup_retention", Kind::Int { min: 1, max: u32::MAX as i128 }, "7"),
    ],
};

pub const ARTIFACTS: Section = Section {
    name: "artifacts",
    shape: Shape::Table,
    required: false,
    fields: &[
        opt("kubernetes", Kind::Choice(KUBERNETES_SOURCES), "\"download\""),
        opt("etcd", Kind::Choice(ETCD_SOURCES), "\"download\""),
        opt("runtime", Kind::Choice(RUNTIME_SOURCES), "\"preinstalled\""),
        opt("directory", Kind::Path, "\"/srv/provision/binaries\""),
        opt("cache_dir", Kind::Path, "\"~/.cache/provision\""),
        opt("kubernetes_base_url", Kind::Text, "\"https://dl.k8s.io\""),
        opt("etcd_base_url", Kind::Text, "\"https://github.com/etcd-io/etcd/releases/download\""),
        opt("runtime_base_url", Kind::Text, "\"https://github.com\""),
        opt("containerd_version", Kind::Text, "\"2.1.4\""),
        opt("runc_version", Kind::Text, "\"1.3.0\""),
        opt("cni_plugins_version", Kind::Text, "\"1.7.1\""),
        opt("crictl_version", Kind::Text, "\"1.34.0\""),
    ],
};

pub const KUBELET: Section = Section {
    name: "kubelet",
    shape: Shape::Table,
    required: false,
    fields: &[opt("fail_swap_on", Kind::Bool, "true")],
};

pub const HOST: Section = Section {
    name: "host",
    shape: Shape::ArrayOfTables,
    required: false,
    fields: &[
        req("name", Kind::Text, "\"node1\""),
        req("address", Kind::Ip, "\"10.0.0.3\""),
        req("roles", Kind::Roles, "[\"etcd\", \"control-plane\"]"),
        opt("ssh_port", PORT, "22"),
        opt("ssh_user", Kind::Text, "\"admin\""),
        opt("pod_cidr", Kind::Cidr, "\"10.200.7.0/24\""),
    ],
};

/// Every section, in the order the reference documents them.
pub const SECTIONS: &[&Section] = &[&CLUSTER, &SSH, &SECURITY, &PKI, &ETCD, &ARTIFACTS, &KUBELET, &HOST];

pub fn section(name: &str) -> Option<&'static Section> {
    SECTIONS.iter().copied().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::schema;
    use serde::de::DeserializeOwned;

    /// serde's own list of a struct's keys, read from its "unknown field" error.
    fn serde_keys<T: DeserializeOwned + std::fmt::Debug>(extra: &str) -> Vec<String> {
        let err = toml::from_str::<T>(&format!("zz_unknown = 1\n{extra}")).unwrap_err();
        expected_list(err.message())
    }

    fn expected_list(message: &str) -> Vec<String> {
        let list = message.split("expected one of ").nth(1).or_else(|| message.split("expected ").nth(1));
        let mut keys: Vec<String> = list
            .unwrap_or_else(|| panic!("no list in {message:?}"))
            .replace(" or ", ", ")
            .split(", ")
            .map(|k| k.trim().trim_matches('`').to_string())
            .collect();
        keys.sort();
        keys
    }

    fn spec_keys(section: &Section) -> Vec<String> {
        let mut keys: Vec<String> = section.field_names().map(String::from).collect();
        keys.sort();
        keys
    }

    const CLUSTER_REQUIRED: &str = "name='a'\nkubernetes_version='1'\netcd_version='1'\napi_endpoint='a'\nservice_cidr='10.0.0.0/24'\npod_cidr='10.1.0.0/16'";
    const HOST_REQUIRED: &str = "name='a'\naddress='10.0.0.1'\nroles=[]";

    #[test]
    fn spec_lists_exactly_the_keys_serde_knows() {
        assert_eq!(spec_keys(&CLUSTER), serde_keys::<schema::Cluster>(CLUSTER_REQUIRED));
        assert_eq!(spec_keys(&SSH), serde_keys::<schema::SshSettings>(""));
        assert_eq!(spec_keys(&SECURITY), serde_keys::<schema::Security>(""));
        assert_eq!(spec_keys(&PKI), serde_keys::<schema::PkiSettings>(""));
        assert_eq!(spec_keys(&ETCD), serde_keys::<schema::EtcdSettings>(""));
        assert_eq!(spec_keys(&ARTIFACTS), serde_keys::<schema::Artifacts>(""));
        assert_eq!(spec_keys(&KUBELET), serde_keys::<schema::KubeletSettings>(""));
        assert_eq!(spec_keys(&HOST), serde_keys::<schema::Host>(HOST_REQUIRED));
        let mut sections: Vec<String> = SECTIONS.iter().map(|s| s.name.to_string()).collect();
        sections.sort();
        assert_eq!(sections, serde_keys::<schema::Inventory>(&format!("[cluster]\n{CLUSTER_REQUIRED}\n")));
    }

    /// serde's list of an enum's values, read from its "unknown variant" error.
    fn serde_variants<T: DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Wrap<T> {
            v: T,
        }
        let err = toml::from_str::<Wrap<T>>("v = 'zz-unknown'").unwrap_err();
        expected_list(err.message())
    }

    fn sorted(values: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn spec_lists_exactly_the_enum_values_serde_accepts() {
        assert_eq!(sorted(ROLES), serde_variants::<schema::Role>());
        assert_eq!(sorted(HOST_KEY_POLICIES), serde_variants::<schema::HostKeyPolicy>());
        assert_eq!(sorted(ENCRYPTION_PROVIDERS), serde_variants::<schema::EncryptionProvider>());
        assert_eq!(sorted(POD_SECURITY_LEVELS), serde_variants::<schema::PodSecurityLevel>());
        assert_eq!(sorted(KEY_ALGORITHMS), serde_variants::<schema::KeyAlgorithm>());
        assert_eq!(sorted(KUBERNETES_SOURCES), serde_variants::<schema::KubernetesSource>());
        assert_eq!(sorted(ETCD_SOURCES), serde_variants::<schema::EtcdSource>());
        assert_eq!(sorted(RUNTIME_SOURCES), serde_variants::<schema::RuntimeSource>());
    }

    #[test]
    fn every_example_is_valid_for_its_key() {
        // Each example, written alone in its section, passes the walker's checks.
        for section in SECTIONS {
            for field in section.fields {
                let header = match section.shape {
                    Shape::Table => format!("[{}]", section.name),
                    Shape::ArrayOfTables => format!("[[{}]]", section.name),
                };
                let text = format!("{header}\n{} = {}\n", field.name, field.example);
                let doc = toml::de::DeTable::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                let table = doc.get_ref().iter().next().unwrap().1;
                let table = match table.get_ref() {
                    toml::de::DeValue::Array(a) => a[0].get_ref().as_table().unwrap(),
                    other => other.as_table().unwrap(),
                };
                let value = table.iter().next().unwrap().1;
                assert!(crate::inventory::walk::value_problem(field, value.get_ref()).is_none(), "{text}");
            }
        }
    }
}
