//! Audit log entries in the shape of Cloud Audit Logs (PROTOCOL.md §9).
//!
//! A [`LogEntry`] is what `gatehouse logging read` prints and what the chain hashes. The `api` crate builds one with
//! [`EntryBuilder`] for every mutating call and for every denied call.
//!
//! Which log an entry goes to follows Google: a denied call is written to the log of its *category* (Data Access for
//! reads, Admin Activity for writes), not to the Policy log; [`LogKind::Policy`] is only for organization-policy
//! violations.
//!
//! **Nothing secret in entries:** `request` and `response` are copied verbatim. The caller must strip secret payloads
//! (secret versions' `payload.data`, private keys, tokens) before passing them in; this crate cannot tell a secret from
//! any other string.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `@type` of every `protoPayload` this crate writes.
pub const AUDIT_LOG_TYPE: &str = "type.googleapis.com/google.cloud.audit.AuditLog";

/// A Cloud Logging `LogEntry` carrying an audit log. Fields serialize in declaration order, which is part of the
/// chain's canonical form (see [`crate::chain::canonical_bytes`]): do not reorder them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// `projects/PROJECT_ID/logs/cloudaudit.googleapis.com%2Factivity` (or `%2Fdata_access`, `%2Fpolicy`).
    pub log_name: String,
    pub resource: MonitoredResource,
    pub proto_payload: AuditLog,
    pub insert_id: String,
    /// RFC 3339, UTC, always nine fractional digits, so that timestamps sort as strings.
    pub timestamp: String,
    pub receive_timestamp: String,
    pub severity: Severity,
}

/// `{type: "audited_resource", labels: {method, project_id, service}}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MonitoredResource {
    #[serde(rename = "type")]
    pub r#type: String,
    pub labels: BTreeMap<String, String>,
}

/// `google.cloud.audit.AuditLog`. Serializes with `"@type": "type.googleapis.com/google.cloud.audit.AuditLog"` as its
/// first member (the field is implied, not stored; an incoming `@type` is ignored on deserialization).
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditLog {
    pub service_name: String,
    pub method_name: String,
    pub resource_name: String,
    #[serde(default)]
    pub authentication_info: AuthenticationInfo,
    #[serde(default)]
    pub authorization_info: Vec<AuthorizationInfo>,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub request_metadata: RequestMetadata,
    /// The request as received, minus anything secret (the caller's duty).
    #[serde(default)]
    pub request: Option<Value>,
    /// The response as sent, minus anything secret (the caller's duty).
    #[serde(default)]
    pub response: Option<Value>,
}

/// Borrowed mirror of [`AuditLog`] that adds `@type` in front. Keep the fields and attributes in step with `AuditLog`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditLogWire<'a> {
    #[serde(rename = "@type")]
    type_url: &'static str,
    service_name: &'a str,
    method_name: &'a str,
    resource_name: &'a str,
    authentication_info: &'a AuthenticationInfo,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    authorization_info: &'a [AuthorizationInfo],
    status: &'a Status,
    request_metadata: &'a RequestMetadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: &'a Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: &'a Option<Value>,
}

impl Serialize for AuditLog {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        AuditLogWire {
            type_url: AUDIT_LOG_TYPE,
            service_name: &self.service_name,
            method_name: &self.method_name,
            resource_name: &self.resource_name,
            authentication_info: &self.authentication_info,
            authorization_info: &self.authorization_info,
            status: &self.status,
            request_metadata: &self.request_metadata,
            request: &self.request,
            response: &self.response,
        }
        .serialize(serializer)
    }
}

/// Who made the call.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub principal_email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_subject: Option<String>,
}

/// One permission check made while serving the call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    pub permission: String,
    pub granted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_attributes: Option<ResourceAttributes>,
    pub permission_type: PermissionType,
}

/// `{service, name, type}` of the resource a permission was checked on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub service: String,
    pub name: String,
    #[serde(rename = "type")]
    pub r#type: String,
}

/// Audit category of a permission.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PermissionType {
    AdminRead,
    AdminWrite,
    DataRead,
    DataWrite,
}

