//! `auth login|list|revoke|print-access-token`.

use crate::args::{AuthCmd, Global};
use crate::client::{self, Client};
use crate::format::{self, Default};
use crate::home::{Credential, Home};
use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

/// gcloud's OAuth client id: the audience of ID tokens printed without `--audiences`.
use super::GCLOUD_CLIENT_ID;

pub fn run(g: &Global, cmd: AuthCmd) -> Result<u8> {
    let home = Home::locate()?;
    match cmd {
        AuthCmd::Login { email } => {
            let daemon = home.daemon()?;
            let key = home.operator_key()?;
            let http = client::http()?;
            let resp = http
                .post(format!("{}/gatehouse/v1/accounts:login", daemon.api))
                .header("x-gatehouse-operator-key", key)
                .json(&json!({ "email": email }))
                .send()
                .map_err(|e| anyhow!("cannot reach the platform at {}: {e}; is `gatehouse up` running?", daemon.api))?;
            let body = client::decode(resp)?;
            let email = body["email"].as_str().unwrap_or(&email).to_owned();
            let refresh =
                body["refresh_token"].as_str().ok_or_else(|| anyhow!("the platform did not return a credential"))?;
            home.update_credentials(|c| {
                c.insert(email.clone(), Credential { refresh_token: refresh.to_owned(), ..Credential::default() });
            })?;
            let mut config = home.config();
            config.insert("account".into(), email.clone());
            config.entry("project".into()).or_insert(daemon.project);
            home.save_config(&config)?;
            eprintln!("\nYou are now logged in as [{email}].");
            Ok(0)
        }
        AuthCmd::List => {
            let active = home.config().get("account").cloned().unwrap_or_default();
            let accounts: Vec<Value> = home
                .credentials()
                .keys()
                .map(|a| json!({ "account": a, "status": if *a == active { "ACTIVE" } else { "" } }))
                .collect();
            if g.format.is_some() {
                format::print(&Value::Array(accounts), g, Default::Yaml)?;
            } else if accounts.is_empty() {
                eprintln!("No credentialed accounts.\n\nTo login, run:\n  $ gatehouse auth login EMAIL");
            } else {
                outln!("Credentialed Accounts\nACTIVE  ACCOUNT");
                for a in home.credentials().keys() {
                    outln!("{:<8}{a}", if *a == active { "*" } else { "" });
                }
                if !active.is_empty() {
                    outln!("\nTo set the active account, run:\n    $ gatehouse config set account `ACCOUNT`");
                }
            }
            Ok(0)
        }
        AuthCmd::Revoke { accounts, all } => {
            let creds = home.credentials();
            let active = home.config().get("account").cloned();
            let targets: Vec<String> = if all {
                creds.keys().cloned().collect()
            } else if accounts.is_empty() {
                vec![active.clone().ok_or_else(|| anyhow!("no account is active; name the account to revoke"))?]
            } else {
                accounts
            };
            let daemon = home.daemon().ok();
            let http = client::http()?;
            for account in &targets {
                let cred = creds
                    .get(account)
                    .ok_or_else(|| anyhow!("no credentials for account `{account}`; see `gatehouse auth list`"))?;
                if let Some(d) = &daemon {
                    // Best effort on the server side; the local credential goes regardless.
                    let _ =
                        http.post(format!("{}/revoke", d.api)).form(&[("token", cred.refresh_token.as_str())]).send();
                }
            }
            home.update_credentials(|c| c.retain(|k, _| !targets.contains(k)))?;
            if active.as_ref().is_some_and(|a| targets.contains(a)) {
                let mut config = home.config();
                config.remove("account");
                home.save_config(&config)?;
            }
            eprintln!("Revoked credentials:");
            for t in &targets {
                eprintln!(" - {t}");
            }
            Ok(0)
        }
        AuthCmd::PrintIdentityToken { account, audiences, include_email } => {
            if audiences.as_deref().is_some_and(|a| a.contains(',')) {
                bail!("only one audience can be specified in --audiences");
            }
            let g = Global { account: account.or_else(|| g.account.clone()), ..g.clone() };
            let client = Client::new(&g)?;
            let token = match &client.impersonate {
                Some(sa) => {
                    let audience = audiences.as_deref().unwrap_or(GCLOUD_CLIENT_ID);
                    let v = client.call_as_user(
                        reqwest::Method::POST,
                        &format!("/v1/projects/-/serviceAccounts/{}:generateIdToken", super::seg(sa)),
                        Some(&json!({ "audience": audience, "includeEmail": include_email })),
                    )?;
                    v["token"].as_str().map(str::to_owned)
                }
                // gcloud refuses `--audiences` for user accounts; Gatehouse mints the user's token for that audience,
                // so a developer can call a private service as themselves.
                None => client.refresh_user(audiences.as_deref())?["id_token"].as_str().map(str::to_owned),
            };
            outln!("{}", token.ok_or_else(|| anyhow!("the platform returned no ID token"))?);
            Ok(0)
        }
        AuthCmd::PrintAccessToken { account } => {
            let g = Global { account: account.or_else(|| g.account.clone()), ..g.clone() };
            let client = Client::new(&g)?;
            outln!("{}", client.access_token(false)?);
            Ok(0)
        }
    }
}
