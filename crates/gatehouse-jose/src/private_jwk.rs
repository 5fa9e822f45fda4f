//! Private keys as JWKs: what Kong's `client_jwk` holds for `private_key_jwt` client
//! authentication, and what tests hand to the plugin.

use crate::Algorithm;
use crate::sign::{SignError, SigningKey};
use aws_lc_rs::encoding::AsBigEndian as _;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

fn field(jwk: &Value, name: &'static str) -> Result<Vec<u8>, SignError> {
    let s = jwk.get(name).and_then(Value::as_str).ok_or(SignError::Rejected("private jwk is missing a field"))?;
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| SignError::Rejected("private jwk field is not base64url"))
}

/// DER `INTEGER` of an unsigned big-endian number.
fn der_uint(out: &mut Vec<u8>, n: &[u8]) {
    let start = n.iter().position(|&b| b != 0).unwrap_or(n.len().saturating_sub(1));
    let n = if n.is_empty() { &[0u8][..] } else { &n[start..] };
    let pad = n[0] & 0x80 != 0;
    out.push(0x02);
    der_len(out, n.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(n);
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// RFC 8017 `RSAPrivateKey` from the JWK's CRT parameters.
fn rsa_der(jwk: &Value) -> Result<Vec<u8>, SignError> {
    let mut body = Vec::with_capacity(1200);
    der_uint(&mut body, &[0]);
    for name in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
        der_uint(&mut body, &field(jwk, name)?);
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(0x30);
    der_len(&mut out, body.len());
    out.extend_from_slice(&body);
    Ok(out)
}

impl SigningKey {
    /// Loads a private JWK (RSA with CRT parameters, EC with `d`, OKP Ed25519 with `d`, or `oct`).
    /// The algorithm is `alg` if given, else the JWK's own `alg`, else RS256 / the curve's ES* /
    /// EdDSA / HS256. The JWK's `kid` is kept.
    pub fn from_private_jwk(jwk: &Value, alg: Option<Algorithm>) -> Result<SigningKey, SignError> {
        let own_alg = jwk.get("alg").and_then(Value::as_str).and_then(Algorithm::from_name);
        let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
        let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or_default();
        let default_alg = match (kty, crv) {
            ("RSA", _) => Algorithm::Rs256,
            ("EC", "P-384") => Algorithm::Es384,
            ("EC", "P-521") => Algorithm::Es512,
            ("EC", _) => Algorithm::Es256,
            ("OKP", _) => Algorithm::EdDsa,
            _ => Algorithm::Hs256,
        };
        let alg = alg.or(own_alg).unwrap_or(default_alg);
        let key = match kty {
            "RSA" => {
                let pair = RsaKeyPair::from_der(&rsa_der(jwk)?)?;
                SigningKey::from_parts(alg, super::sign::Material::Rsa(pair))?
            }
            "EC" => {
                let curve = super::sign::ecdsa_signing(alg).ok_or(SignError::AlgorithmMismatch(alg))?;
                let mut point = vec![4u8];
                point.extend_from_slice(&field(jwk, "x")?);
                point.extend_from_slice(&field(jwk, "y")?);
                let pair = EcdsaKeyPair::from_private_key_and_public_key(curve, &field(jwk, "d")?, &point)?;
                SigningKey::from_parts(alg, super::sign::Material::Ec(pair))?
            }
            "OKP" if crv == "Ed25519" => {
                let pair = Ed25519KeyPair::from_seed_and_public_key(&field(jwk, "d")?, &field(jwk, "x")?)?;
                SigningKey::from_parts(alg, super::sign::Material::Ed25519(pair))?
            }
            "oct" => SigningKey::hmac(alg, &field(jwk, "k")?)?,
            _ => return Err(SignError::Rejected("unsupported private jwk")),
        };
        Ok(match jwk.get("kid").and_then(Value::as_str) {
            Some(kid) => key.with_kid(kid),
            None => key,
        })
    }

    /// The private JWK of an EC or Ed25519 key (for tests and `client_jwk`). `None` for RSA (no
    /// CRT export here) and HMAC.
    pub fn private_jwk(&self) -> Option<Value> {
        let mut jwk = self.public_jwk()?;
        let d = match self.material() {
            super::sign::Material::Ec(pair) => pair.private_key().as_be_bytes().ok()?.as_ref().to_vec(),
            super::sign::Material::Ed25519(pair) => pair.seed().ok()?.as_be_bytes().ok()?.as_ref().to_vec(),
            _ => return None,
        };
        jwk["d"] = URL_SAFE_NO_PAD.encode(d).into();
        Some(jwk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeySet, Policy, sign::sign_jwt, verify};
    use serde_json::json;

    #[test]
    fn ec_and_ed25519_private_jwks_round_trip_and_sign() {
        for alg in [Algorithm::Es256, Algorithm::Es384, Algorithm::EdDsa] {
            let key = SigningKey::generate(alg).expect("key").with_kid("c1");
            let private = key.private_jwk().expect("private jwk");
            let loaded = SigningKey::from_private_jwk(&private, None).expect("load");
            assert_eq!(loaded.algorithm(), alg);
            let token = sign_jwt(&json!({}), &json!({"sub": "x"}), &loaded).expect("sign");
            let keys = KeySet::from_jwks(json!({"keys": [key.public_jwk()]})).expect("jwks");
            verify(&token, &keys, &Policy::default()).expect("verifies with the original public key");
        }
    }

    #[test]
    fn rsa_private_jwk_from_crt_parameters() {
        // RFC 7515 appendix A.2's RSA key.
        let jwk = json!({"kty":"RSA",
            "n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
            "e":"AQAB",
            "d":"Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ",
            "p":"4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc",
            "q":"uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc",
            "dp":"BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0",
            "dq":"h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU",
            "qi":"IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U"});
        let key = SigningKey::from_private_jwk(&jwk, None).expect("rsa key");
        assert_eq!(key.algorithm(), Algorithm::Rs256);
        let token = sign_jwt(&json!({}), &json!({"sub": "x"}), &key).expect("sign");
        let keys = KeySet::from_jwks(json!({"keys": [key.public_jwk()]})).expect("jwks");
        verify(&token, &keys, &Policy::default()).expect("verifies");
    }

    #[test]
    fn bad_private_jwks_are_errors() {
        assert!(SigningKey::from_private_jwk(&json!({"kty": "RSA", "n": "AQAB"}), None).is_err());
        assert!(
            SigningKey::from_private_jwk(&json!({"kty": "EC", "crv": "P-256", "d": "AA", "x": "AA", "y": "AA"}), None)
                .is_err()
        );
        assert!(SigningKey::from_private_jwk(&json!({"kty": "nope"}), None).is_err());
    }
}
