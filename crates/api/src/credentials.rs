//! IAM Credentials v1 (`:generateIdToken`, `:generateAccessToken`), the issuer's public documents, user-managed
//! service-account keys (refused by `iam.disableServiceAccountKeyCreation`), and key rotation.

use crate::audit_trail::Call;
use crate::auth::{unix_now, Caller};
use crate::http::{Reply, Req};
use crate::service_accounts::{self, ServiceAccount};
use crate::state::{App, Result};
use audit::PermissionType;
use model::{ApiError, Code};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::TokenRow;
use tokens::{IdClaims, TokenKind};

const SERVICE: &str = "iamcredentials.googleapis.com";
/// The constraint every new project enforces.
pub const KEY_CREATION_CONSTRAINT: &str = "constraints/iam.disableServiceAccountKeyCreation";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IdTokenRequest {
    audience: Option<String>,
    /// Google's docs (and google-auth) send `"includeEmail": "true"`, a string, which Google's parser takes.
    #[serde(default, deserialize_with = "crate::json_body::lenient_bool")]
    include_email: bool,
    /// Adds the organization number to the token's claims on Google; projects here belong to no organization, so
    /// there is none to add.
    #[serde(default, deserialize_with = "crate::json_body::lenient_bool")]
    #[allow(dead_code)]
    organization_number_included: bool,
    #[serde(default)]
    delegates: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AccessTokenRequest {
    #[serde(default)]
    scope: Vec<String>,
    lifetime: Option<String>,
    #[serde(default)]
    delegates: Vec<String>,
}

/// The account behind `key`, after checking `permission` on it. IAM Credentials words its denial without naming
/// the resource, as Google's does.
fn account(
    app: &App,
    caller: &Caller,
    project: &str,
    key: &str,
    permission: &str,
    method: &'static str,
) -> Result<(ServiceAccount, Call)> {
    let call = Call::new(SERVICE, method, "");
    let (sa, call) =
        service_accounts::authorized_account(app, caller, project, key, permission, call).map_err(|e| {
            if e.code == Code::PermissionDenied {
                let mut denied = ApiError::permission_denied(permission, &format!("projects/-/serviceAccounts/{key}"));
                denied.message = format!("Permission '{permission}' denied on resource (or it may not exist).");
                denied
            } else {
                e
            }
        })?;
    if sa.disabled {
        return Err(ApiError::failed_precondition(format!(
            "service account `{}` is disabled; enable it with `gatehouse iam service-accounts enable {}`",
            sa.email, sa.email
        )));
    }
    Ok((sa, Call { permission_type: PermissionType::DataRead, ..call }))
}

fn no_delegates(delegates: &[String]) -> Result<()> {
    if delegates.is_empty() {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::Unimplemented,
            "delegation chains (`delegates`) are not supported; impersonate the target account directly",
        ))
    }
}

pub(crate) fn generate_id_token(app: &App, req: &Req, project: &str, key: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let body: IdTokenRequest = req.json()?;
    let (sa, call) = account(app, &caller, project, key, "iam.serviceAccounts.getOpenIdToken", "GenerateIdToken")?;
    no_delegates(&body.delegates)?;
    let audience =
        body.audience.filter(|a| !a.trim().is_empty()).ok_or_else(|| ApiError::invalid("`audience` is required"))?;
    if audience.len() > 2048 {
        return Err(ApiError::invalid("`audience` is longer than 2048 characters"));
    }
    let claims = IdClaims::for_account(
        app.issuer.url(),
        &audience,
        &sa.unique_id,
        body.include_email.then_some(sa.email.as_str()),
        SystemTime::now(),
    );
    let token = app.issuer.sign(&claims)?;
    app.record(
        &caller,
        call.with_request(json!({ "name": sa.name, "audience": audience, "includeEmail": body.include_email })),
    );
    Ok(Reply::Json(json!({ "token": token })))
}

