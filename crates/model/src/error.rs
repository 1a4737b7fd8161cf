//! The error every Google-shaped API answers with: `{"error":{"code":N,"message":"…","status":"CODE"}}`.
//!
//! Each error carries who caused it ([`Cause`]); the cause decides whether a status is plausible:
//! caller → 4xx, upstream → 502/503/504, internal → 500. A 500 is always a bug.

use serde::Serialize;
use serde_json::{json, Value};

/// Canonical `google.rpc.Code` values with their HTTP mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    InvalidArgument,
    FailedPrecondition,
    OutOfRange,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    Aborted,
    ResourceExhausted,
    Unimplemented,
    Unavailable,
    DeadlineExceeded,
    Internal,
}

impl Code {
    pub fn http_status(self) -> u16 {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
            Code::Unauthenticated => 401,
            Code::PermissionDenied => 403,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::ResourceExhausted => 429,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::DeadlineExceeded => 504,
            Code::Internal => 500,
        }
    }

    /// The `google.rpc.Code` number, as audit entries carry it in `status.code`.
    pub fn rpc_code(self) -> i32 {
        match self {
            Code::InvalidArgument => 3,
            Code::DeadlineExceeded => 4,
            Code::NotFound => 5,
            Code::AlreadyExists => 6,
            Code::PermissionDenied => 7,
            Code::ResourceExhausted => 8,
            Code::FailedPrecondition => 9,
            Code::Aborted => 10,
            Code::OutOfRange => 11,
            Code::Unimplemented => 12,
            Code::Internal => 13,
            Code::Unavailable => 14,
            Code::Unauthenticated => 16,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::Aborted => "ABORTED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Unavailable => "UNAVAILABLE",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::Internal => "INTERNAL",
        }
    }

    fn cause(self) -> Cause {
        match self {
            Code::Internal => Cause::Internal,
            Code::Unavailable | Code::DeadlineExceeded => Cause::Upstream,
            _ => Cause::Caller,
        }
    }
}

/// Who caused an error (Pingora's habit): it decides the class of status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Caller,
    Upstream,
    Internal,
}

/// An error as a Google API returns it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} {}: {message}", code.http_status(), code.as_str())]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// `error.details[]`, e.g. `google.rpc.ErrorInfo`.
    pub details: Vec<Value>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), details: Vec::new() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(Code::AlreadyExists, message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }

    /// Google's generic IAM denial: `Permission 'P' denied on resource 'R' (or it may not exist).`
    pub fn permission_denied(permission: &str, resource: &str) -> Self {
        Self::new(
            Code::PermissionDenied,
            format!("Permission '{permission}' denied on resource '{resource}' (or it may not exist)."),
        )
        .with_detail(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "IAM_PERMISSION_DENIED",
            "domain": "iam.googleapis.com",
            "metadata": {"permission": permission, "resource": resource},
        }))
    }

    /// Google's answer to `setIamPolicy` with a stale etag.
    pub fn concurrent_policy_change() -> Self {
        Self::new(
            Code::Aborted,
            "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.",
        )
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.details.push(detail);
        self
    }

    pub fn cause(&self) -> Cause {
        self.code.cause()
    }

    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// The JSON envelope Google's REST APIs answer with.
    pub fn to_envelope(&self) -> Value {
        let mut error = json!({
            "code": self.code.http_status(),
            "message": self.message,
            "status": self.code.as_str(),
        });
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details.clone());
        }
        json!({ "error": error })
    }

    /// Reads an envelope back (the CLI's side of the wire). Returns `None` when the body is not one.
    pub fn from_envelope(body: &Value) -> Option<Self> {
        let error = body.get("error")?;
        let status = error.get("status")?.as_str()?;
        let code = Code::from_name(status)?;
        let message = error.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
        let details = error.get("details").and_then(Value::as_array).cloned().unwrap_or_default();
        Some(ApiError { code, message, details })
    }
}

impl Code {
    pub fn from_name(name: &str) -> Option<Code> {
        const ALL: [Code; 13] = [
            Code::InvalidArgument,
            Code::FailedPrecondition,
            Code::OutOfRange,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::NotFound,
            Code::AlreadyExists,
            Code::Aborted,
            Code::ResourceExhausted,
            Code::Unimplemented,
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Internal,
        ];
        ALL.into_iter().find(|c| c.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips() {
        let e = ApiError::permission_denied("resourcemanager.projects.setIamPolicy", "projects/p");
        let env = e.to_envelope();
        assert_eq!(env["error"]["code"], 403);
        assert_eq!(env["error"]["status"], "PERMISSION_DENIED");
        assert_eq!(ApiError::from_envelope(&env), Some(e));
    }

    #[test]
    fn statuses_match_causes() {
        assert_eq!(ApiError::concurrent_policy_change().http_status(), 409);
        assert_eq!(ApiError::internal("x").cause(), Cause::Internal);
        assert_eq!(ApiError::invalid("x").cause(), Cause::Caller);
    }
}