impl PermissionType {
    /// The log Google writes a call of this category to: only `ADMIN_WRITE` goes to Admin Activity.
    pub fn log_kind(self) -> LogKind {
        match self {
            PermissionType::AdminWrite => LogKind::Activity,
            PermissionType::AdminRead | PermissionType::DataRead | PermissionType::DataWrite => LogKind::DataAccess,
        }
    }
}

/// `google.rpc.Status`: success (`code` 0) serializes as `{}`, a failure as `{code, message}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

fn is_zero(code: &i32) -> bool {
    *code == 0
}

/// Where the call came from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestMetadata {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub caller_ip: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub caller_supplied_user_agent: String,
}

/// `LogSeverity`, ordered by rank (`DEFAULT` lowest, `EMERGENCY` highest).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Default,
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 9] = [
        Severity::Default,
        Severity::Debug,
        Severity::Info,
        Severity::Notice,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
        Severity::Alert,
        Severity::Emergency,
    ];

    /// The name as it appears in JSON and in filters (`ERROR`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Default => "DEFAULT",
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Notice => "NOTICE",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
            Severity::Critical => "CRITICAL",
            Severity::Alert => "ALERT",
            Severity::Emergency => "EMERGENCY",
        }
    }

    /// Google's numeric value: `DEFAULT` 0, `DEBUG` 100, … `EMERGENCY` 800.
    pub fn number(self) -> i32 {
        match self {
            Severity::Default => 0,
            Severity::Debug => 100,
            Severity::Info => 200,
            Severity::Notice => 300,
            Severity::Warning => 400,
            Severity::Error => 500,
            Severity::Critical => 600,
            Severity::Alert => 700,
            Severity::Emergency => 800,
        }
    }

    /// Parses a name, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which audit log an entry belongs to; decides the `logName` suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogKind {
    /// `cloudaudit.googleapis.com%2Factivity`: Admin Activity, for `ADMIN_WRITE` calls (allowed or denied).
    Activity,
    /// `cloudaudit.googleapis.com%2Fdata_access`: `ADMIN_READ`, `DATA_READ` and `DATA_WRITE` calls (allowed or denied).
    DataAccess,
    /// `cloudaudit.googleapis.com%2Fpolicy`: organization-policy violations only.
    Policy,
}

impl LogKind {
    /// The URL-encoded log ID, e.g. `cloudaudit.googleapis.com%2Factivity`.
    pub fn log_id(self) -> &'static str {
        match self {
            LogKind::Activity => "cloudaudit.googleapis.com%2Factivity",
            LogKind::DataAccess => "cloudaudit.googleapis.com%2Fdata_access",
            LogKind::Policy => "cloudaudit.googleapis.com%2Fpolicy",
        }
    }

    /// `projects/PROJECT_ID/logs/LOG_ID`.
    pub fn log_name(self, project_id: &str) -> String {
        format!("projects/{project_id}/logs/{}", self.log_id())
    }
}

/// Builds one [`LogEntry`]; used by the API handlers.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use audit::{EntryBuilder, PermissionType, new_insert_id};
/// let entry = EntryBuilder::new(
///     "my-project",
///     "secretmanager.googleapis.com",
///     "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion",
///     "projects/my-project/secrets/db/versions/latest",
///     UNIX_EPOCH + Duration::from_secs(1_800_000_000),
/// )
/// .principal("alice@example.com")
/// .caller("10.0.0.7", "python-requests/2.32")
/// .authorization("projects/my-project/secrets/db", "secretmanager.versions.access", false, PermissionType::DataRead)
/// .status(7, "Permission 'secretmanager.versions.access' denied")
/// .build(new_insert_id(42));
/// assert_eq!(entry.severity, audit::Severity::Error);
/// assert!(entry.log_name.ends_with("%2Fdata_access"));
/// ```
#[derive(Clone, Debug)]
pub struct EntryBuilder {
    project_id: String,
    audit: AuditLog,
    now: SystemTime,
    received: Option<SystemTime>,
    kind: Option<LogKind>,
}

