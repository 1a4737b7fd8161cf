//! Secret Manager through the real binary and the REST API: versions and their states, `latest`, exact payload bytes,
//! Google's errors, per-secret IAM, the audit trail of every access, encryption at rest, and durability under
//! `kill -9`.

mod common;

use base64::Engine;
use common::{http, Platform};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SA: &str = "app-sa@local-project.iam.gserviceaccount.com";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Runs the CLI with `input` on standard input.
fn with_stdin(p: &Platform, args: &[&str], input: &[u8]) -> Output {
    let mut child = p.cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// `secrets versions access`: the raw bytes it printed, asserting success.
fn access(p: &Platform, args: &[&str]) -> Vec<u8> {
    let mut all = vec!["secrets", "versions", "access"];
    all.extend_from_slice(args);
    let out = p.cmd(&all).output().unwrap();
    assert!(out.status.success(), "`{}` failed: {}", all.join(" "), String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A file outside `$GATEHOUSE_HOME` (the home is searched for payload bytes).
fn data_file(dir: &tempfile::TempDir, name: &str, data: &[u8]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, data).unwrap();
    path.to_str().unwrap().to_owned()
}

fn sa_setup(p: &Platform) {
    p.ok(&["iam", "service-accounts", "create", "app-sa"]);
    p.let_owner_impersonate(SA);
}

fn as_sa<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.push("--impersonate-service-account=app-sa@local-project.iam.gserviceaccount.com");
    all
}

/// POSTs `:addVersion` with `payload`; returns the status and body.
fn add_version_rest(p: &Platform, token: &str, secret: &str, payload: Value) -> (u16, Value) {
    let resp = http()
        .post(format!("{}/v1/projects/local-project/secrets/{secret}:addVersion", p.api))
        .bearer_auth(token)
        .json(&json!({ "payload": payload }))
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
}

fn get_rest(p: &Platform, token: &str, path: &str) -> (u16, Value) {
    let resp = http().get(format!("{}{path}", p.api)).bearer_auth(token).send().unwrap();
    (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
}

fn entries(p: &Platform, filter: &str) -> Vec<Value> {
    p.json(&["logging", "read", filter]).as_array().cloned().unwrap_or_default()
}

#[test]
fn versions_round_trip_exact_bytes_and_other_commands_never_print_them() {
    let p = Platform::start();
    let dir = tempfile::tempdir().unwrap();
    let out = with_stdin(
        &p,
        &[
            "secrets",
            "create",
            "db-pass",
            "--data-file=-",
            "--replication-policy=automatic",
            "--labels=env=prod,team=core",
        ],
        b"first-Payload-\xe2\x9c\x93",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Created secret [db-pass].") && stderr.contains("Created version [1] of the secret [db-pass].")
    );

    // Binary payloads, every byte value, from a file.
    let binary: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    p.ok(&["secrets", "create", "blob", &format!("--data-file={}", data_file(&dir, "blob.bin", &binary))]);
    assert_eq!(access(&p, &["1", "--secret=blob"]), binary);
    p.ok(&["secrets", "versions", "add", "db-pass", "--data-file", &data_file(&dir, "v2", b"second-Payload\n")]);

    assert_eq!(access(&p, &["1", "--secret=db-pass"]), b"first-Payload-\xe2\x9c\x93");
    assert_eq!(access(&p, &["latest", "--secret=db-pass"]), b"second-Payload\n", "the trailing newline is kept");
    let full = format!("projects/{}/secrets/db-pass/versions/1", p.project_number);
    assert_eq!(access(&p, &[&full]), b"first-Payload-\xe2\x9c\x93");
    let out_file = dir.path().join("out.bin");
    access(&p, &["1", "--secret=blob", &format!("--out-file={}", out_file.display())]);
    assert_eq!(std::fs::read(&out_file).unwrap(), binary);

    let versions = p.json(&["secrets", "versions", "list", "db-pass"]);
    let names: Vec<&str> = versions.as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    let base = format!("projects/{}/secrets/db-pass", p.project_number);
    assert_eq!(names, [format!("{base}/versions/2"), format!("{base}/versions/1")], "newest first, by number");
    assert_eq!(versions[0]["state"], "ENABLED");
    let v1 = p.json(&["secrets", "versions", "describe", "1", "--secret=db-pass"]);
    assert_eq!(v1["name"], format!("{base}/versions/1"));
    assert_eq!(v1["clientSpecifiedPayloadChecksum"], true, "the CLI sends a CRC32C, as gcloud does");
    let secret = p.json(&["secrets", "describe", "db-pass"]);
    assert_eq!(secret["name"], base);
    assert_eq!(secret["replication"], json!({"automatic": {}}));
    assert_eq!(secret["labels"], json!({"env": "prod", "team": "core"}));

    p.ok(&["secrets", "update", "db-pass", "--update-labels=env=dev", "--remove-labels=team"]);
    assert_eq!(p.json(&["secrets", "describe", "db-pass"])["labels"], json!({"env": "dev"}));
    assert!(p.fail(&["secrets", "update", "db-pass"]).contains("nothing to update"));

    // No command but `versions access` shows a payload, in any format.
    let mut shown = String::new();
    for args in [
        vec!["secrets", "list"],
        vec!["secrets", "list", "--format=json"],
        vec!["secrets", "describe", "db-pass"],
        vec!["secrets", "describe", "db-pass", "--format=json"],
        vec!["secrets", "versions", "list", "db-pass"],
        vec!["secrets", "versions", "list", "db-pass", "--format=yaml"],
        vec!["secrets", "versions", "describe", "latest", "--secret=db-pass", "--format=json"],
        vec!["secrets", "versions", "describe", "1", "--secret=blob"],
        vec!["logging", "read", "--format=json"],
    ] {
        let r = p.run(&args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        shown.push_str(&r.stdout);
        shown.push_str(&r.stderr);
    }
    for secret in [&b"first-Payload"[..], b"second-Payload", &binary[..40]] {
        assert!(!shown.contains(&*String::from_utf8_lossy(secret)), "payload printed");
        assert!(!shown.contains(&B64.encode(secret)[..12]), "encoded payload printed");
    }
    let listed = p.ok(&["secrets", "list", "--format=value(name)"]);
    assert!(listed.contains("/secrets/blob") && listed.contains("/secrets/db-pass"), "{listed}");
    // --filter reads the resource, whatever the table shows; --limit counts what the filter kept (as gcloud).
    let table = p.ok(&["secrets", "list", "--filter=labels.env=dev"]);
    assert!(table.starts_with("NAME") && table.contains("db-pass") && !table.contains("blob"), "{table}");
    let first = p.ok(&["secrets", "list", "--filter=labels.env=dev", "--limit=1", "--format=value(name)"]);
    assert!(first.trim().ends_with("/secrets/db-pass"), "{first}");
    // Google's documented idioms for the payload: `get(payload.data)` (base64), and `decode(base64)`.
    let encoded = p.ok(&["secrets", "versions", "access", "1", "--secret=db-pass", "--format=get(payload.data)"]);
    assert_eq!(B64.decode(encoded.trim()).unwrap(), b"first-Payload-\xe2\x9c\x93");
    let decoded = p.ok(&[
        "secrets",
        "versions",
        "access",
        "1",
        "--secret=db-pass",
        "--format=value(payload.data.decode(base64))",
    ]);
    assert_eq!(decoded, "first-Payload-\u{2713}\n");
    // A reader that has gone (`| head -1`) ends the command quietly, as gcloud, not with a panic.
    for args in [&["secrets", "list", "--format=json"][..], &["secrets", "versions", "access", "1", "--secret=blob"]] {
        let mut child = p.cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "{args:?}: {:?} {stderr}", out.status);
    }
}

#[test]
fn states_are_enforced_destroy_is_final_and_latest_never_falls_back() {
    let p = Platform::start();
    let dir = tempfile::tempdir().unwrap();
    p.ok(&["secrets", "create", "s", &format!("--data-file={}", data_file(&dir, "a", b"one"))]);
    let base = format!("projects/{}/secrets/s", p.project_number);

    p.ok(&["secrets", "versions", "disable", "1", "--secret=s"]);
    let e = p.fail(&["secrets", "versions", "access", "1", "--secret=s"]);
    assert!(
        e.contains(&format!("FAILED_PRECONDITION: Secret Version [{base}/versions/1] is in DISABLED state.")),
        "{e}"
    );
    let token = p.token();
    let (status, body) = get_rest(&p, &token, "/v1/projects/local-project/secrets/s/versions/1:access");
    assert_eq!((status, body["error"]["status"].as_str()), (400, Some("FAILED_PRECONDITION")), "{body}");
    assert_eq!(body["error"]["message"], format!("Secret Version [{base}/versions/1] is in DISABLED state."));
    p.ok(&["secrets", "versions", "enable", "1", "--secret=s"]);
    assert_eq!(access(&p, &["1", "--secret=s"]), b"one");

    // `latest` is the newest version whatever its state: a disabled newest version is not skipped.
    p.ok(&["secrets", "versions", "add", "s", &format!("--data-file={}", data_file(&dir, "b", b"two"))]);
    assert_eq!(access(&p, &["latest", "--secret=s"]), b"two");
    p.ok(&["secrets", "versions", "disable", "2", "--secret=s"]);
    let e = p.fail(&["secrets", "versions", "access", "latest", "--secret=s"]);
    assert!(e.contains(&format!("Secret Version [{base}/versions/2] is in DISABLED state.")), "no fallback: {e}");
    let latest = p.json(&["secrets", "versions", "describe", "latest", "--secret=s"]);
    assert_eq!(
        (latest["name"].as_str(), latest["state"].as_str()),
        (Some(&*format!("{base}/versions/2")), Some("DISABLED"))
    );

    // DESTROYED is final.
    let destroyed = p.json(&["secrets", "versions", "destroy", "1", "--secret=s", "--quiet"]);
    assert_eq!(destroyed["state"], "DESTROYED");
    assert!(destroyed["destroyTime"].is_string(), "{destroyed}");
    for verb in ["enable", "disable", "destroy"] {
        let e = p.fail(&["secrets", "versions", verb, "1", "--secret=s"]);
        assert!(e.contains(&format!("Secret Version [{base}/versions/1] is in DESTROYED state.")), "{verb}: {e}");
    }
    let e = p.fail(&["secrets", "versions", "access", "1", "--secret=s"]);
    assert!(e.contains("is in DESTROYED state."), "{e}");
    let (_, v1) = get_rest(&p, &token, "/v1/projects/local-project/secrets/s/versions/1");
    assert_eq!(v1["state"], "DESTROYED");
    let (_, v1) =
        get_rest(&p, &token, "/v1/projects/local-project/secrets/s/versions/1?%24alt=json%3Benum-encoding%3Dint");
    assert_eq!(v1["state"], 3, "int enums when the client asks for them");

    // A numbered version that never existed.
    let e = p.fail(&["secrets", "versions", "access", "9", "--secret=s"]);
    assert!(e.contains(&format!("NOT_FOUND: Secret Version [{base}/versions/9] not found.")), "{e}");
    // Etags: a stale one is refused with FAILED_PRECONDITION.
    let e = p.fail(&["secrets", "versions", "enable", "2", "--secret=s", "--etag=\"stale\""]);
    assert!(e.contains("FAILED_PRECONDITION") && e.contains("etag"), "{e}");
    let current = latest["etag"].as_str().unwrap();
    p.ok(&["secrets", "versions", "enable", "2", "--secret=s", &format!("--etag={current}")]);
}

#[test]
fn rest_errors_are_googles() {
    let p = Platform::start();
    let token = p.token();
    let url = |path: &str| format!("{}/v1/projects/local-project/secrets{path}", p.api);
    let create = |id: &str| {
        let resp = http()
            .post(url(&format!("?secretId={id}")))
            .bearer_auth(&token)
            .json(&json!({"replication": {"automatic": {}}}))
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().unwrap())
    };
    let (status, secret) = create("api-key");
    assert_eq!(status, 200, "{secret}");
    assert_eq!(secret["name"], format!("projects/{}/secrets/api-key", p.project_number));
    let (status, body) = create("api-key");
    assert_eq!((status, body["error"]["status"].as_str()), (409, Some("ALREADY_EXISTS")));
    assert_eq!(
        body["error"]["message"],
        format!("Secret [projects/{}/secrets/api-key] already exists.", p.project_number)
    );
    let (status, body) = create("bad.id");
    assert_eq!((status, body["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")));
    assert_eq!(
        body["error"]["message"],
        format!("Resource ID [projects/{}/secrets/bad.id] is not in a valid format.", p.project_number)
    );

    // Payload size: 64 KiB is accepted, one byte more is not.
    let (status, v) = add_version_rest(&p, &token, "api-key", json!({"data": B64.encode(vec![7u8; 65_536])}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["clientSpecifiedPayloadChecksum"], false);
    let (status, body) = add_version_rest(&p, &token, "api-key", json!({"data": B64.encode(vec![7u8; 65_537])}));
    assert_eq!((status, body["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")), "{body}");
    // dataCrc32c: checked when given (as the int64 decimal string the clients send), computed when absent.
    let crc = i64::from(crc32c_of(b"checked"));
    let (status, body) = add_version_rest(
        &p,
        &token,
        "api-key",
        json!({"data": B64.encode(b"checked"), "dataCrc32c": (crc + 1).to_string()}),
    );
    assert_eq!((status, body["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")), "{body}");
    assert!(!body.to_string().contains(&crc.to_string()), "the error leaks no checksum: {body}");
    let (status, v) =
        add_version_rest(&p, &token, "api-key", json!({"data": B64.encode(b"checked"), "dataCrc32c": crc.to_string()}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["name"],
        format!("projects/{}/secrets/api-key/versions/2", p.project_number),
        "rejected adds used no number"
    );
    assert_eq!(v["clientSpecifiedPayloadChecksum"], true);
    let (status, got) = get_rest(&p, &token, "/v1/projects/local-project/secrets/api-key/versions/latest:access");
    assert_eq!(status, 200);
    assert_eq!(got["payload"]["dataCrc32c"], crc.to_string(), "int64 as a decimal string");
    assert_eq!(B64.decode(got["payload"]["data"].as_str().unwrap()).unwrap(), b"checked");
    let (status, body) = add_version_rest(&p, &token, "api-key", json!({}));
    assert_eq!((status, body["error"]["message"].as_str()), (400, Some("Field [payload] is required.")));
    let (status, _) = add_version_rest(&p, &token, "api-key", json!({"data": "%%% not base64"}));
    assert_eq!(status, 400);

    // 404 for a caller who could read it; 403 with "(or it may not exist)" for one who may not, existing or not.
    let (status, body) = get_rest(&p, &token, "/v1/projects/local-project/secrets/missing/versions/latest:access");
    assert_eq!((status, body["error"]["status"].as_str()), (404, Some("NOT_FOUND")));
    assert_eq!(
        body["error"]["message"],
        format!("Secret [projects/{}/secrets/missing] not found or has no versions.", p.project_number)
    );
    p.ok(&["auth", "login", "bob@example.com"]);
    let bob = p.ok(&["auth", "print-access-token"]).trim().to_owned();
    p.ok(&["config", "set", "account", "owner@localhost"]);
    for secret in ["missing", "api-key"] {
        let (status, body) =
            get_rest(&p, &bob, &format!("/v1/projects/local-project/secrets/{secret}/versions/latest:access"));
        assert_eq!((status, body["error"]["status"].as_str()), (403, Some("PERMISSION_DENIED")));
        assert_eq!(
            body["error"]["message"],
            format!(
                "Permission 'secretmanager.versions.access' denied for resource 'projects/local-project/secrets/{secret}/versions/latest' (or it may not exist)."
            )
        );
    }
    let (status, _) = get_rest(&p, &bob, "/v1/projects/local-project/secrets/api-key");
    assert_eq!(status, 403);
    // The regional form is a separate namespace under the same rules.
    let resp = http()
        .post(format!("{}/v1/projects/local-project/locations/us-central1/secrets?secretId=api-key", p.api))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let regional: Value = resp.json().unwrap();
    assert_eq!(regional["name"], format!("projects/{}/locations/us-central1/secrets/api-key", p.project_number));
    let (status, _) =
        get_rest(&p, &token, "/v1/projects/local-project/locations/us-central1/secrets/api-key/versions/latest:access");
    assert_eq!(status, 404, "a regional secret has its own versions");
}

fn crc32c_of(data: &[u8]) -> u32 {
    // Castagnoli, bitwise: the test does not trust the implementation it checks.
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn cli_refuses_bad_input_before_writing_anything() {
    let p = Platform::start();
    let e = p.fail(&["secrets", "create", "s", "--data-file=/nonexistent/payload.txt"]);
    assert!(e.contains("cannot read --data-file `/nonexistent/payload.txt`"), "{e}");
    let e = p.fail(&["secrets", "create", "s", "--replication-policy=user-managed", "--locations=us-east1"]);
    assert!(e.contains("user-managed is not supported") && e.contains("--replication-policy=automatic"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = p.fail(&["secrets", "create", "s", &format!("--data-file={}", data_file(&dir, "big", &[1u8; 65_537]))]);
    assert!(e.contains("at most 65536 bytes"), "{e}");
    let e = p.fail(&["secrets", "versions", "access", "1"]);
    assert!(e.contains("--secret"), "{e}");
    let e = p.fail(&["secrets", "versions", "access", "latest", "--secret="]);
    assert!(e.contains("which secret? add --secret=SECRET") && !e.contains("/v1/"), "{e}");
    assert_eq!(p.ok(&["secrets", "list", "--format=value(name)"]).trim(), "", "nothing was created");
}

#[test]
fn empty_or_missing_payloads_are_refused_before_the_secret_is_created() {
    let p = Platform::start();
    let dir = tempfile::tempdir().unwrap();
    let empty = data_file(&dir, "empty", b"");
    let r = p.run(&["secrets", "create", "empty-sec", &format!("--data-file={empty}")]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!r.stderr.contains("Created secret"), "nothing is created: {}", r.stderr);
    assert!(r.stderr.contains(&format!("--data-file `{empty}` is empty")), "{}", r.stderr);
    assert!(r.stderr.contains("leave out --data-file to create the secret without a version"), "{}", r.stderr);
    // Standard input with nothing on it.
    let out = with_stdin(&p, &["secrets", "create", "empty-sec", "--data-file=-"], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains("Created secret") && stderr.contains("standard input (--data-file=-) is empty"),
        "{stderr}"
    );
    // A file that does not exist.
    let e = p.fail(&["secrets", "create", "empty-sec", "--data-file=/nonexistent/empty-sec"]);
    assert!(!e.contains("Created secret") && e.contains("cannot read --data-file `/nonexistent/empty-sec`"), "{e}");
    assert_eq!(p.ok(&["secrets", "list", "--format=value(name)"]).trim(), "", "nothing was created");
    // The secret can then be made as asked; an empty version is refused the same way, and adds nothing.
    p.ok(&["secrets", "create", "empty-sec"]);
    let e = p.fail(&["secrets", "versions", "add", "empty-sec", &format!("--data-file={empty}")]);
    assert!(e.contains("is empty") && e.contains("write the value into the file"), "{e}");
    assert_eq!(p.ok(&["secrets", "versions", "list", "empty-sec", "--format=value(name)"]).trim(), "");
}

#[test]
fn per_secret_iam_with_inherited_project_bindings() {
    let p = Platform::start();
    sa_setup(&p);
    let dir = tempfile::tempdir().unwrap();
    p.ok(&["secrets", "create", "api-key", &format!("--data-file={}", data_file(&dir, "k", b"k-value"))]);
    p.ok(&["secrets", "create", "other", &format!("--data-file={}", data_file(&dir, "o", b"o-value"))]);
    let denied = |secret: &str| {
        format!(
            "PERMISSION_DENIED: Permission 'secretmanager.versions.access' denied for resource 'projects/local-project/secrets/{secret}/versions/latest' (or it may not exist)."
        )
    };
    for secret in ["api-key", "missing"] {
        let e = p.fail(&as_sa(&["secrets", "versions", "access", "latest", &format!("--secret={secret}")]));
        assert!(e.contains(&denied(secret)), "{e}");
    }

    p.ok(&[
        "secrets",
        "add-iam-policy-binding",
        "api-key",
        &format!("--member=serviceAccount:{SA}"),
        "--role=roles/secretmanager.secretAccessor",
    ]);
    assert_eq!(access(&p, &as_sa(&["latest", "--secret=api-key"])), b"k-value");
    let e = p.fail(&as_sa(&["secrets", "versions", "access", "latest", "--secret=other"]));
    assert!(e.contains(&denied("other")), "the binding is on one secret only: {e}");
    let policy = p.json(&["secrets", "get-iam-policy", "api-key"]);
    assert_eq!(common::members_of(&policy, "roles/secretmanager.secretAccessor"), [format!("serviceAccount:{SA}")]);
    p.ok(&[
        "secrets",
        "remove-iam-policy-binding",
        "api-key",
        &format!("--member=serviceAccount:{SA}"),
        "--role=roles/secretmanager.secretAccessor",
    ]);
    assert!(p
        .fail(&as_sa(&["secrets", "versions", "access", "latest", "--secret=api-key"]))
        .contains("PERMISSION_DENIED"));

    // roles/editor on the project: may add versions, may not read any payload, may not change the secret's policy.
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        &format!("--member=serviceAccount:{SA}"),
        "--role=roles/editor",
    ]);
    p.ok(&as_sa(&[
        "secrets",
        "versions",
        "add",
        "api-key",
        &format!("--data-file={}", data_file(&dir, "e", b"by-editor")),
    ]));
    let e = p.fail(&as_sa(&["secrets", "versions", "access", "latest", "--secret=api-key"]));
    assert!(e.contains(&denied("api-key")), "editor reads no payload: {e}");
    let e = p.fail(&as_sa(&[
        "secrets",
        "add-iam-policy-binding",
        "api-key",
        &format!("--member=serviceAccount:{SA}"),
        "--role=roles/secretmanager.secretAccessor",
    ]));
    assert!(e.contains("secretmanager.secrets.setIamPolicy"), "{e}");
    // Project-level secretAccessor is inherited by every secret.
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        &format!("--member=serviceAccount:{SA}"),
        "--role=roles/secretmanager.secretAccessor",
    ]);
    assert_eq!(access(&p, &as_sa(&["latest", "--secret=other"])), b"o-value");
    assert_eq!(access(&p, &as_sa(&["latest", "--secret=api-key"])), b"by-editor");

    // Deleting a secret deletes its versions and its policy: a new secret of the same name starts clean.
    p.ok(&[
        "secrets",
        "add-iam-policy-binding",
        "other",
        "--member=user:someone@example.com",
        "--role=roles/secretmanager.viewer",
    ]);
    p.ok(&["secrets", "delete", "other", "--quiet"]);
    assert!(p.fail(&["secrets", "describe", "other"]).contains("NOT_FOUND"));
    p.ok(&["secrets", "create", "other"]);
    let policy = p.json(&["secrets", "get-iam-policy", "other"]);
    assert!(policy.get("bindings").is_none(), "{policy}");
    assert_eq!(p.json(&["secrets", "versions", "list", "other"]), json!([]));
    let e = p.fail(&["secrets", "versions", "access", "latest", "--secret=other"]);
    assert!(e.contains("not found or has no versions"), "{e}");
}

#[test]
fn every_change_and_every_access_is_audited() {
    let p = Platform::start();
    sa_setup(&p);
    let dir = tempfile::tempdir().unwrap();
    let file = data_file(&dir, "x", b"audited-Payload");
    p.ok(&["secrets", "create", "db", &format!("--data-file={file}")]);
    p.ok(&["secrets", "versions", "add", "db", &format!("--data-file={file}")]);
    p.ok(&["secrets", "versions", "add", "db", &format!("--data-file={file}")]);
    p.ok(&["secrets", "versions", "disable", "1", "--secret=db"]);
    p.ok(&["secrets", "versions", "enable", "1", "--secret=db"]);
    p.ok(&["secrets", "versions", "destroy", "1", "--secret=db"]);
    p.ok(&["secrets", "update", "db", "--update-labels=k=v"]);
    p.ok(&[
        "secrets",
        "add-iam-policy-binding",
        "db",
        "--member=user:x@example.com",
        "--role=roles/secretmanager.viewer",
    ]);
    p.ok(&["secrets", "create", "gone"]);
    p.ok(&["secrets", "delete", "gone"]);
    for method in [
        "CreateSecret",
        "AddSecretVersion",
        "DisableSecretVersion",
        "EnableSecretVersion",
        "DestroySecretVersion",
        "UpdateSecret",
        "SetIamPolicy",
        "DeleteSecret",
    ] {
        let found = entries(&p, &format!("protoPayload.methodName:\"SecretManagerService.{method}\""));
        assert!(!found.is_empty(), "no entry for {method}");
        let e = &found[0];
        assert!(e["logName"].as_str().unwrap().ends_with("cloudaudit.googleapis.com%2Factivity"), "{e}");
        assert_eq!(e["protoPayload"]["serviceName"], "secretmanager.googleapis.com");
        assert_eq!(e["protoPayload"]["authenticationInfo"]["principalEmail"], "owner@localhost");
        assert_eq!(e["protoPayload"]["authorizationInfo"][0]["permissionType"], "ADMIN_WRITE", "{method}: {e}");
    }

    // One DATA_READ entry per access, allowed or denied, with the principal and the resolved version.
    access(&p, &["latest", "--secret=db"]);
    p.fail(&as_sa(&["secrets", "versions", "access", "latest", "--secret=db"]));
    let reads = entries(&p, "protoPayload.methodName:\"AccessSecretVersion\"");
    assert_eq!(reads.len(), 2, "{reads:?}");
    let resolved = format!("projects/{}/secrets/db/versions/3", p.project_number);
    let (denied, allowed) = (&reads[0], &reads[1]);
    for (e, who, granted) in [(allowed, "owner@localhost", true), (denied, SA, false)] {
        let pp = &e["protoPayload"];
        assert!(e["logName"].as_str().unwrap().ends_with("cloudaudit.googleapis.com%2Fdata_access"), "{e}");
        assert_eq!(pp["methodName"], "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion");
        assert_eq!(pp["authenticationInfo"]["principalEmail"], who);
        assert_eq!(pp["resourceName"], resolved, "`latest` is recorded as the version it resolved to");
        let authz = &pp["authorizationInfo"][0];
        assert_eq!(authz["permission"], "secretmanager.versions.access");
        assert_eq!(authz["granted"], granted);
        assert_eq!(authz["permissionType"], "DATA_READ");
        assert_eq!(authz["resource"], resolved);
        assert_eq!(pp["request"]["name"], format!("projects/{}/secrets/db/versions/latest", p.project_number));
    }
    assert_eq!(allowed["protoPayload"]["status"], json!({}));
    assert_eq!(allowed["protoPayload"]["response"]["name"], resolved);
    assert!(allowed["protoPayload"]["response"].get("payload").is_none());
    assert_eq!(denied["protoPayload"]["status"]["code"], 7);
    assert_eq!(denied["severity"], "ERROR");
    // Failed reads by permitted callers are recorded too, with their status.
    p.fail(&["secrets", "versions", "access", "1", "--secret=db"]);
    let failed = &entries(&p, "protoPayload.methodName:\"AccessSecretVersion\"")[0];
    assert_eq!(failed["protoPayload"]["status"]["code"], 9, "FAILED_PRECONDITION: {failed}");
    assert_eq!(failed["protoPayload"]["resourceName"], format!("projects/{}/secrets/db/versions/1", p.project_number));

    // Data Access logging off through the project's auditConfigs: allowed reads stop being recorded.
    let count = || entries(&p, "protoPayload.methodName:\"AccessSecretVersion\"").len();
    let before = count();
    let mut policy = p.json(&["projects", "get-iam-policy", "local-project"]);
    policy["auditConfigs"] =
        json!([{"service": "secretmanager.googleapis.com", "auditLogConfigs": [{"logType": "ADMIN_READ"}]}]);
    let policy_file = data_file(&dir, "policy.json", policy.to_string().as_bytes());
    p.ok(&["projects", "set-iam-policy", "local-project", &policy_file]);
    access(&p, &["latest", "--secret=db"]);
    assert_eq!(count(), before, "DATA_READ is off");
    p.fail(&as_sa(&["secrets", "versions", "access", "latest", "--secret=db"]));
    assert_eq!(count(), before + 1, "denials are always recorded");
    // On again, with the owner exempted.
    let mut policy = p.json(&["projects", "get-iam-policy", "local-project"]);
    policy["auditConfigs"] = json!([{"service": "allServices", "auditLogConfigs": [
        {"logType": "DATA_READ", "exemptedMembers": ["user:owner@localhost"]}]}]);
    std::fs::write(&policy_file, policy.to_string()).unwrap();
    p.ok(&["projects", "set-iam-policy", "local-project", &policy_file]);
    access(&p, &["latest", "--secret=db"]);
    assert_eq!(count(), before + 1, "the owner is exempted");
    p.ok(&[
        "secrets",
        "add-iam-policy-binding",
        "db",
        &format!("--member=serviceAccount:{SA}"),
        "--role=roles/secretmanager.secretAccessor",
    ]);
    access(&p, &as_sa(&["latest", "--secret=db"]));
    assert_eq!(count(), before + 2, "others are logged");
    p.ok(&["logging", "verify"]);
}

/// Every file under the home, read as bytes (the store, its WAL and shared memory, keys, configuration).
fn home_files(p: &Platform) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![p.home.path().to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path.display().to_string(), bytes));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn payloads_are_encrypted_at_rest_and_bound_to_their_version() {
    let mut p = Platform::start();
    let canary = b"CANARY-5e2b9f7d-do-not-store-in-clear";
    let other = b"OTHER-payload-9a1c";
    let out = with_stdin(&p, &["secrets", "create", "swap", "--data-file=-"], canary);
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    p.ok(&["secrets", "versions", "add", "swap", &format!("--data-file={}", data_file(&dir, "o", other))]);
    assert_eq!(access(&p, &["1", "--secret=swap"]), canary);
    let check = |when: &str, p: &Platform| {
        let files = home_files(p);
        assert!(files.iter().any(|(n, _)| n.ends_with("state.db-wal")) || when == "after stop", "{when}: no WAL?");
        for (name, bytes) in &files {
            for needle in [&canary[..], &other[..], B64.encode(canary).as_bytes(), B64.encode(other).as_bytes()] {
                assert!(!contains(bytes, needle), "{when}: `{name}` holds a payload");
            }
        }
    };
    check("while running", &p);
    assert!(p.stop().success());
    check("after stop", &p);

    // Move version 2's sealed data into version 1's row: it must not open as version 1.
    let db = rusqlite::Connection::open(p.db_path()).unwrap();
    let body = |n: u32| -> Value {
        let name = format!("projects/local-project/secrets/swap/versions/{n}");
        let text: String = db
            .query_row("SELECT body FROM documents WHERE kind = 'secretVersion' AND name = ?1", [&name], |r| r.get(0))
            .unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let (mut v1, v2) = (body(1), body(2));
    assert!(v1["sealed"]["ciphertext"].is_string(), "{v1}");
    v1["sealed"] = v2["sealed"].clone();
    db.execute(
        "UPDATE documents SET body = ?1 WHERE kind = 'secretVersion' AND name = 'projects/local-project/secrets/swap/versions/1'",
        [v1.to_string()],
    )
    .unwrap();
    drop(db);
    p.boot(&[]);
    let r = p.cmd(&["secrets", "versions", "access", "1", "--secret=swap"]).output().unwrap();
    assert!(!r.status.success(), "a moved ciphertext opened");
    assert!(!contains(&r.stdout, other) && !contains(&r.stderr, other), "the other version's payload leaked");
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(e.contains("cannot be decrypted") && e.contains("versions/1"), "{e}");
    assert_eq!(access(&p, &["2", "--secret=swap"]), other, "the untouched version still opens");
}

#[test]
fn kill_9_during_concurrent_adds_loses_no_acknowledged_version() {
    let mut p = Platform::start();
    p.ok(&["secrets", "create", "busy"]);
    let token = p.token();
    const N: usize = 200;
    let acknowledged: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let threads: Vec<_> = (0..N)
        .map(|i| {
            let (api, token, acknowledged) = (p.api.clone(), token.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                let resp = http()
                    .post(format!("{api}/v1/projects/local-project/secrets/busy:addVersion"))
                    .bearer_auth(&token)
                    .json(&json!({"payload": {"data": B64.encode(format!("payload-{i:03}"))}}))
                    .send();
                if let Ok(r) = resp {
                    if r.status().is_success() {
                        if let Ok(v) = r.json::<Value>() {
                            acknowledged.lock().unwrap().push((i, v["name"].as_str().unwrap_or_default().to_owned()));
                        }
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < N / 4 {
        assert!(Instant::now() < deadline, "the concurrent adds made no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    p.kill9();
    for t in threads {
        t.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    p.boot(&[]);
    let token = p.token();
    let mut numbers = std::collections::HashSet::new();
    for (i, name) in &acknowledged {
        assert!(numbers.insert(name.clone()), "two adds acknowledged as {name}");
        let resp = http().get(format!("{}/v1/{name}:access", p.api)).bearer_auth(&token).send().unwrap();
        assert_eq!(resp.status(), 200, "acknowledged version {name} lost or unreadable after kill -9");
        let v: Value = resp.json().unwrap();
        let data = B64.decode(v["payload"]["data"].as_str().unwrap()).unwrap();
        assert_eq!(data, format!("payload-{i:03}").as_bytes(), "{name} holds another payload");
    }
    eprintln!(
        "{} of {N} adds acknowledged before kill -9; all present and decrypting after restart",
        acknowledged.len()
    );
    assert!(acknowledged.len() < N, "the kill came after every add finished; the test proved nothing");
    p.ok(&["logging", "verify"]);
}
