//! A service file of an advisor export (`services/NAME.yaml` or `.json`, from a project the user does not control):
//! `advisor::load::parse_services`, then a scan of what parsed and all three report forms. None of it may panic.
#![no_main]

use advisor::input::Input;
use advisor::load::{parse_services, Hints};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    for json in [false, true] {
        let Ok(services) = parse_services(text, json, &mut Hints::default()) else {
            continue;
        };
        let input = Input {
            project_id: "fuzz-project".into(),
            services: Some(services),
            ..Default::default()
        };
        let report = advisor::scan(&input);
        let _ = report.to_text(true);
        let _ = report.to_json();
        let _ = report.to_sarif();
    }
});
