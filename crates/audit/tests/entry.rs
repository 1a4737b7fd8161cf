//! The JSON shape of built entries (PROTOCOL.md §9) and the log / severity rules.

use std::time::{Duration, UNIX_EPOCH};

use audit::{new_insert_id, EntryBuilder, LogEntry, LogKind, PermissionType, Severity};
use serde_json::json;

const ACCESS: &str = "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion";
const ADD: &str = "google.cloud.secretmanager.v1.SecretManagerService.AddSecretVersion";

fn at() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::new(1_795_890_516, 123_456_789)
}

fn builder(method: &str, resource: &str) -> EntryBuilder {
    EntryBuilder::new("victim-project", "secretmanager.googleapis.com", method, resource, at())
}

#[test]
fn successful_write_goes_to_activity_with_notice_and_empty_status() {
    let entry = builder(ADD, "projects/victim-project/secrets/X")
        .principal("alice@example.com")
        .caller("7.7.7.7", "gcloud/500.0.0")
        .authorization(
            "projects/victim-project/secrets/X",
            "secretmanager.versions.add",
            true,
            PermissionType::AdminWrite,
        )
        .resource_attributes(
            "secretmanager.googleapis.com",
            "projects/victim-project/secrets/X",
            "secretmanager.googleapis.com/Secret",
        )
        .request(json!({"parent": "projects/victim-project/secrets/X"}))
        .response(json!({"name": "projects/victim-project/secrets/X/versions/1", "state": "ENABLED"}))
        .build("j5g83weee2ya".to_owned());

    let expected = json!({
        "logName": "projects/victim-project/logs/cloudaudit.googleapis.com%2Factivity",
        "resource": {"type": "audited_resource",
                     "labels": {"method": ADD, "project_id": "victim-project", "service": "secretmanager.googleapis.com"}},
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "serviceName": "secretmanager.googleapis.com",
            "methodName": ADD,
            "resourceName": "projects/victim-project/secrets/X",
            "authenticationInfo": {"principalEmail": "alice@example.com"},
            "authorizationInfo": [{
                "resource": "projects/victim-project/secrets/X",
                "permission": "secretmanager.versions.add",
                "granted": true,
                "resourceAttributes": {"service": "secretmanager.googleapis.com",
                                       "name": "projects/victim-project/secrets/X",
                                       "type": "secretmanager.googleapis.com/Secret"},
                "permissionType": "ADMIN_WRITE"}],
            "status": {},
            "requestMetadata": {"callerIp": "7.7.7.7", "callerSuppliedUserAgent": "gcloud/500.0.0"},
            "request": {"parent": "projects/victim-project/secrets/X"},
            "response": {"name": "projects/victim-project/secrets/X/versions/1", "state": "ENABLED"}
        },
        "insertId": "j5g83weee2ya",
        "timestamp": "2026-11-28T18:28:36.123456789Z",
        "receiveTimestamp": "2026-11-28T18:28:36.123456789Z",
        "severity": "NOTICE"
    });
    let value = serde_json::to_value(&entry).unwrap();
    assert_eq!(value, expected);
    // "@type" comes first in protoPayload, and LogEntry members keep their declared order.
    let payload_keys: Vec<_> = value["protoPayload"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(payload_keys[0], "@type");
    let keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["logName", "resource", "protoPayload", "insertId", "timestamp", "receiveTimestamp", "severity"]);
    assert_eq!(entry.severity, Severity::Notice);
}

#[test]
fn denied_read_goes_to_data_access_with_error_and_code_message() {
    let entry = builder(ACCESS, "projects/victim-project/secrets/X/versions/latest")
        .principal("mallory@example.com")
        .caller("10.0.0.9", "python-requests")
        .authorization(
            "projects/victim-project/secrets/X/versions/latest",
            "secretmanager.versions.access",
            false,
            PermissionType::DataRead,
        )
        .status(7, "Permission 'secretmanager.versions.access' denied")
        .build(new_insert_id(99));
    let v = serde_json::to_value(&entry).unwrap();
    assert_eq!(v["logName"], "projects/victim-project/logs/cloudaudit.googleapis.com%2Fdata_access");
    assert_eq!(v["severity"], "ERROR");
    assert_eq!(
        v["protoPayload"]["status"],
        json!({"code": 7, "message": "Permission 'secretmanager.versions.access' denied"})
    );
    assert_eq!(v["protoPayload"]["authorizationInfo"][0]["granted"], false);
    assert_eq!(v["protoPayload"]["authorizationInfo"][0]["permissionType"], "DATA_READ");
    // No request/response given: the members are omitted, not null.
    assert!(v["protoPayload"].get("request").is_none());
    assert!(v["protoPayload"].get("response").is_none());
    assert_eq!(v["insertId"].as_str().unwrap().len(), 12);
}

