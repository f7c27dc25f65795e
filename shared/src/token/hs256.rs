//! The only signature the product uses, HS256, as jsonwebtoken's crypto provider. The
//! crate's bundled provider picks its algorithm at run time, so it links RSA, ECDSA and
//! EdDSA into every binary that verifies a token: half of the worker's wasm.

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::Sha256;
use signature::{Signer, Verifier};

struct Hs256(Hmac<Sha256>);

impl Hs256 {
    fn new(algorithm: &Algorithm, secret: Result<&[u8], Error>) -> Result<Self, Error> {
        if *algorithm != Algorithm::HS256 {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        Hmac::new_from_slice(secret?)
            .map(Self)
            .map_err(|_| ErrorKind::InvalidKeyFormat.into())
    }
}

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self
            .0
            .clone()
            .chain_update(message)
            .finalize()
            .into_bytes()
            .to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    /// Compares in constant time (`verify_slice`).
    fn verify(&self, message: &[u8], tag: &Vec<u8>) -> Result<(), signature::Error> {
        self.0
            .clone()
            .chain_update(message)
            .verify_slice(tag)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: |algorithm, key: &EncodingKey| {
        Ok(Box::new(Hs256::new(algorithm, key.try_get_hmac_secret())?))
    },
    verifier_factory: |algorithm, key: &DecodingKey| {
        Ok(Box::new(Hs256::new(algorithm, key.try_get_hmac_secret())?))
    },
    // Keys are never read from a JWK set.
    jwk_utils: JwkUtils::new_unimplemented(),
};

/// Makes HS256 the process's provider before the first token is signed or verified; a
/// second call (or a provider installed elsewhere first) changes nothing.
pub(super) fn install() {
    let _ = PROVIDER.install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hs256_has_a_verifier() {
        let key = DecodingKey::from_secret(b"k");
        assert!((PROVIDER.verifier_factory)(&Algorithm::HS256, &key).is_ok());
        for other in [
            Algorithm::HS384,
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ] {
            assert!(
                (PROVIDER.verifier_factory)(&other, &key).is_err(),
                "{other:?}"
            );
        }
    }
}
