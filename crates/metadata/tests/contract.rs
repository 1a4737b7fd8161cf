//! The metadata server contract (PROTOCOL.md §1), checked over real loopback HTTP against the real router.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use metadata::{IdFormat, Identity, MintedToken, SourceError, TokenSource};
use reqwest::{Method, StatusCode};

const EMAIL: &str = "runner@proj.iam.gserviceaccount.com";
const V1: &str = "/computeMetadata/v1";
const SA: &str = "/computeMetadata/v1/instance/service-accounts/default";
const FLAVOR: (&str, &str) = ("Metadata-Flavor", "Google");

/// Counts calls and returns deterministic tokens: `jwt.<audience>.<format>.<n>` and `ya29.<scopes>.<n>`.
struct CountingSource {
    valid_for: Duration,
    delay: Duration,
    fail: Option<SourceError>,
    id_calls: AtomicUsize,
    access_calls: AtomicUsize,
    scopes_seen: Mutex<Vec<Vec<String>>>,
}

impl CountingSource {
    fn valid_for(valid_for: Duration) -> CountingSource {
        CountingSource {
            valid_for,
            delay: Duration::ZERO,
            fail: None,
            id_calls: AtomicUsize::new(0),
            access_calls: AtomicUsize::new(0),
            scopes_seen: Mutex::new(Vec::new()),
        }
    }

    fn hour() -> CountingSource {
        CountingSource::valid_for(Duration::from_secs(3600))
    }

    fn failing(status: u16, message: &str) -> CountingSource {
        CountingSource { fail: Some(SourceError::new(status, message)), ..CountingSource::hour() }
    }

    fn id_calls(&self) -> usize {
        self.id_calls.load(Ordering::SeqCst)
    }

    fn minted(&self, token: String) -> Result<MintedToken, SourceError> {
        match &self.fail {
            Some(err) => Err(err.clone()),
            None => Ok(MintedToken { token, expires_at: SystemTime::now() + self.valid_for }),
        }
    }
}

impl TokenSource for CountingSource {
    async fn id_token(&self, audience: &str, format: IdFormat) -> Result<MintedToken, SourceError> {
        let n = self.id_calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(self.delay).await;
        self.minted(format!("jwt.{audience}.{}.{n}", format.as_str()))
    }

    async fn access_token(&self, scopes: &[String]) -> Result<MintedToken, SourceError> {
        let n = self.access_calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.scopes_seen.lock().unwrap().push(scopes.to_vec());
        self.minted(format!("ya29.{}.{n}", scopes.join("+")))
    }
}

fn identity() -> Identity {
    Identity {
        email: EMAIL.into(),
        project_id: "proj".into(),
        project_number: "123456789012".into(),
        region: "us-central1".into(),
        zone: "us-central1-1".into(),
        instance_id: "4242424242".into(),
        scopes: Identity::default_scopes(),
    }
}

/// A running server on 127.0.0.1:0, stopped when dropped.
struct Harness {
    base: String,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(source: Arc<CountingSource>) -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(metadata::serve(listener, identity(), source, async move {
        let _ = stopped.await;
    }));
    Harness { base, client: reqwest::Client::new(), _stop: stop }
}

impl Harness {
    async fn request(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self.request(Method::GET, path, &[FLAVOR]).await;
        (response.status(), response.text().await.unwrap())
    }
}

struct Case {
    method: Method,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
    status: u16,
    content_type: &'static str,
    body: &'static str,
}

fn case(path: impl Into<String>, status: u16, content_type: &'static str, body: &'static str) -> Case {
    Case { method: Method::GET, path: path.into(), headers: vec![FLAVOR], status, content_type, body }
}

impl Case {
    fn headers(mut self, headers: &[(&'static str, &'static str)]) -> Case {
        self.headers = headers.to_vec();
        self
    }

    fn method(mut self, method: Method) -> Case {
        self.method = method;
        self
    }
}