#[test]
fn denied_write_stays_in_activity() {
    let entry = builder(ADD, "projects/victim-project/secrets/X")
        .authorization(
            "projects/victim-project/secrets/X",
            "secretmanager.versions.add",
            false,
            PermissionType::AdminWrite,
        )
        .status(7, "denied")
        .build(new_insert_id(1));
    assert!(entry.log_name.ends_with("/logs/cloudaudit.googleapis.com%2Factivity"));
    assert_eq!(entry.severity, Severity::Error);
}

#[test]
fn log_and_severity_rules() {
    let cases = [
        // (permission types recorded, explicit kind, status code) -> (log suffix, severity)
        (vec![PermissionType::DataRead], None, 0, "%2Fdata_access", Severity::Info),
        (vec![PermissionType::AdminRead], None, 0, "%2Fdata_access", Severity::Info),
        (vec![PermissionType::DataWrite], None, 0, "%2Fdata_access", Severity::Info),
        (vec![PermissionType::AdminWrite], None, 0, "%2Factivity", Severity::Notice),
        (vec![PermissionType::AdminRead, PermissionType::AdminWrite], None, 0, "%2Factivity", Severity::Notice),
        (vec![], None, 0, "%2Factivity", Severity::Notice),
        (vec![PermissionType::AdminWrite], None, 9, "%2Factivity", Severity::Error),
        (vec![PermissionType::DataRead], Some(LogKind::Activity), 0, "%2Factivity", Severity::Notice),
        (vec![PermissionType::AdminWrite], Some(LogKind::DataAccess), 0, "%2Fdata_access", Severity::Info),
        (vec![PermissionType::AdminWrite], Some(LogKind::Policy), 7, "%2Fpolicy", Severity::Error),
        (vec![PermissionType::AdminWrite], Some(LogKind::Policy), 0, "%2Fpolicy", Severity::Notice),
    ];
    for (types, kind, code, suffix, severity) in cases {
        let mut b = builder(ADD, "projects/victim-project/secrets/X");
        for t in &types {
            b = b.authorization("r", "p", code == 0, *t);
        }
        if let Some(kind) = kind {
            b = b.kind(kind);
        }
        if code != 0 {
            b = b.status(code, "failed");
        }
        let e = b.build(new_insert_id(5));
        let want = format!("projects/victim-project/logs/cloudaudit.googleapis.com{suffix}");
        assert_eq!(e.log_name, want, "{types:?} {kind:?} {code}");
        assert_eq!(e.severity, severity, "{types:?} {kind:?} {code}");
    }
}

#[test]
fn unauthenticated_caller_omits_principal_email_and_subject_is_kept() {
    let e = builder(ACCESS, "r").build(new_insert_id(3));
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["protoPayload"]["authenticationInfo"], json!({}));
    assert!(v["protoPayload"].get("authorizationInfo").is_none());

    let e = builder(ACCESS, "r").principal_subject("principal://iam.googleapis.com/x").build(new_insert_id(3));
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(
        v["protoPayload"]["authenticationInfo"],
        json!({"principalSubject": "principal://iam.googleapis.com/x"})
    );
}

#[test]
fn receive_timestamp_can_differ() {
    let e = builder(ACCESS, "r").received(at() + Duration::from_millis(5)).build(new_insert_id(3));
    assert_eq!(e.timestamp, "2026-11-28T18:28:36.123456789Z");
    assert_eq!(e.receive_timestamp, "2026-11-28T18:28:36.128456789Z");
}

#[test]
fn entries_round_trip_through_json() {
    let e = builder(ACCESS, "projects/victim-project/secrets/X/versions/1")
        .principal("a@b.c")
        .caller("1.2.3.4", "ua")
        .authorization("x", "secretmanager.versions.access", true, PermissionType::DataRead)
        .request(json!({"name": "x"}))
        .build(new_insert_id(77));
    let text = serde_json::to_string(&e).unwrap();
    let back: LogEntry = serde_json::from_str(&text).unwrap();
    assert_eq!(back, e);
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
}
