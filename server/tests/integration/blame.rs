//! Blame over REST against `git blame --porcelain` on the same history: for every line, the
//! same commit, the same original line and the same original path (across a rename).

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::pulls::{Fixture, Work};

/// final line → (commit, original line, original path), from `git blame --porcelain`.
fn parse_porcelain(text: &str) -> BTreeMap<u32, (String, u32, String)> {
    let mut out = BTreeMap::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<(String, u32, u32)> = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let is_header = fields.len() >= 3
            && fields[0].len() == 40
            && fields[0].bytes().all(|b| b.is_ascii_hexdigit());
        if is_header {
            let orig: u32 = fields[1].parse().expect("orig");
            let fin: u32 = fields[2].parse().expect("final");
            current = Some((fields[0].to_owned(), orig, fin));
        } else if let Some(name) = line.strip_prefix("filename ") {
            if let Some((sha, _, _)) = &current {
                names.insert(sha.clone(), name.to_owned());
            }
        } else if line.starts_with('\t') {
            if let Some((sha, orig, fin)) = current.take() {
                let name = names.get(&sha).cloned().unwrap_or_default();
                out.insert(fin, (sha, orig, name));
            }
        }
    }
    out
}

fn ours(body: &Value) -> BTreeMap<u32, (String, u32, String)> {
    let mut out = BTreeMap::new();
    for r in body["ranges"].as_array().expect("ranges") {
        let start = r["startLine"].as_u64().expect("start") as u32;
        let orig = r["originalStartLine"].as_u64().expect("orig") as u32;
        let n = r["lines"].as_u64().expect("lines") as u32;
        assert_eq!(r["endLine"].as_u64(), Some(u64::from(start + n - 1)));
        let sha = r["commit"]["sha"].as_str().expect("sha").to_owned();
        let path = r["originalPath"].as_str().expect("path").to_owned();
        for i in 0..n {
            out.insert(start + i, (sha.clone(), orig + i, path.clone()));
        }
    }
    out
}

fn lines(v: &[String]) -> String {
    v.iter().map(|l| format!("{l}\n")).collect()
}

#[tokio::test]
async fn blame_matches_git_blame_porcelain() {
    let f = Fixture::new("private").await;
    let mut w = Work::clone(&f.url).await;
    let mut text: Vec<String> = (1..=12).map(|i| format!("line {i}")).collect();
    w.commit(&[("src/a.txt", &lines(&text))], "create").await;
    text[1] = "line 2 changed".into();
    text[2] = "line 3 changed".into();
    w.commit(&[("src/a.txt", &lines(&text))], "edit 2-3").await;
    text.push("appended 1".into());
    text.push("appended 2".into());
    w.commit(&[("src/a.txt", &lines(&text))], "append").await;
    w.run(&["tag", "before-rename"]).await;
    text.remove(4);
    w.commit(&[("src/a.txt", &lines(&text))], "drop line 5")
        .await;
    w.run(&["mv", "src/a.txt", "src/b.txt"]).await;
    w.commit(&[], "rename").await;
    text[7] = "line 9 after the rename".into();
    text.insert(0, "a new first line".into());
    w.commit(&[("src/b.txt", &lines(&text))], "edit after rename")
        .await;
    w.run(&[
        "push",
        "-q",
        "origin",
        "HEAD:refs/heads/main",
        "before-rename",
    ])
    .await;

    for (reference, path) in [("main", "src/b.txt"), ("before-rename", "src/a.txt")] {
        let r = f
            .call(Method::GET, &format!("/blame/{reference}/{path}"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let git = w
            .run(&["blame", "--porcelain", reference, "--", path])
            .await;
        let theirs = parse_porcelain(&git);
        assert!(!theirs.is_empty());
        assert_eq!(ours(&r.body), theirs, "{reference}:{path}");
        assert_eq!(r.body["path"], path);
        let first = &r.body["ranges"][0]["commit"];
        assert_eq!(first["author"]["name"], "Ada Author", "{first}");
    }
    f.call(Method::GET, "/blame/main/src/missing.txt", None)
        .await
        .assert_error(404, "NOT_FOUND");
    f.call(Method::GET, "/blame/main/src", None)
        .await
        .assert_error(404, "NOT_FOUND");
    // `..` reaches the server only from clients that do not normalise URLs: a raw request.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hostport = f.srv.base.strip_prefix("http://").expect("http");
    let mut tcp = tokio::net::TcpStream::connect(hostport)
        .await
        .expect("connect");
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        f.rest("/blame/main/src/../etc"),
        f.token
    );
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("VALIDATION_ERROR"), "{answer}");
}
