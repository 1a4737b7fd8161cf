//! The foundation's "done when" flows, run as a new user would: the real binary against a real platform.

mod common;

use common::{http, members_of, Platform};
use serde_json::{json, Value};

const SA: &str = "my-api-sa@local-project.iam.gserviceaccount.com";

#[test]
fn service_account_binding_shows_in_project_policy() {
    let p = Platform::start();
    p.ok(&["iam", "service-accounts", "create", "my-api-sa", "--display-name=Service account for my-api"]);
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        &format!("--member=serviceAccount:{SA}"),
        "--role=roles/cloudsql.client",
    ]);
    let policy = p.json(&["projects", "get-iam-policy", "local-project"]);
    assert_eq!(members_of(&policy, "roles/cloudsql.client"), [format!("serviceAccount:{SA}")]);
    assert_eq!(members_of(&policy, "roles/owner"), ["user:owner@localhost"]);
    assert_eq!(members_of(&policy, "roles/editor"), [format!("serviceAccount:{}", p.compute_sa())]);
    assert!(!policy["etag"].as_str().unwrap_or_default().is_empty(), "{policy}");

    let sa = p.json(&["iam", "service-accounts", "describe", SA]);
    assert_eq!(sa["displayName"], "Service account for my-api");
    let unique_id = sa["uniqueId"].as_str().unwrap();
    assert_eq!(unique_id.len(), 21, "{sa}");
    assert!(unique_id.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(p.project_number.len(), 12);
    assert_eq!(p.ok(&["config", "get-value", "project"]).trim(), "local-project");

    // The flag spelled with a space works the same.
    p.ok(&[
        "iam",
        "service-accounts",
        "add-iam-policy-binding",
        SA,
        "--member",
        "user:dev@example.com",
        "--role",
        "roles/iam.serviceAccountUser",
    ]);
    let sa_policy = p.json(&["iam", "service-accounts", "get-iam-policy", SA]);
    assert_eq!(members_of(&sa_policy, "roles/iam.serviceAccountUser"), ["user:dev@example.com"]);
}

#[test]
fn bad_input_is_refused_with_a_message_naming_the_problem() {
    let p = Platform::start();
    let add = |member: &str, role: &str| {
        p.fail(&[
            "projects",
            "add-iam-policy-binding",
            "local-project",
            &format!("--member={member}"),
            &format!("--role={role}"),
        ])
    };
    let e = add("user:a@example.com", "roles/run.invokr");
    assert!(e.contains("roles/run.invokr") && e.contains("you mean `roles/run.invoker`"), "{e}");
    let e = add("bob@example.com", "roles/viewer");
    assert!(e.contains("invalid member `bob@example.com`") && e.contains("user:bob@example.com"), "{e}");
    let e = add("serviceAccount:ghost-sa@local-project.iam.gserviceaccount.com", "roles/viewer");
    assert!(e.contains("Service account ghost-sa@local-project.iam.gserviceaccount.com does not exist."), "{e}");
    let e = p.fail(&["iam", "service-accounts", "create", "Bad_Name"]);
    assert!(e.contains("`Bad_Name` is not a valid service account id"), "{e}");
    let e = p.fail(&["projects", "get-iam-policy", "local-project", "\u{2014}format=json"]);
    assert!(e.contains("Unicode dash") && e.contains("`--format=json`"), "{e}");
    let e = p.fail(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        "--member=user:a@example.com",
        "--role=roles/viewer",
        "--condition=expression=request.auth.claims.x == 'y',title=t",
    ]);
    assert!(e.contains("request.auth"), "unsupported CEL must be rejected at set time: {e}");

    // Nothing was written by any of those.
    let policy = p.json(&["projects", "get-iam-policy", "local-project"]);
    assert_eq!(policy["bindings"].as_array().map(Vec::len), Some(2), "{policy}");
}

