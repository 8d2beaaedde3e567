//! The repository registry: create, list, get, rename, archive, delete, internal and admin
//! routes, bad input, health, CORS.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{git_out, Auth, TestServer, INTERNAL};

fn create_body(org: Uuid, name: &str) -> Value {
    json!({"orgId": org, "projectId": Uuid::new_v4(), "name": name, "visibility": "private"})
}

#[tokio::test]
async fn create_makes_a_real_empty_bare_repository() {
    let srv = TestServer::start().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let t = Auth::Bearer(srv.token(owner));
    let r = srv
        .send(
            Method::POST,
            "/v1/repos",
            &t,
            Some(json!({"orgId": org, "projectId": org, "name": "Agent-Work_1.x", "visibility": "public",
                        "description": "scratch", "defaultBranch": "trunk"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let repo = r.body;
    for field in [
        "id",
        "orgId",
        "projectId",
        "ownerId",
        "name",
        "description",
        "visibility",
        "defaultBranch",
        "archived",
        "createdAt",
        "updatedAt",
        "cloneUrl",
    ] {
        assert!(repo.get(field).is_some(), "missing {field}: {repo}");
    }
    assert_eq!(repo["ownerId"], owner.to_string());
    assert_eq!(repo["defaultBranch"], "trunk");
    assert_eq!(repo["archived"], false);
    assert_eq!(
        repo["cloneUrl"],
        format!("{}/{org}/Agent-Work_1.x.git", srv.base)
    );
    assert!(chrono::DateTime::parse_from_rfc3339(repo["createdAt"].as_str().expect("ts")).is_ok());

    let path = srv.repo_path(repo["id"].as_str().expect("id")).await;
    assert!(
        path.to_string_lossy()
            .contains(repo["id"].as_str().expect("id")),
        "storage path derives from the id"
    );
    let home = srv.dir.path();
    assert_eq!(
        git_out(&path, home, &["rev-parse", "--is-bare-repository"]),
        "true"
    );
    assert_eq!(
        git_out(&path, home, &["symbolic-ref", "HEAD"]),
        "refs/heads/trunk"
    );
    git_out(&path, home, &["fsck", "--strict"]);

    // Visible through both prefixes, and the owner is the first collaborator.
    let got = srv.get(&format!("/repos/{org}/agent-work_1.x"), &t).await;
    assert_eq!(got.body["id"], repo["id"], "lookup ignores case");
    let collabs = srv
        .get(&format!("/v1/repos/{org}/Agent-Work_1.x/collaborators"), &t)
        .await;
    assert_eq!(
        collabs.body,
        json!([{"userId": owner, "role": "owner", "createdAt": collabs.body[0]["createdAt"]}])
    );
}

#[tokio::test]
async fn names_are_validated_and_unique_per_org() {
    let srv = TestServer::start().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let t = Auth::Bearer(srv.token(owner));
    let long = "a".repeat(101);
    for bad in [
        "",
        ".hidden",
        "x.git",
        "X.GIT",
        "a/b",
        "a b",
        "ü",
        "..",
        "a\\b",
        long.as_str(),
    ] {
        let r = srv
            .send(Method::POST, "/repos", &t, Some(create_body(org, bad)))
            .await;
        r.assert_error(400, "VALIDATION_ERROR");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .expect("msg")
                .contains("name"),
            "{}",
            r.body
        );
    }
    assert_eq!(
        srv.send(
            Method::POST,
            "/repos",
            &t,
            Some(create_body(org, &"a".repeat(100)))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        srv.send(Method::POST, "/repos", &t, Some(create_body(org, "dup")))
            .await
            .status,
        200
    );
    for again in ["dup", "DUP"] {
        srv.send(Method::POST, "/repos", &t, Some(create_body(org, again)))
            .await
            .assert_error(409, "CONFLICT");
    }
    // Another user in the same org: still taken. Another org: free.
    let other = Auth::Bearer(srv.token(Uuid::new_v4()));
    srv.send(
        Method::POST,
        "/repos",
        &other,
        Some(create_body(org, "dup")),
    )
    .await
    .assert_error(409, "CONFLICT");
    assert_eq!(
        srv.send(
            Method::POST,
            "/repos",
            &t,
            Some(create_body(Uuid::new_v4(), "dup"))
        )
        .await
        .status,
        200
    );
    for bad_branch in ["a..b", "-x", "x.lock", "with space", "HEAD^", ""] {
        let mut body = create_body(org, "branchy");
        body["defaultBranch"] = json!(bad_branch);
        let r = srv.send(Method::POST, "/repos", &t, Some(body)).await;
        r.assert_error(400, "VALIDATION_ERROR");
    }
    // After a delete the name is free again.
    assert_eq!(
        srv.send(Method::DELETE, &format!("/repos/{org}/dup"), &t, None)
            .await
            .status,
        204
    );
    assert_eq!(
        srv.send(Method::POST, "/repos", &t, Some(create_body(org, "dup")))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn concurrent_creates_of_one_name_yield_one_repository() {
    let srv = TestServer::start().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let t = Auth::Bearer(srv.token(owner));
    let calls =
        (0..8).map(|_| srv.send(Method::POST, "/repos", &t, Some(create_body(org, "race"))));
    let results = futures_util::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        results
            .iter()
            .map(|r| (r.status, r.body.clone()))
            .collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != 200) {
        r.assert_error(409, "CONFLICT");
    }
}

#[tokio::test]
async fn bad_requests_answer_the_envelope() {
    let srv = TestServer::start().await;
    let t = srv.token(Uuid::new_v4());
    let url = format!("{}/repos", srv.base);
    let c = &srv.client;
    let read = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body: Value = r.json().await.expect("envelope is JSON");
        assert!(ct.starts_with("application/json"), "content-type {ct}");
        (status, body)
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str, Option<&str>)> = vec![
        ("not json", c.post(&url).bearer_auth(&t).header("content-type", "application/json").body("{nope"), 400, "VALIDATION_ERROR", None),
        ("no content type", c.post(&url).bearer_auth(&t).body("{}"), 400, "VALIDATION_ERROR", None),
        ("text content type", c.post(&url).bearer_auth(&t).header("content-type", "text/plain").body("{}"), 400, "VALIDATION_ERROR", None),
        ("missing field", c.post(&url).bearer_auth(&t).json(&json!({"name": "x"})), 400, "VALIDATION_ERROR", Some("orgId")),
        ("wrong type", c.post(&url).bearer_auth(&t).json(&json!({"orgId": 5, "projectId": Uuid::new_v4(), "name": "x", "visibility": "public"})), 400, "VALIDATION_ERROR", Some("orgId")),
        ("unknown enum", c.post(&url).bearer_auth(&t).json(&json!({"orgId": Uuid::new_v4(), "projectId": Uuid::new_v4(), "name": "x", "visibility": "secret"})), 400, "VALIDATION_ERROR", Some("visibility")),
        ("unknown field", c.post(&url).bearer_auth(&t).json(&json!({"orgId": Uuid::new_v4(), "projectId": Uuid::new_v4(), "name": "x", "visibility": "public", "colour": "red"})), 400, "VALIDATION_ERROR", Some("colour")),
        ("oversize", c.post(&url).bearer_auth(&t).json(&json!({"orgId": Uuid::new_v4(), "projectId": Uuid::new_v4(), "name": "x", "visibility": "public", "description": "x".repeat(2 * 1024 * 1024)})), 413, "PAYLOAD_TOO_LARGE", None),
        ("bad uuid in path", c.get(format!("{}/repos/not-a-uuid/x", srv.base)).bearer_auth(&t), 400, "VALIDATION_ERROR", None),
        ("bad limit", c.get(format!("{url}?limit=0")).bearer_auth(&t), 400, "VALIDATION_ERROR", Some("limit")),
        ("limit over max", c.get(format!("{url}?limit=501")).bearer_auth(&t), 400, "VALIDATION_ERROR", Some("limit")),
        ("limit not a number", c.get(format!("{url}?limit=lots")).bearer_auth(&t), 400, "VALIDATION_ERROR", Some("limit")),
        ("offset too large", c.get(format!("{url}?offset=18446744073709551615")).bearer_auth(&t), 400, "VALIDATION_ERROR", Some("offset")),
        ("unknown route", c.get(format!("{}/nope/nope", srv.base)), 404, "NOT_FOUND", None),
        ("unknown v1 route", c.get(format!("{}/v1/nope", srv.base)), 404, "NOT_FOUND", None),
        ("wrong method", c.put(format!("{}/health", srv.base)), 405, "METHOD_NOT_ALLOWED", None),
    ];
    for (what, req, status, code, mentions) in cases {
        let (got, body) = read(req.send().await.expect("send")).await;
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        if let Some(m) = mentions {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .expect("message")
                    .contains(m),
                "{what}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn rename_archive_unarchive_delete_and_their_events() {
    let srv = TestServer::start().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let t = Auth::Bearer(srv.token(owner));
    let repo = srv.create_repo(owner, org, "first", "private").await;
    let id = repo["id"].as_str().expect("id").to_owned();
    let path = srv.repo_path(&id).await;

    let r = srv
        .send(Method::PATCH, &format!("/repos/{org}/first"), &t,
              Some(json!({"name": "second", "description": "d", "visibility": "public", "defaultBranch": "dev"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "second");
    assert_eq!(r.body["visibility"], "public");
    assert_eq!(r.body["cloneUrl"], format!("{}/{org}/second.git", srv.base));
    srv.get(&format!("/repos/{org}/first"), &t)
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(
        srv.get(&format!("/repos/{org}/second"), &Auth::None)
            .await
            .status,
        200,
        "now public"
    );
    assert_eq!(srv.repo_path(&id).await, path, "renames never move data");
    assert_eq!(
        git_out(&path, srv.dir.path(), &["symbolic-ref", "HEAD"]),
        "refs/heads/dev"
    );

    // Clearing the description with null, a rename onto a taken name, a bad branch.
    let r = srv
        .send(
            Method::PATCH,
            &format!("/repos/{org}/second"),
            &t,
            Some(json!({"description": null})),
        )
        .await;
    assert_eq!(r.body["description"], Value::Null);
    srv.create_repo(owner, org, "taken", "private").await;
    srv.send(
        Method::PATCH,
        &format!("/repos/{org}/second"),
        &t,
        Some(json!({"name": "TAKEN"})),
    )
    .await
    .assert_error(409, "CONFLICT");
    srv.send(
        Method::PATCH,
        &format!("/repos/{org}/second"),
        &t,
        Some(json!({"defaultBranch": "a..b"})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    srv.send(
        Method::PATCH,
        &format!("/repos/{org}/second"),
        &t,
        Some(json!({"name": "bad name"})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");

    // Archive: read-only until unarchived.
    let r = srv
        .send(
            Method::POST,
            &format!("/repos/{org}/second/archive"),
            &t,
            None,
        )
        .await;
    assert_eq!(r.body["archived"], true);
    srv.send(
        Method::PATCH,
        &format!("/repos/{org}/second"),
        &t,
        Some(json!({"description": "x"})),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    srv.send(
        Method::PUT,
        &format!("/repos/{org}/second/collaborators/{}", Uuid::new_v4()),
        &t,
        Some(json!({"role": "reader"})),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    let r = srv
        .send(
            Method::PATCH,
            &format!("/repos/{org}/second"),
            &t,
            Some(json!({"archived": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["archived"], false);

    // Delete: gone from the API, kept on disk.
    let r = srv
        .send(Method::DELETE, &format!("/repos/{org}/second"), &t, None)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, Value::Null);
    srv.get(&format!("/repos/{org}/second"), &t)
        .await
        .assert_error(404, "NOT_FOUND");
    srv.send(Method::DELETE, &format!("/repos/{org}/second"), &t, None)
        .await
        .assert_error(404, "NOT_FOUND");
    assert!(
        path.join("HEAD").is_file(),
        "data is not removed synchronously"
    );
    let admin = srv
        .get(
            &format!("/admin/repos/{id}"),
            &Auth::Internal(INTERNAL.into()),
        )
        .await;
    assert!(admin.body["deletedAt"].is_string(), "{}", admin.body);
    assert_eq!(admin.body["storage"]["onDisk"], true);
    let listed = srv.get("/repos", &t).await;
    assert!(listed
        .body
        .as_array()
        .expect("array")
        .iter()
        .all(|r| r["id"] != id.as_str()));

    // The audit trail, newest first, every event by the owner.
    let events = srv
        .get("/admin/events?limit=500", &Auth::Internal(INTERNAL.into()))
        .await
        .body;
    let mine: Vec<&str> = events
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["repoId"] == id.as_str())
        .map(|e| e["eventType"].as_str().expect("type"))
        .collect();
    assert_eq!(
        mine,
        [
            "repo.deleted",
            "repo.unarchived",
            "repo.archived",
            "repo.updated",
            "repo.updated",
            "repo.created"
        ]
    );
    let filtered = srv
        .get(
            "/admin/events?event_type=repo.archived",
            &Auth::Internal(INTERNAL.into()),
        )
        .await
        .body;
    assert_eq!(filtered.as_array().map(Vec::len), Some(1));
    assert_eq!(filtered[0]["actorId"], owner.to_string());
}

#[tokio::test]
async fn repo_events_filter_and_page() {
    let srv = TestServer::start().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let t = Auth::Bearer(srv.token(owner));
    srv.create_repo(owner, org, "ev", "private").await;
    let u1 = Uuid::new_v4();
    srv.add_collaborator(owner, org, "ev", u1, "reader").await;
    srv.add_collaborator(owner, org, "ev", u1, "writer").await;
    srv.add_collaborator(owner, org, "ev", u1, "writer").await; // no change, no event
    assert_eq!(
        srv.send(
            Method::DELETE,
            &format!("/repos/{org}/ev/collaborators/{u1}"),
            &t,
            None
        )
        .await
        .status,
        204
    );
    srv.send(
        Method::DELETE,
        &format!("/repos/{org}/ev/collaborators/{u1}"),
        &t,
        None,
    )
    .await
    .assert_error(404, "NOT_FOUND");
    srv.send(
        Method::DELETE,
        &format!("/repos/{org}/ev/collaborators/{owner}"),
        &t,
        None,
    )
    .await
    .assert_error(409, "CONFLICT");
    srv.send(
        Method::PUT,
        &format!("/repos/{org}/ev/collaborators/{u1}"),
        &t,
        Some(json!({"role": "admin"})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");

    let all = srv.get(&format!("/repos/{org}/ev/events"), &t).await.body;
    let types: Vec<&str> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["eventType"].as_str().expect("t"))
        .collect();
    assert_eq!(
        types,
        [
            "collaborator.removed",
            "collaborator.updated",
            "collaborator.added",
            "repo.created"
        ]
    );
    let page = srv
        .get(&format!("/repos/{org}/ev/events?limit=2&offset=1"), &t)
        .await
        .body;
    assert_eq!(page.as_array().map(Vec::len), Some(2));
    assert_eq!(page[0]["eventType"], "collaborator.updated");
    let only = srv
        .get(
            &format!("/repos/{org}/ev/events?event_type=collaborator.added"),
            &t,
        )
        .await
        .body;
    assert_eq!(only.as_array().map(Vec::len), Some(1));
    assert_eq!(only[0]["payload"]["userId"], u1.to_string());
    let future = srv
        .get(
            &format!("/repos/{org}/ev/events?since=2999-01-01T00:00:00Z"),
            &t,
        )
        .await
        .body;
    assert_eq!(future, json!([]));
    srv.get(&format!("/repos/{org}/ev/events?since=yesterday"), &t)
        .await
        .assert_error(400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn internal_create_is_idempotent_and_admin_sees_storage() {
    let srv = TestServer::start().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let it = Auth::Internal(INTERNAL.into());
    let body = json!({"orgId": org, "projectId": org, "ownerId": owner, "name": "auto", "visibility": "private"});
    let first = srv
        .send(Method::POST, "/internal/repos", &it, Some(body.clone()))
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second = srv
        .send(Method::POST, "/v1/internal/repos", &it, Some(body.clone()))
        .await;
    assert_eq!(second.status, 200);
    assert_eq!(first.body["id"], second.body["id"]);
    let mut other_owner = body.clone();
    other_owner["ownerId"] = json!(Uuid::new_v4());
    srv.send(Method::POST, "/internal/repos", &it, Some(other_owner))
        .await
        .assert_error(409, "CONFLICT");
    for (field, value) in [
        ("defaultBranch", json!("b".repeat(300))),
        ("defaultBranch", json!("a..b")),
        ("description", json!("d".repeat(5000))),
    ] {
        let mut bad = body.clone();
        bad["name"] = json!("other");
        bad[field] = value;
        let r = srv
            .send(Method::POST, "/internal/repos", &it, Some(bad))
            .await;
        r.assert_error(400, "VALIDATION_ERROR");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .expect("msg")
                .contains(field),
            "{}",
            r.body
        );
    }
    let mut bad = body.clone();
    bad["name"] = json!("../escape");
    srv.send(Method::POST, "/internal/repos", &it, Some(bad))
        .await
        .assert_error(400, "VALIDATION_ERROR");

    // The owner named by the platform owns it.
    let got = srv
        .get(
            &format!("/repos/{org}/auto"),
            &Auth::Bearer(srv.token(owner)),
        )
        .await;
    assert_eq!(got.status, 200);

    let id = first.body["id"].as_str().expect("id");
    let admin = srv.get(&format!("/admin/repos/{id}"), &it).await.body;
    assert_eq!(admin["storage"]["onDisk"], true);
    assert_eq!(admin["storage"]["refCount"], 0);
    assert_eq!(admin["storage"]["headBranch"], "main");
    assert!(admin["storage"]["sizeBytes"].as_u64().expect("size") > 0);
    srv.get(&format!("/admin/repos/{}", Uuid::new_v4()), &it)
        .await
        .assert_error(404, "NOT_FOUND");
    srv.get("/admin/repos/zzz", &it)
        .await
        .assert_error(400, "VALIDATION_ERROR");

    let archived = srv
        .send(
            Method::POST,
            &format!("/admin/repos/{id}/archive"),
            &it,
            None,
        )
        .await;
    assert_eq!(archived.body["archived"], true);
    let list = srv.get("/admin/repos", &it).await.body;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn discovery_and_health() {
    let srv = TestServer::start().await;
    for path in ["/", "/api", "/v1", "/v1/api"] {
        let r = srv.get(path, &Auth::None).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body["apiVersion"], "v1");
        assert_eq!(r.body["gitUrlPrefix"], srv.base);
        assert!(r.body["baseUrl"]
            .as_str()
            .expect("baseUrl")
            .starts_with(&srv.base));
    }
    let h = srv.get("/health", &Auth::None).await;
    assert_eq!(h.status, 200);
    assert_eq!(h.body["status"], "ok");
    assert!(
        chrono::DateTime::parse_from_rfc3339(h.body["timestamp"].as_str().expect("ts")).is_ok()
    );

    // The storage root becomes unusable: degraded, 503.
    let root = srv.state.config.storage_root.clone();
    std::fs::remove_dir_all(&root).expect("remove root");
    std::fs::write(&root, b"not a directory").expect("file in its place");
    let h = srv.get("/v1/health", &Auth::None).await;
    assert_eq!(h.status, 503);
    assert_eq!(h.body["status"], "degraded");
    assert_eq!(h.body["checks"]["storage"], "unavailable");
    assert_eq!(h.body["checks"]["database"], "ok");
}

#[tokio::test]
async fn cors_is_permissive_by_default_and_a_list_when_configured() {
    let srv = TestServer::start().await;
    let r = srv
        .client
        .get(format!("{}/health", srv.base))
        .header("origin", "https://anything.example")
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"*"[..])
    );

    let srv = TestServer::start_with(crate::common::Options {
        env: vec![(
            "CORS_ORIGINS".into(),
            "https://app.example, http://localhost:5173".into(),
        )],
        ..Default::default()
    })
    .await;
    let preflight = |origin: &'static str| {
        srv.client
            .request(Method::OPTIONS, format!("{}/repos", srv.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight("https://app.example").await.expect("send");
    assert_eq!(
        ok.headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"https://app.example"[..])
    );
    let no = preflight("https://evil.example").await.expect("send");
    assert!(no.headers().get("access-control-allow-origin").is_none());
}
