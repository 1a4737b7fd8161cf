//! `parse_mappings` on arbitrary UTF-8 as a `--set-secrets` value, then the whole-set rules on whatever parses, and
//! `parse_keys` as a `--remove-secrets` value. None may panic; whatever parses must print back to the same mappings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Ok(mappings) = secrets::parse_mappings("--set-secrets", s) {
        let _ = secrets::check(&mappings);
        let again: Vec<String> = mappings.iter().map(ToString::to_string).collect();
        // Paths may contain the default delimiter when `^DELIM^` was used, so re-parse item by item.
        for (m, text) in mappings.iter().zip(&again) {
            let reparsed = secrets::parse_mappings("--set-secrets", &format!("^\u{1}^{text}"));
            assert_eq!(reparsed.as_deref(), Ok(std::slice::from_ref(m)), "{text}");
        }
    }
    let _ = secrets::parse_keys("--remove-secrets", s);
});
