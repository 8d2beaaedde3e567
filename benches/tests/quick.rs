//! The harness cannot rot: `orbit-bench all --quick` runs every scenario end to end on the small
//! corpus and writes figures for both servers.

use std::process::Command;

#[test]
fn quick_run_measures_every_scenario_on_both_servers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("out.json");
    let out = Command::new(env!("CARGO_BIN_EXE_orbit-bench"))
        .args(["all", "--quick", "--json"])
        .arg(&json)
        // The orbit binary is built by the same `cargo test` (the workspace's binaries); the
        // harness must not start a nested cargo build under the test's lock.
        .env("ORBIT_BENCH_NO_BUILD", "1")
        .env(
            "ORBIT_BENCH_CACHE",
            std::env::temp_dir().join("orbit-bench-test-cache"),
        )
        .output()
        .expect("run orbit-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "orbit-bench failed:\n{stdout}\n{stderr}"
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json written")).expect("json");
    let results = doc["results"].as_array().expect("results");
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["scenario"].as_str().expect("name"))
        .collect();
    for expected in [
        "push-initial",
        "clone-stream",
        "clone-full",
        "clone-depth1",
        "clone-filter-blobless",
        "fetch-behind-1",
        "fetch-behind-50",
        "small-ops-1",
        "small-ops-8",
        "small-ops-32",
        "gitcore-pack-full",
        "gitcore-pack-behind-50",
        "rest-log-50",
        "rest-commit-diff",
        "push-small",
    ] {
        assert!(names.contains(&expected), "missing {expected} in {names:?}");
    }
    for r in results {
        for server in ["orbit", "git"] {
            let samples = r[server].as_array().expect("samples");
            assert!(
                !samples.is_empty(),
                "{} has no {server} samples",
                r["scenario"]
            );
            for s in samples {
                assert!(s["wallSecs"].as_f64().expect("wall") > 0.0, "{r}");
                assert!(s["ops"].as_u64().expect("ops") >= 1, "{r}");
            }
        }
        let name = r["scenario"].as_str().expect("name");
        if name == "clone-stream"
            || name.starts_with("gitcore-pack")
            || name.starts_with("fetch-behind")
        {
            for server in ["orbit", "git"] {
                assert!(
                    r[server][0]["bytes"].as_u64().expect("bytes") > 0,
                    "{name} {server}: no pack bytes"
                );
            }
        }
    }
    assert!(stdout.contains("orbit/git"), "{stdout}");
}