#[test]
fn stale_etag_is_aborted() {
    let p = Platform::start();
    let old = p.json(&["projects", "get-iam-policy", "local-project"]);
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        "--member=user:a@example.com",
        "--role=roles/viewer",
    ]);
    let mut stale = old.clone();
    stale["bindings"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "roles/run.admin", "members": ["user:b@example.com"]}));
    let file = p.home.path().join("policy.json");
    std::fs::write(&file, stale.to_string()).unwrap();
    let e = p.fail(&["projects", "set-iam-policy", "local-project", file.to_str().unwrap()]);
    assert!(e.contains("ABORTED") && e.contains("concurrent policy changes"), "{e}");
    // An etag that is not base64 is no etag at all: 400, as Google's JSON decoding of `bytes` answers.
    let mut garbled = stale.clone();
    garbled["etag"] = json!("!!x");
    std::fs::write(&file, garbled.to_string()).unwrap();
    let e = p.fail(&["projects", "set-iam-policy", "local-project", file.to_str().unwrap()]);
    assert!(e.contains("INVALID_ARGUMENT") && e.contains("Base64 decoding failed"), "{e}");
    // With the current etag the same change goes through.
    let mut fresh = p.json(&["projects", "get-iam-policy", "local-project"]);
    fresh["bindings"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "roles/run.admin", "members": ["user:b@example.com"]}));
    std::fs::write(&file, fresh.to_string()).unwrap();
    p.ok(&["projects", "set-iam-policy", "local-project", file.to_str().unwrap()]);
    let policy = p.json(&["projects", "get-iam-policy", "local-project"]);
    assert_eq!(members_of(&policy, "roles/run.admin"), ["user:b@example.com"]);
}

#[test]
fn new_users_hold_nothing_and_the_troubleshooter_explains_why() {
    let p = Platform::start();
    p.ok(&["auth", "login", "bob@example.com"]);
    let e = p.fail(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        "--member=user:bob@example.com",
        "--role=roles/owner",
    ]);
    assert!(e.contains("PERMISSION_DENIED") && e.contains("resourcemanager.projects.setIamPolicy"), "{e}");
    p.ok(&["config", "set", "account", "owner@localhost"]);

    let resource = "//cloudresourcemanager.googleapis.com/projects/local-project";
    let perm = "--permission=resourcemanager.projects.setIamPolicy";
    let out = p.ok(&["policy-troubleshoot", "iam", resource, "--principal-email=bob@example.com", perm]);
    assert!(out.starts_with("NOT_GRANTED"), "{out}");
    assert!(out.contains("roles/owner") && out.contains("roles/editor"), "every binding is named: {out}");
    let out = p.ok(&["policy-troubleshoot", "iam", resource, "--principal-email=owner@localhost", perm]);
    assert!(out.starts_with("GRANTED") && out.contains("GRANTED by roles/owner"), "{out}");
    let v = p.json(&["policy-troubleshoot", "iam", resource, "--principal-email=owner@localhost", perm]);
    assert_eq!(v["access"], "GRANTED");
    assert_eq!(v["explainedPolicies"][0]["fullResourceName"], resource);

    // Bob's denial is in the audit log, with the permission and his email.
    let denied = p.json(&[
        "logging",
        "read",
        "protoPayload.authenticationInfo.principalEmail=\"bob@example.com\" AND severity=ERROR",
    ]);
    assert!(!denied.as_array().unwrap().is_empty(), "{denied}");
    assert_eq!(denied[0]["protoPayload"]["status"]["code"], 7);
}

#[test]
fn rest_api_requires_a_valid_token() {
    let p = Platform::start();
    let url = format!("{}/v1/projects/local-project:getIamPolicy", p.api);
    let token = p.token();
    let ok = http().post(&url).bearer_auth(&token).json(&json!({})).send().unwrap();
    assert_eq!(ok.status(), 200);
    let policy: Value = ok.json().unwrap();
    assert_eq!(members_of(&policy, "roles/owner"), ["user:owner@localhost"]);

    for auth in [None, Some("Bearer ya29.unknown"), Some("Basic Zm9vOmJhcg=="), Some("Bearer ")] {
        let mut req = http().post(&url).json(&json!({}));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        let body: Value = resp.json().unwrap();
        assert_eq!(body["error"]["status"], "UNAUTHENTICATED", "{auth:?}");
        assert_eq!(body["error"]["code"], 401);
    }
    // Revoked credentials stop working.
    p.ok(&["auth", "revoke", "owner@localhost"]);
    let resp = http().post(&url).bearer_auth(&token).json(&json!({})).send().unwrap();
    assert_eq!(resp.status(), 401);
    let e = p.fail(&["projects", "get-iam-policy", "local-project"]);
    assert!(e.contains("gatehouse auth login"), "{e}");
}