impl EntryBuilder {
    /// Starts an entry for `method_name` of `service_name` acting on `resource_name`, at `now`.
    pub fn new(
        project_id: impl Into<String>,
        service_name: impl Into<String>,
        method_name: impl Into<String>,
        resource_name: impl Into<String>,
        now: SystemTime,
    ) -> EntryBuilder {
        EntryBuilder {
            project_id: project_id.into(),
            audit: AuditLog {
                service_name: service_name.into(),
                method_name: method_name.into(),
                resource_name: resource_name.into(),
                authentication_info: AuthenticationInfo::default(),
                authorization_info: Vec::new(),
                status: Status::default(),
                request_metadata: RequestMetadata::default(),
                request: None,
                response: None,
            },
            now,
            received: None,
            kind: None,
        }
    }

    /// The authenticated caller (`authenticationInfo.principalEmail`); empty means unauthenticated and is omitted.
    pub fn principal(mut self, email: impl Into<String>) -> Self {
        self.audit.authentication_info.principal_email = email.into();
        self
    }

    /// `authenticationInfo.principalSubject`, for callers without an email (e.g. workload identities).
    pub fn principal_subject(mut self, subject: impl Into<String>) -> Self {
        self.audit.authentication_info.principal_subject = Some(subject.into());
        self
    }

    /// `requestMetadata.callerIp` and `callerSuppliedUserAgent`.
    pub fn caller(mut self, ip: impl Into<String>, user_agent: impl Into<String>) -> Self {
        self.audit.request_metadata.caller_ip = ip.into();
        self.audit.request_metadata.caller_supplied_user_agent = user_agent.into();
        self
    }

    /// Records one permission check. Call once per check, in the order they were made.
    pub fn authorization(
        mut self,
        resource: impl Into<String>,
        permission: impl Into<String>,
        granted: bool,
        permission_type: PermissionType,
    ) -> Self {
        self.audit.authorization_info.push(AuthorizationInfo {
            resource: resource.into(),
            permission: permission.into(),
            granted,
            resource_attributes: None,
            permission_type,
        });
        self
    }

