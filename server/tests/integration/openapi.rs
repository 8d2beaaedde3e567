//! `/openapi.json`: a valid OpenAPI 3.1 document (checked by `openapi-spec-validator` from
//! PyPI), every documented operation served by the router, and every route the router declares
//! documented.

use std::collections::BTreeSet;
use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::common::{template_names, TestServer, INTERNAL, METHODS};

async fn document(server: &TestServer, prefix: &str) -> Value {
    let r = server
        .client
        .get(format!("{}{prefix}/openapi.json", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    r.json().await.expect("JSON")
}

/// The Python with `openapi_spec_validator`: `ORBIT_TEST_PYTHON` (then it must have it; `.ci/run`
/// sets it), else `python3` if it happens to have it.
async fn validator_python() -> Option<PathBuf> {
    let (python, required) = match std::env::var_os("ORBIT_TEST_PYTHON") {
        Some(p) => (PathBuf::from(p), true),
        None => (PathBuf::from("python3"), false),
    };
    let ok = tokio::process::Command::new(&python)
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || !required,
        "ORBIT_TEST_PYTHON={} has no openapi_spec_validator",
        python.display()
    );
    ok.then_some(python)
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let server = TestServer::start().await;
    let doc = document(&server, "").await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc, document(&server, "/v1").await);
    // Every operation answers the error envelope by default and names its schemas.
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
                assert_eq!(
                    op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorEnvelope",
                    "{m} {path}"
                );
                for name in template_names(path) {
                    let described = op["parameters"].as_array().is_some_and(|ps| {
                        ps.iter().any(|p| p["name"] == name && p["in"] == "path")
                    });
                    assert!(described, "{m} {path}: parameter {name} undescribed");
                }
            }
        }
    }
    let Some(python) = validator_python().await else {
        eprintln!("skipped the validator: no python3 with openapi-spec-validator (pip install openapi-spec-validator, or set ORBIT_TEST_PYTHON)");
        return;
    };
    let file = server.dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("write");
    let out = tokio::process::Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .await
        .expect("run the validator");
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Is this the router's own answer for a path or method it does not serve?
async fn fallback(r: reqwest::Response) -> Option<String> {
    let status = r.status();
    if status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED {
        return None;
    }
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    (code == "METHOD_NOT_ALLOWED" || message == "no such route").then(|| format!("{status} {body}"))
}

#[tokio::test]
async fn every_documented_operation_is_served_at_both_prefixes() {
    let server = TestServer::start().await;
    let owner = Uuid::new_v4();
    let org = Uuid::new_v4();
    let repo = server.create_repo(owner, org, "app", "private").await;
    let token = server.token(owner);
    let doc = document(&server, "").await;
    let mut count = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{org_id}", &org.to_string())
            .replace("{repo}", "app")
            .replace("{user_id}", &Uuid::new_v4().to_string())
            .replace("{ref}", "main")
            .replace("{branch}", "main")
            .replace("{sha}", "HEAD")
            .replace("{spec}", "main...main")
            .replace("{path}", "README.md")
            .replace("{delivery_id}", &Uuid::new_v4().to_string())
            .replace("{id}", repo["id"].as_str().expect("id"));
        assert!(!concrete.contains('{'), "unsubstituted: {concrete}");
        for m in METHODS {
            if item.get(m).is_none() {
                continue;
            }
            for prefix in ["", "/v1"] {
                let method = Method::from_bytes(m.to_uppercase().as_bytes()).expect("method");
                // `/` nested under `/v1` is `/v1`.
                let url = match (prefix, concrete.as_str()) {
                    ("/v1", "/") => format!("{}/v1", server.base),
                    _ => format!("{}{prefix}{concrete}", server.base),
                };
                let mut req = server
                    .client
                    .request(method, url)
                    .header("x-internal-token", INTERNAL)
                    .bearer_auth(&token);
                if m != "get" && m != "delete" {
                    req = req.json(&serde_json::json!({}));
                }
                // Streams answer 200 and stay open: the status is all this needs.
                let r = req.send().await.expect("request");
                if let Some(answer) = fallback(r).await {
                    panic!("{m} {prefix}{path} is documented but not routed: {answer}");
                }
                count += 1;
            }
        }
    }
    assert!(count >= 2 * 50, "only {count} operations");
}

/// Every `.route("…")` in the server's sources (REST routes go through `routes!`, which
/// documents them; a plain `.route` would not) is documented or is one of the non-REST routes.
#[tokio::test]
async fn every_routed_path_is_documented() {
    let server = TestServer::start().await;
    let doc = document(&server, "").await;
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    let not_rest: BTreeSet<&str> = [
        "/{org_id}/{repo}/info/refs",
        "/{org_id}/{repo}/git-upload-pack",
        "/{org_id}/{repo}/git-receive-pack",
        "/metrics",
    ]
    .into();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join("lib.rs"), src.join("git_http.rs")];
    for e in std::fs::read_dir(src.join("api")).expect("api dir") {
        files.push(e.expect("entry").path());
    }
    let mut seen = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        for chunk in text.split(".route(").skip(1) {
            let Some(path) = chunk
                .trim_start()
                .strip_prefix('"')
                .and_then(|rest| rest.split_once('"'))
                .map(|(p, _)| p.replace("{*", "{"))
            else {
                continue;
            };
            assert!(
                documented.contains(&path) || not_rest.contains(path.as_str()),
                "{}: route {path} is not in /openapi.json",
                f.display()
            );
            seen.insert(path);
        }
    }
    for path in &not_rest {
        assert!(seen.contains(*path), "the non-REST route {path} is gone");
    }
    // And the REST routes registered with `routes!` are the documented ones by construction.
    assert!(documented.contains("/repos/{org_id}/{repo}/pulls/{id}/merge"));
}
