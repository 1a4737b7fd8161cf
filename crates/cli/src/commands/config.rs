//! `config set|get-value|unset|list`.

use crate::args::{ConfigCmd, Global};
use crate::format::{self, Default};
use crate::home::{property_name, Home};
use anyhow::Result;
use serde_json::json;

fn section(name: &str) -> &'static str {
    match name {
        "region" => "run",
        _ => "core",
    }
}

pub fn run(g: &Global, cmd: ConfigCmd) -> Result<u8> {
    let home = Home::locate()?;
    match cmd {
        ConfigCmd::Set { property, value } => {
            let name = property_name(&property)?;
            let mut config = home.config();
            config.insert(name.into(), value);
            home.save_config(&config)?;
            eprintln!("Updated property [{}/{name}].", section(name));
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
                Some(v) => println!("{v}"),
                None => eprintln!("(unset)"),
            }
        }
        ConfigCmd::Unset { property } => {
            let name = property_name(&property)?;
            let mut config = home.config();
            config.remove(name);
            home.save_config(&config)?;
            eprintln!("Unset property [{}/{name}].", section(name));
        }
        ConfigCmd::List => {
            let config = home.config();
            let mut out = json!({});
            for (k, v) in &config {
                out[section(k)][k] = json!(v);
            }
            format::print(&out, g, Default::Yaml)?;
        }
    }
    Ok(0)
}
