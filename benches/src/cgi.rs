#![allow(unsafe_code)] // wait4(2) and sysconf(3): resource usage of the CGI children.

//! The baseline: C git's `git http-backend` run as CGI, one process per request (the way the
//! hosts Orbit replaces run it), behind a small HTTP server.
//!
//! It runs as its own process (`orbit-bench cgi-server`), so its CPU and memory can be told apart
//! from the harness's git clients: every CGI child is reaped with `wait4`, whose resource usage
//! covers the child and the processes it waited for (`upload-pack`, `pack-objects`, ...).
//! `GET /__stats` answers the totals; `/__stats?reset=1` also resets the peak RSS.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::mpsc;

#[derive(Default)]
struct Stats {
    /// CPU microseconds of all reaped CGI children (user + system).
    cpu_us: AtomicU64,
    /// Largest RSS of any child since the last reset, in KiB.
    max_rss_kib: AtomicU64,
    requests: AtomicU64,
}

#[derive(Clone)]
struct Cgi {
    root: PathBuf,
    git: PathBuf,
    stats: Arc<Stats>,
}

/// Serves `root` on `port` until killed.
pub async fn serve(root: PathBuf, port: u16) -> anyhow::Result<()> {
    let git = which_git()?;
    let state = Cgi {
        root,
        git,
        stats: Arc::new(Stats::default()),
    };
    let app = axum::Router::new()
        .route("/__stats", axum::routing::get(stats))
        .fallback(handle)
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

fn which_git() -> anyhow::Result<PathBuf> {
    let out = std::process::Command::new("git")
        .arg("--exec-path")
        .output()?;
    let exec = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok(PathBuf::from(exec).join("git-http-backend"))
}

async fn stats(State(s): State<Cgi>, req: Request) -> impl IntoResponse {
    let reset = req.uri().query().is_some_and(|q| q.contains("reset=1"));
    let body = serde_json::json!({
        "cpuMicros": s.stats.cpu_us.load(Ordering::SeqCst),
        "maxRssKib": s.stats.max_rss_kib.load(Ordering::SeqCst),
        "requests": s.stats.requests.load(Ordering::SeqCst),
    });
    if reset {
        s.stats.max_rss_kib.store(0, Ordering::SeqCst);
    }
    axum::Json(body)
}

async fn handle(State(s): State<Cgi>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut cmd = std::process::Command::new(&s.git);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &s.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_COUNT", "4")
        .env("GIT_CONFIG_KEY_0", "http.receivepack")
        .env("GIT_CONFIG_VALUE_0", "true")
        .env("GIT_CONFIG_KEY_1", "uploadpack.allowFilter")
        .env("GIT_CONFIG_VALUE_1", "true")
        .env("GIT_CONFIG_KEY_2", "uploadpack.allowAnySHA1InWant")
        .env("GIT_CONFIG_VALUE_2", "true")
        .env("GIT_CONFIG_KEY_3", "safe.directory")
        .env("GIT_CONFIG_VALUE_3", "*")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("REMOTE_USER", "bench")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let header = |h: &HeaderMap, n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(ct) = header(&parts.headers, "content-type") {
        cmd.env("CONTENT_TYPE", ct);
    }
    if let Some(cl) = header(&parts.headers, "content-length") {
        cmd.env("CONTENT_LENGTH", cl);
    }
    if let Some(ce) = header(&parts.headers, "content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", ce);
    }
    if let Some(p) = header(&parts.headers, "git-protocol") {
        cmd.env("GIT_PROTOCOL", p);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("spawn: {e}")).into_response()
        }
    };
    let pid = child.id();
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    // Request body → child stdin.
    let (in_tx, mut in_rx) = mpsc::channel::<Bytes>(8);
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            if in_tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        while let Some(chunk) = in_rx.blocking_recv() {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    // Child stdout → CGI headers, then the response body.
    let (out_tx, out_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let (head_tx, head_rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
    let stats = s.stats.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut head = Vec::new();
        let mut head_tx = Some(head_tx);
        loop {
            let n = match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(tx) = head_tx.take() {
                head.extend_from_slice(&buf[..n]);
                if let Some(end) = find_header_end(&head) {
                    let rest = head.split_off(end);
                    let _ = tx.send(head.clone());
                    if !rest.is_empty() && out_tx.blocking_send(Ok(Bytes::from(rest))).is_err() {
                        break;
                    }
                } else {
                    head_tx = Some(tx);
                }
            } else if out_tx
                .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                .is_err()
            {
                break;
            }
        }
        if let Some(tx) = head_tx.take() {
            let _ = tx.send(head);
        }
        drop(out_tx);
        reap(pid, &stats);
        drop(child);
    });
    let Ok(head) = head_rx.await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    for line in String::from_utf8_lossy(&head).lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            if let Some(code) = v.split(' ').next().and_then(|c| c.parse::<u16>().ok()) {
                status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            }
        } else if let (Ok(name), Ok(value)) =
            (HeaderName::try_from(k.trim()), HeaderValue::from_str(v))
        {
            headers.append(name, value);
        }
    }
    let stream =
        futures_util::stream::unfold(
            out_rx,
            |mut rx| async move { rx.recv().await.map(|i| (i, rx)) },
        );
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

fn find_header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
}

/// Waits for `pid` and adds its resource usage (it includes what it reaped) to the totals.
fn reap(pid: u32, stats: &Stats) {
    let mut status = 0i32;
    // SAFETY: a plain FFI call with valid out-pointers; `pid` is our own child, reaped once.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if r <= 0 {
        return;
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    stats
        .cpu_us
        .fetch_add(us(usage.ru_utime) + us(usage.ru_stime), Ordering::SeqCst);
    stats
        .max_rss_kib
        .fetch_max(usage.ru_maxrss as u64, Ordering::SeqCst);
    stats.requests.fetch_add(1, Ordering::SeqCst);
}

/// Clock ticks per second for `/proc/<pid>/stat` times.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Waits for `child` with `wait4`: its CPU seconds and peak RSS in bytes.
pub fn wait_child(child: std::process::Child) -> anyhow::Result<(f64, u64)> {
    let pid = child.id();
    let mut status = 0i32;
    // SAFETY: a plain FFI call with valid out-pointers; `pid` is our own child, reaped once.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    drop(child);
    if r <= 0 {
        anyhow::bail!("wait4 failed");
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((
        secs(usage.ru_utime) + secs(usage.ru_stime),
        usage.ru_maxrss as u64 * 1024,
    ))
}
