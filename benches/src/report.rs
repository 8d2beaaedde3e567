//! Figures: medians with min/max per server, the Orbit/git ratio, a table and JSON.

use serde::Serialize;

/// One measured run of one scenario on one server.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Wall time in seconds.
    pub wall_secs: f64,
    /// Server CPU seconds.
    pub server_cpu_secs: f64,
    /// Server peak RSS in bytes.
    pub server_peak_rss_bytes: u64,
    /// Payload bytes (pack bytes, or bytes pushed).
    pub bytes: u64,
    /// Operations done (load scenarios), else 1.
    pub ops: u64,
    /// Time to the first pack byte, when measured.
    pub ttfb_secs: Option<f64>,
    /// Latency percentiles of load scenarios (p50, p99), in seconds.
    pub p50_secs: Option<f64>,
    /// See `p50_secs`.
    pub p99_secs: Option<f64>,
    /// Objects in the pack, when known.
    pub objects: Option<u64>,
}

impl Sample {
    /// MB/s of payload.
    pub fn mb_per_sec(&self) -> f64 {
        if self.wall_secs > 0.0 {
            self.bytes as f64 / 1e6 / self.wall_secs
        } else {
            0.0
        }
    }
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        if self.wall_secs > 0.0 {
            self.ops as f64 / self.wall_secs
        } else {
            0.0
        }
    }
    /// Server CPU milliseconds per operation.
    pub fn cpu_ms_per_op(&self) -> f64 {
        self.server_cpu_secs * 1000.0 / self.ops.max(1) as f64
    }
}

/// All samples of one scenario.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Result {
    /// Scenario name.
    pub scenario: String,
    /// Orbit's samples, one per round.
    pub orbit: Vec<Sample>,
    /// The baseline's samples (C git), one per round.
    pub git: Vec<Sample>,
}

/// Median, min and max of `f` over samples.
pub fn stats(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> (f64, f64, f64) {
    let mut v: Vec<f64> = samples.iter().map(f).collect();
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    (median, v[0], v[v.len() - 1])
}

fn fmt(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// The metrics shown for each scenario: (label, extractor).
type Metric = (&'static str, fn(&Sample) -> f64);

fn metrics(scenario: &str) -> Vec<Metric> {
    let mut m: Vec<Metric> = Vec::new();
    if scenario.starts_with("small-ops") {
        m.push(("ops/s", |s| s.ops_per_sec()));
        m.push(("p50 ms", |s| s.p50_secs.unwrap_or(0.0) * 1000.0));
        m.push(("p99 ms", |s| s.p99_secs.unwrap_or(0.0) * 1000.0));
        m.push(("server CPU ms/op", |s| s.cpu_ms_per_op()));
    } else {
        m.push(("wall s", |s| s.wall_secs));
        m.push(("server CPU s", |s| s.server_cpu_secs));
        m.push(("MB", |s| s.bytes as f64 / 1e6));
        m.push(("MB/s", |s| s.mb_per_sec()));
        if scenario.starts_with("clone-stream") {
            m.push(("first pack byte s", |s| s.ttfb_secs.unwrap_or(0.0)));
        }
        if scenario.starts_with("gitcore") {
            m.push(("objects/s", |s| {
                s.objects.unwrap_or(0) as f64 / s.wall_secs.max(1e-9)
            }));
        }
    }
    m.push(("server peak RSS MB", |s| {
        s.server_peak_rss_bytes as f64 / 1e6
    }));
    m
}

/// Prints the table: one row per scenario and metric, medians with min–max, and Orbit/git.
pub fn print_table(results: &[Result]) {
    println!(
        "{:<22} {:<20} {:>26} {:>26} {:>9}",
        "scenario", "metric", "orbit median [min-max]", "git median [min-max]", "orbit/git"
    );
    for r in results {
        for (label, f) in metrics(&r.scenario) {
            let (om, omin, omax) = stats(&r.orbit, f);
            let (gm, gmin, gmax) = stats(&r.git, f);
            let ratio = if gm != 0.0 {
                format!("{:.2}x", om / gm)
            } else {
                "-".into()
            };
            println!(
                "{:<22} {:<20} {:>26} {:>26} {:>9}",
                r.scenario,
                label,
                format!("{} [{}-{}]", fmt(om), fmt(omin), fmt(omax)),
                format!("{} [{}-{}]", fmt(gm), fmt(gmin), fmt(gmax)),
                ratio
            );
        }
    }
}
