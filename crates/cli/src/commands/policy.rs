//! Read-modify-write of an IAM policy for the `add-iam-policy-binding` / `remove-iam-policy-binding` commands,
//! retried with jittered exponential backoff when another writer changed the policy in between (409 `ABORTED`),
//! as gcloud does.

use crate::args::BindingArgs;
use crate::client::{remote, Client};
use crate::home::read_structured;
use anyhow::{anyhow, bail, Result};
use model::{Code, Expr, Policy};
use serde_json::{json, Value};
use std::time::Duration;

/// Attempts before giving up on a contended policy.
const MAX_ATTEMPTS: u32 = 60;

/// The `--condition` / `--condition-from-file` of a binding command: `Ok(None)` for none or `None`.
pub fn condition(args: &BindingArgs) -> Result<Option<Expr>> {
    if let Some(path) = &args.condition_from_file {
        let v = read_structured(path)?;
        let expr: Expr = serde_json::from_value(v)
            .map_err(|e| anyhow!("`{}` is not a condition (expression, title, description): {e}", path.display()))?;
        return check_condition(expr).map(Some);
    }
    let Some(spec) = args.condition.as_deref() else { return Ok(None) };
    if spec.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let mut expr = Expr::default();
    for (key, value) in split_condition(spec)? {
        match key.as_str() {
            "expression" => expr.expression = value,
            "title" => expr.title = value,
            "description" => expr.description = value,
            other => bail!("unknown key `{other}` in --condition; use expression=EXPR,title=TITLE[,description=DESC]"),
        }
    }
    check_condition(expr).map(Some)
}

fn check_condition(expr: Expr) -> Result<Expr> {
    if expr.expression.trim().is_empty() {
        bail!("--condition needs `expression=...`");
    }
    if expr.title.trim().is_empty() {
        bail!("--condition needs `title=...` (Google requires a title for every condition)");
    }
    Ok(expr)
}

