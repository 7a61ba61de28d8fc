//! RegisterUsage signatures: compact JWS, PS256, over {productCode, publicKeyVersion, nonce, iat},
//! made with the product's RSA key of the requested version. Public keys are exported as PEM and
//! JWK so buyers' software can verify them.

use crate::model::ProductKey;
use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// RSA modulus size of generated keys.
pub const KEY_BITS: usize = 2048;

/// The claims of a RegisterUsage signature (camelCase, as AWS's sample verifier reads them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterUsageClaims {
    #[serde(rename = "productCode")]
    pub product_code: String,
    #[serde(rename = "publicKeyVersion")]
    pub public_key_version: i64,
    pub nonce: String,
    /// Issued-at, JWT NumericDate (epoch seconds).
    pub iat: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("signing key error: {0}")]
pub struct KeyError(String);

/// Generates a new RSA key pair as (PKCS#8 private PEM, SPKI public PEM).
pub fn generate_key_pair() -> Result<(String, String), KeyError> {
    let mut rng = rand::thread_rng();
    let private =
        rsa::RsaPrivateKey::new(&mut rng, KEY_BITS).map_err(|e| KeyError(e.to_string()))?;
    let private_pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError(e.to_string()))?
        .to_string();
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError(e.to_string()))?;
    Ok((private_pem, public_pem))
}

pub fn sign(key: &ProductKey, claims: &RegisterUsageClaims) -> Result<String, KeyError> {
    let encoding = EncodingKey::from_rsa_pem(key.private_pem.as_bytes())
        .map_err(|e| KeyError(e.to_string()))?;
    let mut header = Header::new(Algorithm::PS256);
    header.kid = Some(key.version.to_string());
    jsonwebtoken::encode(&header, claims, &encoding).map_err(|e| KeyError(e.to_string()))
}

/// The public half of a key as a JWK (kid = version, use = sig, alg = PS256).
pub fn public_jwk(key: &ProductKey) -> Result<serde_json::Value, KeyError> {
    let encoding = EncodingKey::from_rsa_pem(key.private_pem.as_bytes())
        .map_err(|e| KeyError(e.to_string()))?;
    let mut jwk =
        Jwk::from_encoding_key(&encoding, Algorithm::PS256).map_err(|e| KeyError(e.to_string()))?;
    jwk.common.key_id = Some(key.version.to_string());
    jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    serde_json::to_value(jwk).map_err(|e| KeyError(e.to_string()))
}

/// A new key version for a product.
pub fn new_product_key(
    product_code: &str,
    seller_account: &str,
    version: i64,
    now: OffsetDateTime,
) -> Result<ProductKey, KeyError> {
    let (private_pem, public_pem) = generate_key_pair()?;
    Ok(ProductKey {
        product_code: product_code.to_string(),
        seller_account: seller_account.to_string(),
        version,
        private_pem,
        public_pem,
        created_at: now,
        retired_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn signature_verifies_with_pem_and_jwk_and_not_with_another_key() {
        let now = OffsetDateTime::now_utc();
        let key = new_product_key("prod", "111122223333", 1, now).unwrap();
        let claims = RegisterUsageClaims {
            product_code: "prod".into(),
            public_key_version: 1,
            nonce: "n-1".into(),
            iat: now.unix_timestamp(),
        };
        let jws = sign(&key, &claims).unwrap();
        assert!(jws.starts_with("eyJ"));
        let header = jsonwebtoken::decode_header(&jws).unwrap();
        assert_eq!(header.alg, Algorithm::PS256);
        let mut v = Validation::new(Algorithm::PS256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let pem_key = DecodingKey::from_rsa_pem(key.public_pem.as_bytes()).unwrap();
        let got = jsonwebtoken::decode::<RegisterUsageClaims>(&jws, &pem_key, &v).unwrap();
        assert_eq!(got.claims, claims);
        let jwk: Jwk = serde_json::from_value(public_jwk(&key).unwrap()).unwrap();
        let jwk_key = DecodingKey::from_jwk(&jwk).unwrap();
        assert!(jsonwebtoken::decode::<RegisterUsageClaims>(&jws, &jwk_key, &v).is_ok());
        let other = new_product_key("prod", "111122223333", 2, now).unwrap();
        let other_key = DecodingKey::from_rsa_pem(other.public_pem.as_bytes()).unwrap();
        assert!(jsonwebtoken::decode::<RegisterUsageClaims>(&jws, &other_key, &v).is_err());
    }
}
