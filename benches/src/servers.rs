//! The two servers under test, both on 127.0.0.1: the `orbit` binary on its embedded default in a
//! temporary directory, and C git's `git http-backend` behind the harness's CGI server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Server resource usage at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// CPU seconds (user + system) used so far.
    pub cpu_secs: f64,
    /// Peak RSS in bytes since the last reset.
    pub peak_rss_bytes: u64,
}

/// One of the two servers.
pub trait Server {
    /// `orbit` or `git`.
    fn name(&self) -> &'static str;
    /// Base URL, e.g. `http://127.0.0.1:1234`.
    fn base(&self) -> &str;
    /// Makes a new empty repository and returns its clone URL (credentials included).
    fn create_repo(&self, name: &str) -> anyhow::Result<String>;
    /// Extra HTTP headers for raw requests (credentials).
    fn auth_header(&self) -> Option<String>;
    /// Current usage; `reset_peak` restarts peak RSS tracking.
    fn usage(&self, reset_peak: bool) -> anyhow::Result<Usage>;
    /// The REST base of repository `name` (`{base}/repos/{org}/{name}`), if the server has a
    /// REST API.
    fn rest_repo(&self, _name: &str) -> Option<String> {
        None
    }
    /// Where repository `name` is stored, if the harness can see it.
    fn repo_path(&self, _name: &str) -> Option<PathBuf> {
        None
    }
    /// Waits until the server's background work after a push (Orbit's upkeep job: commit-graph,
    /// the clone pack) is done, as it would be on a server some time after the push.
    fn settle(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

const INTERNAL_TOKEN: &str = "orbit-bench-internal-token";

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_http(url: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if std::net::TcpStream::connect(url.trim_start_matches("http://")).is_ok() {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("server at {url} did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Orbit release binary on its embedded default.
pub struct Orbit {
    base: String,
    token: String,
    org: String,
    pid: u32,
    bin: PathBuf,
    dir: PathBuf,
    _child: Killed,
}

const SECRET: &str = "orbit-bench-secret-0123456789abcdef0123456789";

impl Orbit {
    /// Starts `bin` with its data in `dir`.
    pub fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(bin, dir, &[])
    }

    /// A second Orbit process on this one's data (database and repositories), with `env` on top,
    /// acting as the same user.
    pub fn sibling(&self, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut s = Self::start_with(&self.bin, &self.dir, env)?;
        s.token = self.token.clone();
        s.org = self.org.clone();
        Ok(s)
    }

    fn start_with(bin: &Path, dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let empty = dir.join("empty-bin");
        std::fs::create_dir_all(&empty)?;
        let child = Command::new(bin)
            .arg("serve")
            .env_clear()
            .env("PATH", &empty)
            .env("ORBIT_DATA_DIR", dir.join("data"))
            .env("SERVER_HOST", "127.0.0.1")
            .env("SERVER_PORT", port.to_string())
            .env("AUTH_COOKIE_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            // The benchmark drives one caller at thousands of requests a second: no quotas.
            .env("RATE_LIMIT_GIT", "0")
            .env("RATE_LIMIT_REST_READ", "0")
            .env("RATE_LIMIT_REST_WRITE", "0")
            .env("GIT_MAX_QUEUE", "1024")
            .env("INTERNAL_SERVICE_TOKEN", INTERNAL_TOKEN)
            // Rounds repeat identical requests: measure generation, not the pack cache
            // (the fan-out scenario measures the cache).
            .env("GIT_PACK_CACHE_MAX_BYTES", "0")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let child = Killed(child);
        let base = format!("http://127.0.0.1:{port}");
        wait_http(&base)?;
        let user = uuid::Uuid::new_v4().to_string();
        let out = Command::new(bin)
            .args(["token", "mint", "--sub", &user, "--ttl-seconds", "86400"])
            .env_clear()
            .env("ORBIT_DATA_DIR", dir.join("data"))
            .env("AUTH_COOKIE_SECRET", SECRET)
            .output()?;
        if !out.status.success() {
            bail!(
                "token mint failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Self {
            base,
            token: String::from_utf8(out.stdout)?.trim().to_owned(),
            org: uuid::Uuid::new_v4().to_string(),
            pid,
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            _child: child,
        })
    }

    /// The binary in use.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Where the server keeps its data.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
}

impl Server for Orbit {
    fn name(&self) -> &'static str {
        "orbit"
    }
    fn base(&self) -> &str {
        &self.base
    }
    fn create_repo(&self, name: &str) -> anyhow::Result<String> {
        let body = serde_json::json!({"orgId": self.org, "projectId": self.org, "name": name, "visibility": "private"});
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let resp = rt.block_on(async {
            reqwest::Client::builder()
                .no_proxy()
                .build()?
                .post(format!("{}/repos", self.base))
                .bearer_auth(&self.token)
                .json(&body)
                .send()
                .await
        })?;
        if !resp.status().is_success() {
            bail!("creating {name} on orbit: HTTP {}", resp.status());
        }
        Ok(format!(
            "http://x-token:{}@{}/{}/{}.git",
            self.token,
            self.base.trim_start_matches("http://"),
            self.org,
            name
        ))
    }
    fn auth_header(&self) -> Option<String> {
        Some(format!("Bearer {}", self.token))
    }
    fn settle(&self) -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = reqwest::Client::builder().no_proxy().build()?;
        let start = Instant::now();
        rt.block_on(async {
            loop {
                let mut pending = 0;
                for state in ["queued", "running"] {
                    let resp = client
                        .get(format!(
                            "{}/admin/jobs?state={state}&kind=repo_upkeep",
                            self.base
                        ))
                        .header("X-Internal-Token", INTERNAL_TOKEN)
                        .send()
                        .await?;
                    if !resp.status().is_success() {
                        bail!("listing jobs on orbit: HTTP {}", resp.status());
                    }
                    let body: serde_json::Value = resp.json().await?;
                    pending += body.as_array().map_or(0, Vec::len);
                }
                if pending == 0 {
                    return Ok(());
                }
                if start.elapsed() > Duration::from_secs(600) {
                    bail!("orbit's upkeep jobs did not finish in 10 minutes");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }
    fn rest_repo(&self, name: &str) -> Option<String> {
        Some(format!("{}/repos/{}/{name}", self.base, self.org))
    }
    fn usage(&self, reset_peak: bool) -> anyhow::Result<Usage> {
        proc_usage(self.pid, reset_peak)
    }
}

/// CPU and peak RSS of a process from `/proc`; resetting the peak writes `5` to `clear_refs`.
pub fn proc_usage(pid: u32, reset_peak: bool) -> anyhow::Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("stat format")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state is index 0, utime is field 14 overall → index 11.
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    let ticks = crate::cgi::clock_ticks();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    if reset_peak {
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), b"5");
    }
    Ok(Usage {
        cpu_secs: (utime + stime) / ticks,
        peak_rss_bytes: hwm_kib * 1024,
    })
}

/// C git's `git http-backend` as CGI, one process per request.
pub struct GitCgi {
    base: String,
    root: PathBuf,
    _child: Killed,
}

impl GitCgi {
    /// Starts the harness's CGI server (this binary, `cgi-server`) serving `root`.
    pub fn start(root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)?;
        let port = free_port()?;
        let exe = std::env::current_exe()?;
        let exe = if exe
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("orbit-bench"))
        {
            exe
        } else {
            // Under `cargo test`: the harness binary sits next to the test's deps directory.
            crate::locate_sibling("orbit-bench")?
        };
        let child = Command::new(exe)
            .args(["cgi-server", "--port", &port.to_string(), "--root"])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the CGI server")?;
        let child = Killed(child);
        let base = format!("http://127.0.0.1:{port}");
        wait_http(&base)?;
        Ok(Self {
            base,
            root: root.to_owned(),
            _child: child,
        })
    }
}

impl Server for GitCgi {
    fn name(&self) -> &'static str {
        "git"
    }
    fn base(&self) -> &str {
        &self.base
    }
    fn create_repo(&self, name: &str) -> anyhow::Result<String> {
        let path = self.root.join(format!("{name}.git"));
        let status = Command::new("git")
            .args(["init", "-q", "--bare", "--initial-branch=main"])
            .arg(&path)
            .status()?;
        if !status.success() {
            bail!("git init {name} failed");
        }
        Ok(format!("{}/{name}.git", self.base))
    }
    fn auth_header(&self) -> Option<String> {
        None
    }
    fn repo_path(&self, name: &str) -> Option<PathBuf> {
        Some(self.root.join(format!("{name}.git")))
    }
    fn usage(&self, reset_peak: bool) -> anyhow::Result<Usage> {
        let url = format!(
            "{}/__stats{}",
            self.base,
            if reset_peak { "?reset=1" } else { "" }
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let v: serde_json::Value = rt.block_on(async {
            reqwest::Client::builder()
                .no_proxy()
                .build()?
                .get(url)
                .send()
                .await?
                .json()
                .await
        })?;
        Ok(Usage {
            cpu_secs: v["cpuMicros"].as_u64().unwrap_or(0) as f64 / 1e6,
            peak_rss_bytes: v["maxRssKib"].as_u64().unwrap_or(0) * 1024,
        })
    }
}
