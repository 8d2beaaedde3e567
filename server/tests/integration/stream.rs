//! The live event stream as a client sees it: a client connected before a push receives the
//! `push` event; a client that reconnects with `Last-Event-ID` receives exactly the events it
//! missed, replayed from the audit table; strangers see nothing.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::Auth;
use crate::pulls::{Fixture, Work};

/// One parsed server-sent event.
#[derive(Debug, Clone)]
struct Sse {
    id: String,
    event: String,
    data: Value,
}

/// Reads events from an open stream.
struct Reader {
    resp: reqwest::Response,
    buf: String,
}

impl Reader {
    async fn open(f: &Fixture, last: Option<&str>) -> Self {
        let mut req = f
            .srv
            .client
            .get(format!("{}{}", f.srv.base, f.rest("/events/stream")))
            .bearer_auth(&f.token);
        if let Some(id) = last {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.expect("stream");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream")));
        Reader {
            resp,
            buf: String::new(),
        }
    }

    /// The next event, or `None` if none arrives within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !id.is_empty() {
                    return Some(Sse {
                        id,
                        event,
                        data: serde_json::from_str(&data).expect("event json"),
                    });
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .ok()?;
            let chunk = chunk.expect("stream chunk")?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn pushes_arrive_live_and_a_reconnect_gets_exactly_what_it_missed() {
    let f = Fixture::new("private").await;
    let mut live = Reader::open(&f, None).await;
    // Nothing that happened before the connection is replayed without Last-Event-ID.
    assert!(live.next(Duration::from_millis(700)).await.is_none());

    let mut w = Work::clone(&f.url).await;
    let head = w.commit(&[("a.txt", "a\n")], "one").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let push = live
        .next(Duration::from_secs(10))
        .await
        .expect("the push event");
    assert_eq!(push.event, "push");
    assert_eq!(push.data["eventType"], "push");
    assert_eq!(push.data["id"], push.id);
    assert_eq!(push.data["payload"]["refs"][0]["new"], head);
    drop(live);

    // Missed while away: a branch created over REST, then a push.
    let r = f
        .call(
            Method::POST,
            "/branches",
            Some(json!({"name": "topic", "from": "main"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    w.commit(&[("b.txt", "b\n")], "two").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let mut again = Reader::open(&f, Some(&push.id)).await;
    let first = again.next(Duration::from_secs(10)).await.expect("missed 1");
    let second = again.next(Duration::from_secs(10)).await.expect("missed 2");
    assert_eq!(first.event, "branch.created");
    assert_eq!(second.event, "push");
    assert!(
        again.next(Duration::from_millis(1500)).await.is_none(),
        "exactly the missed events"
    );
    // And it keeps going live.
    w.commit(&[("c.txt", "c\n")], "three").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let third = again
        .next(Duration::from_secs(10))
        .await
        .expect("live again");
    assert_eq!(third.event, "push");
    assert_ne!(third.id, second.id);

    // Strangers see nothing; the admin stream needs the internal token.
    f.srv
        .send(
            Method::GET,
            &f.rest("/events/stream"),
            &Auth::Bearer(f.srv.token(Uuid::new_v4())),
            None,
        )
        .await
        .assert_error(404, "NOT_FOUND");
    f.srv
        .get("/admin/events/stream", &Auth::None)
        .await
        .assert_error(401, "UNAUTHORIZED");
}
