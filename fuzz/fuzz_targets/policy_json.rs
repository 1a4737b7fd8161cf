//! Policy JSON as `setIamPolicy` receives it: `Policy::from_json`, then `Snapshot::validate_policy` and, when valid,
//! `set_policy` and a decision on the result. None of it may panic.
#![no_main]

use iam::{decide, Catalogue, Principal, ProjectRef, Snapshot};
use libfuzzer_sys::fuzz_target;
use std::time::SystemTime;

const RESOURCE: &str = "//run.googleapis.com/projects/fuzz-project/locations/l/services/s";

fuzz_target!(|bytes: &[u8]| {
    let Ok(policy) = model::Policy::from_json(bytes) else {
        return;
    };
    let mut snapshot = Snapshot::new(
        Catalogue::predefined(),
        vec![ProjectRef {
            id: "fuzz-project".into(),
            number: "1".into(),
        }],
    );
    if snapshot.validate_policy(&policy).is_ok() {
        snapshot
            .set_policy(RESOURCE, &policy)
            .expect("a validated policy compiles");
        let d = decide(
            &snapshot,
            &Principal::User("a@example.com".into()),
            "run.routes.invoke",
            RESOURCE,
            SystemTime::UNIX_EPOCH,
        );
        let _ = d.render_text();
    }
});
