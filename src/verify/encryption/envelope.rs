//! kube-apiserver's encryption-at-rest envelope, as stored in etcd:
//! `k8s:enc:<provider>:v1:<key name>:<payload>`, where the payload is
//! - aescbc: IV (16 bytes) + AES-CBC ciphertext of the object, PKCS#7 padded
//!   (k8s.io/apiserver/pkg/storage/value/encrypt/aes, cbc transformer);
//! - secretbox: nonce (24 bytes) + NaCl secretbox (XSalsa20-Poly1305, tag first)
//!   (k8s.io/apiserver/pkg/storage/value/encrypt/secretbox).
//!
//! Encryption is here too: tests store values exactly as kube-apiserver does, and
//! decrypting them is the proof.

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};

pub const ENC_PREFIX: &[u8] = b"k8s:enc:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Aescbc,
    Secretbox,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Aescbc => "aescbc",
            Provider::Secretbox => "secretbox",
        }
    }
    pub fn from_name(name: &str) -> Option<Provider> {
        match name {
            "aescbc" => Some(Provider::Aescbc),
            "secretbox" => Some(Provider::Secretbox),
            _ => None,
        }
    }
}

/// The parts of an encrypted value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub provider: String,
    pub version: String,
    pub key_name: String,
    pub payload: &'a [u8],
}

/// Splits `k8s:enc:<provider>:<version>:<key>:<payload>`; None when the value does
/// not carry the prefix (stored in plaintext) or the prefix is malformed.
pub fn parse(value: &[u8]) -> Option<Envelope<'_>> {
    let rest = value.strip_prefix(ENC_PREFIX)?;
    let mut parts = Vec::with_capacity(3);
    let mut at = 0;
    while parts.len() < 3 {
        let colon = rest[at..].iter().position(|&b| b == b':')?;
        parts.push(std::str::from_utf8(&rest[at..at + colon]).ok()?.to_string());
        at += colon + 1;
    }
    let key_name = parts.pop()?;
    let version = parts.pop()?;
    let provider = parts.pop()?;
    Some(Envelope { provider, version, key_name, payload: &rest[at..] })
}

/// The prefix kube-apiserver writes for `provider` with key `key_name`.
pub fn prefix(provider: Provider, key_name: &str) -> Vec<u8> {
    format!("k8s:enc:{}:v1:{key_name}:", provider.name()).into_bytes()
}

pub fn decrypt(provider: Provider, key: &[u8], payload: &[u8]) -> Result<Vec<u8>, String> {
    match provider {
        Provider::Aescbc => decrypt_aescbc(key, payload),
        Provider::Secretbox => decrypt_secretbox(key, payload),
    }
}

fn decrypt_aescbc(key: &[u8], payload: &[u8]) -> Result<Vec<u8>, String> {
    const BLOCK: usize = 16;
    if payload.len() < 2 * BLOCK {
        return Err(format!("aescbc payload of {} bytes is shorter than an IV and one block", payload.len()));
    }
    let (iv, data) = payload.split_at(BLOCK);
    if data.len() % BLOCK != 0 {
        return Err(format!("aescbc ciphertext of {} bytes is not a whole number of blocks", data.len()));
    }
    let bad_padding = |_| "decryption gave invalid PKCS#7 padding: wrong key, or damaged data".to_string();
    let bad_key = |_| format!("an aescbc key must be 16, 24 or 32 bytes, this one is {}", key.len());
    match key.len() {
        16 => cbc::Decryptor::<Aes128>::new_from_slices(key, iv).map_err(bad_key)?.decrypt_padded_vec::<Pkcs7>(data),
        24 => cbc::Decryptor::<Aes192>::new_from_slices(key, iv).map_err(bad_key)?.decrypt_padded_vec::<Pkcs7>(data),
        32 => cbc::Decryptor::<Aes256>::new_from_slices(key, iv).map_err(bad_key)?.decrypt_padded_vec::<Pkcs7>(data),
        n => {
            return Err(format!("an aescbc key must be 16, 24 or 32 bytes, this one is {n}"));
        }
    }
    .map_err(bad_padding)
}

fn decrypt_secretbox(key: &[u8], payload: &[u8]) -> Result<Vec<u8>, String> {
    const NONCE: usize = 24;
    if payload.len() < NONCE + 16 {
        return Err(format!("secretbox payload of {} bytes is shorter than a nonce and a tag", payload.len()));
    }
    let cipher = XSalsa20Poly1305::new_from_slice(key)
        .map_err(|_| format!("a secretbox key must be 32 bytes, this one is {}", key.len()))?;
    let (nonce, sealed) = payload.split_at(NONCE);
    cipher
        .decrypt(nonce.into(), sealed)
        .map_err(|_| "secretbox authentication failed: wrong key, or damaged data".to_string())
}