/// Splits `expression=a < b, c,title=t,description=d` at the commas that start a known key.
fn split_condition(spec: &str) -> Result<Vec<(String, String)>> {
    let keys = ["expression=", "title=", "description="];
    let mut starts: Vec<usize> = vec![];
    for (i, _) in spec.char_indices() {
        let at_boundary = i == 0 || spec[..i].ends_with(',');
        if at_boundary && keys.iter().any(|k| spec[i..].starts_with(k)) {
            starts.push(i);
        }
    }
    if starts.first() != Some(&0) {
        bail!("invalid --condition `{spec}`; use expression=EXPR,title=TITLE[,description=DESC] or None");
    }
    let mut out = Vec::new();
    for (n, &s) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map(|&e| e - 1).unwrap_or(spec.len());
        let part = &spec[s..end];
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// Gets the policy at `base` (`…:getIamPolicy`), applies `change`, and sets it (`…:setIamPolicy`) with the etag it
/// read; retries the whole cycle on `ABORTED`. Returns the stored policy.
pub fn modify(client: &Client, base: &str, mut change: impl FnMut(&mut Policy) -> Result<()>) -> Result<Value> {
    let mut delay = Duration::from_millis(20);
    for attempt in 1..=MAX_ATTEMPTS {
        let current = client
            .post(&format!("{base}:getIamPolicy"), &json!({"options": {"requestedPolicyVersion": 3}}))
            .map_err(|e| explain_read_denial(client, base, e))?;
        let mut policy: Policy = serde_json::from_value(current)
            .map_err(|e| anyhow!("the platform returned a policy this CLI cannot read: {e}"))?;
        change(&mut policy)?;
        match client.post(&format!("{base}:setIamPolicy"), &json!({ "policy": policy })) {
            Ok(v) => return Ok(v),
            Err(e) if remote(&e).is_some_and(|r| r.code == Code::Aborted) && attempt < MAX_ATTEMPTS => {
                std::thread::sleep(jitter(delay));
                delay = (delay * 2).min(Duration::from_millis(1000));
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

/// A binding change reads the policy first, so a caller without any IAM role is refused on the read. Say what the
/// change itself needs: ask `testIamPermissions` (which needs no permission) and name the write permission when it
/// is missing too, in Google's words.
fn explain_read_denial(client: &Client, base: &str, e: anyhow::Error) -> anyhow::Error {
    let Some(denied) = remote(&e).filter(|r| r.code == Code::PermissionDenied) else { return e };
    let info = denied.details.iter().find(|d| d["reason"] == "IAM_PERMISSION_DENIED");
    let (Some(get), Some(resource)) = (
        info.and_then(|d| d["metadata"]["permission"].as_str()),
        info.and_then(|d| d["metadata"]["resource"].as_str()),
    ) else {
        return e;
    };
    let Some(set) = get.strip_suffix(".getIamPolicy").map(|p| format!("{p}.setIamPolicy")) else { return e };
    let held = client
        .post(&format!("{base}:testIamPermissions"), &json!({ "permissions": [get, set] }))
        .ok()
        .and_then(|v| serde_json::from_value::<Vec<String>>(v["permissions"].clone()).ok())
        .unwrap_or_default();
    if held.contains(&set) {
        return e;
    }
    let mut err = model::ApiError::permission_denied(&set, resource);
    err.message.push_str(&format!(" Changing a binding reads the policy first, which needs '{get}' as well."));
    crate::client::Remote(err).into()
}

fn jitter(d: Duration) -> Duration {
    let r = tokens::random_u64() % 1000;
    d.mul_f64(0.5 + r as f64 / 1000.0)
}

/// Whether `--condition` (possibly `None`) or `--condition-from-file` was given: gcloud, never prompting here,
/// refuses to guess for a policy that holds conditions.
fn condition_given(args: &BindingArgs) -> bool {
    args.condition.is_some() || args.condition_from_file.is_some()
}

/// Adds the binding of `args` to the policy at `base`.
pub fn add_binding(client: &Client, base: &str, args: &BindingArgs) -> Result<Value> {
    let cond = condition(args)?;
    modify(client, base, |p| {
        if !condition_given(args) && p.bindings.iter().any(|b| b.condition.is_some()) {
            bail!(
                "Adding a binding without specifying a condition to a policy containing conditions is prohibited in \
                 non-interactive mode. Run the command again with `--condition=None`"
            );
        }
        p.add_binding(&args.role, &args.member, cond.clone());
        Ok(())
    })
}

/// Removes the binding of `args` from the policy at `base`; an absent binding is an error, as gcloud's.
pub fn remove_binding(client: &Client, base: &str, args: &BindingArgs) -> Result<Value> {
    let cond = condition(args)?;
    modify(client, base, |p| {
        if !condition_given(args) && !args.all && p.bindings.iter().any(|b| b.condition.is_some()) {
            bail!(
                "Removing a binding without specifying a condition from a policy containing conditions is prohibited \
                 in non-interactive mode. Run the command again with `--condition=None` to remove a binding without \
                 condition or run command with `--all` to remove all bindings of the specified principal and role."
            );
        }
        if p.remove_binding(&args.role, &args.member, cond.as_ref(), args.all) {
            Ok(())
        } else {
            bail!("Policy binding with the specified principal, role, and condition not found!")
        }
    })
}

/// Sets the policy in `file` on `base`.
pub fn set_from_file(client: &Client, base: &str, file: &std::path::Path) -> Result<Value> {
    let policy = read_structured(file)?;
    if !policy.is_object() {
        bail!("`{}` does not hold a policy object", file.display());
    }
    // As gcloud does: a file that carries `auditConfigs` sets them too (the default mask is `bindings,etag`).
    let mut body = json!({ "policy": policy });
    if policy.get("auditConfigs").is_some() {
        body["updateMask"] = json!("bindings,etag,auditConfigs");
    }
    client.post(&format!("{base}:setIamPolicy"), &body)
}

pub fn get(client: &Client, base: &str) -> Result<Value> {
    client.post(&format!("{base}:getIamPolicy"), &json!({"options": {"requestedPolicyVersion": 3}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_split_at_keys_only() {
        let parts = split_condition(
            "expression=request.time < timestamp('2030-01-01T00:00:00Z'),title=until 2030,description=a, b",
        )
        .unwrap();
        assert_eq!(parts[0].1, "request.time < timestamp('2030-01-01T00:00:00Z')");
        assert_eq!(parts[1], ("title".to_owned(), "until 2030".to_owned()));
        assert_eq!(parts[2].1, "a, b");
        assert!(split_condition("title=x").is_ok());
        assert!(split_condition("foo=x").is_err());
    }
}
