//! A guidance x steps sweep of the shipped model, judged by the prompt-adherence evaluator:
//! for each setting, the scenes of the evaluation suite are sampled (one batch) and the share
//! whose every attribute the evaluator reads right is its adherence. Prints a table and plots
//! adherence against guidance, one line per step count, as an SVG.
//!
//! cargo run --release --example guidance_sweep -- --scenes 24 --out sweep.svg
//!
//! (`--guidance 0,1,2,4,8 --steps 4,10,20` by default; `--seed` picks the suite and the noise.)

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use kernels::Model;

/// One setting's result.
struct Point {
    guidance: f32,
    steps: usize,
    /// Scenes with every attribute right, over all scenes.
    adherence: f32,
}

fn list<T: std::str::FromStr>(s: &str) -> anyhow::Result<Vec<T>> {
    s.split(',')
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("bad value {v:?}"))
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let (mut scenes, mut seed, mut out) = (24usize, 0u64, String::from("sweep.svg"));
    let mut guidance: Vec<f32> = vec![0.0, 1.0, 2.0, 4.0, 8.0];
    let mut steps: Vec<usize> = vec![4, 10, 20];
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--scenes" => scenes = value.parse()?,
            "--seed" => seed = value.parse()?,
            "--out" => out = value,
            "--guidance" => guidance = list(&value)?,
            "--steps" => steps = list(&value)?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }

    let model =
        Model::load(Path::new("model/checkpoint")).context("run from the repository root")?;
    let method = model.config().sampler.method;
    let suite = eval::prompt_suite(scenes, seed);
    let captions: Vec<String> = suite.iter().map(|s| s.caption()).collect();
    let captions: Vec<&str> = captions.iter().map(String::as_str).collect();

    let mut points = Vec::new();
    println!(
        "| steps | guidance | adherence | per attribute (background color shape size motion) |"
    );
    println!("|---:|---:|---:|---|");
    for &n in &steps {
        for &g in &guidance {
            let clips = model.generate(&captions, seed, n, g, method)?;
            let verdicts: Vec<eval::Verdict> = clips
                .iter()
                .zip(&suite)
                .map(|(clip, scene)| eval::evaluate(clip, scene))
                .collect();
            let share = |pass: &dyn Fn(&eval::Verdict) -> bool| {
                verdicts.iter().filter(|v| pass(v)).count() as f32 / verdicts.len() as f32
            };
            let adherence = share(&|v| v.all_pass());
            let per_attr: Vec<String> = eval::ATTRS
                .iter()
                .map(|&a| format!("{:.2}", share(&|v| v.pass(a))))
                .collect();
            println!("| {n} | {g} | {adherence:.2} | {} |", per_attr.join(" "));
            points.push(Point {
                guidance: g,
                steps: n,
                adherence,
            });
        }
    }
    std::fs::write(&out, svg(&points, &steps)).with_context(|| format!("writing {out}"))?;
    println!("{} settings x {scenes} scenes -> {out}", points.len());
    Ok(())
}

/// Adherence (y, 0-1) against guidance (x), a polyline per step count.
fn svg(points: &[Point], steps: &[usize]) -> String {
    let (w, h, m) = (640.0f32, 400.0f32, 50.0f32);
    let gmax = points.iter().map(|p| p.guidance).fold(1.0f32, f32::max);
    let x = |g: f32| m + g / gmax * (w - 2.0 * m);
    let y = |a: f32| h - m - a * (h - 2.0 * m);
    let colours = [
        "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
    ];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/>\n"
    );
    let _ = writeln!(
        s,
        "<line x1=\"{m}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\
         <line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{}\" stroke=\"black\"/>",
        h - m,
        w - m,
        h - m,
        h - m
    );
    for tick in 0..=4 {
        let a = tick as f32 / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{a:.2}</text>",
            m - 6.0,
            y(a) + 4.0
        );
    }
    let mut gs: Vec<f32> = points.iter().map(|p| p.guidance).collect();
    gs.dedup();
    for g in gs {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{g}</text>",
            x(g),
            h - m + 18.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">guidance</text>\
         <text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">\
         adherence (all attributes right)</text>",
        w / 2.0,
        h - 12.0,
        h / 2.0,
        h / 2.0
    );
    for (i, &n) in steps.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let line: Vec<String> = points
            .iter()
            .filter(|p| p.steps == n)
            .map(|p| format!("{},{}", x(p.guidance), y(p.adherence)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"{colour}\">{n} steps</text>",
            line.join(" "),
            w - m + 4.0,
            m + 16.0 * i as f32
        );
    }
    s + "</svg>\n"
}