fn parse_lifetime(s: Option<&str>) -> Result<Duration> {
    let Some(s) = s else { return Ok(tokens::ACCESS_TOKEN_LIFETIME) };
    let secs: f64 =
        s.strip_suffix('s').and_then(|n| n.parse().ok()).filter(|n: &f64| n.is_finite() && *n > 0.0).ok_or_else(
            || ApiError::invalid(format!("invalid `lifetime` `{s}`; use seconds with an `s`, e.g. `3600s`")),
        )?;
    let max = tokens::MAX_ACCESS_TOKEN_LIFETIME.as_secs_f64();
    if secs > max {
        return Err(ApiError::invalid(format!(
            "The lifetime of the access token `{s}` is longer than the maximum of {max}s allowed for this project."
        )));
    }
    // Whole seconds, rounded up: a token's `expiresIn` is in seconds, and `0.5s` must not mint one already expired.
    Ok(Duration::from_secs(secs.ceil() as u64))
}

pub(crate) fn generate_access_token(app: &App, req: &Req, project: &str, key: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let body: AccessTokenRequest = req.json()?;
    let (sa, call) = account(app, &caller, project, key, "iam.serviceAccounts.getAccessToken", "GenerateAccessToken")?;
    no_delegates(&body.delegates)?;
    if body.scope.is_empty() {
        return Err(ApiError::invalid("`scope` is required, e.g. `https://www.googleapis.com/auth/cloud-platform`"));
    }
    if body.scope.iter().any(|s| s.trim().is_empty()) {
        return Err(ApiError::invalid(
            "`scope` holds an empty scope; list scopes such as `https://www.googleapis.com/auth/cloud-platform`",
        ));
    }
    let lifetime = parse_lifetime(body.lifetime.as_deref())?;
    let minted = tokens::mint(TokenKind::Access);
    let expires_at = unix_now() + lifetime.as_secs() as i64;
    let principal = format!("serviceAccount:{}", sa.email);
    let entry = call
        .with_request(json!({ "name": sa.name, "scope": body.scope, "lifetime": format!("{}s", lifetime.as_secs()) }))
        .entry(app, &caller, None);
    app.write(false, |tx| {
        tx.put_token(&minted.hash, &TokenRow { kind: TokenKind::Access.as_str().into(), principal, expires_at })?;
        tx.append_audit(&entry)?;
        Ok(())
    })?;
    let expire_time = time::OffsetDateTime::from(UNIX_EPOCH + Duration::from_secs(expires_at as u64))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Ok(Reply::Json(json!({ "accessToken": minted.secret.as_str(), "expireTime": expire_time })))
}

/// `POST …/serviceAccounts/{sa}/keys`: refused. Key files are the classic way service-account credentials leak.
pub(crate) fn create_key(app: &App, req: &Req, project: &str, key: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let call = Call::new("iam.googleapis.com", "google.iam.admin.v1.CreateServiceAccountKey", "");
    let (sa, _) =
        service_accounts::authorized_account(app, &caller, project, key, "iam.serviceAccountKeys.create", call)?;
    let subject = format!("projects/{}", app.project.project_number);
    Err(ApiError::failed_precondition(format!(
        "Key creation is not allowed on this service account. The organization policy constraint `{KEY_CREATION_CONSTRAINT}` \
         is enforced on project `{}`: a key file is a long-lived password for `{}` that works from anywhere until \
         someone finds and deletes it. Attach the account to the service instead (`--service-account`), or impersonate \
         it with `--impersonate-service-account` or `gatehouse exec`.",
        app.project.project_id, sa.email
    ))
    .with_detail(json!({
        "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
        "violations": [{ "type": KEY_CREATION_CONSTRAINT, "subject": subject, "description": "Key creation is not allowed on this service account." }],
    })))
}

/// `GET …/serviceAccounts/{sa}/keys`: no user-managed keys can exist.
pub(crate) fn list_keys(app: &App, req: &Req, project: &str, key: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let call = Call::new("iam.googleapis.com", "google.iam.admin.v1.ListServiceAccountKeys", "").reading();
    service_accounts::authorized_account(app, &caller, project, key, "iam.serviceAccountKeys.list", call)?;
    Ok(Reply::Json(json!({})))
}

