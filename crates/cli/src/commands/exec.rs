//! `gatehouse exec --impersonate-service-account=EMAIL -- CMD [ARGS…]`: runs a local command as a service account.
//!
//! A private metadata server on loopback serves the command tokens for the account, minted through the platform's
//! IAM Credentials API with the caller's own credentials — so the caller needs `roles/iam.serviceAccountTokenCreator`
//! on the account, and every mint is in the audit log. The server lives exactly as long as the command; the exit
//! status is the command's.

use crate::args::{ExecArgs, Global};
use crate::client::{remote, Client};
use anyhow::{anyhow, bail, Context, Result};
use metadata::{IdFormat, Identity, MintedToken, SourceError, TokenSource};
use reqwest::Method;
use serde_json::json;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Environment that would steer client libraries away from the metadata server; removed from the child.
const CLEARED: [&str; 4] =
    ["GOOGLE_APPLICATION_CREDENTIALS", "NO_GCE_CHECK", "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", "GCE_METADATA_MTLS_MODE"];

/// Tokens for one service account, minted by the platform for the caller.
struct PlatformSource {
    client: Arc<Client>,
    account: String,
}

impl PlatformSource {
    fn mint(&self, verb: &str, body: serde_json::Value) -> Result<serde_json::Value, SourceError> {
        let path = format!("/v1/projects/-/serviceAccounts/{}:{verb}", super::seg(&self.account));
        self.client.call_as_user(Method::POST, &path, Some(&body)).map_err(|e| match remote(&e) {
            Some(r) => SourceError { status: r.http_status(), message: r.message.clone() },
            None => SourceError { status: 503, message: format!("{e:#}") },
        })
    }
}

/// The `exp` claim of a JWT, read without verifying (the platform just signed it).
fn jwt_expiry(token: &str) -> Option<SystemTime> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let exp = serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["exp"].as_u64()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(exp))
}

impl TokenSource for PlatformSource {
    async fn id_token(&self, audience: &str, _format: IdFormat) -> Result<MintedToken, SourceError> {
        let (this, audience) = (self.clone_handle(), audience.to_owned());
        blocking(move || {
            let v = this.mint("generateIdToken", json!({ "audience": audience, "includeEmail": true }))?;
            let token = v["token"].as_str().unwrap_or_default().to_owned();
            let expires_at = jwt_expiry(&token).ok_or_else(|| SourceError {
                status: 503,
                message: "the platform returned a malformed ID token".into(),
            })?;
            Ok(MintedToken { token, expires_at })
        })
        .await
    }

    async fn access_token(&self, scopes: &[String]) -> Result<MintedToken, SourceError> {
        let (this, scopes) = (self.clone_handle(), scopes.to_vec());
        blocking(move || {
            let v = this.mint("generateAccessToken", json!({ "scope": scopes, "lifetime": "3600s" }))?;
            let token = v["accessToken"].as_str().unwrap_or_default().to_owned();
            let expires_at = v["expireTime"]
                .as_str()
                .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
                .map(SystemTime::from)
                .ok_or_else(|| SourceError { status: 503, message: "the platform returned no expiry".into() })?;
            Ok(MintedToken { token, expires_at })
        })
        .await
    }
}

impl PlatformSource {
    fn clone_handle(&self) -> PlatformSource {
        PlatformSource { client: self.client.clone(), account: self.account.clone() }
    }
}

/// The CLI's HTTP client is blocking; token mints run on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(SourceError { status: 503, message: format!("token request failed: {e}") }))
}

pub fn run(g: &Global, args: ExecArgs) -> Result<u8> {
    let account = g.impersonate_service_account.clone().ok_or_else(|| {
        anyhow!("`exec` runs a command as a service account; add `--impersonate-service-account=EMAIL` before `--`")
    })?;
    let plain = Global { impersonate_service_account: None, ..g.clone() };
    let client = Arc::new(Client::new(&plain)?);
    let source = PlatformSource { client: client.clone(), account: account.clone() };
    // Fail before starting anything when the caller may not mint tokens for the account.
    source
        .mint("generateIdToken", json!({ "audience": "https://gatehouse.local/exec-preflight" }))
        .map_err(|e| anyhow!("cannot act as `{account}`: {}", e.message))?;

    let identity = Identity {
        email: account.clone(),
        project_id: client.daemon.project.clone(),
        project_number: client.daemon.project_number.clone(),
        region: client.daemon.region.clone(),
        zone: format!("{}-1", client.daemon.region),
        instance_id: tokens::random_numeric_id(19),
        scopes: vec!["https://www.googleapis.com/auth/cloud-platform".into()],
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
        .context("cannot start the metadata server")?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(metadata::serve(listener, identity, Arc::new(source), async move {
        let _ = stopped.await;
    }));

    let (program, rest) = args.command.split_first().ok_or_else(|| anyhow!("no command given after `--`"))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    for var in CLEARED {
        cmd.env_remove(var);
    }
    let host = addr.to_string();
    cmd.env("GCE_METADATA_HOST", &host).env("GCE_METADATA_IP", &host).env("GCE_METADATA_ROOT", &host);
    let status = cmd.status();
    let _ = stop.send(());
    let _ = runtime.block_on(server);
    drop(runtime);
    let status = status.map_err(|e| anyhow!("cannot run `{program}`: {e}"))?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(1),
        (None, None) => bail!("`{program}` ended without an exit status"),
    })
}
