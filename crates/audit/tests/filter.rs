//! The Logging query language subset: a table of (filter, expected match) against one entry, a table of rejected
//! filters with their messages, and property tests that parsing and matching never panic.

use audit::{Filter, FilterError};
use proptest::prelude::*;
use serde_json::{json, Value};

fn entry() -> Value {
    json!({
        "logName": "projects/p1/logs/cloudaudit.googleapis.com%2Fdata_access",
        "resource": {"type": "audited_resource",
                     "labels": {"method": "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion",
                                "project_id": "p1", "service": "secretmanager.googleapis.com"}},
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "serviceName": "secretmanager.googleapis.com",
            "methodName": "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion",
            "resourceName": "projects/p1/secrets/db-pass/versions/latest",
            "authenticationInfo": {"principalEmail": "Alice@Example.com"},
            "authorizationInfo": [
                {"permission": "secretmanager.versions.access", "granted": false, "permissionType": "DATA_READ"},
                {"permission": "secretmanager.secrets.get", "granted": true, "permissionType": "ADMIN_READ"}
            ],
            "status": {"code": 7, "message": "Permission \"x\" denied"},
            "requestMetadata": {"callerIp": "10.0.0.7", "callerSuppliedUserAgent": "python-requests/2.32 (tab\t)"},
            "request": {"name": "a \\ b"}
        },
        "insertId": "j5g83weee2ya",
        "timestamp": "2026-11-28T18:28:36.123456789Z",
        "severity": "ERROR",
        "labels": {"weird key": "v", "num": 42, "nested": [[1, 2], [3]], "nothing": null, "é": "accent"}
    })
}

#[track_caller]
fn check(cases: &[(&str, bool)]) {
    let entry = entry();
    for (filter, expected) in cases {
        let parsed = Filter::parse(filter).unwrap_or_else(|e| panic!("`{filter}` should parse: {e}"));
        assert_eq!(parsed.matches(&entry), *expected, "filter `{filter}`");
    }
}

#[test]
fn empty_filters_match_everything() {
    check(&[("", true), ("   \n\t", true), ("-- only a comment", true)]);
    assert!(Filter::parse("").unwrap().matches(&json!(null)));
}

#[test]
fn equality_and_inequality() {
    check(&[
        ("severity=ERROR", true),
        ("severity = \"ERROR\"", true),
        ("severity=INFO", false),
        ("severity!=ERROR", false),
        ("severity!=INFO", true),
        ("protoPayload.methodName=\"google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion\"", true),
        ("protoPayload.methodName=AccessSecretVersion", false),
        // `=` is case-sensitive.
        ("protoPayload.authenticationInfo.principalEmail=\"Alice@Example.com\"", true),
        ("protoPayload.authenticationInfo.principalEmail=Alice@Example.com", true),
        ("protoPayload.authenticationInfo.principalEmail=\"alice@example.com\"", false),
        ("resource.labels.project_id=p1", true),
        ("resource.labels.project_id!=p1", false),
        ("resource.labels.project_id != \"p2\"", true),
        ("logName=\"projects/p1/logs/cloudaudit.googleapis.com%2Fdata_access\"", true),
        ("insertId=j5g83weee2ya", true),
        ("labels.é=accent", true),
    ]);
}

#[test]
fn has_operator_is_case_insensitive_substring_and_star_means_exists() {
    check(&[
        ("protoPayload.methodName:accesssecret", true),
        ("protoPayload.methodName:\"AccessSecretVersion\"", true),
        ("protoPayload.methodName:CreateSecret", false),
        ("protoPayload.authenticationInfo.principalEmail:alice", true),
        ("logName:data_access", true),
        ("logName:activity", false),
        ("severity:err", true),
        ("protoPayload.status.code:7", true),
        ("protoPayload.request:*", true),
        ("protoPayload.status:*", true),
        ("severity:*", true),
        ("protoPayload.response:*", false),
        ("labels.nothing:*", false),
        ("protoPayload.authorizationInfo.permission:*", true),
        ("protoPayload.authorizationInfo.resourceAttributes:*", false),
        // Quoted "*" is a literal star, not "exists".
        ("severity:\"*\"", false),
    ]);
}

