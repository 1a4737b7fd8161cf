//! Cross-checks with independent implementations: jsonwebtoken verifies our tokens from the JWKS `n`/`e` and from
//! the certificate's public key; x509-parser proves each certificate is valid, self-signed X.509 for the right key.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokens::{IdClaims, KeyRing};
use x509_parser::prelude::*;

fn validation() -> Validation {
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[AUD]);
    v.set_issuer(&[ISSUER]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
    // Our fixed clock is in the past, so check times by hand below.
    v.validate_exp = false;
    v
}

fn rotated_ring() -> KeyRing {
    let mut ring = KeyRing::generate(at(T0)).unwrap();
    ring.rotate(at(T0 + 1)).unwrap();
    ring
}

#[test]
fn jsonwebtoken_verifies_our_tokens_from_the_jwks_alone() {
    let ring = rotated_ring();
    let claims = IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, Some(EMAIL), at(T0 + 2));
    let token = ring.sign(&claims).unwrap();
    let jwks = ring.jwks();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header.kid.clone().unwrap()).unwrap();
    let key = DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap()).unwrap();
    let data = jsonwebtoken::decode::<IdClaims>(&token, &key, &validation()).unwrap();
    assert_eq!(data.claims, claims);
    // The other published key does not verify it.
    let other = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] != header.kid.clone().unwrap()).unwrap();
    let wrong = DecodingKey::from_rsa_components(other["n"].as_str().unwrap(), other["e"].as_str().unwrap()).unwrap();
    assert!(jsonwebtoken::decode::<IdClaims>(&token, &wrong, &validation()).is_err());
}

#[test]
fn every_certificate_is_valid_self_signed_x509_for_its_key() {
    let ring = rotated_ring();
    let certs = ring.pem_certs();
    assert_eq!(certs.as_object().unwrap().len(), 2);
    for key in ring.keys() {
        let pem_text = certs[key.kid()].as_str().unwrap();
        let (rest, pem) = parse_x509_pem(pem_text.as_bytes()).unwrap();
        assert!(rest.is_empty());
        assert_eq!(pem.label, "CERTIFICATE");
        let (rest, cert) = X509Certificate::from_der(&pem.contents).unwrap();
        assert!(rest.is_empty());
        assert_eq!(cert.version(), X509Version::V3);
        assert_eq!(cert.subject(), cert.issuer());
        let cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap();
        assert_eq!(cn, key.kid());
        assert_eq!(cert.validity().not_before.timestamp(), key.created_at() as i64);
        assert_eq!(cert.validity().not_after.timestamp(), key.created_at() as i64 + 10 * 365 * 24 * 3600);
        assert_eq!(cert.public_key().raw, key.spki_der());
        cert.verify_signature(None).expect("self-signature verifies");
        assert_eq!(cert.signature_algorithm.algorithm, x509_parser::oid_registry::OID_PKCS1_SHA256WITHRSA);

        // A token signed while this key was active verifies with the certificate's key (what google-auth's v1 path does).
        let rsa = match cert.public_key().parsed().unwrap() {
            x509_parser::public_key::PublicKey::RSA(rsa) => rsa,
            other => panic!("not rsa: {other:?}"),
        };
        // ASN.1 integers carry a leading zero byte when the top bit is set; JWK components do not.
        let strip = |b: &[u8]| b.iter().position(|&x| x != 0).map_or(Vec::new(), |i| b[i..].to_vec());
        let decoding = DecodingKey::from_rsa_raw_components(&strip(rsa.modulus), &strip(rsa.exponent));
        if key.retired_at().is_none() {
            let claims = IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, None, at(T0 + 2));
            let token = ring.sign(&claims).unwrap();
            assert_eq!(jsonwebtoken::decode::<IdClaims>(&token, &decoding, &validation()).unwrap().claims, claims);
        }
    }
}

#[test]
fn our_verifier_accepts_a_token_jsonwebtoken_signed_with_our_key() {
    // The reverse direction: an RS256 token from an independent signer, with our key and kid.
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, private_key_b64(ring())).unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der)
    );
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some(ring().active().kid().to_owned());
    let claims = IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, None, at(T0));
    let token =
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap())
            .unwrap();
    assert_eq!(ring().verifier(ISSUER).verify(&token, |a| a == AUD, at(T0)).unwrap(), claims);
}
