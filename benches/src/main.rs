//! `orbit-bench`: Orbit's pack-throughput harness, side by side with C git.
//!
//! Not built yet: the scenarios, corpus generation and the baseline server are tracked in the
//! benchmark issue. This binary says so instead of pretending to measure anything.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "orbit-bench: the benchmark harness is not implemented yet \
         (no scenarios exist; see the README's Performance section)"
    );
    ExitCode::from(2)
}