#[test]
fn oversized_bodies_get_googles_400_over_a_real_connection() {
    let p = Platform::start();
    let url = format!("{}/v1/projects/local-project/serviceAccounts", p.api);
    let token = p.token();
    // Below axum's 2 MB default, above it, and well above it: the same answer, never a 413 in plain text.
    for size in [1_500_000, 3 << 20, 10 << 20] {
        let body = format!("{{\"accountId\":\"big\",\"x\":\"{}\"}}", "a".repeat(size));
        let resp =
            http().post(&url).bearer_auth(&token).header("content-type", "application/json").body(body).send().unwrap();
        assert_eq!(resp.status(), 400, "{size}");
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "{size}");
        let v: Value = resp.json().unwrap();
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{size}: {v}");
        assert_eq!(v["error"]["message"], "Request payload size exceeds the limit: 1048576 bytes.", "{size}");
    }
    // The connection pool is still usable afterwards.
    let ok = http().get(&url).bearer_auth(&token).send().unwrap();
    assert_eq!(ok.status(), 200);
}

#[test]
fn custom_roles_groups_and_conditions() {
    let p = Platform::start();
    let e = p.fail(&[
        "iam",
        "roles",
        "create",
        "reader",
        "--project=local-project",
        "--permissions=run.services.get,run.servics.list",
    ]);
    assert!(e.contains("run.servics.list"), "{e}");
    p.ok(&[
        "iam",
        "roles",
        "create",
        "reader",
        "--project=local-project",
        "--permissions=run.services.get,run.services.list",
        "--title=Reader",
    ]);
    let role = p.json(&["iam", "roles", "describe", "reader", "--project=local-project"]);
    assert_eq!(role["includedPermissions"], json!(["run.services.get", "run.services.list"]));
    let invoker = p.json(&["iam", "roles", "describe", "roles/run.invoker"]);
    assert!(invoker["includedPermissions"].as_array().unwrap().contains(&json!("run.routes.invoke")));

    p.ok(&["identity", "groups", "create", "devs@example.com", "--display-name=Developers"]);
    p.ok(&[
        "identity",
        "groups",
        "memberships",
        "add",
        "--group-email=devs@example.com",
        "--member-email=carol@example.com",
    ]);
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        "--member=group:devs@example.com",
        "--role=projects/local-project/roles/reader",
    ]);
    let resource = "//cloudresourcemanager.googleapis.com/projects/local-project";
    let out = p.ok(&[
        "policy-troubleshoot",
        "iam",
        resource,
        "--principal-email=carol@example.com",
        "--permission=run.services.list",
    ]);
    assert!(out.starts_with("GRANTED") && out.contains("devs@example.com"), "{out}");
    // A deleted role grants nothing and cannot be changed; undeleted, it grants again.
    let carol_lists = || {
        let args = ["policy-troubleshoot", "iam", resource, "--principal-email=carol@example.com"];
        p.ok(&[&args[..], &["--permission=run.services.list"]].concat()).starts_with("GRANTED")
    };
    p.ok(&["iam", "roles", "delete", "reader", "--project=local-project"]);
    assert!(!carol_lists());
    let args = ["policy-troubleshoot", "iam", resource, "--principal-email=carol@example.com"];
    let why = p.ok(&[&args[..], &["--permission=run.services.list"]].concat());
    assert!(why.contains("role is deleted: its bindings grant nothing until it is undeleted"), "{why}");
    let e = p.fail(&["iam", "roles", "update", "reader", "--project=local-project", "--title=Again"]);
    assert!(e.contains("as it is deleted; undelete it first"), "{e}");
    p.ok(&["iam", "roles", "undelete", "reader", "--project=local-project"]);
    assert!(carol_lists());
    let e = p.fail(&["iam", "roles", "undelete", "reader", "--project=local-project"]);
    assert!(e.contains("as it is not deleted"), "{e}");
    let out = p.ok(&[
        "policy-troubleshoot",
        "iam",
        resource,
        "--principal-email=dave@example.com",
        "--permission=run.services.list",
    ]);
    assert!(out.starts_with("NOT_GRANTED"), "{out}");

    // A condition that expired grants nothing; one in the future grants.
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        "--member=user:erin@example.com",
        "--role=roles/run.viewer",
        "--condition=expression=request.time < timestamp('2001-01-01T00:00:00Z'),title=expired",
    ]);
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        "--member=user:erin@example.com",
        "--role=roles/run.invoker",
        "--condition=expression=request.time < timestamp('2999-01-01T00:00:00Z'),title=later",
    ]);
    let policy = p.json(&["projects", "get-iam-policy", "local-project"]);
    assert_eq!(policy["version"], 3);
    let check = |perm: &str| {
        p.ok(&[
            "policy-troubleshoot",
            "iam",
            resource,
            "--principal-email=erin@example.com",
            &format!("--permission={perm}"),
        ])
    };
    assert!(check("run.services.get").starts_with("NOT_GRANTED"));
    assert!(check("run.routes.invoke").starts_with("GRANTED"));
    // With conditions in the policy, gcloud (never prompting here) wants --condition, `None` for none, or --all.
    let add = [
        "projects",
        "add-iam-policy-binding",
        "local-project",
        "--member=user:fay@example.com",
        "--role=roles/run.viewer",
    ];
    let e = p.fail(&add);
    assert!(e.contains("prohibited in non-interactive mode. Run the command again with `--condition=None`"), "{e}");
    p.ok(&[&add[..], &["--condition=None"]].concat());
    let e = p.fail(&[
        "projects",
        "remove-iam-policy-binding",
        "local-project",
        "--member=user:erin@example.com",
        "--role=roles/run.invoker",
    ]);
    assert!(e.contains("Removing a binding without specifying a condition"), "{e}");
    p.ok(&[
        "projects",
        "remove-iam-policy-binding",
        "local-project",
        "--member=user:erin@example.com",
        "--role=roles/run.invoker",
        "--all",
    ]);
    assert!(check("run.routes.invoke").starts_with("NOT_GRANTED"));
}

