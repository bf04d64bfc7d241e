//! Key pairs: generating them in the configured algorithm, loading them back, and
//! naming the algorithm of a public key found in a certificate.
//!
//! rcgen's ring backend generates ECDSA keys but not RSA keys, so RSA keys come from the
//! RustCrypto `rsa` crate (already built for russh) and are handed to rcgen as PKCS#8.

use anyhow::Context;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256};
use rsa::pkcs8::EncodePrivateKey;
use rsa::rand_core::{TryCryptoRng, TryRng, UnwrapErr};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::inventory::KeyAlgorithm;

/// The name operators write in the inventory (`pki.key_algorithm`, the serde spelling),
/// used in reports too.
pub fn label(alg: KeyAlgorithm) -> &'static str {
    match alg {
        KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
        KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
        KeyAlgorithm::Rsa2048 => "rsa2048",
        KeyAlgorithm::Rsa3072 => "rsa3072",
        KeyAlgorithm::Rsa4096 => "rsa4096",
    }
}

pub fn is_rsa(alg: KeyAlgorithm) -> bool {
    matches!(alg, KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096)
}

/// A fresh key pair. Every issued certificate gets its own key: a renewed certificate
/// never reuses the old key.
pub fn generate(alg: KeyAlgorithm) -> anyhow::Result<KeyPair> {
    match alg {
        KeyAlgorithm::EcdsaP256 => {
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generating an ECDSA P-256 key")
        }
        KeyAlgorithm::EcdsaP384 => {
            KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).context("generating an ECDSA P-384 key")
        }
        KeyAlgorithm::Rsa2048 => generate_rsa(2048),
        KeyAlgorithm::Rsa3072 => generate_rsa(3072),
        KeyAlgorithm::Rsa4096 => generate_rsa(4096),
    }
}

fn generate_rsa(bits: usize) -> anyhow::Result<KeyPair> {
    let key = rsa::RsaPrivateKey::new(&mut UnwrapErr(OsRandom), bits)
        .with_context(|| format!("generating an RSA {bits}-bit key"))?;
    let pkcs8 = key.to_pkcs8_der().context("encoding the RSA key as PKCS#8")?;
    // Certificates signed by an RSA key use sha256WithRSAEncryption, as kubeadm does.
    KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_bytes().into(), &PKCS_RSA_SHA256)
        .context("loading the generated RSA key into rcgen")
}

/// Loads a PKCS#8 PEM private key written by `generate`. `what` names the file in errors.
/// The error never includes the key text.
pub fn load(pem: &str, what: &str) -> anyhow::Result<KeyPair> {
    // rcgen's errors name the failure kind only, never the key bytes. ring's PKCS#8 loader
    // picks SHA-256 for RSA keys and the matching hash for each curve.
    KeyPair::from_pem(pem)
        .map_err(|e| anyhow::anyhow!("{what} is not a PKCS#8 ECDSA or RSA private key in PEM form ({e})"))
}

/// The inventory algorithm a certificate's public key corresponds to, when it is one.
pub fn algorithm_of(spki: &SubjectPublicKeyInfo<'_>) -> Option<KeyAlgorithm> {
    match spki.parsed().ok()? {
        PublicKey::EC(point) => match point.key_size() {
            256 => Some(KeyAlgorithm::EcdsaP256),
            384 => Some(KeyAlgorithm::EcdsaP384),
            _ => None,
        },
        PublicKey::RSA(rsa) => match modulus_bits(rsa.modulus) {
            2048 => Some(KeyAlgorithm::Rsa2048),
            3072 => Some(KeyAlgorithm::Rsa3072),
            4096 => Some(KeyAlgorithm::Rsa4096),
            _ => None,
        },
        _ => None,
    }
}

/// A human name for any public key, including ones provision would not generate.
pub fn describe(spki: &SubjectPublicKeyInfo<'_>) -> String {
    if let Some(alg) = algorithm_of(spki) {
        return label(alg).to_string();
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("rsa{}", modulus_bits(rsa.modulus)),
        Ok(PublicKey::EC(point)) => format!("ecdsa-{}-bit", point.key_size()),
        _ => format!("unknown ({})", spki.algorithm.algorithm),
    }
}

fn modulus_bits(modulus: &[u8]) -> usize {
    let significant: &[u8] = match modulus.iter().position(|b| *b != 0) {
        Some(first) => &modulus[first..],
        None => return 0,
    };
    significant.len() * 8 - significant[0].leading_zeros() as usize
}

/// The operating system's random source, in the form the `rsa` crate (rand_core 0.10) takes.
/// `UnwrapErr` panics only if the kernel's getrandom fails, which leaves nothing to recover.
struct OsRandom;

impl TryRng for OsRandom {
    type Error = rand::Error;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        rand::RngCore::try_fill_bytes(&mut rand::rngs::OsRng, dst)
    }
}

impl TryCryptoRng for OsRandom {}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;

    fn spki_alg(key: &KeyPair) -> Option<KeyAlgorithm> {
        let der = key.subject_public_key_info();
        let (_, spki) = <SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(&der).unwrap();
        algorithm_of(&spki)
    }

    #[test]
    fn generated_keys_round_trip_and_are_recognised() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384, KeyAlgorithm::Rsa2048] {
            let key = generate(alg).unwrap();
            assert_eq!(spki_alg(&key), Some(alg), "{}", label(alg));
            let again = load(&key.serialize_pem(), "test.key").unwrap();
            assert_eq!(again.subject_public_key_info(), key.subject_public_key_info(), "{}", label(alg));
            assert!(key.serialize_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        }
    }

    #[test]
    fn a_broken_key_file_is_named_and_not_echoed() {
        let err = load("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n", "pki/x.key")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pki/x.key"), "{err}");
        assert!(!err.contains("c2VjcmV0"), "{err}");
        assert!(load("hello", "pki/y.key").unwrap_err().to_string().contains("pki/y.key"));
    }

    #[test]
    fn modulus_bits_ignores_leading_zero_bytes() {
        assert_eq!(modulus_bits(&[0, 0x80, 0, 0]), 24);
        assert_eq!(modulus_bits(&[0x01, 0]), 9);
        assert_eq!(modulus_bits(&[0, 0]), 0);
    }
}
