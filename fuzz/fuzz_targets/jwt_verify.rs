//! `Verifier::verify` on arbitrary bytes (as lossy UTF-8): never panics, and never accepts a token it did not sign
//! (the fixed key ring signs nothing during fuzzing, so every input must be rejected).
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static tokens::Verifier {
    static VERIFIER: OnceLock<tokens::Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let ring = tokens::KeyRing::generate(UNIX_EPOCH + Duration::from_secs(1_700_000_000)).expect("key generation");
        ring.verifier("https://accounts.google.com")
    })
}

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_100);
    assert!(verifier().verify(&token, |_| true, now).is_err());
});
