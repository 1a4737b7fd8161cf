//! The rules. Each is a function over the [`Input`] that adds findings or, when the data it needs is missing,
//! says why it was skipped. Rule ids are fixed (issue 7); [`RULES`] is the catalogue SARIF publishes.
//!
//! Must not: perform I/O or change anything. Role facts (which role holds which permission) come from
//! `iam::Catalogue`; no rule grants or decides access.

use crate::detect;
use crate::input::{is_default_compute_account, Egress, EnvValue, Input, Origin, Service};
use crate::report::{Finding, Report, Severity, Skipped};
use iam::Catalogue;
use model::policy::ReadLog;
use model::Policy;
use std::collections::{BTreeMap, BTreeSet};

/// A rule as SARIF describes it; `severity` is its highest.
pub struct RuleInfo {
    pub id: &'static str,
    pub severity: Severity,
    pub title: &'static str,
    pub help: &'static str,
}

const fn rule(id: &'static str, severity: Severity, title: &'static str, help: &'static str) -> RuleInfo {
    RuleInfo { id, severity, title, help }
}

pub const DEFAULT_SERVICE_ACCOUNT: &str = "default-service-account";
pub const PRIMITIVE_ROLE_BINDING: &str = "primitive-role-binding";
pub const PLAINTEXT_SECRET_ENV: &str = "plaintext-secret-env";
pub const PUBLIC_INTERNAL_SERVICE: &str = "public-internal-service";
pub const PUBLIC_SERVICE: &str = "public-service";
pub const INGRESS_INTERNAL_WITHOUT_IAM: &str = "ingress-internal-without-iam";
pub const INVOKER_IAM_DISABLED: &str = "invoker-iam-disabled";
pub const PROJECT_LEVEL_SECRET_ACCESSOR: &str = "project-level-secret-accessor";
pub const BROAD_PROJECT_ROLE: &str = "broad-project-role";
pub const SERVICE_ACCOUNT_KEY: &str = "service-account-key";
pub const UNPINNED_SECRET_ENV: &str = "unpinned-secret-env";
pub const SECRET_ACCESS_AUDIT_DISABLED: &str = "secret-access-audit-disabled";
pub const EGRESS_BYPASSES_INTERNAL_INGRESS: &str = "egress-bypasses-internal-ingress";
pub const UNUSED_PERMISSION: &str = "unused-permission";
pub const SANDBOX_DISABLED: &str = "sandbox-disabled";
pub const PUBLIC_SECRET: &str = "public-secret";

pub const RULES: [RuleInfo; 16] = [
    rule(DEFAULT_SERVICE_ACCOUNT, Severity::High, "A service runs as the default compute service account",
        "The default compute service account is shared by everything in the project and often holds roles/editor. Give each service its own account with only the roles it needs."),
    rule(PRIMITIVE_ROLE_BINDING, Severity::Critical, "A basic role (owner, editor, viewer) is granted at project level",
        "Basic roles hold thousands of permissions. Granted to a service account they turn one compromised service into a compromised project; granted to allUsers, allAuthenticatedUsers or a domain, to everyone."),
    rule(PLAINTEXT_SECRET_ENV, Severity::High, "A plain environment variable holds what looks like a secret",
        "Values set with --set-env-vars are part of the service's configuration: anyone who can describe the service reads them. Keep secrets in Secret Manager and reference a pinned version with --set-secrets."),
    rule(PUBLIC_INTERNAL_SERVICE, Severity::High, "A service that looks internal is publicly invocable",
        "allUsers or allAuthenticatedUsers hold the invoker role on a service whose ingress, labels, name or callers say it is internal."),
    rule(PUBLIC_SERVICE, Severity::Info, "A service is publicly invocable",
        "Lists the project's public surface: services anyone can invoke."),
    rule(INGRESS_INTERNAL_WITHOUT_IAM, Severity::High, "Internal ingress is used instead of authentication",
        "Ingress limits where requests come from, not who sends them: anything inside the VPC (or behind the load balancer) can call a service that allUsers may invoke or whose invoker check is disabled."),
    rule(INVOKER_IAM_DISABLED, Severity::High, "The invoker IAM check is disabled",
        "With invokerIamDisabled (run.googleapis.com/invoker-iam-disabled) anyone who reaches the URL may call the service."),
    rule(PROJECT_LEVEL_SECRET_ACCESSOR, Severity::Medium, "A service account can read every secret of the project",
        "Grant roles/secretmanager.secretAccessor on the secrets a service uses, not on the project."),
    rule(BROAD_PROJECT_ROLE, Severity::Medium, "A service account holds an admin role at project level",
        "Admin roles at project level reach every resource of their service. Grant a narrower role on the resources the account uses."),
    rule(SERVICE_ACCOUNT_KEY, Severity::High, "A service account has user-managed keys",
        "A key file is a long-lived password that works from anywhere. Use the attached service account, impersonation or workload identity federation instead."),
    rule(UNPINNED_SECRET_ENV, Severity::Low, "An env-var secret references latest",
        "An env var is read once when an instance starts: with `latest`, instances of one revision can see different values. Pin a version number."),
    rule(SECRET_ACCESS_AUDIT_DISABLED, Severity::Medium, "Data Access audit logs for Secret Manager are off",
        "Without DATA_READ audit logs for secretmanager.googleapis.com nobody can tell who read a secret."),
    rule(EGRESS_BYPASSES_INTERNAL_INGRESS, Severity::Medium, "A service calls an internal service without all-traffic VPC egress",
        "Calls from Cloud Run to an internal-ingress service count as internal only when they leave through the VPC (all-traffic egress); otherwise they arrive as external and get 404."),
    rule(UNUSED_PERMISSION, Severity::Low, "A service account holds roles it did not use",
        "Live only: roles whose permissions were not used in the observed window, with the smallest set of predefined roles on the resources that were used."),
    rule(SANDBOX_DISABLED, Severity::High, "Network controls are not enforced on this host",
        "Live only: the platform runs without its network sandbox, so ingress and egress settings are not enforced."),
    rule(PUBLIC_SECRET, Severity::Critical, "A secret's payload is readable by anyone",
        "allUsers or allAuthenticatedUsers hold a role that reads secret payloads (secretmanager.versions.access) on the secret or on the project: anyone, or anyone with a Google account, can read it. Remove the binding and grant roles/secretmanager.secretAccessor on the secret to the service accounts that need it."),
];