#[test]
fn service_account_lifecycle() {
    let p = Platform::start();
    p.ok(&["iam", "service-accounts", "create", "worker-sa", "--display-name=Worker"]);
    let email = "worker-sa@local-project.iam.gserviceaccount.com";
    let e = p.fail(&["iam", "service-accounts", "create", "worker-sa"]);
    assert!(e.contains("ALREADY_EXISTS"), "{e}");
    let listed = p.json(&["iam", "service-accounts", "list"]);
    let emails: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|a| a["email"].as_str()).collect();
    assert!(emails.contains(&email) && emails.contains(&p.compute_sa().as_str()), "{listed}");
    p.ok(&["iam", "service-accounts", "disable", email]);
    assert_eq!(p.json(&["iam", "service-accounts", "describe", email])["disabled"], true);
    // gcloud's table says True or False, though the API leaves `disabled: false` out.
    let table = p.ok(&["iam", "service-accounts", "list"]);
    let row = |who: &str| table.lines().find(|l| l.contains(who)).unwrap_or_default().trim_end().to_owned();
    assert!(row(email).ends_with("True") && row(&p.compute_sa()).ends_with("False"), "{table}");
    p.ok(&["iam", "service-accounts", "enable", email]);
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        &format!("--member=serviceAccount:{email}"),
        "--role=roles/run.developer",
    ]);
    let uid = p.json(&["iam", "service-accounts", "describe", email])["uniqueId"].as_str().unwrap().to_owned();
    p.ok(&["iam", "service-accounts", "delete", email, "--quiet"]);
    let policy = p.json(&["projects", "get-iam-policy", "local-project"]);
    assert_eq!(members_of(&policy, "roles/run.developer"), [format!("deleted:serviceAccount:{email}?uid={uid}")]);
    let e = p.fail(&["iam", "service-accounts", "describe", email]);
    assert!(e.contains("NOT_FOUND"), "{e}");
    // Undeleted by its unique id: the same identity, with its roles, as Google restores it.
    let restored = p.json(&["iam", "service-accounts", "undelete", &uid]);
    assert_eq!(restored["restoredAccount"]["email"], email);
    assert_eq!(p.json(&["iam", "service-accounts", "describe", email])["uniqueId"], uid);
    let policy = p.json(&["projects", "get-iam-policy", "local-project"]);
    assert_eq!(members_of(&policy, "roles/run.developer"), [format!("serviceAccount:{email}")]);
    let e = p.fail(&["iam", "service-accounts", "undelete", &uid]);
    assert!(e.contains("NOT_FOUND") && e.contains("No deleted service account"), "{e}");
    // While a new account holds the email, the old one cannot come back.
    p.ok(&["iam", "service-accounts", "delete", email, "--quiet"]);
    let name = email.split('@').next().unwrap();
    p.ok(&["iam", "service-accounts", "create", name]);
    let e = p.fail(&["iam", "service-accounts", "undelete", &uid]);
    assert!(e.contains("an account with that email exists now"), "{e}");
}

