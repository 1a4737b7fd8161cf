//! Findings, severities and the three report forms: a text table (coloured when asked), JSON, and SARIF 2.1.0.

use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const NAMES: [&'static str; 5] = ["critical", "high", "medium", "low", "info"];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s.to_ascii_lowercase().as_str() {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }

    /// SARIF `level`.
    fn level(self) -> &'static str {
        match self {
            Severity::Critical | Severity::High => "error",
            Severity::Medium => "warning",
            Severity::Low | Severity::Info => "note",
        }
    }

    /// GitHub code scanning's `security-severity` (a CVSS-like score).
    fn score(self) -> &'static str {
        match self {
            Severity::Critical => "9.5",
            Severity::High => "8.0",
            Severity::Medium => "5.5",
            Severity::Low => "3.0",
            Severity::Info => "0.0",
        }
    }
}

/// One problem on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A fixed rule id (see [`crate::rules::RULES`]).
    pub rule: &'static str,
    pub severity: Severity,
    /// Full resource name, e.g. `//run.googleapis.com/projects/P/locations/L/services/S`.
    pub resource: String,
    pub message: String,
    /// The bindings, env var names and annotations that triggered it. Never a secret value.
    pub evidence: Vec<String>,
    /// The command that fixes it, in gcloud's grammar.
    pub fix: String,
}

/// A rule that could not run, and why (a missing export file, data the platform does not expose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub rule: &'static str,
    pub reason: String,
}

/// The result of a scan: findings (most severe first) and the checks that were skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub project: String,
    pub findings: Vec<Finding>,
    pub skipped: Vec<Skipped>,
}

impl Report {
    /// The highest severity found, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// The exit status: 1 when a finding is at or above `fail_on`, else 0.
    pub fn exit_code(&self, fail_on: Severity) -> u8 {
        u8::from(self.worst().is_some_and(|w| w >= fail_on))
    }

    pub fn to_json(&self) -> Value {
        let mut counts = serde_json::Map::new();
        for s in Severity::NAMES {
            let n = self.findings.iter().filter(|f| f.severity.name() == s).count();
            counts.insert(s.into(), json!(n));
        }
        json!({
            "project": self.project,
            "summary": counts,
            "findings": self.findings,
            "skipped": self.skipped,
        })
    }