/// The permission that reads a secret's payload.
const ACCESS_SECRET: &str = "secretmanager.versions.access";

/// The roles that hold `run.routes.invoke` (checked through the catalogue; unknown roles are not assumed to).
const INVOKE: &str = "run.routes.invoke";
/// Name words that make a service look internal.
const INTERNAL_WORDS: [&str; 5] = ["internal", "backend", "worker", "admin", "private"];
/// Label and annotation words that say "internal".
const INTERNAL_MARKS: [&str; 2] = ["internal", "private"];

/// Runs every rule over `input`. Findings come out most severe first, then by rule and resource.
pub fn scan(input: &Input) -> Report {
    let mut cx = Cx { input, catalogue: Catalogue::predefined(), findings: Vec::new(), skipped: Vec::new() };
    cx.default_service_account();
    cx.primitive_role_binding();
    cx.plaintext_secret_env();
    cx.public_services();
    cx.invoker_iam_disabled();
    cx.project_level_secret_accessor();
    cx.broad_project_role();
    cx.service_account_key();
    cx.unpinned_secret_env();
    cx.secret_access_audit_disabled();
    cx.egress_bypasses_internal_ingress();
    cx.unused_permission();
    cx.sandbox_disabled();
    cx.public_secrets();
    let order = |id: &str| RULES.iter().position(|r| r.id == id).unwrap_or(usize::MAX);
    cx.findings.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then(order(a.rule).cmp(&order(b.rule))).then(a.resource.cmp(&b.resource))
    });
    Report { project: input.project_id.clone(), findings: cx.findings, skipped: cx.skipped }
}

struct Cx<'a> {
    input: &'a Input,
    catalogue: Catalogue,
    findings: Vec<Finding>,
    skipped: Vec<Skipped>,
}

/// A public member (`allUsers`, `allAuthenticatedUsers`) holding a role that can invoke a service, and where the
/// binding is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicGrant {
    pub role: String,
    pub member: String,
    /// True for a binding on the project (it reaches every service).
    pub on_project: bool,
}

impl std::fmt::Display for PublicGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.on_project { "project" } else { "service" };
        write!(f, "{at} binding: {} → {}", self.role, self.member)
    }
}

/// Public members with a role holding `run.routes.invoke` on a service (its policy) or on the whole project.
pub fn public_grants(catalogue: &Catalogue, service: &Policy, project: Option<&Policy>) -> Vec<PublicGrant> {
    let mut out = Vec::new();
    for (p, on_project) in std::iter::once((service, false)).chain(project.map(|p| (p, true))) {
        for b in p.bindings.iter().filter(|b| catalogue.role_has_permission(&b.role, INVOKE)) {
            for m in b.members.iter().filter(|m| *m == "allUsers" || *m == "allAuthenticatedUsers") {
                out.push(PublicGrant { role: b.role.clone(), member: m.clone(), on_project });
            }
        }
    }
    out
}

impl<'a> Cx<'a> {
    fn skip(&mut self, rule: &'static str, reason: impl Into<String>) {
        self.skipped.push(Skipped { rule, reason: reason.into() });
    }

    fn add(
        &mut self,
        rule: &'static str,
        severity: Severity,
        resource: String,
        message: String,
        evidence: Vec<String>,
        fix: String,
    ) {
        self.findings.push(Finding { rule, severity, resource, message, evidence, fix });
    }

