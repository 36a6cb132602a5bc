//! `reel generate`: one task in-process, no server. With stderr not a terminal (as here) its
//! progress comes as plain lines: each status, and each scene's steps by quarters.

use std::process::Command;

#[test]
fn generate_writes_an_mp4_and_reports_progress_as_plain_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let run = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args([
            "generate",
            "a small red circle moving left, then it grows",
            "-o",
        ])
        .arg(&out)
        .args([
            "--num-scenes",
            "2",
            "--steps",
            "4",
            "--seconds-per-scene",
            "0.5",
        ])
        .args(["--fps", "8", "--size", "64", "--post", "cpu", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    let mp4 = std::fs::read(&out).unwrap();
    assert_eq!(&mp4[4..8], b"ftyp");
    for line in [
        "status: planning",
        "scene 1: 4/4 steps",
        "scene 2: 4/4 steps",
        "status: completed",
    ] {
        assert!(log.contains(line), "{line:?} missing from:\n{log}");
    }
}