const TEXT: &str = "application/text";
const JSON: &str = "application/json";
const JWT: &str = "text/html; charset=utf-8";
const ERROR: &str = "text/html; charset=UTF-8";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_headers_statuses_and_content_types() {
    let server = start(Arc::new(CountingSource::hour())).await;
    let missing = "Missing Metadata-Flavor:Google header.";
    let cases = vec![
        // Detection: google-auth's ping and gcloud's digit check.
        case("/", 200, TEXT, "computeMetadata/"),
        case("/", 200, TEXT, "computeMetadata/").headers(&[]),
        case(format!("{V1}/project/numeric-project-id"), 200, TEXT, "123456789012"),
        case(format!("{V1}/project/project-id"), 200, TEXT, "proj"),
        case(format!("{V1}/project/project-id?alt=json"), 200, JSON, "\"proj\""),
        case(format!("{V1}/project/project-id?alt=text"), 200, TEXT, "proj"),
        case(format!("{V1}/project/numeric-project-id?alt=json"), 200, JSON, "123456789012"),
        case(format!("{V1}/instance/region"), 200, TEXT, "projects/123456789012/regions/us-central1"),
        case(format!("{V1}/instance/zone"), 200, TEXT, "projects/123456789012/zones/us-central1-1"),
        case(format!("{V1}/instance/id"), 200, TEXT, "4242424242"),
        case("/computeMetadata/", 200, TEXT, "v1/\n"),
        case(format!("{V1}/"), 200, TEXT, "instance/\nproject/\n"),
        case(format!("{V1}/project/"), 200, TEXT, "numeric-project-id\nproject-id\n"),
        case(
            format!("{V1}/project/?recursive=true"),
            200,
            JSON,
            r#"{"numericProjectId":123456789012,"projectId":"proj"}"#,
        ),
        // Service accounts: `default` and the email are the same account.
        case(format!("{V1}/instance/service-accounts/"), 200, TEXT, "default/\nrunner@proj.iam.gserviceaccount.com/\n"),
        case(
            format!("{SA}/?recursive=true"),
            200,
            JSON,
            r#"{"aliases":["default"],"email":"runner@proj.iam.gserviceaccount.com","scopes":["https://www.googleapis.com/auth/cloud-platform"]}"#,
        ),
        case(format!("{V1}/instance/service-accounts/{EMAIL}/?recursive=true"), 200, JSON, r#""email":"runner@proj"#),
        case(format!("{SA}/"), 200, TEXT, "aliases\nemail\nidentity\nscopes\ntoken\n"),
        case(format!("{SA}/email"), 200, TEXT, EMAIL),
        case(format!("{V1}/instance/service-accounts/{EMAIL}/email"), 200, TEXT, EMAIL),
        case(format!("{SA}/aliases"), 200, TEXT, "default"),
        case(format!("{SA}/scopes"), 200, TEXT, "https://www.googleapis.com/auth/cloud-platform"),
        case(format!("{SA}/scopes?alt=json"), 200, JSON, r#"["https://www.googleapis.com/auth/cloud-platform"]"#),
        case(format!("{SA}/token"), 200, JSON, r#""token_type":"Bearer""#),
        case(format!("{SA}/token?scopes=a,b"), 200, JSON, r#""access_token":"ya29.a+b."#),
        case(
            format!("{SA}/identity?audience=https%3A%2F%2Fsvc.example&format=full"),
            200,
            JWT,
            "jwt.https://svc.example.full.",
        ),
        case(format!("{SA}/identity?audience=https://svc.example"), 200, JWT, "jwt.https://svc.example.standard."),
        case(format!("{SA}/identity?audience=https://svc.example&format=standard&licenses=TRUE"), 200, JWT, "jwt."),
        case(
            format!("{V1}/instance/service-accounts/{EMAIL}/identity?audience=x&format=full"),
            200,
            JWT,
            "jwt.x.full.",
        ),
        // Guards.
        case(format!("{SA}/identity?audience=https://svc.example"), 403, ERROR, missing).headers(&[]),
        case(format!("{V1}/project/project-id"), 403, ERROR, missing).headers(&[("Metadata-Flavor", "Gooogle")]),
        case(format!("{V1}/project/project-id"), 200, TEXT, "proj").headers(&[("metadata-flavor", "google")]),
        case(format!("{V1}/nope"), 403, ERROR, missing).headers(&[]),
        case(format!("{SA}/token"), 403, ERROR, "X-Forwarded-For")
            .headers(&[FLAVOR, ("X-Forwarded-For", "203.0.113.7")]),
        case("/", 403, ERROR, "X-Forwarded-For").headers(&[FLAVOR, ("X-Forwarded-For", "203.0.113.7")]),
        case(format!("{SA}/token"), 405, ERROR, "GET").method(Method::POST),
        case(format!("{V1}/project/project-id"), 405, ERROR, "GET").method(Method::PUT),
        // Caller errors.
        case(format!("{SA}/identity"), 400, ERROR, "audience parameter required"),
        case(format!("{SA}/identity?audience="), 400, ERROR, "audience parameter required"),
        case(format!("{SA}/identity?audience=x&format=compact"), 400, ERROR, "`format`"),
        case(format!("{SA}/identity?audience=x&licenses=maybe"), 400, ERROR, "`licenses`"),
        case(format!("{SA}/token?wait_for_change=true"), 400, ERROR, "not supported"),
        case(format!("{V1}/project/project-id?alt=xml"), 400, ERROR, "`alt`"),
        // Not found.
        case(format!("{V1}/universe/universe-domain"), 404, ERROR, "not found"),
        case(format!("{V1}/instance/service-accounts/other@proj.iam.gserviceaccount.com/token"), 404, ERROR, ""),
        case(format!("{V1}/instance/service-accounts/other@proj.iam.gserviceaccount.com/"), 404, ERROR, ""),
        case(format!("{V1}/nope"), 404, ERROR, "/computeMetadata/v1/nope"),
        case(format!("{SA}/email/"), 404, ERROR, ""),
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let response = server.request(c.method.clone(), &c.path, &c.headers).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        let content_type = headers.get("content-type").map(|v| v.to_str().unwrap().to_string());
        let flavor = headers.get("metadata-flavor").map(|v| v.to_str().unwrap().to_string());
        let server_name = headers.get("server").map(|v| v.to_str().unwrap().to_string());
        if status != c.status
            || content_type.as_deref() != Some(c.content_type)
            || !body.contains(c.body)
            || flavor.as_deref() != Some("Google")
            || server_name.as_deref() != Some("Metadata Server for Serverless")
        {
            failures.push(format!(
                "{} {} {:?}: got {status} {content_type:?} flavor={flavor:?} server={server_name:?} body={body:?}; \
                 want {} {} containing {:?}",
                c.method, c.path, c.headers, c.status, c.content_type, c.body
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_body_is_the_bare_token_and_never_json() {
    let server = start(Arc::new(CountingSource::hour())).await;
    let response = server
        .request(Method::GET, &format!("{SA}/identity?audience=https://svc.example&format=full"), &[FLAVOR])
        .await;
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(!content_type.starts_with("application/json"), "{content_type}");
    assert_eq!(response.text().await.unwrap(), "jwt.https://svc.example.full.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_headers_without_a_body() {
    let server = start(Arc::new(CountingSource::hour())).await;
    let response = server.request(Method::HEAD, &format!("{V1}/project/project-id"), &[FLAVOR]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["metadata-flavor"], "Google");
    assert_eq!(response.text().await.unwrap(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_shape_scopes_and_expiry() {
    let source = Arc::new(CountingSource::hour());
    let server = start(Arc::clone(&source)).await;
    let (status, body) = server.get(&format!("{SA}/token")).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["access_token"], "ya29.https://www.googleapis.com/auth/cloud-platform.1");
    assert_eq!(json["token_type"], "Bearer");
    let expires_in = json["expires_in"].as_u64().unwrap();
    assert!((3590..=3600).contains(&expires_in), "{expires_in}");

    // Scope order and duplicates do not matter for the cache; the default scopes and an explicit equal set share it.
    server.get(&format!("{SA}/token?scopes=b,a")).await;
    server.get(&format!("{SA}/token?scopes=a,b,a")).await;
    server.get(&format!("{SA}/token?scopes=https://www.googleapis.com/auth/cloud-platform")).await;
    assert_eq!(source.access_calls.load(Ordering::SeqCst), 2);
    let seen = source.scopes_seen.lock().unwrap().clone();
    assert_eq!(seen[1], vec!["a".to_string(), "b".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_tokens_are_cached_per_audience_and_format() {
    let source = Arc::new(CountingSource::hour());
    let server = start(Arc::clone(&source)).await;
    let first = server.get(&format!("{SA}/identity?audience=https://a.example&format=full")).await;
    let second = server.get(&format!("{SA}/identity?audience=https://a.example&format=full")).await;
    assert_eq!(first, second);
    assert_eq!(source.id_calls(), 1);

    let other = server.get(&format!("{SA}/identity?audience=https://b.example&format=full")).await;
    assert_eq!(source.id_calls(), 2);
    assert_ne!(other.1, first.1);

    server.get(&format!("{SA}/identity?audience=https://a.example&format=standard")).await;
    assert_eq!(source.id_calls(), 3);
    // The alias and the email share the cache: it is one account.
    server
        .get(&format!("{V1}/instance/service-accounts/{EMAIL}/identity?audience=https://a.example&format=full"))
        .await;
    assert_eq!(source.id_calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expiring_within_five_minutes_are_not_served_from_cache() {
    let source = Arc::new(CountingSource::valid_for(Duration::from_secs(4 * 60)));
    let server = start(Arc::clone(&source)).await;
    let path = format!("{SA}/identity?audience=https://a.example&format=full");
    let (status, first) = server.get(&path).await;
    assert_eq!(status, 200);
    let (_, second) = server.get(&path).await;
    assert_eq!(source.id_calls(), 2);
    assert_ne!(first, second);

    server.get(&format!("{SA}/token")).await;
    server.get(&format!("{SA}/token")).await;
    assert_eq!(source.access_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_for_one_audience_make_one_source_call() {
    let source = Arc::new(CountingSource { delay: Duration::from_millis(200), ..CountingSource::hour() });
    let server = Arc::new(start(Arc::clone(&source)).await);
    let path = format!("{SA}/identity?audience=https://a.example&format=full");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (server, path) = (Arc::clone(&server), path.clone());
        tasks.push(tokio::spawn(async move { server.get(&path).await }));
    }
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!((status.as_u16(), body.as_str()), (200, "jwt.https://a.example.full.1"));
    }
    assert_eq!(source.id_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_refusal_reaches_the_caller_with_its_message() {
    let message = "Permission 'iam.serviceAccounts.getOpenIdToken' denied on resource (or it may not exist).";
    let source = Arc::new(CountingSource::failing(403, message));
    let server = start(Arc::clone(&source)).await;
    let path = format!("{SA}/identity?audience=https://a.example&format=full");
    for _ in 0..2 {
        let response = server.request(Method::GET, &path, &[FLAVOR]).await;
        assert_eq!(response.status(), 403);
        assert_eq!(response.headers()["metadata-flavor"], "Google");
        assert_eq!(response.headers()["content-type"], ERROR);
        assert!(response.text().await.unwrap().contains(message));
    }
    // Refusals are not cached: the second request asked again.
    assert_eq!(source.id_calls(), 2);

    let (status, body) = server.get(&format!("{SA}/token")).await;
    assert_eq!((status.as_u16(), body.contains(message)), (403, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_server_errors_become_503_so_google_auth_retries() {
    for upstream in [500, 502, 503] {
        let server = start(Arc::new(CountingSource::failing(upstream, "platform unreachable"))).await;
        let (status, body) = server.get(&format!("{SA}/identity?audience=https://a.example")).await;
        assert_eq!(status, 503, "{upstream}: {body}");
        assert!(body.contains("platform unreachable"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_returns_after_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(metadata::serve(listener, identity(), Arc::new(CountingSource::hour()), async move {
        let _ = stopped.await;
    }));
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), task).await.expect("serve did not stop");
    result.unwrap().unwrap();
}
