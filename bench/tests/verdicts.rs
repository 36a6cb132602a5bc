//! The report's verdicts follow from the numbers they print: a 429 counts against serving
//! users, the CPU ceiling is judged on the unrounded mean and printed finely enough to agree,
//! and the burst's retransmitted-SYN sentence appears only with a one-second tail.

use std::collections::BTreeMap;

use bench::http_load::{ApiResult, BurstResult, GenerateResult, TaskGroup, TaskRun, TaskShape};
use bench::monitor::ProcessUsage;
use bench::report::machine::Machine;
use bench::report::markdown;
use bench::report::results::{Measured, Results};
use bench::report::verdicts::{
    decimals, drift, goals, targets, waited_for_syn_retry, Verdict, SYN_RETRY_MS,
};
use bench::tally::{Percentiles, Summary};

fn results() -> Results {
    Results::empty("now".into(), Machine::default())
}

fn measured<T>(result: T) -> Measured<T> {
    Measured {
        result,
        server: ProcessUsage::default(),
    }
}

fn summary(requests: u64, errors: u64, refused: u64, max_ms: f64) -> Summary {
    Summary {
        requests,
        ok: requests - errors - refused,
        rejected_429: refused,
        errors,
        latency_ms: Percentiles {
            p50: max_ms / 2.0,
            p95: max_ms,
            p99: max_ms,
            max: max_ms,
        },
        ..Summary::default()
    }
}

fn api(users: usize, total: Summary) -> ApiResult {
    ApiResult {
        users,
        wall_s: 1.0,
        total,
        by_op: BTreeMap::new(),
        background_tasks: 0,
        think_ms: [0, 0],
        generation_busy_share: 0.0,
        background_submitted: 0,
    }
}

/// A `scenes`-scene generate run whose `k` concurrent tasks all completed.
fn generated(scenes: usize, k: usize) -> GenerateResult {
    let group = |tasks: usize| TaskGroup {
        tasks,
        runs: (0..tasks as u64)
            .map(|id| TaskRun {
                id,
                status: "completed".into(),
                first_frame_s: Some(0.5),
                wall_s: 1.0,
            })
            .collect(),
        wall_s: 1.0,
        scenes_per_s: 1.0,
        all_completed: true,
    };
    GenerateResult {
        shape: TaskShape { scenes, steps: 20 },
        single: group(1),
        concurrent: vec![group(k)],
    }
}

fn find<'a>(verdicts: &'a [Verdict], target: &str) -> &'a Verdict {
    verdicts
        .iter()
        .find(|v| v.target.starts_with(target))
        .unwrap_or_else(|| panic!("no verdict on {target:?} in {verdicts:?}"))
}

#[test]
fn a_refused_request_counts_against_serving_users() {
    let mut r = results();
    r.generate.push(measured(generated(5, 10)));
    r.api
        .push(measured(api(100, summary(10_000, 0, 230, 37.0))));
    let users = find(&targets(&r), "10+ concurrent users").clone();
    assert_eq!(users.pass, Some(false), "{users:?}");
    assert!(users.measured.contains("230 refused (429)"), "{users:?}");

    r.api[0].result.total = summary(10_000, 0, 0, 37.0);
    assert_eq!(find(&targets(&r), "10+ concurrent users").pass, Some(true));

    r.burst = Some(measured(BurstResult {
        connections: 1000,
        wall_s: 1.0,
        total: summary(1000, 0, 3, 125.0),
    }));
    let burst = find(&targets(&r), "1000 concurrent requests").clone();
    assert_eq!(burst.pass, Some(false), "{burst:?}");
    assert!(burst.measured.contains("3 refused (429)"), "{burst:?}");
    let goal = find(&goals(&r), "zero errors at 1000 concurrent connections").clone();
    assert_eq!(goal.pass, Some(false), "{goal:?}");
}

/// The number printed before "% of the machine".
fn printed_cpu(v: &Verdict) -> f64 {
    let head = v.measured.split("% of the machine").next().unwrap();
    let number = head.rsplit(' ').next().unwrap();
    number
        .parse()
        .unwrap_or_else(|_| panic!("no CPU figure in {v:?}"))
}

