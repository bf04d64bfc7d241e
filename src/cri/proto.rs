//! The few CRI messages provision sends and reads, written by hand with prost's derive
//! (no protoc step, no generated crate: none on crates.io builds against tonic 0.14).
//!
//! Field numbers from the CRI v1 proto, kubernetes/cri-api
//! `pkg/apis/runtime/v1/api.proto` (package `runtime.v1`, service `RuntimeService`):
//! ```proto
//! message VersionRequest  { string version = 1; }
//! message VersionResponse { string version = 1; string runtime_name = 2;
//!                           string runtime_version = 3; string runtime_api_version = 4; }
//! message StatusRequest   { bool verbose = 1; }
//! message StatusResponse  { RuntimeStatus status = 1; map<string, string> info = 2; ... }
//! message RuntimeStatus   { repeated RuntimeCondition conditions = 1; }
//! message RuntimeCondition { string type = 1; bool status = 2; string reason = 3; string message = 4; }
//! ```
//! Fields not listed here (StatusResponse's runtime_handlers, features) are skipped by
//! prost when decoding, as protobuf requires.

/// The gRPC paths of the two calls.
pub const VERSION_PATH: &str = "/runtime.v1.RuntimeService/Version";
pub const STATUS_PATH: &str = "/runtime.v1.RuntimeService/Status";

/// The CRI API version the kubelet speaks (sent in VersionRequest, expected back).
pub const API_VERSION: &str = "v1";

#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionRequest {
    #[prost(string, tag = "1")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionResponse {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub runtime_name: String,
    #[prost(string, tag = "3")]
    pub runtime_version: String,
    #[prost(string, tag = "4")]
    pub runtime_api_version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {
    #[prost(bool, tag = "1")]
    pub verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<RuntimeStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RuntimeStatus {
    #[prost(message, repeated, tag = "1")]
    pub conditions: Vec<RuntimeCondition>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RuntimeCondition {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(bool, tag = "2")]
    pub status: bool,
    #[prost(string, tag = "3")]
    pub reason: String,
    #[prost(string, tag = "4")]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Bytes as a v1 runtime sends them, extra fields included (StatusResponse's info map,
    /// field 2, and an unknown field 9): decoded, the extras skipped.
    #[test]
    fn answers_decode_with_unknown_fields_skipped() {
        let v = VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "containerd".into(),
            runtime_version: "1.6.20~ds1".into(),
            runtime_api_version: "v1".into(),
        };
        assert_eq!(VersionResponse::decode(v.encode_to_vec().as_slice()).unwrap(), v);
        let cond = RuntimeCondition { r#type: "NetworkReady".into(), status: true, ..Default::default() };
        let mut bytes =
            StatusResponse { status: Some(RuntimeStatus { conditions: vec![cond.clone()] }) }.encode_to_vec();
        // field 2 (map entry, length-delimited) {"config": "{}"}, then field 9 varint 1
        bytes.extend_from_slice(&[0x12, 0x0c, 0x0a, 0x06, b'c', b'o', b'n', b'f', b'i', b'g', 0x12, 0x02, b'{', b'}']);
        bytes.extend_from_slice(&[0x48, 0x01]);
        let decoded = StatusResponse::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.status.unwrap().conditions, vec![cond]);
        assert_eq!(VersionRequest { version: "v1".into() }.encode_to_vec(), [0x0a, 0x02, b'v', b'1']);
    }
}