    /// A readable table: one row per finding, its evidence and fix indented under it, then the skipped checks.
    /// `color` adds ANSI colours to the severity column (for a terminal).
    pub fn to_text(&self, color: bool) -> String {
        let mut out = String::new();
        if self.findings.is_empty() {
            let _ = writeln!(out, "No findings for project {}.", self.project);
        } else {
            let width = self.findings.iter().map(|f| f.rule.len()).max().unwrap_or(4).max(4);
            let _ = writeln!(out, "{:<8}  {:<width$}  RESOURCE", "SEVERITY", "RULE");
            for f in &self.findings {
                let sev = format!("{:<8}", f.severity.name().to_ascii_uppercase());
                let sev = if color { paint(f.severity, &sev) } else { sev };
                let _ = writeln!(out, "{sev}  {:<width$}  {}", f.rule, f.resource);
                let _ = writeln!(out, "          {}", f.message);
                for e in &f.evidence {
                    let _ = writeln!(out, "          evidence: {e}");
                }
                let _ = writeln!(out, "          fix: {}", f.fix);
            }
            let summary: Vec<String> = Severity::NAMES
                .iter()
                .filter_map(|s| {
                    let n = self.findings.iter().filter(|f| f.severity.name() == *s).count();
                    (n > 0).then(|| format!("{n} {s}"))
                })
                .collect();
            let _ = writeln!(out, "\n{} findings: {}.", self.findings.len(), summary.join(", "));
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "\nSkipped checks:");
            for s in &self.skipped {
                let _ = writeln!(out, "  {}: {}", s.rule, s.reason);
            }
        }
        out
    }

    /// SARIF 2.1.0: one run, the rule catalogue as the driver's rules, one result per finding (the resource as a
    /// logical location, evidence and fix as properties), skipped checks as tool notifications.
    pub fn to_sarif(&self) -> Value {
        let rules: Vec<Value> = crate::rules::RULES
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "name": r.id,
                    "shortDescription": { "text": r.title },
                    "fullDescription": { "text": r.help },
                    "defaultConfiguration": { "level": r.severity.level() },
                    "properties": { "security-severity": r.severity.score(), "tags": ["security", "cloud-run"] },
                })
            })
            .collect();
        let results: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let index = crate::rules::RULES.iter().position(|r| r.id == f.rule).unwrap_or(0);
                json!({
                    "ruleId": f.rule,
                    "ruleIndex": index,
                    "level": f.severity.level(),
                    "message": { "text": f.message },
                    "locations": [{
                        "logicalLocations": [{ "fullyQualifiedName": f.resource, "kind": "resource" }],
                    }],
                    "partialFingerprints": { "resource/rule": format!("{}|{}", f.resource, f.rule) },
                    "properties": {
                        "severity": f.severity.name(),
                        "security-severity": f.severity.score(),
                        "evidence": f.evidence,
                        "fix": f.fix,
                    },
                })
            })
            .collect();
        let notifications: Vec<Value> = self
            .skipped
            .iter()
            .map(|s| {
                json!({
                    "level": "note",
                    "message": { "text": format!("check skipped: {}", s.reason) },
                    "associatedRule": { "id": s.rule },
                })
            })
            .collect();
        json!({
            "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": { "driver": {
                    "name": "gatehouse-advisor",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://cloud.google.com/run/docs/securing/security",
                    "rules": rules,
                } },
                "invocations": [{ "executionSuccessful": true, "toolExecutionNotifications": notifications }],
                "results": results,
                "properties": { "project": self.project },
            }],
        })
    }
}

fn paint(s: Severity, text: &str) -> String {
    let code = match s {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "36",
        Severity::Info => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(sev: Severity) -> Report {
        Report {
            project: "p".into(),
            findings: vec![Finding {
                rule: "public-service",
                severity: sev,
                resource: "//run.googleapis.com/projects/p/locations/r/services/s".into(),
                message: "m".into(),
                evidence: vec!["e".into()],
                fix: "gcloud x".into(),
            }],
            skipped: vec![Skipped { rule: "sandbox-disabled", reason: "why".into() }],
        }
    }

    #[test]
    fn exit_code_follows_fail_on() {
        assert_eq!(report(Severity::High).exit_code(Severity::High), 1);
        assert_eq!(report(Severity::Critical).exit_code(Severity::High), 1);
        assert_eq!(report(Severity::Medium).exit_code(Severity::High), 0);
        assert_eq!(report(Severity::Info).exit_code(Severity::Info), 1);
        let empty = Report { project: "p".into(), findings: vec![], skipped: vec![] };
        assert_eq!(empty.exit_code(Severity::Info), 0);
    }

    #[test]
    fn text_is_coloured_only_when_asked() {
        let r = report(Severity::High);
        assert!(!r.to_text(false).contains('\x1b'));
        assert!(r.to_text(true).contains("\x1b[31mHIGH"));
        assert!(r.to_text(false).contains("Skipped checks:\n  sandbox-disabled: why"));
    }

    #[test]
    fn sarif_names_rule_level_and_resource() {
        let v = report(Severity::Medium).to_sarif();
        let result = &v["runs"][0]["results"][0];
        assert_eq!(result["ruleId"], "public-service");
        assert_eq!(result["level"], "warning");
        let i = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(v["runs"][0]["tool"]["driver"]["rules"][i]["id"], "public-service");
        assert_eq!(
            result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
            "//run.googleapis.com/projects/p/locations/r/services/s"
        );
    }
}