    fn project(&self) -> &'a str {
        &self.input.project_id
    }

    /// The services, or a skip note for `rules` when there are none to read.
    fn services(&mut self, rules: &[&'static str]) -> Option<&'a [Service]> {
        match &self.input.services {
            Some(s) => Some(s),
            None => {
                for r in rules {
                    self.skip(r, "no services were available (services/*.yaml or *.json)");
                }
                None
            }
        }
    }

    fn project_policy(&mut self, rules: &[&'static str]) -> Option<&'a Policy> {
        match &self.input.project_policy {
            Some(p) => Some(p),
            None => {
                for r in rules {
                    self.skip(r, "the project IAM policy was not available (project-iam.json)");
                }
                None
            }
        }
    }

    /// The account a service runs as (the default compute account when none is set).
    fn runtime_account(&self, s: &Service) -> String {
        s.service_account.clone().filter(|a| !a.is_empty()).unwrap_or_else(|| self.input.default_compute_account())
    }

    /// `--region=R --project=P`, the location flags of a `run services` command.
    fn at(&self, s: &Service) -> String {
        format!("--region={} --project={}", s.region, self.project())
    }

    /// Unconditional and conditional project bindings as (role, member).
    fn project_grants(&self, member: &str) -> Vec<&'a str> {
        let Some(p) = &self.input.project_policy else { return Vec::new() };
        p.bindings.iter().filter(|b| b.members.iter().any(|m| m == member)).map(|b| b.role.as_str()).collect()
    }

    fn remove_project_binding(&self, member: &str, role: &str) -> String {
        let conditional = self.input.project_policy.as_ref().is_some_and(|p| {
            p.bindings.iter().any(|b| b.role == role && b.condition.is_some() && b.members.iter().any(|m| m == member))
        });
        format!(
            "gcloud projects remove-iam-policy-binding {} --member={member} --role={role}{}",
            self.project(),
            if conditional { " --all" } else { "" }
        )
    }

    fn default_service_account(&mut self) {
        let Some(services) = self.services(&[DEFAULT_SERVICE_ACCOUNT]) else { return };
        for s in services {
            let account = self.runtime_account(s);
            // No account set is the default one, even when the export does not say the project number.
            let unset = s.service_account.as_deref().is_none_or(str::is_empty);
            if !unset && !is_default_compute_account(&account) {
                continue;
            }
            let mut evidence = vec![match &s.service_account {
                Some(a) if !a.is_empty() => format!("template.serviceAccount: {a}"),
                _ => format!("template.serviceAccount is not set, so the revision runs as {account}"),
            }];
            let basic: Vec<&str> = self
                .project_grants(&format!("serviceAccount:{account}"))
                .into_iter()
                .filter(|r| matches!(*r, "roles/editor" | "roles/owner"))
                .collect();
            for r in &basic {
                evidence.push(format!("project binding: {r} → serviceAccount:{account}"));
            }
            if self.input.project_policy.is_none() {
                evidence.push("the project IAM policy was not available: the account's roles are unknown".into());
            }
            let severity = if basic.is_empty() { Severity::Medium } else { Severity::High };
            let id = account_id_for(&s.name);
            let fix = format!(
                "gcloud iam service-accounts create {id} --project={p} && gcloud run services update {name} {at} --service-account={id}@{p}.iam.gserviceaccount.com",
                p = self.project(),
                name = s.name,
                at = self.at(s),
            );
            let message = format!(
                "service `{}` runs as the default compute service account{}",
                s.name,
                if basic.is_empty() {
                    String::new()
                } else {
                    format!(", which holds {} on the project", basic.join(" and "))
                }
            );
            self.add(DEFAULT_SERVICE_ACCOUNT, severity, self.input.service_resource(s), message, evidence, fix);
        }
    }

    fn primitive_role_binding(&mut self) {
        let Some(policy) = self.project_policy(&[PRIMITIVE_ROLE_BINDING]) else { return };
        for b in &policy.bindings {
            if !matches!(b.role.as_str(), "roles/owner" | "roles/editor" | "roles/viewer") {
                continue;
            }
            for m in &b.members {
                let severity = if m == "allUsers" || m == "allAuthenticatedUsers" || m.starts_with("domain:") {
                    Severity::Critical
                } else if m.starts_with("serviceAccount:") {
                    Severity::High
                } else {
                    continue;
                };
                let mut evidence = vec![format!("project binding: {} → {m}", b.role)];
                if let Some(c) = &b.condition {
                    evidence.push(format!("condition: {}", c.expression));
                }
                self.add(
                    PRIMITIVE_ROLE_BINDING,
                    severity,
                    self.input.project_resource(),
                    format!("`{m}` holds the basic role {} on project {}", b.role, self.project()),
                    evidence,
                    self.remove_project_binding(m, &b.role),
                );
            }
        }
    }

    fn plaintext_secret_env(&mut self) {
        let Some(services) = self.services(&[PLAINTEXT_SECRET_ENV]) else { return };
        for s in services {
            for e in &s.env {
                let EnvValue::Plain(value) = &e.value else { continue };
                let Some(why) = detect::looks_secret(&e.name, value) else { continue };
                let secret = secret_id_for(&s.name, &e.name);
                let account = self.runtime_account(s);
                let fix = format!(
                    "gcloud secrets create {secret} --replication-policy=automatic --data-file=- --project={p} && gcloud secrets add-iam-policy-binding {secret} --member=serviceAccount:{account} --role=roles/secretmanager.secretAccessor --project={p} && gcloud run services update {name} {at} --remove-env-vars={env} --update-secrets={env}={secret}:1",
                    p = self.project(),
                    name = s.name,
                    at = self.at(s),
                    env = e.name,
                );
                self.add(
                    PLAINTEXT_SECRET_ENV,
                    Severity::High,
                    self.input.service_resource(s),
                    format!(
                        "plain env var `{}` of service `{}` looks like a secret; move it to Secret Manager (the fix reads the current value from standard input)",
                        e.name, s.name
                    ),
                    vec![format!("env `{}`: {why}; plain values are shown to anyone who can describe the service", e.name)],
                    fix,
                );
            }
        }
    }

    /// Who the public can invoke `s` as: public members with an invoking role on the service or the project.
    /// `None` when the service's IAM policy is unknown.
    fn public_grants(&self, s: &Service) -> Option<Vec<PublicGrant>> {
        let policy = self.input.service_policies.as_ref()?.get(&s.name)?;
        Some(public_grants(&self.catalogue, policy, self.input.project_policy.as_ref()))
    }

    fn remove_public(&self, s: &Service, grants: &[&PublicGrant]) -> String {
        grants
            .iter()
            .map(|g| {
                if g.on_project {
                    self.remove_project_binding(&g.member, &g.role)
                } else {
                    format!(
                        "gcloud run services remove-iam-policy-binding {} {} --member={} --role={}",
                        s.name,
                        self.at(s),
                        g.member,
                        g.role
                    )
                }
            })
            .collect::<Vec<_>>()
            .join(" && ")
    }

    /// Why `s` looks internal, in words.
    fn internal_signals(&self, s: &Service) -> Vec<String> {
        let mut why = Vec::new();
        if s.ingress.is_internal() {
            why.push(format!("ingress is `{}`", s.ingress.flag()));
        }
        for (kind, map) in [("label", &s.labels), ("annotation", &s.annotations)] {
            for (k, v) in map {
                // The platform's own keys (ingress has its own signal; client.knative.dev/user-image names an image).
                let (prefix, _) = k.split_once('/').unwrap_or_default();
                if prefix.ends_with("googleapis.com") || prefix.ends_with("knative.dev") {
                    continue;
                }
                if words(k).chain(words(v)).any(|w| INTERNAL_MARKS.contains(&w.as_str())) {
                    // A finding never quotes a value that could be a secret (a key with `private` in its value...).
                    match detect::looks_secret(k, v) {
                        None => why.push(format!("{kind} `{k}: {v}`")),
                        Some(_) => why.push(format!("{kind} `{k}` (its value is not shown: it looks like a secret)")),
                    }
                }
            }
        }
        if let Some(w) = words(&s.name).find(|w| INTERNAL_WORDS.contains(&w.as_str())) {
            why.push(format!("its name contains `{w}`"));
        }
        if let Some(calls) = self.input.observations.as_ref().and_then(|o| o.calls.as_ref()) {
            let callers: BTreeSet<&str> =
                calls.iter().filter(|c| c.target == s.name).map(|c| c.caller.as_str()).collect();
            if !callers.is_empty() && callers.iter().all(|c| c.starts_with("serviceAccount:")) {
                let list: Vec<&str> = callers.into_iter().collect();
                why.push(format!("it was only ever called by service accounts ({})", list.join(", ")));
            }
        }
        why
    }

    /// `public-service`, `public-internal-service` and `ingress-internal-without-iam`: all need the service policies.
    fn public_services(&mut self) {
        let rules = [PUBLIC_SERVICE, PUBLIC_INTERNAL_SERVICE, INGRESS_INTERNAL_WITHOUT_IAM];
        let Some(services) = self.services(&rules) else { return };
        let mut unknown = Vec::new();
        for s in services {
            let Some(grants) = self.public_grants(s) else {
                unknown.push(s.name.as_str());
                continue;
            };
            let resource = self.input.service_resource(s);
            let bound: Vec<String> = grants.iter().map(PublicGrant::to_string).collect();
            if !grants.is_empty() || s.invoker_iam_disabled {
                let mut evidence = bound.clone();
                if s.invoker_iam_disabled {
                    evidence.push("invokerIamDisabled: true".into());
                }
                let all: Vec<&PublicGrant> = grants.iter().collect();
                let fix = if grants.is_empty() {
                    format!("gcloud run services update {} {} --invoker-iam-check", s.name, self.at(s))
                } else {
                    self.remove_public(s, &all)
                };
                self.add(
                    PUBLIC_SERVICE,
                    Severity::Info,
                    resource.clone(),
                    format!(
                        "service `{}` can be invoked by anyone (if it should not be, the fix makes it private)",
                        s.name
                    ),
                    evidence,
                    fix,
                );
            }
            let signals = self.internal_signals(s);
            if !grants.is_empty() && !signals.is_empty() {
                let mut evidence = bound.clone();
                evidence.extend(signals.iter().map(|w| format!("looks internal: {w}")));
                let all: Vec<&PublicGrant> = grants.iter().collect();
                self.add(
                    PUBLIC_INTERNAL_SERVICE,
                    Severity::High,
                    resource.clone(),
                    format!("service `{}` looks internal but anyone can invoke it", s.name),
                    evidence,
                    self.remove_public(s, &all),
                );
            }
            if s.ingress.is_internal() && (!grants.is_empty() || s.invoker_iam_disabled) {
                let mut evidence = vec![format!("ingress: {}", s.ingress.flag())];
                evidence.extend(bound.iter().cloned());
                let mut fixes = Vec::new();
                if !grants.is_empty() {
                    let all: Vec<&PublicGrant> = grants.iter().collect();
                    fixes.push(self.remove_public(s, &all));
                }
                if s.invoker_iam_disabled {
                    evidence.push("invokerIamDisabled: true".into());
                    fixes.push(format!("gcloud run services update {} {} --invoker-iam-check", s.name, self.at(s)));
                }
                self.add(
                    INGRESS_INTERNAL_WITHOUT_IAM,
                    Severity::High,
                    resource,
                    format!(
                        "service `{}` relies on ingress `{}` alone: any caller inside the network may invoke it without an identity",
                        s.name,
                        s.ingress.flag()
                    ),
                    evidence,
                    fixes.join(" && "),
                );
            }
        }
        if !unknown.is_empty() {
            let reason = format!("no IAM policy (services/NAME.iam.json) for: {}", unknown.join(", "));
            for r in rules {
                self.skip(r, reason.clone());
            }
        }
    }

    fn invoker_iam_disabled(&mut self) {
        let Some(services) = self.services(&[INVOKER_IAM_DISABLED]) else { return };
        for s in services.iter().filter(|s| s.invoker_iam_disabled) {
            let evidence = match s.annotations.get("run.googleapis.com/invoker-iam-disabled") {
                Some(v) => vec![format!("annotation run.googleapis.com/invoker-iam-disabled: {v}")],
                None => vec!["invokerIamDisabled: true".into()],
            };
            self.add(
                INVOKER_IAM_DISABLED,
                Severity::High,
                self.input.service_resource(s),
                format!("service `{}` skips the invoker IAM check: anyone who reaches its URL may call it", s.name),
                evidence,
                format!("gcloud run services update {} {} --invoker-iam-check", s.name, self.at(s)),
            );
        }
    }

    /// Secrets the services running as `account` reference.
    fn secrets_used_by(&self, account: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for s in self.input.services.iter().flatten().filter(|s| self.runtime_account(s) == account) {
            for e in &s.env {
                if let EnvValue::Secret { secret, .. } = &e.value {
                    out.insert(short(secret).to_owned());
                }
            }
            out.extend(s.secret_volumes.iter().map(|v| short(v).to_owned()));
        }
        out
    }

    fn project_level_secret_accessor(&mut self) {
        let Some(policy) = self.project_policy(&[PROJECT_LEVEL_SECRET_ACCESSOR]) else { return };
        for b in &policy.bindings {
            if !matches!(b.role.as_str(), "roles/secretmanager.secretAccessor" | "roles/secretmanager.admin") {
                continue;
            }
            for m in b.members.iter().filter(|m| m.starts_with("serviceAccount:")) {
                let email = &m["serviceAccount:".len()..];
                let used = self.secrets_used_by(email);
                let mut fixes: Vec<String> = used
                    .iter()
                    .map(|secret| {
                        format!(
                            "gcloud secrets add-iam-policy-binding {secret} --member={m} --role=roles/secretmanager.secretAccessor --project={}",
                            self.project()
                        )
                    })
                    .collect();
                fixes.push(self.remove_project_binding(m, &b.role));
                let mut evidence = vec![format!("project binding: {} → {m}", b.role)];
                if !used.is_empty() {
                    evidence.push(format!(
                        "its services use only: {}",
                        used.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
                    ));
                }
                self.add(
                    PROJECT_LEVEL_SECRET_ACCESSOR,
                    Severity::Medium,
                    self.input.project_resource(),
                    format!("`{m}` can read every secret of project {} ({} at project level)", self.project(), b.role),
                    evidence,
                    fixes.join(" && "),
                );
            }
        }
    }

    fn broad_project_role(&mut self) {
        let Some(policy) = self.project_policy(&[BROAD_PROJECT_ROLE]) else { return };
        for b in &policy.bindings {
            let admin = b.role.starts_with("roles/") && b.role.ends_with(".admin");
            // Secret Manager's admin role has its own rule (project-level-secret-accessor).
            if !admin || b.role == "roles/secretmanager.admin" {
                continue;
            }
            for m in b.members.iter().filter(|m| m.starts_with("serviceAccount:")) {
                self.add(
                    BROAD_PROJECT_ROLE,
                    Severity::Medium,
                    self.input.project_resource(),
                    format!(
                        "`{m}` holds {} on the whole project; grant a narrower role on the resources it uses instead",
                        b.role
                    ),
                    vec![format!("project binding: {} → {m}", b.role)],
                    self.remove_project_binding(m, &b.role),
                );
            }
        }
    }

    fn service_account_key(&mut self) {
        let Some(keys) = &self.input.keys else {
            self.skip(SERVICE_ACCOUNT_KEY, "no key lists were available (keys/EMAIL.json)");
            return;
        };
        for (email, list) in keys {
            let user: Vec<_> = list.iter().filter(|k| k.key_type == "USER_MANAGED").collect();
            if user.is_empty() {
                continue;
            }
            let evidence = user
                .iter()
                .map(|k| {
                    format!(
                        "user-managed key {} (valid after {})",
                        k.id(),
                        if k.valid_after.is_empty() { "?" } else { &k.valid_after }
                    )
                })
                .collect();
            let fix = user
                .iter()
                .map(|k| {
                    format!(
                        "gcloud iam service-accounts keys delete {} --iam-account={email} --project={}",
                        k.id(),
                        self.project()
                    )
                })
                .collect::<Vec<_>>()
                .join(" && ");
            self.add(
                SERVICE_ACCOUNT_KEY,
                Severity::High,
                self.input.account_resource(email),
                format!("service account `{email}` has {} user-managed key(s)", user.len()),
                evidence,
                fix,
            );
        }
        if let Some(accounts) = &self.input.service_accounts {
            let missing: Vec<&str> =
                accounts.iter().map(|a| a.email.as_str()).filter(|e| !keys.contains_key(*e)).collect();
            if !missing.is_empty() {
                self.skip(SERVICE_ACCOUNT_KEY, format!("no key list (keys/EMAIL.json) for: {}", missing.join(", ")));
            }
        }
    }

    fn unpinned_secret_env(&mut self) {
        let Some(services) = self.services(&[UNPINNED_SECRET_ENV]) else { return };
        for s in services {
            for e in &s.env {
                let EnvValue::Secret { secret, version } = &e.value else { continue };
                if version != "latest" {
                    continue;
                }
                let id = short(secret);
                self.add(
                    UNPINNED_SECRET_ENV,
                    Severity::Low,
                    self.input.service_resource(s),
                    format!("env var `{}` of service `{}` reads secret `{id}` at version `latest`; pin a version", e.name, s.name),
                    vec![format!("env `{}` = secret {secret}:latest", e.name)],
                    format!(
                        "gcloud run services update {} {} --update-secrets={}={id}:$(gcloud secrets versions describe latest --secret={id} --project={} --format='value(name.basename())')",
                        s.name,
                        self.at(s),
                        e.name,
                        self.project()
                    ),
                );
            }
        }
    }

    fn public_secrets(&mut self) {
        let public = |m: &&String| *m == "allUsers" || *m == "allAuthenticatedUsers";
        let mut found = Vec::new();
        let secrets = self.input.secret_policies.iter().flatten();
        if self.input.secret_policies.is_none() {
            // The project's bindings are still checked below.
            self.skip(PUBLIC_SECRET, "the secrets' IAM policies were not available (secrets/*.iam.json)");
        }
        for (secret, policy) in secrets {
            for b in policy.bindings.iter().filter(|b| self.catalogue.role_has_permission(&b.role, ACCESS_SECRET)) {
                for m in b.members.iter().filter(public) {
                    found.push((
                        self.input.secret_resource(secret),
                        format!("anyone in `{m}` can read the payload of secret `{secret}` ({} on the secret)", b.role),
                        format!("secret binding: {} → {m}", b.role),
                        format!(
                            "gcloud secrets remove-iam-policy-binding {secret} --member={m} --role={} --project={}{}",
                            b.role,
                            self.project(),
                            if b.condition.is_some() { " --all" } else { "" }
                        ),
                    ));
                }
            }
        }
        // On the project it reaches every secret. Basic roles there are `primitive-role-binding`'s.
        let project = self.input.project_policy.iter().flat_map(|p| &p.bindings);
        for b in project.filter(|b| self.catalogue.role_has_permission(&b.role, ACCESS_SECRET)) {
            if matches!(b.role.as_str(), "roles/owner" | "roles/editor" | "roles/viewer") {
                continue;
            }
            for m in b.members.iter().filter(public) {
                found.push((
                    self.input.project_resource(),
                    format!(
                        "anyone in `{m}` can read the payload of every secret of project {} ({} on the project)",
                        self.project(),
                        b.role
                    ),
                    format!("project binding: {} → {m}", b.role),
                    self.remove_project_binding(m, &b.role),
                ));
            }
        }
        for (resource, message, evidence, fix) in found {
            self.add(PUBLIC_SECRET, Severity::Critical, resource, message, vec![evidence], fix);
        }
    }

    fn secret_access_audit_disabled(&mut self) {
        let Some(policy) = self.project_policy(&[SECRET_ACCESS_AUDIT_DISABLED]) else { return };
        let configs: Vec<_> = policy
            .audit_configs
            .iter()
            .filter(|c| c.service == "secretmanager.googleapis.com" || c.service == "allServices")
            .collect();
        // Google's default is off; Gatehouse's (live) is on until an auditConfigs entry for the service exists.
        let on = policy
            .read_logged("secretmanager.googleapis.com", ReadLog::DataRead, "")
            .unwrap_or(self.input.origin == Origin::Live);
        if on {
            return;
        }
        let evidence = if configs.is_empty() {
            vec!["the project policy has no auditConfigs entry for secretmanager.googleapis.com or allServices".into()]
        } else {
            configs.iter().map(|c| format!("auditConfigs entry for {} has no DATA_READ log type", c.service)).collect()
        };
        self.add(
            SECRET_ACCESS_AUDIT_DISABLED,
            Severity::Medium,
            self.input.project_resource(),
            format!("reads of secret payloads in project {} are not audited", self.project()),
            evidence,
            format!(
                "gcloud projects get-iam-policy {p} --format=json | jq '.auditConfigs += [{{\"service\":\"secretmanager.googleapis.com\",\"auditLogConfigs\":[{{\"logType\":\"DATA_READ\"}}]}}]' > policy.json && gcloud projects set-iam-policy {p} policy.json",
                p = self.project()
            ),
        );
    }

    fn egress_bypasses_internal_ingress(&mut self) {
        let Some(services) = self.services(&[EGRESS_BYPASSES_INTERNAL_INGRESS]) else { return };
        let internal: Vec<&Service> = services.iter().filter(|s| s.ingress.is_internal()).collect();
        if internal.is_empty() {
            return;
        }
        let calls = self.input.observations.as_ref().and_then(|o| o.calls.as_ref());
        for s in services {
            if s.vpc_egress == Some(Egress::AllTraffic) {
                continue;
            }
            let account = format!("serviceAccount:{}", self.runtime_account(s));
            let mut evidence = Vec::new();
            for t in internal.iter().filter(|t| t.name != s.name) {
                for e in &s.env {
                    if let EnvValue::Plain(v) = &e.value {
                        if points_at(v, t) {
                            evidence.push(format!("env `{}` holds the URL of internal service `{}`", e.name, t.name));
                        }
                    }
                }
                let made = calls.into_iter().flatten().find(|c| c.target == t.name && c.made_by(&s.name, &account));
                if let Some(c) = made {
                    let mut seen = format!("observed: {} called internal service `{}`", c.caller, t.name);
                    if c.from_service.is_some() {
                        seen.push_str(" from this service's instance");
                    }
                    evidence.push(seen);
                }
            }
            if evidence.is_empty() {
                continue;
            }
            evidence.push(match s.vpc_egress {
                None => "no VPC access: its requests leave through the internet".into(),
                Some(_) => {
                    "VPC egress is private-ranges-only: requests to run.app addresses do not go through the VPC".into()
                }
            });
            let fix = match s.vpc_egress {
                Some(_) => format!("gcloud run services update {} {} --vpc-egress=all-traffic", s.name, self.at(s)),
                None => format!(
                    "gcloud run services update {} {} --network=default --subnet=default --vpc-egress=all-traffic",
                    s.name,
                    self.at(s)
                ),
            };
            self.add(
                EGRESS_BYPASSES_INTERNAL_INGRESS,
                Severity::Medium,
                self.input.service_resource(s),
                format!(
                    "service `{}` calls an internal-ingress service without all-traffic VPC egress: its calls arrive as external and get 404",
                    s.name
                ),
                evidence,
                fix,
            );
        }
    }

    fn unused_permission(&mut self) {
        let Some(used) = self.input.observations.as_ref().and_then(|o| o.used_permissions.as_ref()) else {
            self.skip(
                UNUSED_PERMISSION,
                "live only: needs the permissions each account used (the platform's audit log)",
            );
            return;
        };
        let Some(policy) = self.project_policy(&[UNUSED_PERMISSION]) else { return };
        let mut by_account: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut unobserved = Vec::new();
        for b in &policy.bindings {
            for m in &b.members {
                let Some(email) = m.strip_prefix("serviceAccount:") else { continue };
                // Most roles are mostly reads: without the account's reads, any role would look unused.
                if policy.read_logged("allServices", ReadLog::AdminRead, m) == Some(true) {
                    by_account.entry(email).or_default().push(b.role.as_str());
                } else if !unobserved.contains(&email) {
                    unobserved.push(email);
                }
            }
        }
        if !unobserved.is_empty() {
            let p = self.project();
            self.skip(
                UNUSED_PERMISSION,
                format!(
                    "reads (get, list, getIamPolicy) are not in the audit log for {}: turn on ADMIN_READ Data Access logs \
                     for allServices, let the services run, and scan again: gcloud projects get-iam-policy {p} --format=json | \
                     jq '.auditConfigs += [{{\"service\":\"allServices\",\"auditLogConfigs\":[{{\"logType\":\"ADMIN_READ\"}}]}}]' \
                     > policy.json && gcloud projects set-iam-policy {p} policy.json",
                    unobserved.join(", ")
                ),
            );
        }
        let none = BTreeSet::new();
        for (email, roles) in by_account {
            let used_here = used.get(email).unwrap_or(&none);
            let used_perms: BTreeSet<&str> = used_here.iter().map(|(p, _)| p.as_str()).collect();
            let unused: Vec<&str> = roles
                .iter()
                .copied()
                .filter(|r| self.catalogue.get(r).is_some())
                .filter(|r| !used_perms.iter().any(|p| self.catalogue.role_has_permission(r, p)))
                .collect();
            if unused.is_empty() {
                continue;
            }
            let member = format!("serviceAccount:{email}");
            let mut evidence: Vec<String> = unused
                .iter()
                .map(|r| format!("project binding: {r} → {member}; none of its permissions was used"))
                .collect();
            let mut fixes = Vec::new();
            for (resource, roles) in self.smallest_roles(used_here) {
                for role in roles {
                    fixes.push(grant_on(&resource, &member, &role, self.project()));
                }
            }
            for (p, r) in used_here {
                evidence.push(format!("used: {p} on {r}"));
            }
            fixes.extend(unused.iter().map(|r| self.remove_project_binding(&member, r)));
            self.add(
                UNUSED_PERMISSION,
                Severity::Low,
                self.input.account_resource(email),
                format!(
                    "service account `{email}` holds {} role(s) it did not use in the observed window",
                    unused.len()
                ),
                evidence,
                fixes.join(" && "),
            );
        }
    }

    /// Per resource, the least-privileged predefined roles that together hold every permission used on it.
    fn smallest_roles(&self, used: &BTreeSet<(String, String)>) -> BTreeMap<String, Vec<String>> {
        let mut needs: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (p, r) in used {
            needs.entry(r.as_str()).or_default().insert(p.as_str());
        }
        needs
            .into_iter()
            .map(|(resource, needed)| (resource.to_owned(), least_privileged_roles(&self.catalogue, &needed)))
            .collect()
    }

    fn sandbox_disabled(&mut self) {
        let Some(obs) = &self.input.observations else {
            self.skip(
                SANDBOX_DISABLED,
                "live only: whether network controls are enforced is a property of the running platform",
            );
            return;
        };
        match obs.network_controls_enforced {
            None => self.skip(
                SANDBOX_DISABLED,
                "the platform did not report whether it enforces network controls (daemon.json without `network_controls_enforced`: an older platform)",
            ),
            Some(true) => {}
            Some(false) => self.add(
                SANDBOX_DISABLED,
                Severity::High,
                self.input.project_resource(),
                "network controls (ingress, VPC egress) are not enforced on this host: ingress settings are advisory here".into(),
                vec!["the platform reports that its network sandbox is off".into()],
                "gatehouse up  # as root on Linux, without --no-sandbox, so the sandbox can start".into(),
            ),
        }
    }
}

/// The least-privileged predefined roles (basic roles excluded) that together hold every `needed` permission: among
/// the sets of up to 3 roles that cover them, the one granting the fewest permissions in all (then the fewer roles) —
/// two narrow viewer roles rather than one broad role that happens to hold both permissions. Beyond 3 roles, greedy
/// set cover (most still-needed permissions first, then the smaller role). Permissions no role holds are left out.
pub fn least_privileged_roles(catalogue: &Catalogue, needed: &BTreeSet<&str>) -> Vec<String> {
    let needed: Vec<&str> = needed.iter().copied().collect();
    let candidates: Vec<(&iam::Role, u64)> = catalogue
        .predefined_roles()
        .filter(|r| !matches!(r.name.as_str(), "roles/owner" | "roles/editor" | "roles/viewer"))
        .map(|r| {
            let mask = needed
                .iter()
                .take(64)
                .enumerate()
                .filter(|(_, p)| catalogue.role_has_permission(&r.name, p))
                .fold(0u64, |m, (i, _)| m | 1 << i);
            (r, mask)
        })
        .filter(|(_, m)| *m != 0)
        .collect();
    let reachable = candidates.iter().fold(0u64, |m, (_, c)| m | c);
    if needed.len() <= 64 && reachable != 0 {
        // Smallest roles first, so a loop stops as soon as its sets cannot beat the best one found.
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.sort_by_key(|&i| candidates[i].0.included_permissions.len());
        let size = |i: usize| candidates[i].0.included_permissions.len();
        let mask = |i: usize| candidates[i].1;
        // (permissions granted, roles, the roles)
        let mut best: Option<(usize, usize, Vec<usize>)> = None;
        let beaten =
            |best: &Option<(usize, usize, Vec<usize>)>, total: usize| best.as_ref().is_some_and(|b| total > b.0);
        let consider = |best: &mut Option<(usize, usize, Vec<usize>)>, set: &[usize], covered: u64| {
            let total: usize = set.iter().map(|&i| size(i)).sum();
            if covered == reachable && best.as_ref().is_none_or(|(t, k, _)| (total, set.len()) < (*t, *k)) {
                *best = Some((total, set.len(), set.to_vec()));
            }
        };
        for (x, &a) in order.iter().enumerate() {
            if beaten(&best, size(a)) {
                break;
            }
            consider(&mut best, &[a], mask(a));
            for (y, &b) in order.iter().enumerate().skip(x + 1) {
                if beaten(&best, size(a) + size(b)) {
                    break;
                }
                consider(&mut best, &[a, b], mask(a) | mask(b));
                for &c in order.iter().skip(y + 1) {
                    if beaten(&best, size(a) + size(b) + size(c)) {
                        break;
                    }
                    consider(&mut best, &[a, b, c], mask(a) | mask(b) | mask(c));
                }
            }
        }
        if let Some((_, _, set)) = best {
            return set.into_iter().map(|i| candidates[i].0.name.clone()).collect();
        }
    }
    let mut left: BTreeSet<&str> = needed.into_iter().collect();
    let mut chosen = Vec::new();
    while !left.is_empty() {
        let best = candidates
            .iter()
            .map(|(r, _)| (left.iter().filter(|p| catalogue.role_has_permission(&r.name, p)).count(), r))
            .filter(|(n, _)| *n > 0)
            .max_by(|(n1, r1), (n2, r2)| {
                n1.cmp(n2).then(r2.included_permissions.len().cmp(&r1.included_permissions.len()))
            });
        let Some((_, role)) = best else { break };
        left.retain(|p| !catalogue.role_has_permission(&role.name, p));
        chosen.push(role.name.clone());
    }
    chosen
}

/// Lower-case words of a name or label (split on anything not alphanumeric).
fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_ascii_lowercase)
}