#[test]
fn every_mutation_is_audited_and_the_chain_detects_tampering() {
    let mut p = Platform::start();
    p.ok(&["iam", "service-accounts", "create", "audit-me-sa"]);
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        "--member=user:a@example.com",
        "--role=roles/viewer",
    ]);
    let entries = p.json(&["logging", "read", "logName:\"activity\""]);
    let methods: Vec<&str> =
        entries.as_array().unwrap().iter().filter_map(|e| e["protoPayload"]["methodName"].as_str()).collect();
    assert!(methods.contains(&"google.iam.admin.v1.CreateServiceAccount"), "{methods:?}");
    assert!(methods.contains(&"SetIamPolicy"), "{methods:?}");
    for e in entries.as_array().unwrap() {
        assert_eq!(e["protoPayload"]["@type"], "type.googleapis.com/google.cloud.audit.AuditLog");
        assert!(e["insertId"].as_str().is_some_and(|s| !s.is_empty()));
    }
    let out = p.ok(&["logging", "verify"]);
    assert!(out.contains("verified"), "{out}");

    // Alter one stored entry behind the platform's back.
    p.stop();
    let db = rusqlite::Connection::open(p.db_path()).unwrap();
    let (seq, entry): (i64, String) = db
        .query_row("SELECT seq, entry FROM audit ORDER BY seq LIMIT 1 OFFSET 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    let insert_id = serde_json::from_str::<Value>(&entry).unwrap()["insertId"].as_str().unwrap().to_owned();
    db.execute("UPDATE audit SET entry = replace(entry, 'owner@localhost', 'nobody@localhost') WHERE seq = ?1", [seq])
        .unwrap();
    drop(db);
    p.boot(&[]);
    let r = p.run(&["logging", "verify"]);
    assert_ne!(r.code, 0, "verify passed on an altered log");
    assert!(r.stderr.contains(&format!("entry {seq}")) && r.stderr.contains(&insert_id), "{}", r.stderr);
}