#[test]
fn ordering_operators() {
    check(&[
        ("protoPayload.status.code=7", true),
        ("protoPayload.status.code=\"7\"", true),
        ("protoPayload.status.code=7.0", true),
        ("protoPayload.status.code!=7", false),
        ("protoPayload.status.code>5", true),
        ("protoPayload.status.code>7", false),
        ("protoPayload.status.code>=7", true),
        ("protoPayload.status.code>=8", false),
        ("protoPayload.status.code<7", false),
        ("protoPayload.status.code<=7", true),
        ("protoPayload.status.code<10", true),
        ("protoPayload.status.code>-1", true),
        ("protoPayload.status.code>abc", false),
        ("labels.num=42", true),
        ("labels.num>41.5", true),
        ("labels.num:4", true),
        // Strings compare lexicographically.
        ("resource.labels.project_id>p0", true),
        ("resource.labels.project_id<p0", false),
        ("resource.labels.project_id<=p1", true),
        ("resource.labels.project_id>=p10", false),
        ("protoPayload.serviceName<\"t\"", true),
    ]);
}

#[test]
fn timestamps_compare_as_instants_or_strings() {
    check(&[
        ("timestamp>=\"2026-11-28T18:28:36Z\"", true),
        ("timestamp>\"2026-11-28T18:28:36Z\"", true),
        ("timestamp<\"2026-11-28T18:28:36Z\"", false),
        ("timestamp>=\"2026-11-28T18:28:37Z\"", false),
        ("timestamp<=\"2026-11-28T18:28:36.123456789Z\"", true),
        ("timestamp=\"2026-11-28T18:28:36.123456789Z\"", true),
        ("timestamp>\"2026-11-28T19:28:36+01:00\"", true),
        ("timestamp<\"2026-11-28T19:28:36.2+01:00\"", true),
        // Not RFC 3339: plain string order, which still works for date prefixes.
        ("timestamp>=\"2026-11-28\"", true),
        ("timestamp<\"2026-11-29\"", true),
        ("timestamp>=2026-11-29", false),
    ]);
}

#[test]
fn severity_compares_by_rank() {
    check(&[
        ("severity>=ERROR", true),
        ("severity>=WARNING", true),
        ("severity>WARNING", true),
        ("severity>ERROR", false),
        ("severity>=CRITICAL", false),
        ("severity<=ERROR", true),
        ("severity<NOTICE", false),
        ("severity<EMERGENCY", true),
        ("severity>DEFAULT", true),
        ("severity>=error", true),
        ("severity=error", true),
        ("severity>=400", true),
        ("severity>=600", false),
        ("severity=500", true),
    ]);
    // By rank, not alphabetically: "INFO" > "ERROR" as strings, but INFO < ERROR as severities.
    let info = json!({"severity": "INFO"});
    assert!(!Filter::parse("severity>=ERROR").unwrap().matches(&info));
    assert!(Filter::parse("severity<ERROR").unwrap().matches(&info));
    assert!(Filter::parse("severity>DEBUG").unwrap().matches(&info));
    // Other fields holding severity-like words still compare as strings.
    let other = json!({"level": "INFO"});
    assert!(Filter::parse("level>=ERROR").unwrap().matches(&other));
}

#[test]
fn paths_through_arrays_match_any_element() {
    check(&[
        ("protoPayload.authorizationInfo.permission=\"secretmanager.secrets.get\"", true),
        ("protoPayload.authorizationInfo.permission=\"secretmanager.versions.access\"", true),
        ("protoPayload.authorizationInfo.permission=\"secretmanager.versions.add\"", false),
        // `!=` is `NOT =`: false when any element equals.
        ("protoPayload.authorizationInfo.permission!=\"secretmanager.secrets.get\"", false),
        ("protoPayload.authorizationInfo.permission!=\"secretmanager.versions.add\"", true),
        ("protoPayload.authorizationInfo.granted=false", true),
        ("protoPayload.authorizationInfo.granted=true", true),
        ("protoPayload.authorizationInfo.granted=maybe", false),
        ("protoPayload.authorizationInfo.granted>false", false),
        ("protoPayload.authorizationInfo.permissionType=ADMIN_WRITE", false),
        ("protoPayload.authorizationInfo.permissionType:read", true),
        ("labels.nested=3", true),
        ("labels.nested>2", true),
        ("labels.nested>5", false),
    ]);
}

