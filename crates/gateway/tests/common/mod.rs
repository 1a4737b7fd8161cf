//! A small world for gateway tests: a key ring, a verifier, IAM snapshots with the policies the table names, and a
//! route for the service `api`. Keys are generated per run, never pasted.
#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway::Route;
use iam::{Catalogue, Principal, ProjectRef, Snapshot};
use model::{Binding, Expr, Policy};
use std::time::{Duration, SystemTime};
use tokens::{CachingVerifier, IdClaims, KeyRing};

pub const ISSUER: &str = "https://accounts.google.com";
pub const PROJECT: &str = "//cloudresourcemanager.googleapis.com/projects/local-project";
pub const SVC: &str = "//run.googleapis.com/projects/local-project/locations/us-central1/services/api";
pub const URL: &str = "https://api-abc123-uc.a.run.app";
pub const URL2: &str = "https://api-123456789012.us-central1.run.app";
pub const CUSTOM: &str = "https://api.example.com";
pub const CALLER_SA: &str = "caller@local-project.iam.gserviceaccount.com";
pub const CALLER_UID: &str = "112233445566778899001";

/// 2025-01-01T00:00:00Z
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600)
}

pub struct Keys {
    pub ring: KeyRing,
    pub other: KeyRing,
    pub verifier: CachingVerifier,
}

impl Keys {
    pub fn new() -> Keys {
        let ring = KeyRing::generate(now()).unwrap();
        let other = KeyRing::generate(now()).unwrap();
        let verifier = CachingVerifier::new(ring.verifier(ISSUER), 1024);
        Keys { ring, other, verifier }
    }

    /// A token signed by the ring: `email` (None: SA token minted without `includeEmail`), `aud`, issued at `iat`.
    pub fn token_at(&self, email: Option<&str>, aud: &str, iat: SystemTime) -> String {
        self.ring.sign(&IdClaims::for_account(ISSUER, aud, CALLER_UID, email, iat)).unwrap()
    }

    pub fn token(&self, email: &str, aud: &str) -> String {
        self.token_at(Some(email), aud, now())
    }
}

impl Default for Keys {
    fn default() -> Self {
        Keys::new()
    }
}

/// A token with a hand-written header and payload and any signature bytes.
pub fn forged(header: &str, payload: &serde_json::Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

pub fn route(invoker_iam_disabled: bool) -> Route {
    Route {
        service: "api".into(),
        resource: SVC.into(),
        audiences: vec![URL.into(), format!("{URL}/"), URL2.into(), CUSTOM.into()],
        invoker_iam_disabled,
        timeout: None,
        ingress: gateway::Ingress::All,
    }
}

pub fn policy(bindings: &[(&str, &[&str], Option<&str>)]) -> Policy {
    let mut p = Policy::default();
    for (role, members, cond) in bindings {
        let condition = cond.map(|c| Expr { expression: c.into(), title: "t".into(), ..Default::default() });
        if condition.is_some() {
            p.version = 3;
        }
        p.bindings.push(Binding {
            role: role.to_string(),
            members: members.iter().map(|m| m.to_string()).collect(),
            condition,
        });
    }
    p
}

/// Which IAM world a row runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    /// Named invokers on the service, editor/viewer on the project.
    Private,
    /// `allAuthenticatedUsers` holds `roles/run.invoker` on the service.
    AllAuthenticated,
    /// `allUsers` holds `roles/run.invoker` on the service.
    Public,
}

pub fn snapshot(world: World) -> Snapshot {
    let mut s = Snapshot::new(
        Catalogue::predefined(),
        vec![ProjectRef { id: "local-project".into(), number: "123456789012".into() }],
    );
    s.set_policy(
        PROJECT,
        &policy(&[
            ("roles/editor", &["user:editor@example.com"], None),
            ("roles/viewer", &["user:viewer@example.com"], None),
        ]),
    )
    .unwrap();
    let service = match world {
        World::Private => policy(&[
            ("roles/run.invoker", &["user:alice@example.com", &format!("serviceAccount:{CALLER_SA}")], None),
            ("roles/run.invoker", &["group:team@example.com", "domain:corp.example"], None),
            ("roles/run.invoker", &["user:temp@example.com"], Some("request.time < timestamp('2024-06-01T00:00:00Z')")),
            (
                "roles/run.invoker",
                &["user:later@example.com"],
                Some("request.time < timestamp('2030-01-01T00:00:00Z')"),
            ),
        ]),
        World::AllAuthenticated => policy(&[("roles/run.invoker", &["allAuthenticatedUsers"], None)]),
        World::Public => policy(&[("roles/run.invoker", &["allUsers"], None)]),
    };
    s.set_policy(SVC, &service).unwrap();
    s.add_group_member("team@example.com", "user:bob@example.com");
    s
}

/// The `sub` → principal lookup the control plane provides.
pub fn resolve(sub: &str) -> Option<Principal> {
    (sub == CALLER_UID).then(|| Principal::ServiceAccount(CALLER_SA.into()))
}

impl Keys {
    /// A token valid at the wall clock (for tests through a real server, which reads the clock).
    pub fn live_token(&self, email: &str, aud: &str) -> String {
        self.ring.sign(&IdClaims::for_account(ISSUER, aud, CALLER_UID, Some(email), SystemTime::now())).unwrap()
    }
}
