//! The invocation check as a table: (token, header form, policy) → (status, reason). Each row reads like a line of
//! PROTOCOL §3; `check_row` renders the outcome as one line and compares the status exactly and the reason by
//! substring.

mod common;

use common::*;
use gateway::invoke::{self, Admitted, Refusal};
use gateway::GCLOUD_CLIENT_ID;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::json;
use std::time::Duration;
use tokens::TokenKind;

/// How the token travels.
enum Form {
    None,
    Auth(String),
    Xsa(String),
    /// `Authorization` and `X-Serverless-Authorization`.
    Both {
        auth: String,
        xsa: String,
    },
    /// Two `Authorization` headers.
    TwoAuth(String, String),
    /// A raw `Authorization` value.
    Raw(String),
}

fn bearer(t: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {t}")).unwrap()
}

fn headers(form: &Form) -> HeaderMap {
    let mut h = HeaderMap::new();
    match form {
        Form::None => {}
        Form::Auth(t) => {
            h.insert(AUTHORIZATION, bearer(t));
        }
        Form::Xsa(t) => {
            h.insert(invoke::X_SERVERLESS_AUTHORIZATION, bearer(t));
        }
        Form::Both { auth, xsa } => {
            h.insert(AUTHORIZATION, bearer(auth));
            h.insert(invoke::X_SERVERLESS_AUTHORIZATION, bearer(xsa));
        }
        Form::TwoAuth(a, b) => {
            h.append(AUTHORIZATION, bearer(a));
            h.append(AUTHORIZATION, bearer(b));
        }
        Form::Raw(v) => {
            h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
    }
    h
}

/// One line per outcome: `200 <member|public> <rewritten header|->` or `<status> <reason>`.
fn render(r: &Result<Admitted, Refusal>) -> String {
    match r {
        Ok(a) => format!(
            "200 {} {}",
            a.principal.as_ref().map_or("public".to_owned(), |p| p.member()),
            a.rewrite.as_ref().map_or("-", |w| w.header.as_str())
        ),
        Err(r) => format!("{} {}", r.status, r.reason),
    }
}

struct Ctx {
    keys: Keys,
}

impl Ctx {
    fn check_row(&self, name: &str, form: Form, world: World, disabled: bool, expect: &str) {
        let iam = snapshot(world);
        let r = invoke::check(&route(disabled), &headers(&form), &iam, &self.keys.verifier, resolve, now());
        let got = render(&r);
        let (status, fragment) = expect.split_once(' ').unwrap_or((expect, ""));
        assert!(
            got.split_once(' ').map_or(got.as_str(), |(s, _)| s) == status && got.contains(fragment),
            "row `{name}`:\n  expected {expect:?}\n  got      {got:?}"
        );
        if let Err(refusal) = &r {
            // IAM denials and only those carry an explanation.
            let iam_denial = refusal.status == 403 && refusal.principal.is_some();
            assert_eq!(refusal.explanation.is_some(), iam_denial, "row `{name}`: explanation");
        }
    }
}

#[test]
fn invocation_table() {
    let cx = Ctx { keys: Keys::new() };
    let k = &cx.keys;
    let t = |email: &str, aud: &str| k.token(email, aud);
    let alice = t("alice@example.com", URL);
    let sa = t(CALLER_SA, URL);
    let mallory = t("mallory@example.com", URL);
    let past = now() - Duration::from_secs(2 * 3600);
    let future = now() + Duration::from_secs(3600);
    let kid = k.ring.active().kid().to_owned();
    let claims = json!({"aud": URL, "email": "alice@example.com", "exp": 1_735_693_200u64, "iat": 1_735_689_600u64,
                        "iss": ISSUER, "sub": CALLER_UID});
    let alg_none = format!("{}.", forged(r#"{"alg":"none","typ":"JWT"}"#, &claims, b"").trim_end_matches('.'));
    // HS256 "signed" with the public key as the HMAC secret: the classic key-confusion attack.
    let hs256 =
        forged(&format!(r#"{{"alg":"HS256","kid":"{kid}","typ":"JWT"}}"#), &claims, b"hmac-with-the-public-key");
    // A valid token whose payload was swapped for another caller's: the signature no longer matches.
    let tampered = {
        let mut parts: Vec<&str> = alice.split('.').collect();
        let mallory_payload = mallory.split('.').nth(1).unwrap().to_owned();
        parts[1] = &mallory_payload;
        parts.join(".")
    };
    let access = TokenKind::Access;
    let ya29 = tokens::mint(access).secret.to_string();
    let foreign =
        k.other.sign(&tokens::IdClaims::for_account(ISSUER, URL, "1", Some("alice@example.com"), now())).unwrap();
    let wrong_iss = k
        .ring
        .sign(&tokens::IdClaims::for_account("https://evil.example", URL, "1", Some("alice@example.com"), now()))
        .unwrap();
    let auth = |s: &String| Form::Auth(s.clone());
    let xsa = |s: &String| Form::Xsa(s.clone());
    use World::*;

    #[rustfmt::skip]
    let rows: Vec<(&str, Form, World, bool, &str)> = vec![
        // --- who may call a private service
        ("named user",                       auth(&alice), Private, false, "200 user:alice@example.com -"),
        ("named service account",            auth(&sa), Private, false, "200 serviceAccount:caller@local-project.iam.gserviceaccount.com -"),
        ("group member",                     auth(&t("bob@example.com", URL)), Private, false, "200 user:bob@example.com"),
        ("domain member",                    auth(&t("carol@corp.example", URL)), Private, false, "200 user:carol@corp.example"),
        ("project editor",                   auth(&t("editor@example.com", URL)), Private, false, "200 user:editor@example.com"),
        ("project viewer lacks invoke",      auth(&t("viewer@example.com", URL)), Private, false, "403 `user:viewer@example.com` lacks `run.routes.invoke`"),
        ("stranger",                         auth(&mallory), Private, false, "403 `user:mallory@example.com` lacks"),
        ("expired condition",                auth(&t("temp@example.com", URL)), Private, false, "403 `user:temp@example.com` lacks"),
        ("condition not yet expired",        auth(&t("later@example.com", URL)), Private, false, "200 user:later@example.com"),
        ("SA token without email, resolved", auth(&k.token_at(None, URL, now())), Private, false, "200 serviceAccount:caller@"),
        ("no email, unknown subject",        auth(&k.ring.sign(&tokens::IdClaims::for_account(ISSUER, URL, "999", None, now())).unwrap()), Private, false, "401 token has no email and an unknown subject"),
        ("allAuthenticatedUsers: stranger",  auth(&mallory), AllAuthenticated, false, "200 user:mallory@example.com"),
        ("allAuthenticatedUsers: no token",  Form::None, AllAuthenticated, false, "403 no token"),
        ("allAuthenticatedUsers: bad aud",   auth(&t("mallory@example.com", "https://other.a.run.app")), AllAuthenticated, false, "401 token audience `https://other.a.run.app` does not match"),
        // --- public services ignore credentials
        ("allUsers, no token",               Form::None, Public, false, "200 public -"),
        ("allUsers ignores garbage",         Form::Raw("Bearer garbage".into()), Public, false, "200 public -"),
        ("allUsers ignores two headers",     Form::TwoAuth(alice.clone(), sa.clone()), Public, false, "200 public"),
        ("invoker check disabled",           Form::Raw("Basic dXNlcjpwYXNz".into()), Private, true, "200 public -"),
        // --- no token
        ("private, no token",                Form::None, Private, false, "403 no token"),
        // --- audiences
        ("aud with trailing slash listed",   auth(&t("alice@example.com", &format!("{URL}/"))), Private, false, "200 user:alice@example.com"),
        ("deterministic URL form",           auth(&t("alice@example.com", URL2)), Private, false, "200 user:alice"),
        ("custom audience",                  auth(&t("alice@example.com", CUSTOM)), Private, false, "200 user:alice"),
        ("custom audience + slash unlisted", auth(&t("alice@example.com", &format!("{CUSTOM}/"))), Private, false, "401 token audience `https://api.example.com/` does not match"),
        ("aud with a path",                  auth(&t("alice@example.com", &format!("{URL}/api/v1/endpoint"))), Private, false, "401 token audience `https://api-abc123-uc.a.run.app/api/v1/endpoint` does not match"),
        ("aud of another service",           auth(&t("alice@example.com", "https://other-abc123-uc.a.run.app")), Private, false, "401 token audience"),
        ("gcloud user token",                auth(&t("alice@example.com", GCLOUD_CLIENT_ID)), Private, false, "200 user:alice@example.com authorization"),
        ("gcloud token, stranger",           auth(&t("mallory@example.com", GCLOUD_CLIENT_ID)), Private, false, "403 `user:mallory@example.com` lacks"),
        // --- bad tokens
        ("alg none",                         auth(&alg_none), Private, false, "401 unsigned token"),
        ("HS256 keyed with the public key",  auth(&hs256), Private, false, "401 symmetric signature algorithms are not accepted"),
        ("expired",                          auth(&k.token_at(Some("alice@example.com"), URL, past)), Private, false, "401 token expired at 1735686000"),
        ("iat in the future",                auth(&k.token_at(Some("alice@example.com"), URL, future)), Private, false, "401 token issued in the future"),
        ("wrong issuer",                     auth(&wrong_iss), Private, false, "401 token issuer `https://evil.example` is not trusted"),
        ("another key ring",                 auth(&foreign), Private, false, "401 unknown key id"),
        ("tampered payload",                 auth(&tampered), Private, false, "401 token signature does not verify"),
        ("access token",                     auth(&ya29), Private, false, "401 an opaque access token (`ya29.`)"),
        ("garbage",                          auth(&"garbage".to_owned()), Private, false, "401 malformed token"),
        ("two tokens, comma",                Form::Raw(format!("Bearer {alice},{sa}")), Private, false, "401 `authorization` header: several tokens in one header"),
        ("two tokens, space",                Form::Raw(format!("Bearer {alice} {sa}")), Private, false, "401 several tokens in one header"),
        ("two Authorization headers",        Form::TwoAuth(alice.clone(), alice.clone()), Private, false, "401 several `authorization` headers"),
        ("Basic scheme",                     Form::Raw("Basic dXNlcjpwYXNz".into()), Private, false, "401 the scheme is not `Bearer`"),
        ("bare token without scheme",        Form::Raw(alice.clone()), Private, false, "401 the scheme is not `Bearer`"),
        ("Bearer without token",             Form::Raw("Bearer".into()), Private, false, "401 no token after `Bearer`"),
        ("lowercase scheme",                 Form::Raw(format!("bearer {alice}")), Private, false, "200 user:alice@example.com"),
        // --- X-Serverless-Authorization
        ("X-Serverless only",                xsa(&alice), Private, false, "200 user:alice@example.com x-serverless-authorization"),
        ("bad Authorization + good XSA",     Form::Both { auth: "garbage".into(), xsa: alice.clone() }, Private, false, "200 user:alice@example.com x-serverless-authorization"),
        ("good Authorization + bad XSA",     Form::Both { auth: alice.clone(), xsa: "garbage".into() }, Private, false, "401 malformed token"),
        ("XSA stranger, Authorization ok",   Form::Both { auth: alice.clone(), xsa: mallory.clone() }, Private, false, "403 `user:mallory@example.com` lacks"),
        ("XSA expired",                      xsa(&k.token_at(Some("alice@example.com"), URL, past)), Private, false, "401 token expired"),
    ];
    let n = rows.len();
    for (name, form, world, disabled, expect) in rows {
        cx.check_row(name, form, world, disabled, expect);
    }
    assert!(n >= 45, "the table shrank to {n} rows");
}

#[test]
fn forwarded_tokens_lose_their_signature_only_where_google_removes_it() {
    let k = Keys::new();
    let iam = snapshot(World::Private);
    let alice = k.token("alice@example.com", URL);
    let (h, p, _) = {
        let mut it = alice.split('.');
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
    };
    let stripped = format!("Bearer {h}.{p}.SIGNATURE_REMOVED_BY_GOOGLE");

    let mut hm = HeaderMap::new();
    hm.insert(invoke::X_SERVERLESS_AUTHORIZATION, bearer(&alice));
    hm.insert(AUTHORIZATION, HeaderValue::from_static("Basic app-credentials"));
    let a = invoke::check(&route(false), &hm, &iam, &k.verifier, resolve, now()).unwrap();
    let w = a.rewrite.unwrap();
    assert_eq!(w.header, invoke::X_SERVERLESS_AUTHORIZATION);
    assert_eq!(w.value, stripped);

    // A service-account token in Authorization arrives intact (apps verify it themselves).
    let mut hm = HeaderMap::new();
    hm.insert(AUTHORIZATION, bearer(&alice));
    assert_eq!(invoke::check(&route(false), &hm, &iam, &k.verifier, resolve, now()).unwrap().rewrite, None);

    // A gcloud user token in Authorization loses its signature.
    let gcloud = k.token("alice@example.com", GCLOUD_CLIENT_ID);
    let mut hm = HeaderMap::new();
    hm.insert(AUTHORIZATION, bearer(&gcloud));
    let w = invoke::check(&route(false), &hm, &iam, &k.verifier, resolve, now()).unwrap().rewrite.unwrap();
    assert_eq!(w.header, AUTHORIZATION);
    assert!(w.value.to_str().unwrap().ends_with(".SIGNATURE_REMOVED_BY_GOOGLE"));
    assert!(!w.value.to_str().unwrap().contains(gcloud.rsplit('.').next().unwrap()));
}

#[test]
fn iam_denials_explain_themselves() {
    let k = Keys::new();
    let iam = snapshot(World::Private);
    let mut hm = HeaderMap::new();
    hm.insert(AUTHORIZATION, bearer(&k.token("temp@example.com", URL)));
    let r = invoke::check(&route(false), &hm, &iam, &k.verifier, resolve, now()).unwrap_err();
    assert_eq!(r.status, 403);
    assert_eq!(r.principal, Some(iam::Principal::User("temp@example.com".into())));
    let text = r.explanation.unwrap().to_string();
    assert!(text.contains(r#""access":"NOT_GRANTED""#), "{text}");
    assert!(text.contains(r#""conditionEvaluation":false"#), "{text}");
    assert!(text.contains("2024-06-01T00:00:00Z"), "the expired condition is named: {text}");
}

#[test]
fn a_cached_token_is_still_checked_for_expiry_and_audience() {
    let k = Keys::new();
    let iam = snapshot(World::Private);
    let mut hm = HeaderMap::new();
    hm.insert(AUTHORIZATION, bearer(&k.token("alice@example.com", URL)));
    assert!(invoke::check(&route(false), &hm, &iam, &k.verifier, resolve, now()).is_ok());
    let later = now() + Duration::from_secs(3600);
    let r = invoke::check(&route(false), &hm, &iam, &k.verifier, resolve, later).unwrap_err();
    assert!(r.reason.contains("expired"), "{}", r.reason);
    let mut other = route(false);
    other.audiences = vec!["https://other.a.run.app".into()];
    assert_eq!(invoke::check(&other, &hm, &iam, &k.verifier, resolve, now()).unwrap_err().status, 401);
}

/// A connection's [`Memo`] answers exactly as `check` does: it reuses an admission only while everything the
/// admission rests on still holds. Steps run in order through one memo, as requests on one connection.
#[test]
fn the_connection_memo_never_changes_an_answer() {
    use gateway::invoke::Memo;
    use std::sync::Arc;

    let k = Keys::new();
    let verifier = Arc::new(tokens::CachingVerifier::new(k.ring.verifier(ISSUER), 1024));
    let route = Arc::new(route(false));
    let private = Arc::new(snapshot(World::Private));
    let public = Arc::new(snapshot(World::Public));
    let nobody = {
        let mut s = snapshot(World::Private);
        s.set_policy(SVC, &policy(&[])).unwrap();
        Arc::new(s)
    };
    // `soon@` may invoke for the next 30 minutes only: a grant that depends on the time.
    let soon = {
        let mut s = snapshot(World::Private);
        let until = "request.time < timestamp('2025-01-01T00:30:00Z')";
        s.set_policy(SVC, &policy(&[("roles/run.invoker", &["user:soon@example.com"], Some(until))])).unwrap();
        Arc::new(s)
    };
    let auth = |t: &str| headers(&Form::Auth(t.to_owned()));
    let alice = k.token("alice@example.com", URL);
    let mallory = auth(&k.token("mallory@example.com", URL));
    let sub_only = auth(&k.token_at(None, URL, now()));
    let soon_token = auth(&k.token("soon@example.com", URL));
    let min = |m: u64| now() + Duration::from_secs(60 * m);
    let nobody_resolves = |_: &str| None;
    let memo = Memo::default();
    let step = |h: &HeaderMap, iam: &Arc<iam::Snapshot>, at, by_sub: bool| {
        let r = if by_sub {
            memo.check(&route, h, iam, &verifier, resolve, at)
        } else {
            memo.check(&route, h, iam, &verifier, nobody_resolves, at)
        };
        render(&r)
    };
    let ok_alice = "200 user:alice@example.com -";

    assert_eq!(step(&auth(&alice), &private, now(), true), ok_alice);
    assert_eq!(step(&auth(&alice), &private, min(1), true), ok_alice, "the same credentials again");
    assert!(step(&mallory, &private, now(), true).starts_with("403 "), "another token on the connection");
    assert_eq!(step(&auth(&alice), &private, now(), true), ok_alice);
    assert!(step(&auth(&alice), &nobody, now(), true).starts_with("403 "), "the policy changed");
    assert_eq!(step(&auth(&alice), &private, now(), true), ok_alice);
    assert!(step(&auth(&alice), &private, min(61), true).starts_with("401 "), "the token expired meanwhile");
    // The same token in the other header: the instance must see the rewrite that belongs to that header.
    let xsa = headers(&Form::Xsa(alice.clone()));
    assert_eq!(step(&xsa, &private, now(), true), "200 user:alice@example.com x-serverless-authorization");
    assert_eq!(step(&auth(&alice), &private, now(), true), ok_alice);
    let two = headers(&Form::TwoAuth(alice.clone(), alice.clone()));
    assert!(step(&two, &private, now(), true).starts_with("401 "), "several headers, even with a known value");
    // A grant that rests on a condition is never reused: it is decided again at each request's time.
    assert_eq!(step(&soon_token, &soon, now(), true), "200 user:soon@example.com -");
    assert!(step(&soon_token, &soon, min(40), true).starts_with("403 "), "the condition expired meanwhile");
    // A principal found through a lookup (no `email` claim) is looked up again.
    assert_eq!(step(&sub_only, &private, now(), true), format!("200 serviceAccount:{CALLER_SA} -"));
    assert!(step(&sub_only, &private, now(), false).starts_with("401 "), "the subject no longer resolves");
    // A public service admits anyone; once it turns private, credentials count again.
    assert_eq!(step(&HeaderMap::new(), &public, now(), true), "200 public -");
    assert_eq!(step(&mallory, &public, now(), true), "200 public -");
    assert!(step(&HeaderMap::new(), &private, now(), true).starts_with("403 "), "no token on a private service");
}