/// `POST /gatehouse/v1/keys:rotate`: a new signing key now. Needs `resourcemanager.projects.update` on the project.
pub(crate) fn rotate(app: &App, req: &Req) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = app.project.full_name();
    let call = Call::new("gatehouse.local", "gatehouse.keys.Rotate", format!("projects/{}", app.project.project_id))
        .needs("resourcemanager.projects.update", &project);
    app.authorize(&caller, "resourcemanager.projects.update", &project, &call)?;
    let kid = app.mutate(&caller, call, false, |_| Ok(app.issuer.rotate(SystemTime::now())?))?;
    let keys: Vec<Value> = app.issuer.jwks()["keys"].as_array().cloned().unwrap_or_default();
    Ok(Reply::Json(
        json!({ "activeKeyId": kid, "publishedKeyIds": keys.iter().map(|k| k["kid"].clone()).collect::<Vec<_>>() }),
    ))
}

fn base_url(req: &Req) -> String {
    format!("http://{}", req.host.as_deref().unwrap_or("127.0.0.1"))
}

pub(crate) fn discovery(app: &App, req: &Req) -> Result<Reply> {
    Ok(Reply::Json(app.issuer.discovery(&base_url(req))))
}

pub(crate) fn jwks(app: &App) -> Result<Reply> {
    Ok(Reply::Json((*app.issuer.jwks()).clone()))
}

pub(crate) fn pem_certs(app: &App) -> Result<Reply> {
    Ok(Reply::Json((*app.issuer.pem_certs()).clone()))
}

impl App {
    /// An ID token for the service account `email`, as the metadata server of an instance running as that account
    /// hands out (the platform acts for its own workloads; no Token Creator grant is involved). Returns the token
    /// and its expiry (unix seconds).
    pub fn mint_instance_id_token(&self, email: &str, audience: &str) -> Result<(String, u64)> {
        let sa = self.runnable_account(email)?;
        if audience.is_empty() || audience.len() > 2048 {
            return Err(ApiError::invalid("`audience` must be 1 to 2048 characters"));
        }
        let claims =
            IdClaims::for_account(self.issuer.url(), audience, &sa.unique_id, Some(&sa.email), SystemTime::now());
        let exp = claims.exp;
        Ok((self.issuer.sign(&claims)?, exp))
    }

    /// An access token for the service account `email`, for an instance running as it. Returns the token and its
    /// expiry (unix seconds).
    pub fn mint_instance_access_token(&self, email: &str) -> Result<(String, i64)> {
        self.runnable_account(email)?;
        let minted = tokens::mint(TokenKind::Access);
        let expires_at = unix_now() + tokens::ACCESS_TOKEN_LIFETIME.as_secs() as i64;
        let row = TokenRow {
            kind: TokenKind::Access.as_str().into(),
            principal: format!("serviceAccount:{email}"),
            expires_at,
        };
        self.write(false, |tx| Ok(tx.put_token(&minted.hash, &row)?))?;
        Ok((minted.secret.to_string(), expires_at))
    }

    fn runnable_account(&self, email: &str) -> Result<ServiceAccount> {
        let sa: Option<ServiceAccount> = self.read(|tx| Ok(tx.get(crate::state::kind::SERVICE_ACCOUNT, email)?))?;
        match sa {
            Some(sa) if !sa.disabled => Ok(sa),
            Some(_) => Err(ApiError::new(Code::PermissionDenied, format!("service account `{email}` is disabled"))),
            None => Err(ApiError::new(Code::PermissionDenied, format!("service account `{email}` does not exist"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_whole_seconds_up_to_the_maximum() {
        assert_eq!(parse_lifetime(Some("0.5s")).unwrap(), Duration::from_secs(1));
        assert_eq!(parse_lifetime(Some("3600s")).unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_lifetime(None).unwrap(), tokens::ACCESS_TOKEN_LIFETIME);
        for bad in ["0s", "-1s", "10", "abc", "3601s", "NaNs"] {
            assert!(parse_lifetime(Some(bad)).is_err(), "{bad}");
        }
    }
}