/// The full stored value kube-apiserver writes (prefix + payload). `iv_or_nonce` must be
/// random per value: 16 bytes for aescbc, 24 for secretbox.
pub fn encrypt(
    provider: Provider,
    key_name: &str,
    key: &[u8],
    iv_or_nonce: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, String> {
    let mut out = prefix(provider, key_name);
    out.extend_from_slice(iv_or_nonce);
    match provider {
        Provider::Aescbc => {
            let bad = |_| "aescbc needs a 16, 24 or 32-byte key and a 16-byte IV".to_string();
            let ct = match key.len() {
                16 => cbc::Encryptor::<Aes128>::new_from_slices(key, iv_or_nonce)
                    .map_err(bad)?
                    .encrypt_padded_vec::<Pkcs7>(plaintext),
                24 => cbc::Encryptor::<Aes192>::new_from_slices(key, iv_or_nonce)
                    .map_err(bad)?
                    .encrypt_padded_vec::<Pkcs7>(plaintext),
                _ => cbc::Encryptor::<Aes256>::new_from_slices(key, iv_or_nonce)
                    .map_err(bad)?
                    .encrypt_padded_vec::<Pkcs7>(plaintext),
            };
            out.extend(ct);
        }
        Provider::Secretbox => {
            if iv_or_nonce.len() != 24 {
                return Err("secretbox needs a 24-byte nonce".into());
            }
            let cipher =
                XSalsa20Poly1305::new_from_slice(key).map_err(|_| "secretbox needs a 32-byte key".to_string())?;
            let sealed =
                cipher.encrypt(iv_or_nonce.into(), plaintext).map_err(|_| "secretbox sealing failed".to_string())?;
            out.extend(sealed);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_parts() {
        let e = parse(b"k8s:enc:aescbc:v1:key1:\x00\x01:rest").unwrap();
        assert_eq!((e.provider.as_str(), e.version.as_str(), e.key_name.as_str()), ("aescbc", "v1", "key1"));
        assert_eq!(e.payload, b"\x00\x01:rest");
        assert!(parse(b"k8s\x00\x0a").is_none());
        assert!(parse(b"k8s:enc:aescbc").is_none());
    }

    /// NIST SP 800-38A F.2.5 (CBC-AES256.Encrypt), first block: the library does real AES-CBC.
    #[test]
    fn aes256_cbc_known_answer() {
        let key = hex::decode("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4").unwrap();
        let iv = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let pt = hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap();
        let stored = encrypt(Provider::Aescbc, "k", &key, &iv, &pt).unwrap();
        let payload = parse(&stored).unwrap().payload;
        assert_eq!(hex::encode(&payload[16..32]), "f58c4c04d6e5f1ba779eabfb5f7bfbd6");
        assert_eq!(decrypt(Provider::Aescbc, &key, payload).unwrap(), pt);
    }

    /// NaCl's reference secretbox vector (tests/secretbox.c): firstkey, nonce, and the
    /// first bytes of the box of its 131-byte message.
    #[test]
    fn secretbox_known_answer() {
        let key = hex::decode("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389").unwrap();
        let nonce = hex::decode("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37").unwrap();
        let msg = hex::decode(concat!(
            "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a",
            "1ac728d45e6c61296cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057",
            "e2f6556ad6b1318a024a838f21af1fde048977eb48f59ffd4924ca1c60902e52f0a089bc76897040",
            "e082f937763848645e0705"
        ))
        .unwrap();
        let stored = encrypt(Provider::Secretbox, "k", &key, &nonce, &msg).unwrap();
        let payload = parse(&stored).unwrap().payload;
        // Tag first (NaCl / Go secretbox layout), then the ciphertext.
        assert_eq!(hex::encode(&payload[24..40]), "f3ffc7703f9400e52a7dfb4b3d3305d9");
        assert_eq!(hex::encode(&payload[40..48]), "8e993b9f48681273");
        assert_eq!(decrypt(Provider::Secretbox, &key, payload).unwrap(), msg);
    }

    #[test]
    fn wrong_key_and_damage_fail_clearly() {
        let key = [7u8; 32];
        let mut other = key;
        other[0] ^= 1;
        for p in [Provider::Aescbc, Provider::Secretbox] {
            let iv = vec![9u8; if p == Provider::Aescbc { 16 } else { 24 }];
            let stored = encrypt(p, "key1", &key, &iv, b"k8s\x00 some object bytes").unwrap();
            let payload = parse(&stored).unwrap().payload;
            assert_eq!(decrypt(p, &key, payload).unwrap(), b"k8s\x00 some object bytes");
            // A wrong aescbc key may still unpad by chance (then the magic check catches it).
            if let Ok(garbage) = decrypt(p, &other, payload) {
                assert_eq!(p, Provider::Aescbc);
                assert!(!garbage.starts_with(b"k8s\x00"));
            }
            assert!(decrypt(p, &key, &payload[..payload.len() - 1]).is_err());
        }
        assert!(decrypt(Provider::Aescbc, &[0u8; 7], &[0u8; 32]).unwrap_err().contains("16, 24 or 32"));
    }
}