#[test]
fn missing_fields_never_match_except_not_equal() {
    check(&[
        ("protoPayload.nope=\"x\"", false),
        ("protoPayload.nope!=\"x\"", true),
        ("protoPayload.nope>a", false),
        ("protoPayload.nope<a", false),
        ("protoPayload.nope:\"\"", false),
        ("nope.deeper.still=1", false),
        ("labels.nothing=null", false),
        ("labels.nothing!=null", true),
        // An object is not a scalar: it equals nothing.
        ("protoPayload.status=7", false),
        ("-protoPayload.nope=x", true),
    ]);
}

#[test]
fn quoted_paths_and_escapes() {
    check(&[
        ("protoPayload.\"@type\"=\"type.googleapis.com/google.cloud.audit.AuditLog\"", true),
        ("protoPayload.@type:AuditLog", true),
        ("labels.\"weird key\"=v", true),
        ("\"labels\".\"weird key\"=v", true),
        ("protoPayload.status.message=\"Permission \\\"x\\\" denied\"", true),
        ("protoPayload.request.name=\"a \\\\ b\"", true),
        ("protoPayload.requestMetadata.callerSuppliedUserAgent:\"\\t)\"", true),
        ("protoPayload.authenticationInfo.principalEmail=\"\\u0041lice@Example.com\"", true),
        ("protoPayload.resourceName=\"projects\\/p1\\/secrets\\/db-pass\\/versions\\/latest\"", true),
    ]);
}

#[test]
fn boolean_operators() {
    check(&[
        ("severity=ERROR AND resource.labels.project_id=p1", true),
        ("severity=ERROR AND resource.labels.project_id=p2", false),
        ("severity=INFO OR resource.labels.project_id=p1", true),
        ("severity=INFO OR resource.labels.project_id=p2", false),
        ("NOT severity=INFO", true),
        ("NOT severity=ERROR", false),
        ("NOT NOT severity=ERROR", true),
        ("-severity=ERROR", false),
        ("-severity=INFO", true),
        ("- severity=INFO", true),
        // Juxtaposition is AND.
        ("severity=ERROR resource.labels.project_id=p1", true),
        ("severity=ERROR resource.labels.project_id=p2", false),
        ("severity=ERROR\nresource.labels.project_id=p1 -- a comment\nlogName:data_access", true),
        ("(severity=ERROR)", true),
        ("((severity=ERROR))", true),
        ("NOT (severity=INFO OR severity=ERROR)", false),
        ("-(severity=INFO)", true),
        ("NOT(severity=INFO)", true),
        // Words that merely start with a keyword are field names.
        ("NOTE:*", false),
        ("ORDER:* OR severity=ERROR", true),
    ]);
}

#[test]
fn or_binds_tighter_than_and() {
    check(&[
        // Google: a AND (b OR c). C-style ((a AND b) OR c) would be true.
        ("severity=INFO AND resource.labels.project_id=p2 OR resource.labels.project_id=p1", false),
        ("severity=INFO resource.labels.project_id=p2 OR resource.labels.project_id=p1", false),
        // Google: (a OR b) AND c. C-style (a OR (b AND c)) would be true.
        ("resource.labels.project_id=p1 OR severity=INFO AND severity=INFO", false),
        ("resource.labels.project_id=p1 OR severity=INFO severity=INFO", false),
        // Parentheses restore the other reading.
        ("(severity=INFO AND resource.labels.project_id=p2) OR resource.labels.project_id=p1", true),
        // NOT binds tighter than OR: (NOT a) OR b.
        ("NOT severity=ERROR OR resource.labels.project_id=p1", true),
        ("-severity=ERROR OR resource.labels.project_id=p1", true),
        ("NOT severity=ERROR OR resource.labels.project_id=p2", false),
    ]);
}

