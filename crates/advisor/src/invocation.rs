//! The invocation troubleshooter (`policy-troubleshoot invoke`): one hypothetical call walked through the controls
//! in the order the gateway applies them (PROTOCOL.md §3, §4) — ingress, public access, the token's presence and
//! audience, invoker IAM — with a verdict for each and the status code that ends the call.
//!
//! Pure: the caller supplies the facts (the service, who is public, the IAM decision for the principal with its
//! explanation). Must not: decide IAM itself; the decision comes from `iam::decide` through the API.

use crate::input::Service;
use crate::rules::PublicGrant;
use serde::Serialize;

pub use model::names::GCLOUD_CLIENT_ID;

pub use model::ingress::Source;

/// The facts of one hypothetical call.
pub struct Call<'a> {
    pub service: &'a Service,
    pub custom_audiences: &'a [String],
    /// Public members that can invoke the service ([`crate::rules::public_grants`]).
    pub public: &'a [PublicGrant],
    pub source: Source,
    /// The ID token's `aud`; `None`: the service's URL, as `gcloud auth print-identity-token --audiences=URL` mints.
    pub audience: Option<&'a str>,
    /// The caller's member (`user:…`, `serviceAccount:…`); `None`: no token.
    pub principal: Option<&'a str>,
    /// `iam::decide` on `run.routes.invoke` for the principal: granted, and the explanation (bindings considered).
    pub iam: Option<(bool, String)>,
    /// Whether this host's gateway enforces ingress (not yet on Gatehouse: `up` says so).
    pub ingress_enforced: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Pass,
    Fail,
    /// A question the call does not fail on, answered no: the service is not public, so its token is checked next.
    No,
    /// Not reached, or not applicable (a public service's token is never looked at).
    NotChecked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub control: &'static str,
    pub outcome: Outcome,
    pub detail: String,
}

/// The walk: a verdict per control and the status code Cloud Run answers; `gateway_status` is what this host's
/// gateway answers (they differ only when ingress would refuse the call and the host does not enforce ingress).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Walk {
    pub verdicts: Vec<Verdict>,
    pub status: u16,
    pub gateway_status: u16,
    pub reason: String,
}

