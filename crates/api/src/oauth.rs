//! The OAuth 2.0 token endpoint (`POST /token`, refresh-token grant, as `oauth2.googleapis.com`), revocation, and the
//! local login that issues refresh credentials to whoever holds the operator key from `$GATEHOUSE_HOME`.

use crate::audit_trail::Call;
use crate::auth::{parse_principal, unix_now, Caller};
use crate::http::{Reply, Req};
use crate::state::{kind, App, Result};
use axum::http::StatusCode;
use iam::Principal;
use model::member::valid_email;
use model::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::SystemTime;
use store::TokenRow;
use tokens::TokenKind;

pub use model::names::GCLOUD_CLIENT_ID;

/// A local user account (`user:EMAIL`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct User {
    pub email: String,
    /// Stable numeric id, as Google's `sub` for user accounts.
    pub uid: String,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    Reply::Status(status, json!({ "error": error, "error_description": description }))
}

/// Form or JSON body as a flat map (google-auth sends a form; other clients send JSON).
fn params(req: &Req) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = req.query.clone();
    if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(&req.body) {
        out.extend(o.into_iter().filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned()))));
    } else if let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&req.body) {
        out.extend(form);
    }
    out
}

/// Mints an access token for `principal` and stores its hash; returns the token text.
pub(crate) fn mint_access_token(tx: &store::Tx, principal: &str) -> std::result::Result<String, store::StoreError> {
    let minted = tokens::mint(TokenKind::Access);
    let expires_at = unix_now() + tokens::ACCESS_TOKEN_LIFETIME.as_secs() as i64;
    tx.put_token(
        &minted.hash,
        &TokenRow { kind: TokenKind::Access.as_str().into(), principal: principal.into(), expires_at },
    )?;
    Ok(minted.secret.to_string())
}

pub(crate) fn token(app: &App, req: &Req) -> Result<Reply> {
    let p = params(req);
    match p.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {}
        Some(other) => {
            return Ok(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {other}"),
            ))
        }
        None => {
            return Ok(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing required parameter: grant_type",
            ))
        }
    }
    let Some(refresh) = p.get("refresh_token").filter(|t| !t.is_empty()) else {
        return Ok(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: refresh_token",
        ));
    };
    if TokenKind::of(refresh) != Some(TokenKind::Refresh) || !tokens::looks_valid(refresh) {
        return Ok(oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request"));
    }
    let hash = tokens::hash(refresh);
    let issued = app.write(false, |tx| {
        tx.purge_expired_tokens(unix_now())?;
        let Some(row) = tx.token(&hash)? else { return Ok(None) };
        if row.kind != TokenKind::Refresh.as_str() {
            return Ok(None);
        }
        let Some(Principal::User(email)) = parse_principal(&row.principal) else { return Ok(None) };
        let Some(user) = tx.get::<User>(kind::USER, &email)? else { return Ok(None) };
        Ok(Some((mint_access_token(tx, &row.principal)?, user)))
    })?;
    Ok(match issued {
        Some((access, user)) => {
            // As Google's token endpoint with the `openid` scope: an ID token for the user, whose audience is the
            // OAuth client (gcloud's own when the caller names none); the numeric `sub` is stable per account.
            let client = p.get("client_id").filter(|c| !c.is_empty()).map(String::as_str).unwrap_or(GCLOUD_CLIENT_ID);
            // Gatehouse extension: `audience` asks for a user ID token for one service URL (what
            // `auth print-identity-token --audiences=URL` prints for users), so developers can call private services.
            let audience = p.get("audience").filter(|a| !a.is_empty()).map(String::as_str).unwrap_or(client);
            if audience.len() > 2048 {
                return Ok(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "audience is longer than 2048 characters",
                ));
            }
            let mut claims = tokens::IdClaims::for_account(
                app.issuer.url(),
                audience,
                &user.uid,
                Some(&user.email),
                SystemTime::now(),
            );
            claims.azp = Some(client.to_owned());
            let id_token = app.issuer.sign(&claims)?;
            Reply::Json(json!({
                "access_token": access,
                "expires_in": tokens::ACCESS_TOKEN_LIFETIME.as_secs() - 1,
                "scope": "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/cloud-platform",
                "token_type": "Bearer",
                "id_token": id_token,
            }))
        }
        None => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Token has been expired or revoked."),
    })
}

pub(crate) fn revoke(app: &App, req: &Req) -> Result<Reply> {
    let p = params(req);
    let Some(token) = p.get("token").filter(|t| tokens::looks_valid(t)) else {
        return Ok(oauth_error(StatusCode::BAD_REQUEST, "invalid_token", "Bad Request"));
    };
    let hash = tokens::hash(token);
    let revoked = app.write(false, |tx| {
        let Some(row) = tx.token(&hash)? else { return Ok(false) };
        if row.kind == TokenKind::Refresh.as_str() {
            // Revoking a refresh credential signs the account out: its access tokens stop working too.
            tx.delete_tokens_of(&row.principal)?;
        }
        tx.delete_token(&hash)?;
        Ok(true)
    })?;
    Ok(if revoked {
        Reply::Json(json!({}))
    } else {
        oauth_error(StatusCode::BAD_REQUEST, "invalid_token", "Token expired or revoked")
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    email: Option<String>,
}

/// `POST /gatehouse/v1/accounts:login`: creates the local user if new and returns a refresh credential for it.
pub(crate) fn login(app: &App, req: &Req) -> Result<Reply> {
    let key_ok = req
        .operator_key
        .as_deref()
        .is_some_and(|k| constant_time_eq(tokens::hash(k).as_bytes(), app.operator_key_hash.as_bytes()));
    if !key_ok {
        return Err(ApiError::unauthenticated(
            "local login needs the operator key from $GATEHOUSE_HOME (header `x-gatehouse-operator-key`)",
        ));
    }
    let body: LoginRequest = req.json()?;
    let email = body.email.ok_or_else(|| ApiError::invalid("`email` is required"))?;
    let email = valid_email(email.trim()).map_err(ApiError::invalid)?.to_lowercase();
    if email.ends_with(".gserviceaccount.com") {
        return Err(ApiError::invalid(format!(
            "`{email}` is a service account; log in as a user, then use `--impersonate-service-account={email}`"
        )));
    }
    let caller =
        Caller { principal: Principal::User(email.clone()), ip: req.ip.clone(), user_agent: req.user_agent.clone() };
    let refresh = tokens::mint(TokenKind::Refresh);
    let principal = format!("user:{email}");
    let call = Call::new("gatehouse.local", "gatehouse.accounts.Login", format!("users/{email}"));
    let user = app.mutate(&caller, call, false, |tx| {
        let user = match tx.get::<User>(kind::USER, &email)? {
            Some(u) => u,
            None => {
                let u = User { email: email.clone(), uid: tokens::random_numeric_id(21) };
                tx.put(kind::USER, &email, &u)?;
                u
            }
        };
        tx.put_token(
            &refresh.hash,
            &TokenRow { kind: TokenKind::Refresh.as_str().into(), principal: principal.clone(), expires_at: i64::MAX },
        )?;
        Ok(user)
    })?;
    Ok(Reply::Json(json!({ "email": user.email, "uid": user.uid, "refresh_token": refresh.secret.as_str() })))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