/// The last segment of `projects/P/secrets/S`.
fn short(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Does a plain value hold the URL of service `t` (one of its known URLs, or a run.app host named after it)?
fn points_at(value: &str, t: &Service) -> bool {
    if t.urls.iter().any(|u| !u.is_empty() && value.contains(u.trim_end_matches('/'))) {
        return true;
    }
    let Some((_, rest)) = value.split_once("://") else { return false };
    let host = rest.split(['/', ':', '?']).next().unwrap_or_default();
    host.ends_with(".run.app") && host.strip_prefix(&t.name).is_some_and(|r| r.starts_with('-'))
}

/// A service account id for a service: `NAME-sa`, cut to 30 characters, at least 6 (IAM's id rules).
fn account_id_for(service: &str) -> String {
    let mut id: String = format!("{service}-sa");
    if id.len() > 30 {
        id = format!("{}-sa", service[..27].trim_end_matches('-'));
    }
    if id.len() < 6 {
        id = format!("run-{id}");
    }
    id
}

/// A secret id for an env var of a service: `service-env-name` in lower case.
fn secret_id_for(service: &str, env: &str) -> String {
    format!("{service}-{}", env.to_ascii_lowercase().replace('_', "-"))
}

/// `gcloud … add-iam-policy-binding` on a full resource name.
fn grant_on(resource: &str, member: &str, role: &str, project: &str) -> String {
    let tail = |prefix: &str| resource.strip_prefix(prefix).map(str::to_owned);
    let parts: Vec<&str> = resource.trim_start_matches('/').split('/').collect();
    if let (Some(_), ["run.googleapis.com", "projects", p, "locations", l, "services", s]) =
        (tail("//run.googleapis.com/"), parts.as_slice())
    {
        return format!(
            "gcloud run services add-iam-policy-binding {s} --region={l} --project={p} --member={member} --role={role}"
        );
    }
    if let ["secretmanager.googleapis.com", "projects", p, "secrets", s, ..] = parts.as_slice() {
        return format!("gcloud secrets add-iam-policy-binding {s} --project={p} --member={member} --role={role}");
    }
    if let ["iam.googleapis.com", "projects", p, "serviceAccounts", e] = parts.as_slice() {
        return format!(
            "gcloud iam service-accounts add-iam-policy-binding {e} --project={p} --member={member} --role={role}"
        );
    }
    format!("gcloud projects add-iam-policy-binding {project} --member={member} --role={role}")
}

#[cfg(test)]
mod tests;