/// The audiences the service accepts: its URLs with and without a trailing slash, and its custom audiences as
/// written.
pub fn accepted_audiences(service: &Service, custom: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for url in service.urls.iter().filter(|u| !u.is_empty()) {
        let url = url.trim_end_matches('/');
        for a in [url.to_owned(), format!("{url}/")] {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out.extend(custom.iter().cloned());
    out
}

/// Walks `call` through the controls.
pub fn walk(call: &Call) -> Walk {
    let s = call.service;
    let mut verdicts = Vec::new();
    let mut add = |control, outcome, detail: String| verdicts.push(Verdict { control, outcome, detail });
    let ingress_ok = s.ingress.admits(call.source);
    let ingress_detail = format!(
        "ingress `{}` {} requests from {}{}",
        s.ingress.flag(),
        if ingress_ok { "admits" } else { "refuses" },
        call.source.words(),
        if !ingress_ok && !call.ingress_enforced {
            " (not enforced on this host yet: its gateway lets the request through)"
        } else {
            ""
        }
    );
    add("ingress", if ingress_ok { Outcome::Pass } else { Outcome::Fail }, ingress_detail);
    let refused_by_ingress = !ingress_ok;
    // What follows ingress, as the gateway runs it (steps 1–6 of gateway::invoke).
    let (status, reason) = 'checks: {
        if s.invoker_iam_disabled {
            add(
                "public access",
                Outcome::Pass,
                "the invoker IAM check is disabled (invokerIamDisabled): credentials are not looked at".into(),
            );
            add("token audience", Outcome::NotChecked, "not checked: the service is public".into());
            add("invoker IAM", Outcome::NotChecked, "skipped: the invoker IAM check is disabled".into());
            break 'checks (200, "the invoker check is disabled".to_owned());
        }
        if let Some(g) = call.public.iter().find(|g| g.member == "allUsers") {
            add("public access", Outcome::Pass, format!("{g}: anyone may call, credentials are not looked at"));
            add("token audience", Outcome::NotChecked, "not checked: the service is public".into());
            add("invoker IAM", Outcome::Pass, format!("{g}"));
            break 'checks (200, "the service is public".to_owned());
        }
        add(
            "public access",
            Outcome::No,
            "private: no allUsers binding and the invoker check is on, so a token is needed".into(),
        );
        let Some(principal) = call.principal else {
            add("token audience", Outcome::Fail, "no token: the request is not authenticated".into());
            add("invoker IAM", Outcome::NotChecked, "not reached".into());
            break 'checks (403, "no token".to_owned());
        };
        let accepted = accepted_audiences(s, call.custom_audiences);
        let default_aud = accepted.first().cloned().unwrap_or_default();
        let aud = call.audience.map(str::to_owned).unwrap_or(default_aud);
        if accepted.contains(&aud) || aud == GCLOUD_CLIENT_ID {
            add("token audience", Outcome::Pass, format!("aud `{aud}` is accepted (one of: {})", accepted.join(", ")));
        } else {
            add(
                "token audience",
                Outcome::Fail,
                format!("aud `{aud}` is not accepted; use one of: {}", accepted.join(", ")),
            );
            add("invoker IAM", Outcome::NotChecked, "not reached".into());
            break 'checks (401, format!("token audience `{aud}` does not match"));
        }
        match &call.iam {
            Some((true, why)) => {
                add("invoker IAM", Outcome::Pass, format!("`{principal}` holds run.routes.invoke\n{why}"));
                (200, format!("`{principal}` may invoke"))
            }
            Some((false, why)) => {
                add("invoker IAM", Outcome::Fail, format!("`{principal}` lacks run.routes.invoke\n{why}"));
                (403, format!("`{principal}` lacks `run.routes.invoke`"))
            }
            None => {
                add("invoker IAM", Outcome::NotChecked, "the IAM decision was not available".into());
                (0, "unknown".to_owned())
            }
        }
    };
    if refused_by_ingress {
        let gateway_status = if call.ingress_enforced { 404 } else { status };
        return Walk { verdicts, status: 404, gateway_status, reason: "refused by ingress".into() };
    }
    Walk { verdicts, status, gateway_status: status, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Ingress;

    const URL: &str = "https://api-abc123-uc.a.run.app";

    fn service(ingress: Ingress, disabled: bool) -> Service {
        Service {
            name: "api".into(),
            region: "us-central1".into(),
            ingress,
            invoker_iam_disabled: disabled,
            urls: vec![URL.into(), "https://api-123.us-central1.run.app".into()],
            ..Default::default()
        }
    }

    fn public() -> Vec<PublicGrant> {
        vec![PublicGrant { role: "roles/run.invoker".into(), member: "allUsers".into(), on_project: false }]
    }

    fn status(
        s: &Service,
        public: &[PublicGrant],
        source: Source,
        aud: Option<&str>,
        who: Option<&str>,
        granted: bool,
    ) -> (u16, u16) {
        let custom = ["https://api.example.com".to_owned()];
        let w = walk(&Call {
            service: s,
            custom_audiences: &custom,
            public,
            source,
            audience: aud,
            principal: who,
            iam: Some((granted, String::new())),
            ingress_enforced: false,
        });
        (w.status, w.gateway_status)
    }

    #[test]
    fn the_table() {
        use Source::*;
        let private = service(Ingress::All, false);
        let internal = service(Ingress::Internal, false);
        let lb = service(Ingress::InternalAndCloudLoadBalancing, false);
        let disabled = service(Ingress::All, true);
        let alice = Some("user:alice@example.com");
        #[rustfmt::skip]
        let rows: Vec<((u16, u16), (u16, u16))> = vec![
            (status(&private, &[], External, None, alice, true), (200, 200)),
            (status(&private, &[], External, None, alice, false), (403, 403)),
            (status(&private, &[], External, None, None, true), (403, 403)),
            (status(&private, &[], External, Some("https://other.a.run.app"), alice, true), (401, 401)),
            (status(&private, &[], External, Some(&format!("{URL}/")), alice, true), (200, 200)),
            (status(&private, &[], External, Some("https://api.example.com"), alice, true), (200, 200)),
            (status(&private, &[], External, Some("https://api.example.com/"), alice, true), (401, 401)),
            (status(&private, &[], External, Some(GCLOUD_CLIENT_ID), alice, true), (200, 200)),
            (status(&private, &public(), External, None, None, false), (200, 200)),
            (status(&disabled, &[], External, Some("garbage"), None, false), (200, 200)),
            // Ingress: Cloud Run answers 404; this host does not enforce it yet.
            (status(&internal, &[], External, None, alice, true), (404, 200)),
            (status(&internal, &[], LoadBalancer, None, alice, true), (404, 200)),
            (status(&internal, &[], Internal, None, alice, true), (200, 200)),
            (status(&lb, &[], LoadBalancer, None, alice, false), (403, 403)),
            (status(&lb, &public(), External, None, None, false), (404, 200)),
        ];
        for (i, (got, want)) in rows.into_iter().enumerate() {
            assert_eq!(got, want, "row {i}");
        }
    }

    #[test]
    fn enforced_ingress_makes_the_gateway_agree() {
        let s = service(Ingress::Internal, false);
        let w = walk(&Call {
            service: &s,
            custom_audiences: &[],
            public: &[],
            source: Source::External,
            audience: None,
            principal: None,
            iam: None,
            ingress_enforced: true,
        });
        assert_eq!((w.status, w.gateway_status), (404, 404));
        assert_eq!(w.verdicts[0].outcome, Outcome::Fail);
        assert_eq!(
            w.verdicts.iter().map(|v| v.control).collect::<Vec<_>>(),
            ["ingress", "public access", "token audience", "invoker IAM"]
        );
    }
}
