//! `Condition::parse` on arbitrary UTF-8, then `eval` of whatever parses. Neither may panic or overflow the stack.
#![no_main]

use iam::{Condition, ConditionContext};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime};

fuzz_target!(|s: &str| {
    if let Ok(c) = Condition::parse(s) {
        let ctx = ConditionContext {
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000),
            resource_name: "projects/p/serviceAccounts/a@p.iam.gserviceaccount.com",
            resource_type: "iam.googleapis.com/ServiceAccount",
        };
        let _ = c.eval(&ctx);
    }
});