#[test]
fn without_a_daemon_commands_say_to_run_up_and_gcloud_link_works() {
    let mut p = Platform::start();
    let link = p.home.path().join("gcloud");
    std::os::unix::fs::symlink(common::BIN, &link).unwrap();
    let via_gcloud = p
        .cmd_with(&link, &["projects", "get-iam-policy", "local-project", "--format=value(bindings.role)"])
        .output()
        .unwrap();
    assert!(via_gcloud.status.success());
    assert_eq!(String::from_utf8_lossy(&via_gcloud.stdout).trim(), "roles/editor;roles/owner");
    let bad = p.cmd_with(&link, &["projects", "get-iam-policy", "local-project", "--role=x"]).output().unwrap();
    assert!(!bad.status.success());

    let status = p.stop();
    assert!(status.success(), "up did not stop cleanly: {status:?}");
    assert!(!p.home.path().join("daemon.json").exists(), "daemon.json left behind");
    let e = p.fail(&["projects", "get-iam-policy", "local-project"]);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("gatehouse up"), "{e}");
    let out = p.cmd_with(&link, &["iam", "service-accounts", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("ERROR: (gcloud.iam.service-accounts.list)"));
}

#[test]
fn project_policy_cannot_lose_its_last_owner() {
    let p = Platform::start();
    let e = p.fail(&[
        "projects",
        "remove-iam-policy-binding",
        "local-project",
        "--member=user:owner@localhost",
        "--role=roles/owner",
    ]);
    assert!(e.contains("at least one member of roles/owner"), "{e}");
    let url = format!("{}/v1/projects/local-project:setIamPolicy", p.api);
    for body in [json!({"policy": {"bindings": []}}), json!({"policy": {"bindings": []}, "updateMask": "bogus"})] {
        let resp = http().post(&url).bearer_auth(p.token()).json(&body).send().unwrap();
        assert_eq!(resp.status(), 400, "{body}");
    }
    let policy = p.json(&["projects", "get-iam-policy", "local-project"]);
    assert_eq!(members_of(&policy, "roles/owner"), ["user:owner@localhost"]);
    // A second owner makes removing the first one possible.
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        "--member=user:second@example.com",
        "--role=roles/owner",
    ]);
    p.ok(&[
        "projects",
        "remove-iam-policy-binding",
        "local-project",
        "--member=user:owner@localhost",
        "--role=roles/owner",
        "--account=owner@localhost",
    ]);
}

#[test]
fn a_resource_takes_only_roles_that_apply_to_it() {
    let p = Platform::start();
    p.ok(&["iam", "service-accounts", "create", "my-api-sa"]);
    let region = "--region=us-central1";
    p.ok(&["run", "deploy", "api", "--image=us-docker.pkg.dev/cloudrun/container/hello", region]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("value");
    std::fs::write(&file, "v").unwrap();
    p.ok(&["secrets", "create", "db-pass", &format!("--data-file={}", file.display())]);
    let member = format!("--member=serviceAccount:{SA}");
    let service = |role: &str| p.run(&["run", "services", "add-iam-policy-binding", "api", region, &member, role]);
    let secret = |role: &str| p.run(&["secrets", "add-iam-policy-binding", "db-pass", &member, role]);
    let account = |role: &str| p.run(&["iam", "service-accounts", "add-iam-policy-binding", SA, &member, role]);
    // A role with no permission on the kind of resource is refused, and nothing changes.
    for (r, role) in [
        (service("--role=roles/secretmanager.secretAccessor"), "roles/secretmanager.secretAccessor"),
        (secret("--role=roles/run.invoker"), "roles/run.invoker"),
        (account("--role=roles/run.invoker"), "roles/run.invoker"),
        (service("--role=roles/iam.serviceAccountUser"), "roles/iam.serviceAccountUser"),
    ] {
        assert_ne!(r.code, 0, "{role}: {}", r.stdout);
        assert!(r.stderr.contains(&format!("Role {role} is not supported for this resource")), "{}", r.stderr);
    }
    let policy = p.json(&["run", "services", "get-iam-policy", "api", region]);
    assert!(policy.get("bindings").is_none(), "{policy}");
    // Roles that hold one of its permissions are taken: the resource's own roles and the basic roles.
    for r in [
        service("--role=roles/run.invoker"),
        service("--role=roles/viewer"),
        secret("--role=roles/secretmanager.secretAccessor"),
        account("--role=roles/iam.serviceAccountTokenCreator"),
    ] {
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
}
