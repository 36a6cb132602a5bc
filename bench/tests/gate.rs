//! The `report` binary end to end on a small storage-only run: it writes the report, its
//! plot and its results; a baseline written from a run passes the gate on that run's figures
//! and a doctored one (a throughput ten times better) fails it with a non-zero exit.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn report(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_report"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("report runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn gate_passes_on_its_own_baseline_and_fails_on_a_doctored_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let run = report(
        &[
            "--out",
            "r.md",
            "--scenarios",
            "storage",
            "--storage-sizes",
            "200",
            "--storage-clients",
            "2,4",
            "--storage-ops",
            "300",
            "--storage-secs",
            "1",
            "--baseline",
            "base.json",
            "--write-baseline",
        ],
        d,
    );
    assert!(run.status.success(), "{}", text(&run));
    let md = std::fs::read_to_string(d.join("r.md")).expect("report written");
    assert!(
        md.contains("## Storage") && md.contains("bench/storage.svg"),
        "{md}"
    );
    let svg = std::fs::read_to_string(d.join("bench/storage.svg")).expect("plot drawn");
    assert!(svg.contains("<svg") && svg.contains("Storage p99 latency"));
    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("bench/results.json")).expect("results saved"),
    )
    .expect("results are JSON");
    assert_eq!(
        results["storage"]["result"]["runs"]
            .as_array()
            .map(Vec::len),
        Some(6)
    );

    let again = [
        "--out",
        "r2.md",
        "--input",
        "bench/results.json",
        "--baseline",
        "base.json",
    ];
    let pass = report(&again, d);
    assert!(pass.status.success(), "{}", text(&pass));
    assert!(
        text(&pass).contains("regression gate passed"),
        "{}",
        text(&pass)
    );

    let mut base: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("base.json")).expect("baseline"))
            .expect("baseline is JSON");
    let key = "storage.n200.write.c4.throughput_ops";
    let measured = base["figures"][key]
        .as_f64()
        .expect("write throughput in the baseline");
    assert!(measured > 0.0);
    base["figures"][key] = (measured * 10.0).into();
    std::fs::write(d.join("doctored.json"), base.to_string()).expect("doctored baseline");
    let fail = report(
        &[
            "--out",
            "r3.md",
            "--input",
            "bench/results.json",
            "--baseline",
            "doctored.json",
        ],
        d,
    );
    assert!(!fail.status.success(), "{}", text(&fail));
    assert!(text(&fail).contains(key), "{}", text(&fail));
    let md = std::fs::read_to_string(d.join("r3.md")).expect("report written before failing");
    assert!(md.contains("**FAILED**") && md.contains("**regressed**"));
}
