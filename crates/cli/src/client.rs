//! The CLI's side of the wire: finds the platform through `daemon.json`, authenticates as the active account
//! (refreshing and caching its access token), and turns Google error envelopes back into errors.

use crate::args::Global;
use crate::home::{Credential, DaemonInfo, Home};
use anyhow::{anyhow, Result};
use model::ApiError;
use reqwest::blocking::{Client as Http, RequestBuilder};
use reqwest::Method;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Client {
    http: Http,
    pub home: Home,
    pub daemon: DaemonInfo,
    pub account: String,
    /// `--impersonate-service-account`: API calls carry this account's access token.
    pub impersonate: Option<String>,
}

/// An error the API answered with, carried through `anyhow`.
#[derive(Debug)]
pub struct Remote(pub ApiError);

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.code.as_str(), self.0.message)
    }
}

impl std::error::Error for Remote {}

/// The one-line text of an error, as printed after `ERROR: (command)`.
pub fn describe_error(e: &anyhow::Error) -> String {
    if let Some(r) = e.downcast_ref::<Remote>() {
        return r.to_string();
    }
    format!("{e:#}")
}

/// The API error inside `e`, if that is what it is.
pub fn remote(e: &anyhow::Error) -> Option<&ApiError> {
    e.downcast_ref::<Remote>().map(|r| &r.0)
}

/// `GET {metadata}/computeMetadata/v1/instance/service-accounts/default/{path}`, as gcloud asks it on Cloud Run.
fn metadata_get(http: &Http, metadata: &str, path: &str) -> Result<String> {
    let url = format!("{metadata}/computeMetadata/v1/instance/service-accounts/default/{path}");
    let resp = http
        .get(&url)
        .header("Metadata-Flavor", "Google")
        .send()
        .map_err(|e| anyhow!("the instance's metadata server does not answer at {metadata}: {e}"))?;
    let status = resp.status();
    let text = resp.text()?;
    if !status.is_success() {
        return Err(anyhow!("the metadata server answered {status} for {path}: {}", text.trim()));
    }
    Ok(text)
}

pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn http() -> Result<Http> {
    Ok(Http::builder()
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("gatehouse-cli/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

impl Client {
    pub fn new(global: &Global) -> Result<Client> {
        let home = Home::locate()?;
        let daemon = home.daemon()?;
        let http = http()?;
        let account = match (&global.account, home.config().get("account")) {
            (Some(a), _) | (None, Some(a)) => a.clone(),
            // Inside an instance: the instance's service account, as gcloud on Cloud Run.
            (None, None) if !daemon.metadata.is_empty() => metadata_get(&http, &daemon.metadata, "email")?,
            (None, None) => {
                return Err(anyhow!(
                    "no account is active; log in with `gatehouse auth login EMAIL` or set one with `gatehouse config set account EMAIL`"
                ))
            }
        };
        let impersonate = global.impersonate_service_account.clone();
        Ok(Client { http, home, daemon, account, impersonate })
    }

    /// Whether the active account's credentials come from the instance's metadata server.
    fn uses_metadata_server(&self) -> bool {
        !self.daemon.metadata.is_empty() && !self.home.credentials().contains_key(&self.account)
    }

    /// The project to act on: `--project`, then the `project` property, then the platform's project.
    pub fn project(&self, global: &Global) -> String {
        global
            .project
            .clone()
            .or_else(|| self.home.config().get("project").cloned())
            .unwrap_or_else(|| self.daemon.project.clone())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.daemon.api.trim_end_matches('/'), path)
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        if e.is_connect() {
            anyhow!(
                "no Gatehouse platform answers at {} (GATEHOUSE_HOME={}); start one with `gatehouse up`",
                self.daemon.api,
                self.home.dir.display()
            )
        } else {
            anyhow!("request to the platform failed: {e}")
        }
    }

    /// The access token API calls carry: the impersonated service account's, or the active account's.
    pub fn access_token(&self, force_refresh: bool) -> Result<String> {
        let Some(sa) = &self.impersonate else { return self.user_access_token(force_refresh) };
        let v = self.call_as_user(
            Method::POST,
            &format!("/v1/projects/-/serviceAccounts/{}:generateAccessToken", crate::commands::seg(sa)),
            Some(&serde_json::json!({ "scope": ["https://www.googleapis.com/auth/cloud-platform"], "lifetime": "3600s" })),
        )?;
        v["accessToken"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the platform returned no access token for `{sa}`"))
    }

    /// The active account's own credentials: its refresh credential and the full `/token` answer (which carries an
    /// ID token for users).
    pub fn refresh_user(&self, audience: Option<&str>) -> Result<Value> {
        if self.uses_metadata_server() {
            let audience = audience.unwrap_or(crate::commands::GCLOUD_CLIENT_ID);
            let path = format!("identity?audience={audience}&format=full");
            return Ok(serde_json::json!({ "id_token": metadata_get(&self.http, &self.daemon.metadata, &path)? }));
        }
        let cred = self.credential()?;
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", cred.refresh_token.as_str())];
        if let Some(a) = audience {
            form.push(("audience", a));
        }
        let resp = self.http.post(self.url("/token")).form(&form).send().map_err(|e| self.unreachable(e))?;
        if resp.status() == reqwest::StatusCode::BAD_REQUEST {
            return Err(self.revoked());
        }
        Ok(resp.json()?)
    }

    fn credential(&self) -> Result<Credential> {
        self.home.credentials().get(&self.account).cloned().ok_or_else(|| {
            anyhow!(
                "there are no credentials for account `{}`; run `gatehouse auth login {}`",
                self.account,
                self.account
            )
        })
    }

    fn revoked(&self) -> anyhow::Error {
        anyhow!(
            "the credentials of `{}` were revoked or are unknown to this platform; run `gatehouse auth login {}`",
            self.account,
            self.account
        )
    }

    /// A valid access token for the active account, refreshed through `/token` when missing or about to expire.
    pub fn user_access_token(&self, force_refresh: bool) -> Result<String> {
        if self.uses_metadata_server() {
            let token: Value = serde_json::from_str(&metadata_get(&self.http, &self.daemon.metadata, "token")?)?;
            return token["access_token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("the metadata server returned no access token"));
        }
        let cred = self.credential()?;
        if !force_refresh && !cred.access_token.is_empty() && cred.access_token_expires_at > now_unix() + 60 {
            return Ok(cred.access_token.clone());
        }
        let refreshed = refresh(&self.http, &self.daemon.api, &cred.refresh_token).map_err(|e| match e {
            RefreshError::Rejected => self.revoked(),
            RefreshError::Http(e) => self.unreachable(e),
            RefreshError::Other(e) => e,
        })?;
        let account = self.account.clone();
        let token = refreshed.access_token.clone();
        self.home.update_credentials(|c| {
            if let Some(entry) = c.get_mut(&account) {
                entry.access_token = refreshed.access_token;
                entry.access_token_expires_at = refreshed.access_token_expires_at;
            }
        })?;
        Ok(token)
    }

    /// Calls the API as the active account, or as the impersonated service account.
    pub fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        if self.impersonate.is_none() {
            return self.call_as_user(method, path, body);
        }
        let token = self.access_token(false)?;
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        decode(req.send().map_err(|e| self.unreachable(e))?)
    }

    /// Calls the API as the active account; a 401 refreshes the token once and retries.
    pub fn call_as_user(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let send = |token: &str| -> Result<reqwest::blocking::Response> {
            let mut req: RequestBuilder = self.http.request(method.clone(), self.url(path)).bearer_auth(token);
            if let Some(b) = body {
                req = req.json(b);
            }
            req.send().map_err(|e| self.unreachable(e))
        };
        let mut resp = send(&self.user_access_token(false)?)?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            resp = send(&self.user_access_token(true)?)?;
        }
        decode(resp)
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(Method::POST, path, Some(body))
    }
}

pub fn decode(resp: reqwest::blocking::Response) -> Result<Value> {
    let status = resp.status();
    let text = resp.text()?;
    let body: Value =
        if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    if status.is_success() {
        return Ok(body);
    }
    match ApiError::from_envelope(&body) {
        Some(e) => Err(Remote(e).into()),
        None => Err(anyhow!("the platform answered {status}: {body}")),
    }
}

pub enum RefreshError {
    Rejected,
    Http(reqwest::Error),
    Other(anyhow::Error),
}

/// Exchanges a refresh credential for an access token at `{api}/token`.
pub fn refresh(http: &Http, api: &str, refresh_token: &str) -> std::result::Result<Credential, RefreshError> {
    let resp = http
        .post(format!("{}/token", api.trim_end_matches('/')))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
        .send()
        .map_err(RefreshError::Http)?;
    if resp.status() == reqwest::StatusCode::BAD_REQUEST {
        return Err(RefreshError::Rejected);
    }
    let body: Value = resp.json().map_err(RefreshError::Http)?;
    let token = body["access_token"]
        .as_str()
        .ok_or_else(|| RefreshError::Other(anyhow!("the token endpoint answered without an access token")))?;
    let expires_in = body["expires_in"].as_i64().unwrap_or(3599);
    Ok(Credential {
        refresh_token: refresh_token.to_owned(),
        access_token: token.to_owned(),
        access_token_expires_at: now_unix() + expires_in,
    })
}
