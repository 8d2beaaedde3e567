//! Security checks swept over every route of `/openapi.json` (so a new route is covered the day it
//! is added): path traversal in every path parameter, the JWT attack set, private repositories
//! invisible to strangers (the same answer as a repository that does not exist, never 403, git
//! included), oversized headers and bodies, slow bodies, and secrets kept out of the log.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::common::{
    template_names, Auth, Options, TestServer, INTERNAL, METHODS, SECRET, STDERR_FILE,
};

/// `(method, path template)` of every documented operation.
async fn operations(server: &TestServer) -> Vec<(String, String)> {
    let doc: Value = server
        .client
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                ops.push((m.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(ops.len() > 50, "{} operations", ops.len());
    ops
}

/// Fills a path template: `values` first, then defaults for a repository `org/repo`.
fn fill(template: &str, org: Uuid, repo: &str, values: &[(&str, &str)]) -> String {
    let mut path = template.to_owned();
    for (name, value) in values {
        path = path.replace(&format!("{{{name}}}"), value);
    }
    let defaults = [
        ("org_id", org.to_string()),
        ("repo", repo.to_owned()),
        ("user_id", Uuid::new_v4().to_string()),
        ("ref", "main".into()),
        ("branch", "main".into()),
        ("sha", "main".into()),
        ("spec", "main...main".into()),
        ("path", "README.md".into()),
        ("delivery_id", Uuid::new_v4().to_string()),
        ("id", "1".into()),
    ];
    for (name, value) in defaults {
        path = path.replace(&format!("{{{name}}}"), &value);
    }
    path
}

/// One raw HTTP/1.1 request, bytes as given (no client-side normalisation of `..` or `%2e`).
/// Answers the status and the body.
async fn raw(
    server: &TestServer,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String) {
    let addr = server.base.strip_prefix("http://").expect("http");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" && method != "DELETE" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    // Streams (server-sent events) never end: their status line is all this needs.
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {target}: no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The error code of an envelope body (chunked bodies included), if it is one.
fn envelope_code(body: &str) -> Option<String> {
    let start = body.find("{\"error\"")?;
    let v: Value = serde_json::Deserializer::from_str(&body[start..])
        .into_iter()
        .next()?
        .ok()?;
    v["error"]["code"].as_str().map(str::to_owned)
}

async fn seeded(server: &TestServer, owner: Uuid, org: Uuid, name: &str, visibility: &str) {
    server.create_repo(owner, org, name, visibility).await;
    let r = server
        .send(
            reqwest::Method::POST,
            &format!("/repos/{org}/{name}/commits"),
            &Auth::Bearer(server.token(owner)),
            Some(json!({"branch": "main", "message": "first", "changes": [
                {"action": "create", "path": "README.md", "content": "hello\n"},
                {"action": "create", "path": "src/lib.rs", "content": "pub fn f() {}\n"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn traversal_in_every_path_parameter_is_a_clean_4xx() {
    let server = TestServer::start().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    seeded(&server, owner, org, "app", "private").await;
    let headers = [
        ("Authorization", format!("Bearer {}", server.token(owner))),
        ("X-Internal-Token", INTERNAL.to_owned()),
    ];
    let attacks = [
        "..",
        "%2e%2e",
        "..%2f..%2f..%2fetc%2fpasswd",
        "%2fetc%2fpasswd",
        "a%00b",
        "%00",
        "..%5c..%5cwindows",
    ];
    let mut checked = 0;
    for (method, template) in operations(&server).await {
        let names = template_names(&template);
        for name in names {
            for attack in attacks {
                let target = fill(&template, org, "app", &[(name.as_str(), attack)]);
                let (status, body) = raw(&server, &method, &target, &headers, "{}").await;
                assert!(
                    (400..500).contains(&status),
                    "{method} {target}: {status} {body}"
                );
                assert!(
                    envelope_code(&body).is_some(),
                    "{method} {target}: {status} not an envelope: {body}"
                );
                assert!(!body.contains("root:"), "{method} {target} leaked a file");
                checked += 1;
            }
        }
    }
    // The git routes too.
    for target in [
        "/../../etc/passwd/info/refs?service=git-upload-pack",
        "/%2e%2e/app/info/refs?service=git-upload-pack",
        &format!("/{org}/..%2f..%2fetc/info/refs?service=git-upload-pack"),
        &format!("/{org}/app%00/info/refs?service=git-upload-pack"),
    ] {
        let (status, body) = raw(&server, "GET", target, &headers, "").await;
        assert!(
            (400..500).contains(&status),
            "GET {target}: {status} {body}"
        );
        checked += 1;
    }
    // A raw NUL or a bare `..` segment in the request line: refused, and the server lives on.
    for target in ["/repos/..", "/repos/\0"] {
        let (status, _) = raw(&server, "GET", target, &headers, "").await;
        assert!((400..500).contains(&status), "{target:?}: {status}");
    }
    // NUL inside JSON text: refused or stored, never a 500 (PostgreSQL text cannot hold it).
    for (method, path, body) in [
        (
            "PATCH",
            format!("/repos/{org}/app"),
            r#"{"description": "a\u0000b"}"#.to_owned(),
        ),
        (
            "POST",
            format!("/repos/{org}/app/pulls"),
            r#"{"title": "\u0000", "sourceBranch": "main", "targetBranch": "main"}"#.to_owned(),
        ),
        (
            "POST",
            "/repos".to_owned(),
            format!(
                r#"{{"orgId": "{org}", "projectId": "{org}", "name": "x\u0000", "visibility": "public"}}"#
            ),
        ),
    ] {
        let (status, answer) = raw(&server, method, &path, &headers, &body).await;
        assert!(status < 500, "{method} {path} {body}: {status} {answer}");
    }
    assert!(server.get("/health", &Auth::None).await.status.is_success());
    assert!(checked > 300, "{checked}");
}

#[tokio::test]
async fn the_jwt_attack_set_is_refused_on_every_route() {
    let server = TestServer::start().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    seeded(&server, owner, org, "app", "public").await;
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let claims = json!({"sub": owner, "exp": 4_000_000_000u64});
    let hs = |secret: &[u8], header: &Value, claims: &Value| {
        use hmac::Mac;
        let input = format!("{}.{}", b64(header), b64(claims));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("key");
        mac.update(input.as_bytes());
        use base64::Engine;
        let sig =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{input}.{sig}")
    };
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let attacks = [
        (
            "alg none",
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims)),
        ),
        (
            "alg None",
            format!("{}.{}.", b64(&json!({"alg": "None"})), b64(&claims)),
        ),
        (
            "expired",
            hs(
                SECRET.as_bytes(),
                &hs256,
                &json!({"sub": owner, "exp": 1_600_000_000u64}),
            ),
        ),
        (
            "no exp",
            hs(SECRET.as_bytes(), &hs256, &json!({"sub": owner})),
        ),
        (
            "not yet valid",
            hs(
                SECRET.as_bytes(),
                &hs256,
                &json!({"sub": owner, "exp": 4_000_000_000u64, "nbf": 3_900_000_000u64}),
            ),
        ),
        (
            "wrong secret",
            hs(b"not-the-secret-0123456789abcdef0123", &hs256, &claims),
        ),
        (
            "rs header, hmac body",
            hs(
                SECRET.as_bytes(),
                &json!({"alg": "RS256", "kid": "unknown"}),
                &claims,
            ),
        ),
        (
            "unknown alg",
            hs(SECRET.as_bytes(), &json!({"alg": "HS512"}), &claims),
        ),
        (
            "bad sub",
            hs(
                SECRET.as_bytes(),
                &hs256,
                &json!({"sub": "admin", "exp": 4_000_000_000u64}),
            ),
        ),
        ("garbage", "a.b.c".to_owned()),
    ];
    let mut checked = 0;
    for (method, template) in operations(&server).await {
        if matches!(
            template.as_str(),
            "/" | "/api" | "/health" | "/openapi.json"
        ) {
            continue;
        }
        let target = fill(&template, org, "app", &[]);
        let internal = template.starts_with("/admin") || template.starts_with("/internal");
        for (what, token) in &attacks {
            let headers = if internal {
                // The internal routes take only the internal token; a JWT or a wrong token is 401.
                vec![("X-Internal-Token", token.clone())]
            } else {
                vec![("Authorization", format!("Bearer {token}"))]
            };
            let (status, body) = raw(&server, &method, &target, &headers, "{}").await;
            assert_eq!(status, 401, "{what}: {method} {target}: {body}");
            assert_eq!(
                envelope_code(&body).as_deref(),
                Some("UNAUTHORIZED"),
                "{what}: {method} {target}"
            );
            checked += 1;
        }
    }
    // And git: a bad token in the URL is a 401 challenge, not an anonymous read of the public repo.
    let (status, _) = raw(
        &server,
        "GET",
        &format!("/{org}/app.git/info/refs?service=git-upload-pack"),
        &[(
            "Authorization",
            format!("Basic {}", {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .encode(format!("x-token:{}", attacks[0].1))
            }),
        )],
        "",
    )
    .await;
    assert_eq!(status, 401);
    assert!(checked > 400, "{checked}");
}

#[tokio::test]
async fn private_repositories_are_invisible_to_strangers_on_every_route() {
    let server = TestServer::start().await;
    let (owner, org, stranger) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    seeded(&server, owner, org, "secret", "private").await;
    let headers = [(
        "Authorization",
        format!("Bearer {}", server.token(stranger)),
    )];
    let mut checked = 0;
    for (method, template) in operations(&server).await {
        if !template.starts_with("/repos/{org_id}/{repo}") {
            continue;
        }
        let existing = fill(&template, org, "secret", &[]);
        let missing = fill(&template, org, "no-such-repo", &[]);
        let (status, body) = raw(&server, &method, &existing, &headers, "{}").await;
        let (status_missing, body_missing) = raw(&server, &method, &missing, &headers, "{}").await;
        assert_ne!(status, 403, "{method} {existing}: {body}");
        assert_eq!(
            (status, envelope_code(&body)),
            (status_missing, envelope_code(&body_missing)),
            "{method} {template}: a stranger can tell the private repository exists"
        );
        checked += 1;
    }
    // Git, with the stranger's token: the same 404 as a repository that does not exist.
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(format!("x-token:{}", server.token(stranger)))
    };
    let git_headers = [("Authorization", format!("Basic {basic}"))];
    for name in ["secret", "no-such-repo"] {
        for (method, target) in [
            (
                "GET",
                format!("/{org}/{name}.git/info/refs?service=git-upload-pack"),
            ),
            (
                "GET",
                format!("/{org}/{name}.git/info/refs?service=git-receive-pack"),
            ),
            ("POST", format!("/{org}/{name}.git/git-upload-pack")),
            ("POST", format!("/{org}/{name}.git/git-receive-pack")),
        ] {
            let (status, body) = raw(&server, method, &target, &git_headers, "").await;
            assert_eq!(status, 404, "{method} {target}: {body}");
            checked += 1;
        }
    }
    assert!(checked > 40, "{checked}");
}

#[tokio::test]
async fn oversized_headers_and_bodies_and_stalled_bodies_are_cut_off() {
    let server = TestServer::start_with(Options {
        env: vec![("GIT_IDLE_TIMEOUT_SECS".into(), "1".into())],
        ..Options::default()
    })
    .await;
    let owner = Uuid::new_v4();
    let token = server.token(owner);
    // A 1 MiB header: refused by the HTTP layer (431; hyper keeps at most ~400 KiB of head).
    let (status, _) = raw(
        &server,
        "GET",
        "/health",
        &[("X-Big", "a".repeat(1 << 20))],
        "",
    )
    .await;
    assert_eq!(status, 431);
    // A body over the JSON limit (1 MiB): 413 envelope.
    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(2 << 20));
    let (status, body) = raw(
        &server,
        "POST",
        "/repos",
        &[("Authorization", format!("Bearer {token}"))],
        &big,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(envelope_code(&body).as_deref(), Some("PAYLOAD_TOO_LARGE"));
    // A body that stalls after 10 of its 100 bytes: cut off after the idle timeout.
    let addr = server
        .base
        .strip_prefix("http://")
        .expect("http")
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /repos HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"orgId\":"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a stalled body held its connection for 20 s");
    assert!(started.elapsed() < Duration::from_secs(15));
    let text = String::from_utf8_lossy(&answer);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
    assert!(server.get("/health", &Auth::None).await.status.is_success());
}

#[tokio::test]
async fn secrets_never_reach_the_log_or_a_response() {
    let tmp = tempfile::tempdir().expect("tmp");
    let log = tmp.path().join("orbit.log");
    let server = TestServer::start_with(Options {
        binary: true,
        env: vec![
            (STDERR_FILE.into(), log.display().to_string()),
            ("RUST_LOG".into(), "debug".into()),
        ],
        ..Options::default()
    })
    .await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let token = server.token(owner);
    seeded(&server, owner, org, "app", "private").await;
    let hook_secret = format!("hook-secret-{}", Uuid::new_v4().simple());
    let hook = server
        .send(
            reqwest::Method::POST,
            &format!("/repos/{org}/app/hooks"),
            &Auth::Bearer(token.clone()),
            Some(json!({"url": "http://127.0.0.1:9/hook", "secret": hook_secret, "events": ["push"]})),
        )
        .await;
    assert_eq!(hook.status, StatusCode::OK, "{}", hook.body);
    let mut answers = hook.body.to_string();
    for path in [
        format!("/repos/{org}/app/hooks"),
        format!(
            "/repos/{org}/app/hooks/{}",
            hook.body["id"].as_str().expect("id")
        ),
    ] {
        answers.push_str(
            &server
                .get(&path, &Auth::Bearer(token.clone()))
                .await
                .body
                .to_string(),
        );
    }
    // Requests that fail, with the secrets in every place a client puts them.
    let bad = format!("{token}x");
    server
        .get(&format!("/repos/{org}/app"), &Auth::Bearer(bad.clone()))
        .await;
    server
        .get("/admin/repos", &Auth::Internal(INTERNAL.into()))
        .await;
    server
        .get("/admin/repos", &Auth::Internal(format!("{INTERNAL}x")))
        .await;
    let hostport = server.base.strip_prefix("http://").expect("http");
    for t in [&token, &bad] {
        let _ = server
            .client
            .get(format!(
                "http://x-token:{t}@{hostport}/{org}/app.git/info/refs?service=git-upload-pack"
            ))
            .send()
            .await;
    }
    // A push with the token in the URL, as git clients do.
    let work =
        crate::pulls::Work::clone(&format!("http://x-token:{token}@{hostport}/{org}/app.git"))
            .await;
    let _ = work
        .try_run(&["push", "origin", "HEAD:refs/heads/other"])
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.len() > 1000, "the debug log is nearly empty: {text}");
    for (what, secret) in [
        ("the JWT", token.as_str()),
        ("the bad JWT", bad.as_str()),
        ("the internal token", INTERNAL),
        ("the HS256 secret", SECRET),
        ("the webhook secret", hook_secret.as_str()),
    ] {
        // The signature part is what must never leak; a token's first parts are not secret.
        let needle = secret.rsplit('.').next().unwrap_or(secret);
        assert!(!text.contains(needle), "{what} is in the log");
        assert!(!answers.contains(needle), "{what} is in a response");
    }
}
