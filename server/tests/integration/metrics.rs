//! `/metrics` as Prometheus scrapes it: behind `METRICS_TOKEN` when set, HTTP requests by route
//! template and status with latency histograms, git operations by kind, and the gauges read at
//! scrape time (git work, job queue, pack cache, database pool).

use reqwest::StatusCode;
use uuid::Uuid;

use crate::common::{Auth, Options, TestServer};
use crate::pulls::Work;

#[tokio::test]
async fn metrics_count_requests_git_work_and_queues() {
    let srv = TestServer::start_with(Options {
        env: vec![("METRICS_TOKEN".into(), "scrape-me".into())],
        ..Options::default()
    })
    .await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    srv.create_repo(owner, org, "m", "public").await;
    let hostport = srv.base.strip_prefix("http://").expect("http").to_owned();
    let mut w = Work::clone(&format!(
        "http://x:{}@{hostport}/{org}/m.git",
        srv.token(owner)
    ))
    .await;
    w.commit(&[("a.txt", "a\n")], "one").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let _again = Work::clone(&format!("http://{hostport}/{org}/m.git")).await;

    let anon = srv
        .client
        .get(format!("{}/metrics", srv.base))
        .send()
        .await
        .expect("metrics");
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    let r = srv
        .client
        .get(format!("{}/metrics", srv.base))
        .bearer_auth("scrape-me")
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain")));
    let text = r.text().await.expect("text");
    let has = |needles: &[&str]| {
        text.lines()
            .any(|l| !l.starts_with('#') && needles.iter().all(|n| l.contains(n)))
    };
    assert!(
        has(&[
            "orbit_http_requests_total{",
            "route=\"/repos\"",
            "method=\"POST\"",
            "status=\"200\""
        ]),
        "{text}"
    );
    assert!(
        has(&[
            "orbit_http_request_duration_seconds_bucket",
            "route=\"/repos\""
        ]),
        "{text}"
    );
    assert!(
        has(&["orbit_git_operations_total{", "kind=\"upload-pack\""]),
        "{text}"
    );
    assert!(
        has(&["orbit_git_operations_total{", "kind=\"receive-pack\""]),
        "{text}"
    );
    for gauge in [
        "orbit_git_work_active",
        "orbit_jobs_queued",
        "orbit_jobs_failed",
        "orbit_pack_cache_generated",
        "orbit_db_pool_connections",
    ] {
        assert!(has(&[gauge]), "{gauge} missing: {text}");
    }
    // /metrics is not part of the REST envelope world, but unknown tokens get the envelope.
    srv.get("/metrics", &Auth::Bearer("wrong".into()))
        .await
        .assert_error(401, "UNAUTHORIZED");
}