#[test]
fn rejected_filters_say_where_and_why() {
    let op_list = "(`=`, `!=`, `:`, `<`, `<=`, `>`, `>=`)";
    let cases: Vec<(String, String)> = vec![
        ("severity = ".into(), "invalid filter at column 12: expected a value after `=`".into()),
        ("severity=".into(), "invalid filter at column 10: expected a value after `=`".into()),
        ("a:".into(), "invalid filter at column 3: expected a value after `:`".into()),
        ("a>=)".into(), "invalid filter at column 4: expected a value after `>=`".into()),
        ("a=AND".into(), "invalid filter at column 3: expected a value after `=`".into()),
        (
            "severity".into(),
            format!(
                "invalid filter at column 9: expected a comparison operator {op_list} after `severity`; \
                 searching all fields for a bare word is not supported"
            ),
        ),
        (
            "severity=ERROR and x=y".into(),
            format!(
                "invalid filter at column 20: expected a comparison operator {op_list} after `and`; \
                 searching all fields for a bare word is not supported"
            ),
        ),
        ("severity=\"ERROR".into(), "invalid filter at column 10: unterminated string (missing closing `\"`)".into()),
        ("a=\"x\\".into(), "invalid filter at column 3: unterminated string (missing closing `\"`)".into()),
        ("severity=\"\\q\"".into(), "invalid filter at column 11: unknown escape `\\q` in string".into()),
        (
            "a=\"\\u12\"".into(),
            "invalid filter at column 4: invalid `\\u` escape: expected four hex digits naming a character".into(),
        ),
        (
            "a=\"\\ud800\"".into(),
            "invalid filter at column 4: invalid `\\u` escape: expected four hex digits naming a character".into(),
        ),
        ("(severity=ERROR".into(), "invalid filter at column 16: expected `)` to close the `(` at column 1".into()),
        ("a=b (c=d".into(), "invalid filter at column 9: expected `)` to close the `(` at column 5".into()),
        ("severity=ERROR)".into(), "invalid filter at column 15: unexpected `)`".into()),
        (")".into(), "invalid filter at column 1: unexpected `)`".into()),
        ("()".into(), "invalid filter at column 1: empty parentheses".into()),
        ("(".into(), "invalid filter at column 1: expected an expression after `(`".into()),
        ("AND severity=ERROR".into(), "invalid filter at column 1: expected an expression before `AND`".into()),
        ("OR a=b".into(), "invalid filter at column 1: expected an expression before `OR`".into()),
        ("severity=ERROR AND".into(), "invalid filter at column 16: expected an expression after `AND`".into()),
        ("severity=ERROR OR".into(), "invalid filter at column 16: expected an expression after `OR`".into()),
        ("a=b AND OR c=d".into(), "invalid filter at column 5: expected an expression after `AND`".into()),
        ("a=b OR OR c=d".into(), "invalid filter at column 5: expected an expression after `OR`".into()),
        ("(a=b AND)".into(), "invalid filter at column 6: expected an expression after `AND`".into()),
        ("NOT".into(), "invalid filter at column 1: expected an expression after `NOT`".into()),
        ("NOT AND a=b".into(), "invalid filter at column 1: expected an expression after `NOT`".into()),
        ("-".into(), "invalid filter at column 1: expected an expression after `-`".into()),
        ("a.=b".into(), "invalid filter at column 3: expected a field name after `.`".into()),
        ("a.".into(), "invalid filter at column 3: expected a field name after `.`".into()),
        ("a=~\"x\"".into(), "invalid filter at column 2: regular expressions (`=~`, `!~`) are not supported".into()),
        ("a !~ x".into(), "invalid filter at column 3: regular expressions (`=~`, `!~`) are not supported".into()),
        ("= x".into(), "invalid filter at column 1: expected a field name, `(`, `NOT` or `-`, found `=`".into()),
        ("a=b=c".into(), "invalid filter at column 4: expected a field name, `(`, `NOT` or `-`, found `=`".into()),
        ("*".into(), "invalid filter at column 1: expected a field name, `(`, `NOT` or `-`, found `*`".into()),
        // Columns count characters, not bytes.
        ("labels.\"é\"=".into(), "invalid filter at column 12: expected a value after `=`".into()),
        (
            format!("{}a=b", "(".repeat(100)),
            "invalid filter at column 65: expressions are nested more than 64 deep".into(),
        ),
        (
            format!("{}a=b", "NOT ".repeat(100)),
            "invalid filter at column 261: expressions are nested more than 64 deep".into(),
        ),
        ("a".repeat(20_001), "invalid filter: it is 20001 characters long; the limit is 20000".into()),
    ];
    for (filter, message) in cases {
        match Filter::parse(&filter) {
            Ok(f) => panic!("`{filter}` should be rejected, parsed as {f:?}"),
            Err(e) => assert_eq!(e.to_string(), message, "filter `{filter}`"),
        }
    }
    assert_eq!(
        Filter::parse("severity= "),
        Err(FilterError::Syntax { column: 11, message: "expected a value after `=`".into() })
    );
}

