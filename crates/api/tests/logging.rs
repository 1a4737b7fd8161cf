//! Cloud Logging's `entries:list` over a long audit log: pages resume where the last one stopped, in either order,
//! and every entry comes exactly once.

mod common;

use axum::http::Method;
use serde_json::{json, Value};

/// Every entry matching `filter`, page by page, and the number of pages.
async fn list_all(p: &common::Plane, filter: &str, order: &str, page_size: usize) -> (Vec<Value>, usize) {
    let (mut entries, mut pages, mut token) = (Vec::new(), 0, String::new());
    loop {
        let body = json!({"filter": filter, "orderBy": order, "pageSize": page_size, "pageToken": token});
        let page = p.ok(Method::POST, "/v2/entries:list", Some(body)).await;
        pages += 1;
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["nextPageToken"].as_str() {
            Some(t) => token = t.to_owned(),
            None => return (entries, pages),
        }
        assert!(pages < 100, "paging does not end");
    }
}

fn paths(entries: &[Value]) -> Vec<String> {
    entries.iter().map(|e| e["protoPayload"]["request"]["path"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_resume_where_the_last_stopped_in_either_order() {
    let p = common::boot().await;
    // 2,500 refused invocations (recorded through the same queue the gateway uses), among the bootstrap's entries.
    for i in 0..2500 {
        p.app.record_invocation_denial(api::run::InvocationDenial {
            resource: "//run.googleapis.com/projects/local-project/locations/us-central1/services/api".into(),
            status: 403,
            reason: "no token".into(),
            principal: None,
            explanation: None,
            caller_ip: "127.0.0.1".into(),
            source_account: None,
            source_service: None,
            method: "GET".into(),
            path: format!("/{i:04}"),
        });
    }
    let filter = "protoPayload.methodName=\"run.routes.invoke\"";
    let expected: Vec<String> = (0..2500).map(|i| format!("/{i:04}")).collect();

    let (asc, pages) = list_all(&p, filter, "timestamp asc", 1000).await;
    assert_eq!(pages, 3);
    assert_eq!(paths(&asc), expected);
    let (desc, pages) = list_all(&p, filter, "timestamp desc", 700).await;
    assert_eq!(pages, 4);
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(paths(&desc), reversed);
    // A page that ends exactly at the last entry says there is no next one (no empty page after it).
    let (exact, pages) = list_all(&p, filter, "timestamp asc", 500).await;
    assert_eq!((exact.len(), pages), (2500, 5));

    // A token is for the listing that gave it.
    let body = json!({"filter": filter, "orderBy": "timestamp asc", "pageSize": 10});
    let token = p.ok(Method::POST, "/v2/entries:list", Some(body)).await["nextPageToken"].as_str().unwrap().to_owned();
    for (order, bad) in [("timestamp desc", token.as_str()), ("timestamp asc", "garbage"), ("timestamp asc", "a-x")] {
        let body = json!({"filter": filter, "orderBy": order, "pageToken": bad});
        let (status, v) = p.call(Method::POST, "/v2/entries:list", Some(body)).await;
        assert_eq!(status, 400, "{order} {bad}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("pageToken"), "{v}");
    }
}
