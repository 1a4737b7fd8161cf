//! `config set|get-value|unset|list`: gcloud's properties `core/account`, `core/project`, `run/region`,
//! `compute/region` and `compute/zone` (the compute commands' default `--region` and `--zone`).

use crate::args::{ConfigCmd, Global};
use crate::format::{self, Default};
use crate::home::{property_full_name, property_name, Home};
use anyhow::Result;
use serde_json::json;

/// gcloud checks a zone or region as it is set and warns (it asks whether to keep it; Gatehouse never prompts, so it
/// keeps it, as gcloud does with `--quiet`).
fn warn_if_unknown(key: &str, value: &str) {
    match key {
        "compute/zone" => {
            if let Err(why) = network::zone_region(value) {
                eprintln!("WARNING: {why}");
            }
        }
        "compute/region" | "region" if !network::is_region_name(value) => {
            eprintln!("WARNING: {value} is not a valid region; use a region such as us-central1.");
        }
        _ => {}
    }
}

pub fn run(g: &Global, cmd: ConfigCmd) -> Result<u8> {
    let home = Home::locate()?;
    match cmd {
        ConfigCmd::Set { property, value } => {
            let name = property_name(&property)?;
            warn_if_unknown(name, &value);
            let mut config = home.config();
            config.insert(name.into(), value);
            home.save_config(&config)?;
            eprintln!("Updated property [{}].", property_full_name(name));
        }
        ConfigCmd::GetValue { property } => {
            let name = property_name(&property)?;
            let config = home.config();
            let value = config.get(name).cloned().or_else(|| {
                let daemon = home.daemon().ok()?;
                match name {
                    "project" => Some(daemon.project),
                    "region" => Some(daemon.region),
                    _ => None,
                }
            });
            match value {
                Some(v) => outln!("{v}"),
                None => eprintln!("(unset)"),
            }
        }
        ConfigCmd::Unset { property } => {
            let name = property_name(&property)?;
            let mut config = home.config();
            config.remove(name);
            home.save_config(&config)?;
            eprintln!("Unset property [{}].", property_full_name(name));
        }
        ConfigCmd::List => {
            let config = home.config();
            let mut out = json!({});
            for (k, v) in &config {
                let full = property_full_name(k);
                let (section, name) = full.split_once('/').unwrap_or(("core", full));
                out[section][name] = json!(v);
            }
            format::print(&out, g, Default::Yaml)?;
        }
    }
    Ok(0)
}