#[test]
fn limits_hold_without_overflowing_the_stack() {
    // Exactly at the depth limit is fine.
    let at_limit = format!("{}a=b{}", "(".repeat(64), ")".repeat(64));
    assert!(Filter::parse(&at_limit).unwrap().matches(&json!({"a": "b"})));
    for adversarial in [
        "(".repeat(20_000),
        "NOT ".repeat(5_000),
        "- ".repeat(10_000),
        "-(".repeat(10_000),
        format!("{}a=b", "(".repeat(19_990)),
    ] {
        let result = Filter::parse(&adversarial);
        assert!(matches!(result, Err(FilterError::TooDeep { .. })), "{result:?}");
    }
    // A long flat filter is fine.
    let long = vec!["a=b"; 2_800].join(" OR ");
    assert!(long.len() <= 20_000);
    assert!(Filter::parse(&long).unwrap().matches(&json!({"a": "b"})));
    // A deeply nested entry does not overflow matching either.
    let mut deep = json!("x");
    for _ in 0..10_000 {
        deep = Value::Array(vec![deep]);
    }
    let deep = Value::Object([("a".to_owned(), deep)].into_iter().collect());
    assert!(Filter::parse("a=x").unwrap().matches(&deep));
    std::mem::forget(deep); // dropping a 10,000-deep Value recurses; not the filter's problem.
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[a-zA-Z0-9 :._\"-]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![Just("a".to_owned()), Just("severity".to_owned()), "[a-z@ ]{1,3}"],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn filterish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("AND".to_owned()),
        Just("OR".to_owned()),
        Just("NOT".to_owned()),
        Just("-".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("severity".to_owned()),
        Just("a".to_owned()),
        Just("a.b".to_owned()),
        Just("\"@type\"".to_owned()),
        Just("=".to_owned()),
        Just("!=".to_owned()),
        Just(":".to_owned()),
        Just(">=".to_owned()),
        Just("<".to_owned()),
        Just("*".to_owned()),
        Just("ERROR".to_owned()),
        Just("7".to_owned()),
        Just("\"2026-11-28T18:28:36Z\"".to_owned()),
        "[a-z\"\\\\.:*<>=!()~ -]{0,3}",
    ];
    (prop::collection::vec(token, 0..24), prop::bool::ANY)
        .prop_map(|(tokens, spaced)| tokens.join(if spaced { " " } else { "" }))
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_strings(s in "\\PC{0,200}") {
        let _ = Filter::parse(&s);
    }

    #[test]
    fn parse_and_match_never_panic_on_filter_like_input(f in filterish(), entry in arb_json()) {
        if let Ok(filter) = Filter::parse(&f) {
            let matched = filter.matches(&entry);
            // NOT inverts, whatever the filter (when the wrapped filter is still within the limits).
            if let Ok(negated) = Filter::parse(&format!("NOT ({f})")) {
                if !f.trim().is_empty() && !f.contains("--") {
                    prop_assert_eq!(negated.matches(&entry), !matched, "filter `{}`", f);
                }
            }
        }
    }

    #[test]
    fn not_equal_is_not_equals(path in prop_oneof![Just("a"), Just("a.b"), Just("severity")],
                               value in "[a-zA-Z0-9]{1,4}", entry in arb_json()) {
        let eq = Filter::parse(&format!("{path}=\"{value}\"")).unwrap();
        let ne = Filter::parse(&format!("{path}!=\"{value}\"")).unwrap();
        prop_assert_eq!(ne.matches(&entry), !eq.matches(&entry));
    }
}

#[test]
fn a_bare_value_may_hold_colons_and_single_quotes_delimit_a_value() {
    let entry = serde_json::json!({"bindings": {"members": "user:bob@example.com"}});
    for filter in ["bindings.members:user:bob@example.com", "bindings.members='user:bob@example.com'"] {
        assert!(Filter::parse(filter).unwrap().matches(&entry), "{filter}");
    }
    assert!(!Filter::parse("bindings.members:user:alice@example.com").unwrap().matches(&entry));
    assert_eq!(
        Filter::parse("a='open").unwrap_err().to_string(),
        "invalid filter at column 3: unterminated string (missing closing `'`)"
    );
}
