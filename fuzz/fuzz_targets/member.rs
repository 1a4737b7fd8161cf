//! `Member::parse` on arbitrary UTF-8: never panics, and whatever parses prints back as the same string.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Ok(m) = model::Member::parse(s) {
        assert_eq!(m.to_string(), s);
    }
});