#[test]
fn the_cpu_verdicts_agree_with_the_printed_mean() {
    for cpu in [
        79.4, 79.5, 79.88, 79.95, 79.999, 80.0, 80.001, 80.04, 80.6, 81.0,
    ] {
        let mut r = results();
        let mut busy = measured(api(100, summary(3000, 0, 0, 4.0)));
        // Two cores: the machine's share is half the one-core percent.
        busy.server.cores = 2;
        busy.server.cpu_mean_percent = (cpu * 2.0) as f32;
        let mean = busy.server.cpu_mean_machine_percent();
        r.api_busy = Some(busy);

        let under = find(&targets(&r), "CPU under 80%").clone();
        assert_eq!(under.pass, Some(mean < 80.0), "{cpu}: {under:?}");
        assert_eq!(printed_cpu(&under) < 80.0, mean < 80.0, "{cpu}: {under:?}");

        let held = find(&goals(&r), "the CPU ceiling held").clone();
        assert_eq!(held.pass, Some(mean <= 80.0), "{cpu}: {held:?}");
        assert_eq!(printed_cpu(&held) <= 80.0, mean <= 80.0, "{cpu}: {held:?}");
    }
    let mut r = results();
    let mut busy = measured(api(100, summary(3000, 0, 0, 4.0)));
    busy.server.cores = 1;
    busy.server.cpu_mean_percent = 79.88;
    r.api_busy = Some(busy);
    let under = find(&targets(&r), "CPU under 80%").clone();
    assert!(under.measured.contains(" 79.9% "), "{under:?}");
    assert_eq!(under.pass, Some(true));
}

#[test]
fn decimals_keep_the_printed_number_on_the_verdicts_side() {
    let under_80 = |c: f64| c < 80.0;
    assert_eq!(decimals(79.4, 0, under_80), 0);
    assert_eq!(decimals(79.88, 0, under_80), 1);
    assert_eq!(decimals(79.996, 0, under_80), 3);
    assert_eq!(decimals(80.4, 0, under_80), 0);
    assert_eq!(decimals(99.996, 2, |p| p < 100.0), 3);
    assert_eq!(decimals(4.996, 2, |g| g < 5.0), 3);
}

#[test]
fn drift_holds_within_the_ratio_or_the_slack() {
    let (text, held) = drift(5.72, 8.33);
    assert!(!held, "{text}");
    assert!(
        text.contains("1.46x") && text.contains("+2.61 ms"),
        "{text}"
    );
    assert!(drift(4.0, 5.0).1, "1.25x is within the ratio");
    assert!(drift(0.4, 0.9).1, "0.5 ms more is within the slack");
    assert!(!drift(2.0, 3.1).1, "1.55x and 1.1 ms more");
}

fn burst_report(max_ms: f64) -> String {
    let mut r = results();
    r.burst = Some(measured(BurstResult {
        connections: 1000,
        wall_s: 1.0,
        total: summary(1000, 0, 0, max_ms),
    }));
    let dir = tempfile::tempdir().expect("temp dir");
    let md = dir.path().join("r.md");
    markdown::write(&r, &md, &dir.path().join("bench"), "report", None).expect("written");
    std::fs::read_to_string(md).expect("report")
}

#[test]
fn the_syn_sentence_needs_a_one_second_tail() {
    assert!(!waited_for_syn_retry(&summary(
        1000,
        0,
        0,
        SYN_RETRY_MS - 0.1
    )));
    assert!(waited_for_syn_retry(&summary(1000, 0, 0, SYN_RETRY_MS)));
    let quick = burst_report(125.0);
    assert!(
        quick.contains("## Burst") && !quick.contains("SYN"),
        "{quick}"
    );
    let slow = burst_report(1031.0);
    assert!(
        slow.contains("took 1031 ms") && slow.contains("retransmits a SYN"),
        "{slow}"
    );
}
