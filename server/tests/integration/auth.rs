//! Authentication: RS256 via JWKS, HS256, claim checks, alg confusion, internal token.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::common::{rs_claims, Auth, JwksServer, Options, RsaKey, TestServer, INTERNAL, SECRET};

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// A token with an arbitrary header and payload, signed by HS256 with `key`.
fn hs_token(header: serde_json::Value, payload: serde_json::Value, key: &[u8]) -> String {
    use hmac::Mac;
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("hmac key");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

async fn rs_server(jwks: &JwksServer, min_refresh: Duration) -> TestServer {
    TestServer::start_with(Options {
        env: jwks.env(),
        jwks_min_refresh: Some(min_refresh),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn rs256_tokens_from_the_jwks_are_accepted_and_claims_are_checked() {
    let key = RsaKey::generate("k1");
    let jwks = JwksServer::start(vec![key.public.clone()]).await;
    let srv = rs_server(&jwks, Duration::from_secs(30)).await;
    let user = Uuid::new_v4();
    let org = Uuid::new_v4();

    // A valid token creates a repository owned by its subject.
    let ok = Auth::Bearer(key.sign(rs_claims(user), true));
    let r = srv
        .send(
            Method::POST,
            "/repos",
            &ok,
            Some(json!({"orgId": org, "projectId": org, "name": "r", "visibility": "private"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["ownerId"], user.to_string());
    assert_eq!(
        srv.get("/repos", &ok).await.body.as_array().map(Vec::len),
        Some(1)
    );

    let now = chrono::Utc::now().timestamp();
    let mut cases = Vec::new();
    let mut c = rs_claims(user);
    c["aud"] = json!("someone-else");
    cases.push(("wrong audience", c));
    let mut c = rs_claims(user);
    c["iss"] = json!("https://evil.example/");
    cases.push(("wrong issuer", c));
    let mut c = rs_claims(user);
    c["exp"] = json!(now - 3600);
    cases.push(("expired", c));
    let mut c = rs_claims(user);
    c.as_object_mut().expect("obj").remove("exp");
    cases.push(("no exp", c));
    let mut c = rs_claims(user);
    c["nbf"] = json!(now + 3600);
    cases.push(("not yet valid", c));
    let mut c = rs_claims(user);
    c["sub"] = json!("auth0|12345");
    cases.push(("sub not a uuid", c));
    let mut c = rs_claims(user);
    c["scope"] = json!(["orbit:repo:x/y:read"]);
    cases.push(("scope not a string", c));
    for (what, claims) in cases {
        let r = srv
            .get("/repos", &Auth::Bearer(key.sign(claims, true)))
            .await;
        r.assert_error(401, "UNAUTHORIZED");
        assert!(
            r.headers.get("www-authenticate").is_some(),
            "{what}: no WWW-Authenticate"
        );
    }

    // Signed by a key the JWKS does not hold, under a kid it does hold.
    let impostor = RsaKey::generate("k1");
    srv.get(
        "/repos",
        &Auth::Bearer(impostor.sign(rs_claims(user), true)),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    // A tampered payload.
    let good = key.sign(rs_claims(user), true);
    let mut parts: Vec<&str> = good.split('.').collect();
    let other = b64(rs_claims(Uuid::new_v4()).to_string().as_bytes());
    parts[1] = &other;
    srv.get("/repos", &Auth::Bearer(parts.join(".")))
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn unknown_kid_refreshes_the_jwks() {
    let k1 = RsaKey::generate("k1");
    let k2 = RsaKey::generate("k2");
    let jwks = JwksServer::start(vec![k1.public.clone()]).await;
    let srv = rs_server(&jwks, Duration::ZERO).await;
    let user = Uuid::new_v4();
    assert_eq!(
        srv.get("/repos", &Auth::Bearer(k1.sign(rs_claims(user), true)))
            .await
            .status,
        200
    );
    assert_eq!(jwks.hits(), 1);
    // Cached: no fetch for a known kid.
    assert_eq!(
        srv.get("/repos", &Auth::Bearer(k1.sign(rs_claims(user), true)))
            .await
            .status,
        200
    );
    assert_eq!(jwks.hits(), 1);
    // Key rotation: the new kid triggers one refresh and is accepted.
    jwks.set_keys(vec![k1.public.clone(), k2.public.clone()]);
    assert_eq!(
        srv.get("/repos", &Auth::Bearer(k2.sign(rs_claims(user), true)))
            .await
            .status,
        200
    );
    assert_eq!(jwks.hits(), 2);
}

#[tokio::test]
async fn jwks_refresh_on_unknown_kid_is_rate_limited() {
    let k1 = RsaKey::generate("k1");
    let jwks = JwksServer::start(vec![k1.public.clone()]).await;
    let srv = rs_server(&jwks, Duration::from_secs(60)).await;
    let user = Uuid::new_v4();
    assert_eq!(
        srv.get("/repos", &Auth::Bearer(k1.sign(rs_claims(user), true)))
            .await
            .status,
        200
    );
    let stranger = RsaKey::generate("unknown");
    for _ in 0..5 {
        srv.get(
            "/repos",
            &Auth::Bearer(stranger.sign(rs_claims(user), true)),
        )
        .await
        .assert_error(401, "UNAUTHORIZED");
    }
    assert_eq!(
        jwks.hits(),
        1,
        "unknown kids must not hammer the identity provider"
    );
}

#[tokio::test]
async fn unreachable_jwks_is_a_401_not_a_500() {
    let key = RsaKey::generate("k1");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let srv = TestServer::start_with(Options {
        env: vec![
            ("AUTH0_DOMAIN".into(), crate::common::DOMAIN.into()),
            ("AUTH0_AUDIENCE".into(), crate::common::AUDIENCE.into()),
            (
                "AUTH_JWKS_URL".into(),
                format!("http://127.0.0.1:{port}/jwks.json"),
            ),
        ],
        ..Options::default()
    })
    .await;
    srv.get(
        "/repos",
        &Auth::Bearer(key.sign(rs_claims(Uuid::new_v4()), true)),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn hs256_tokens_and_algorithm_confusion() {
    let key = RsaKey::generate("k1");
    let jwks = JwksServer::start(vec![key.public.clone()]).await;
    let srv = rs_server(&jwks, Duration::from_secs(30)).await;
    let user = Uuid::new_v4();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"sub": user.to_string(), "exp": now + 600});

    // The shared secret works.
    let good = hs_token(
        json!({"alg": "HS256", "typ": "JWT"}),
        claims.clone(),
        SECRET.as_bytes(),
    );
    assert_eq!(
        srv.get("/repos", &Auth::Bearer(good.clone())).await.status,
        200
    );

    let public_pem = {
        let v = serde_json::to_value(&key.public).expect("jwk json");
        v.to_string().into_bytes()
    };
    let bad = [
        (
            "wrong secret",
            hs_token(
                json!({"alg": "HS256"}),
                claims.clone(),
                b"not-the-secret-not-the-secret-xx",
            ),
        ),
        // HS256 keyed with the RSA public key (classic RS/HS confusion).
        (
            "hs keyed with public key",
            hs_token(
                json!({"alg": "HS256", "kid": "k1"}),
                claims.clone(),
                &public_pem,
            ),
        ),
        // RS256 header over an HMAC signature.
        (
            "rs header, hmac signature",
            hs_token(
                json!({"alg": "RS256", "kid": "k1"}),
                claims.clone(),
                SECRET.as_bytes(),
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(claims.to_string().as_bytes())
            ),
        ),
        (
            "alg HS512",
            hs_token(json!({"alg": "HS512"}), claims.clone(), SECRET.as_bytes()),
        ),
        (
            "expired",
            hs_token(
                json!({"alg": "HS256"}),
                json!({"sub": user.to_string(), "exp": now - 3600}),
                SECRET.as_bytes(),
            ),
        ),
        (
            "no sub",
            hs_token(
                json!({"alg": "HS256"}),
                json!({"exp": now + 600}),
                SECRET.as_bytes(),
            ),
        ),
        (
            "exp not a number",
            hs_token(
                json!({"alg": "HS256"}),
                json!({"sub": user.to_string(), "exp": "tomorrow"}),
                SECRET.as_bytes(),
            ),
        ),
        ("garbage", "not.a.jwt".to_owned()),
        ("two parts", "abc.def".to_owned()),
        ("bad base64", "@@@.###.$$$".to_owned()),
    ];
    for (what, token) in bad {
        let r = srv.get("/repos", &Auth::Bearer(token)).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        r.assert_error(401, "UNAUTHORIZED");
    }
    // The good token, verified once and now known, still works; altered copies of it do not.
    assert_eq!(
        srv.get("/repos", &Auth::Bearer(good.clone())).await.status,
        200
    );
    let (signed, signature) = good.rsplit_once('.').expect("three parts");
    let flipped = if signature.ends_with('A') { 'B' } else { 'A' };
    let altered = [
        format!("{signed}.{}{flipped}", &signature[..signature.len() - 1]),
        format!(
            "{}.{}.{signature}",
            b64(br#"{"alg":"HS256","typ":"JWT"}"#),
            b64(json!({"sub": Uuid::new_v4().to_string(), "exp": now + 600})
                .to_string()
                .as_bytes())
        ),
        format!("{good}x"),
    ];
    for token in altered {
        srv.get("/repos", &Auth::Bearer(token))
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
    // Not a bearer credential at all.
    for raw in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc"] {
        srv.get("/repos", &Auth::Raw(raw.into()))
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
}

#[tokio::test]
async fn rs256_is_refused_when_no_identity_provider_is_configured() {
    let srv = TestServer::start().await;
    let key = RsaKey::generate("k1");
    srv.get(
        "/repos",
        &Auth::Bearer(key.sign(rs_claims(Uuid::new_v4()), true)),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn invalid_token_is_refused_even_where_anonymous_may_read() {
    let srv = TestServer::start().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    srv.create_repo(owner, org, "pub", "public").await;
    assert_eq!(
        srv.get(&format!("/repos/{org}/pub"), &Auth::None)
            .await
            .status,
        200
    );
    srv.get(&format!("/repos/{org}/pub"), &Auth::Bearer("junk".into()))
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn internal_token_and_jwts_never_cross_over() {
    let srv = TestServer::start().await;
    let user = Uuid::new_v4();
    let jwt = Auth::Bearer(srv.token(user));
    // A JWT never opens internal or admin routes.
    srv.get("/admin/repos", &jwt)
        .await
        .assert_error(401, "UNAUTHORIZED");
    // The internal token never opens a user route.
    srv.get("/repos", &Auth::Internal(INTERNAL.into()))
        .await
        .assert_error(401, "UNAUTHORIZED");
    // Wrong internal tokens, including a prefix and an extension of the right one.
    for wrong in [
        "nope",
        &INTERNAL[..INTERNAL.len() - 1],
        &format!("{INTERNAL}x"),
        "",
    ] {
        srv.get("/admin/repos", &Auth::Internal(wrong.into()))
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
    assert_eq!(
        srv.get("/admin/repos", &Auth::Internal(INTERNAL.into()))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn internal_routes_are_closed_without_a_configured_token() {
    let srv = TestServer::start_with(Options {
        no_internal_token: true,
        ..Options::default()
    })
    .await;
    srv.get("/admin/repos", &Auth::Internal(INTERNAL.into()))
        .await
        .assert_error(401, "UNAUTHORIZED");
    let org = Uuid::new_v4();
    srv.send(
        Method::POST,
        "/internal/repos",
        &Auth::Internal(String::new()),
        Some(json!({"orgId": org, "projectId": org, "ownerId": org, "name": "x", "visibility": "public"})),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
}
