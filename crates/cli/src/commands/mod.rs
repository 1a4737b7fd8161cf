//! One module per command group; each function is a thin client of one or two API calls.

mod advisor;
mod auth;
mod compute;
mod config;
mod exec;
mod iam;
mod identity;
mod logging;
mod policy;
mod projects;
mod proxy;
mod run;
mod secrets;
mod troubleshoot;

use crate::args::{Cli, Command};
use anyhow::Result;

/// Runs a parsed command line; returns the process exit status.
pub fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    match cli.command {
        Command::Up(args) => crate::up::run(g, args).map(|()| 0),
        Command::Auth(c) => auth::run(g, c),
        Command::Config(c) => config::run(g, c),
        Command::Projects(c) => projects::run(g, c),
        Command::Iam(c) => iam::run(g, c),
        Command::Identity(c) => identity::run(g, c),
        Command::PolicyTroubleshoot(c) => troubleshoot::run(g, c),
        Command::Logging(c) => logging::run(g, c),
        Command::Keys(crate::args::KeysCmd::Rotate) => {
            let client = crate::client::Client::new(g)?;
            let v = client.post("/gatehouse/v1/keys:rotate", &serde_json::json!({}))?;
            eprintln!("Rotated the signing key; new key id [{}].", v["activeKeyId"].as_str().unwrap_or_default());
            crate::format::print(&v, g, crate::format::Default::Yaml)?;
            Ok(0)
        }
        Command::Exec(args) => exec::run(g, args),
        Command::Run(c) => run::run(g, *c),
        Command::Secrets(c) => self::secrets::run(g, c),
        Command::Compute(c) => compute::run(g, c),
        Command::Advisor(c) => advisor::run(g, c),
        Command::SampleHello => crate::up::sample_hello().map(|()| 0),
    }
}

/// `--region`, else the `region` property (`config set run/region`), else the platform's region.
pub(crate) fn region(client: &crate::client::Client, flag: &Option<String>) -> String {
    flag.clone().or_else(|| client.home.config().get("region").cloned()).unwrap_or_else(|| client.daemon.region.clone())
}

/// A compute command's region: `--region`, else the `compute/region` property, else as [`region`].
pub(crate) fn compute_region(client: &crate::client::Client, flag: &Option<String>) -> String {
    flag.clone()
        .or_else(|| client.home.config().get("compute/region").cloned())
        .unwrap_or_else(|| region(client, &None))
}

/// The last segment of a resource name or self link, as gcloud's `name.basename()`.
pub(crate) fn basename(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

pub(crate) use model::names::GCLOUD_CLIENT_ID;

/// The items of a list- or dict-type flag value, as gcloud splits them (`gcloud topic escaping`): on commas, or on
/// DELIM when the value starts with `^DELIM^` (`^:^a,b:c` is `a,b` and `c`; a single leading `^` is literal).
/// Empty items are dropped.
fn flag_items(s: &str) -> impl Iterator<Item = &str> {
    let (delim, body) = match s.strip_prefix('^').and_then(|rest| rest.split_once('^')) {
        Some((delim, body)) if !delim.is_empty() => (delim, body),
        _ => (",", s),
    };
    body.split(delim).filter(|item| !item.is_empty())
}

/// A list-type flag value's non-empty items, trimmed ([`flag_items`]).
pub(crate) fn split_list(s: &str) -> Vec<String> {
    flag_items(s).map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

/// A dict-type flag value's `KEY=VALUE` items ([`flag_items`]; the first `=` splits, values are kept as given).
pub(crate) fn split_dict(s: &str, flag: &str) -> anyhow::Result<Vec<(String, String)>> {
    flag_items(s)
        .map(|item| match item.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => Err(anyhow::anyhow!(
                "invalid `--{flag}` item `{item}`; use KEY=VALUE, and `^DELIM^` before the list when values hold commas \
                 (e.g. `--{flag}=^;^KEY=a,b;OTHER=c`)"
            )),
        })
        .collect()
}

/// Percent-encodes a path segment (emails carry `@`, which is fine, but nothing else unusual may pass).
pub(crate) fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_and_dict_flags_split_as_gcloud_topic_escaping_says() {
        assert_eq!(split_list("a, b,,c"), ["a", "b", "c"]);
        assert_eq!(split_list("^:^a,b:c,d"), ["a,b", "c,d"]);
        assert_eq!(split_list("^--^a-,b--c"), ["a-,b", "c"]);
        assert_eq!(split_list("^a,b,c"), ["^a", "b", "c"], "one `^` is literal");
        assert_eq!(split_list("^,^^a,b,c"), ["^a", "b", "c"], "a list starting with `^`");
        assert_eq!(split_list("^:^"), Vec::<String>::new());
        let pairs = split_dict("^;^startup-script=echo a,b;other=x=y", "metadata").unwrap();
        assert_eq!(pairs, [("startup-script".into(), "echo a,b".into()), ("other".into(), "x=y".into())]);
        assert_eq!(split_dict("K= spaced ", "set-env-vars").unwrap(), [("K".into(), " spaced ".into())]);
        let e = split_dict("A=1,b,c", "set-env-vars").unwrap_err().to_string();
        assert!(e.contains("invalid `--set-env-vars` item `b`") && e.contains("^DELIM^"), "{e}");
    }
}
