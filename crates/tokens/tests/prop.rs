//! The verifier never panics and never accepts what it did not sign, whatever it is fed.

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::json;
use tokens::{CachingVerifier, Verifier};

fn verifier() -> &'static Verifier {
    static V: std::sync::OnceLock<Verifier> = std::sync::OnceLock::new();
    V.get_or_init(|| ring().verifier(ISSUER))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_strings_are_rejected_without_panic(s in any::<String>()) {
        prop_assert!(verifier().verify(&s, |_| true, at(T0)).is_err());
    }

    #[test]
    fn arbitrary_three_segment_base64_is_rejected_without_panic(
        h in proptest::collection::vec(any::<u8>(), 0..200),
        p in proptest::collection::vec(any::<u8>(), 0..400),
        s in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let token = format!("{}.{}.{}", b64(&h), b64(&p), b64(&s));
        prop_assert!(verifier().verify(&token, |_| true, at(T0)).is_err());
        let caching = CachingVerifier::new(verifier().clone(), 8);
        prop_assert!(caching.verify(&token, |_| true, at(T0)).is_err());
    }

    #[test]
    fn json_headers_with_any_alg_and_kid_are_rejected_without_panic(
        alg in "[A-Za-z0-9]{0,8}",
        kid in ".{0,50}",
        payload in ".{0,100}",
        sig in proptest::collection::vec(any::<u8>(), 250..260),
    ) {
        let header = json!({"alg": alg, "kid": kid});
        let token = format!("{}.{}.{}", b64(header.to_string().as_bytes()), b64(payload.as_bytes()), b64(&sig));
        prop_assert!(verifier().verify(&token, |_| true, at(T0)).is_err());
    }

    #[test]
    fn any_single_byte_change_to_a_valid_token_is_rejected(i in 0usize..2000, bit in 0u8..8) {
        let token = minted();
        let mut bytes = token.clone().into_bytes();
        let i = i % bytes.len();
        bytes[i] ^= 1 << bit;
        if let Ok(mutated) = String::from_utf8(bytes) {
            let verdict = verifier().verify(&mutated, |_| true, at(T0));
            // base64 may ignore nothing (trailing bits are rejected), so any change must be refused.
            prop_assert!(verdict.is_err(), "byte {} bit {} accepted", i, bit);
        }
    }
}