    /// Attaches `resourceAttributes` to the most recent [`authorization`](Self::authorization); does nothing if
    /// there is none.
    pub fn resource_attributes(
        mut self,
        service: impl Into<String>,
        name: impl Into<String>,
        r#type: impl Into<String>,
    ) -> Self {
        if let Some(last) = self.audit.authorization_info.last_mut() {
            last.resource_attributes =
                Some(ResourceAttributes { service: service.into(), name: name.into(), r#type: r#type.into() });
        }
        self
    }

    /// The outcome as a `google.rpc.Code` (0 = OK) and message. A denied call must pass `7` (`PERMISSION_DENIED`) or
    /// `16` (`UNAUTHENTICATED`): the severity is derived from this code.
    pub fn status(mut self, code: i32, message: impl Into<String>) -> Self {
        self.audit.status = Status { code, message: message.into() };
        self
    }

    /// The request body. **Must not contain secrets**: redact payloads before calling.
    pub fn request(mut self, request: Value) -> Self {
        self.audit.request = Some(request);
        self
    }

    /// The response body. **Must not contain secrets**: never pass an `AccessSecretVersion` response unredacted.
    pub fn response(mut self, response: Value) -> Self {
        self.audit.response = Some(response);
        self
    }

    /// Chooses the log explicitly. Without it the log follows the recorded permission checks: Admin Activity if any
    /// is `ADMIN_WRITE`, otherwise Data Access if there is any check, otherwise Admin Activity (the entry is for a
    /// mutating call that checked nothing).
    pub fn kind(mut self, kind: LogKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// When the entry was received, if not `now` (defaults to `now`).
    pub fn received(mut self, at: SystemTime) -> Self {
        self.received = Some(at);
        self
    }

    /// Finishes the entry. Severity: `ERROR` when the status code is not 0; otherwise `NOTICE` for Admin Activity and
    /// Policy entries and `INFO` for Data Access entries.
    pub fn build(self, insert_id: String) -> LogEntry {
        let kind = self.kind.unwrap_or_else(|| {
            let types = || self.audit.authorization_info.iter().map(|a| a.permission_type);
            if types().any(|t| t.log_kind() == LogKind::Activity) {
                LogKind::Activity
            } else if types().next().is_some() {
                LogKind::DataAccess
            } else {
                LogKind::Activity
            }
        });
        let severity = if self.audit.status.code != 0 {
            Severity::Error
        } else {
            match kind {
                LogKind::Activity | LogKind::Policy => Severity::Notice,
                LogKind::DataAccess => Severity::Info,
            }
        };
        let labels = BTreeMap::from([
            ("method".to_owned(), self.audit.method_name.clone()),
            ("project_id".to_owned(), self.project_id.clone()),
            ("service".to_owned(), self.audit.service_name.clone()),
        ]);
        LogEntry {
            log_name: kind.log_name(&self.project_id),
            resource: MonitoredResource { r#type: "audited_resource".to_owned(), labels },
            proto_payload: self.audit,
            insert_id,
            timestamp: format_timestamp(self.now),
            receive_timestamp: format_timestamp(self.received.unwrap_or(self.now)),
            severity,
        }
    }
}

/// A short lowercase alphanumeric insert ID like Google's (`j5g83weee2ya`): the caller's random `u64` in base 36,
/// always 12 characters. Randomness is the caller's (this crate is pure).
pub fn new_insert_id(random: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut n = random;
    let mut out = [b'0'; 12];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    // 36^12 < 2^64: the top bits left in `n` are dropped, which keeps the length fixed.
    out.iter().map(|&b| b as char).collect()
}

/// Formats a time as RFC 3339 in UTC with exactly nine fractional digits (`2026-11-28T18:28:36.123456789Z`). Fixed
/// width means string order is time order, which the filter's `timestamp>=` relies on. Times outside years 0–9999 are
/// clamped to the nearest representable one.
pub fn format_timestamp(t: SystemTime) -> String {
    // Seconds of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z relative to the Unix epoch.
    const MIN_SECS: i128 = -62_167_219_200;
    const MAX_SECS: i128 = 253_402_300_799;
    let nanos: i128 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    let nanos = nanos.clamp(MIN_SECS * 1_000_000_000, MAX_SECS * 1_000_000_000 + 999_999_999);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|dt| dt.format(&format).ok())
        // INVARIANT: the clamp above keeps `nanos` inside the range `time` accepts and formats with 4-digit years.
        .unwrap_or_else(|| "1970-01-01T00:00:00.000000000Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn insert_ids_are_twelve_base36_chars() {
        assert_eq!(new_insert_id(0), "000000000000");
        assert_eq!(new_insert_id(35), "00000000000z");
        assert_eq!(new_insert_id(36), "000000000010");
        for r in [1u64, 12345, u64::MAX, 0xdead_beef_cafe_f00d] {
            let id = new_insert_id(r);
            assert_eq!(id.len(), 12);
            assert!(id.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()), "{id}");
        }
        assert_ne!(new_insert_id(1), new_insert_id(2));
    }

    #[test]
    fn timestamps_have_nine_fraction_digits() {
        let t = UNIX_EPOCH + Duration::new(1_795_890_516, 123_456_789);
        assert_eq!(format_timestamp(t), "2026-11-28T18:28:36.123456789Z");
        assert_eq!(format_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format_timestamp(UNIX_EPOCH - Duration::from_millis(1)), "1969-12-31T23:59:59.999000000Z");
        assert_eq!(format_timestamp(UNIX_EPOCH + Duration::from_secs(u64::MAX / 2)), "9999-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn severities_rank_and_parse() {
        assert!(Severity::Default < Severity::Debug && Severity::Error < Severity::Critical);
        assert_eq!(Severity::from_name("warning"), Some(Severity::Warning));
        assert_eq!(Severity::from_name("WARN"), None);
        assert_eq!(Severity::Alert.number(), 700);
    }
}
