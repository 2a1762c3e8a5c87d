//! The Sinkhorn → parabolic Monge–Ampère limit, demonstrated (`docs/sinkhorn-limit.md`).
//!
//! `cargo run --release --example sinkhorn_limit -- [N] [T] [OUT_DIR]` (defaults 128, 0.02,
//! `target/sinkhorn_limit`).
//!
//! 1. **The limit.** On the manufactured torus case (`case:periodic-2d`, N² cells), Sinkhorn
//!    at a fixed ε, started from the zero displacement potential (no ε-scaling), runs
//!    `k = T/ε` iterations. One iteration is `p ← p + ε log(a/μ)` with `a` the first marginal
//!    of the plan, i.e. a forward-Euler step of the parabolic Monge–Ampère flow
//!    `∂ₜu = log det(I + D²u) + log g(x + ∇u) − log f` up to O(ε²). Its potential is compared
//!    with the flow's solution at time T (linearly implicit steps of T/2000, checked against
//!    T/1000), for ε = 4e-3 … 2.5e-4: the gap shrinks in proportion to ε.
//! 2. **Convergence curves.** On the same problem: the μ-weighted L2 map error against the
//!    closed-form map, per iteration and per second, for bfm, Newton, the parabolic flow
//!    (default implicit schedule, and explicit CFL steps: 2500 (N/64)² of them) and Sinkhorn
//!    (ε = 1e-3 and 2.5e-4, default ε-scaling).
//!
//! Writes `limit.csv`, `limit.svg`, `convergence.csv`, `convergence_iterations.svg`,
//! `convergence_time.svg` into OUT_DIR and prints the tables as Markdown.

use otgrid::ot::verify::{map_error_of_map, Case};
use otgrid::ot::{
    BackAndForth, Newton, Observer, Options, Parabolic, Problem, Progress, Schedule, Sinkhorn,
    Solution, Solver, Stepping,
};
use otgrid::{ScalarField, VectorField};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().map_or(Ok(128), |s| s.parse()).expect("N: cells per axis");
    let t: f64 = args.get(1).map_or(Ok(0.02), |s| s.parse()).expect("T: a positive time");
    let out: PathBuf = args.get(2).map_or("target/sinkhorn_limit".into(), PathBuf::from);
    std::fs::create_dir_all(&out)?;
    let case = Case::Periodic2d;
    let problem = case.problem(n)?;
    limit(&problem, t, &out)?;
    curves(&problem, case, &out)?;
    Ok(())
}

/// `u − mean(u)`.
fn centred(u: &ScalarField) -> Vec<f64> {
    let mean = u.data().iter().sum::<f64>() / u.data().len() as f64;
    u.data().iter().map(|v| v - mean).collect()
}

/// Max and L2 (`(h^d Σ e²)^½`) of the difference of two potentials, constants removed.
fn potential_gap(a: &ScalarField, b: &ScalarField) -> (f64, f64) {
    let vol = a.grid().cell_volume();
    let (a, b) = (centred(a), centred(b));
    let (mut max, mut sq) = (0.0f64, 0.0);
    for (x, y) in a.iter().zip(&b) {
        max = max.max((x - y).abs());
        sq += (x - y) * (x - y) * vol;
    }
    (max, sq.sqrt())
}

/// μ-weighted L2 distance of two displacement fields.
fn map_gap(mu: &ScalarField, a: &VectorField, b: &VectorField) -> f64 {
    let vol = mu.grid().cell_volume();
    let d = mu.grid().dim();
    let (a, b) = (a.data().as_slice().expect("c"), b.data().as_slice().expect("c"));
    let sq: f64 = mu
        .data()
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let e: f64 = (0..d).map(|k| (a[i * d + k] - b[i * d + k]).powi(2)).sum();
            m * e * vol
        })
        .sum();
    sq.sqrt()
}

/// The flow at time `t` by `steps` linearly implicit steps of `t/steps`.
fn flow(problem: &Problem, t: f64, steps: usize) -> otgrid::Result<Solution> {
    let solver = Parabolic {
        tolerance: Some(1e-300),
        max_iterations: Some(steps),
        schedule: Schedule::Constant(t / steps as f64),
        stepping: Stepping::LinearlyImplicit,
        ..Default::default()
    };
    solver.solve(problem, &Options::default())
}

fn limit(problem: &Problem, t: f64, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let n = problem.grid().axis(0).cells;
    let reference = flow(problem, t, 2000)?;
    let coarser = flow(problem, t, 1000)?;
    let (_, time_error) = potential_gap(&reference.p, &coarser.p);
    let start = ScalarField::zeros(problem.grid());
    let (_, travelled) = potential_gap(&reference.p, &start);
    let newton = Newton { tolerance: Some(1e-10), max_iterations: Some(50), ..Default::default() };
    let steady = newton.solve(problem, &Options::default())?;
    let (_, remaining) = potential_gap(&reference.p, &steady.p);
    println!("## The limit: Sinkhorn after k = T/ε iterations against the flow at T = {t}\n");
    println!(
        "periodic-2d, {n}² cells. Reference: the flow at T by 2000 implicit steps ({:.2} s); \
         against 1000 steps its potential moves by {time_error:.1e} (L2). From the start it \
         has moved {travelled:.2e}; the steady state is {remaining:.2e} further.\n",
        reference.seconds
    );
    println!("| ε | k = T/ε | potential gap L2 | potential gap max | map gap L2(μ) | ratio (L2) | Sinkhorn time |");
    println!("|---|---|---|---|---|---|---|");
    let mut csv =
        String::from("epsilon,iterations,potential_gap_l2,potential_gap_max,map_gap_l2,seconds\n");
    let mut points = Vec::new();
    let mut previous: Option<f64> = None;
    for eps in [4e-3, 2e-3, 1e-3, 5e-4, 2.5e-4] {
        let k = (t / eps).round() as usize;
        let sinkhorn = Sinkhorn {
            epsilon: Some(eps),
            epsilon_start: Some(eps),
            initial: Some(start.clone()),
            overrelaxation: 1.0,
            multiscale: false,
            tolerance: Some(1e-300),
            max_iterations: Some(k),
        };
        let s = sinkhorn.solve(problem, &Options::default())?;
        let (max, l2) = potential_gap(&s.p, &reference.p);
        let map =
            map_gap(problem.source(), &s.displacement(problem), &reference.displacement(problem));
        let ratio = previous.map_or("—".to_string(), |p| format!("{:.2}", p / l2));
        previous = Some(l2);
        println!(
            "| {eps:.1e} | {k} | {l2:.3e} | {max:.3e} | {map:.3e} | {ratio} | {:.2} s |",
            s.seconds
        );
        writeln!(csv, "{eps},{k},{l2},{max},{map},{}", s.seconds).expect("string");
        points.push((eps, l2));
    }
    std::fs::write(out.join("limit.csv"), csv)?;
    let slope: Vec<(f64, f64)> =
        points.iter().map(|&(e, _)| (e, points[0].1 * e / points[0].0)).collect();
    svg_plot(
        &out.join("limit.svg"),
        &format!("Sinkhorn (k = T/ε) vs parabolic MA flow at T = {t}, {n}²"),
        "ε",
        "L2 gap of the potentials",
        &[("gap", points), ("∝ ε", slope)],
    )?;
    println!();
    Ok(())
}

/// (iterations, seconds, map error).
type Point = (f64, f64, f64);

/// Whether long runs' curves sample iteration `k`: every one up to 20, then `round(20 · 1.1^j)`
/// (about 24 per decade).
fn sampled(k: usize) -> bool {
    k <= 20 || {
        let j = ((k as f64 / 20.0).ln() / 1.1f64.ln()).round();
        (20.0 * 1.1f64.powf(j)).round() as usize == k
    }
}

/// One solve, observed: the μ-weighted L2 map error (bulk, as `otgrid verify`) of the iterate
/// at every iteration on the problem's grid (beyond 1000 iterations: the sampled ones; coarse
/// levels count in the iterations and seconds); seconds exclude the observer's own work.
/// `max_iterations`: the solver's budget. (iterations, seconds, error).
fn observed_curve<S: Solver>(
    solver: &S,
    problem: &Problem,
    case: Case,
    max_iterations: usize,
) -> otgrid::Result<Vec<Point>> {
    use std::sync::{Arc, Mutex};
    let exact = case.exact().expect("a case with a closed form");
    let rows: Arc<Mutex<Vec<Point>>> = Arc::default();
    let recorded = Arc::clone(&rows);
    let owned = problem.clone();
    let mut observing = 0.0;
    let observer = Observer::new(move |p: &Progress| {
        if p.grid == owned.grid() && (max_iterations <= 1000 || sampled(p.iteration)) {
            let clock = std::time::Instant::now();
            let map = owned.map_of(&p.potential());
            let e = map_error_of_map(&map, &owned, |x, y| exact.map(x, y)).l2;
            recorded.lock().unwrap().push((p.iteration as f64, p.elapsed - observing, e));
            observing += clock.elapsed().as_secs_f64();
        }
        std::ops::ControlFlow::Continue(())
    });
    solver.solve(problem, &Options::default().observed(observer))?;
    let rows = rows.lock().unwrap().clone();
    Ok(rows)
}

fn curves(problem: &Problem, case: Case, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let n = problem.grid().axis(0).cells;
    let mut series: Vec<(String, Vec<Point>)> = Vec::new();
    let (tolerance, budget) = (Some(1e-12), Some(500));
    let bfm = BackAndForth { tolerance, max_iterations: budget, ..Default::default() };
    series.push(("bfm".into(), observed_curve(&bfm, problem, case, 500)?));
    let newton = Newton { tolerance, max_iterations: budget, ..Default::default() };
    series.push(("newton".into(), observed_curve(&newton, problem, case, 500)?));
    let implicit = Parabolic { tolerance, max_iterations: Some(40), ..Default::default() };
    series.push((
        "parabolic (implicit, geometric 0.1×2)".into(),
        observed_curve(&implicit, problem, case, 40)?,
    ));
    let steps = 2500 * (n / 64).pow(2).max(1);
    let explicit = Parabolic {
        tolerance,
        max_iterations: Some(steps),
        schedule: Schedule::Cfl(0.9),
        stepping: Stepping::Explicit,
        ..Default::default()
    };
    series.push((
        "parabolic (explicit, cfl:0.9)".into(),
        observed_curve(&explicit, problem, case, steps)?,
    ));
    for eps in [1e-3, 2.5e-4] {
        let solver = Sinkhorn {
            epsilon: Some(eps),
            tolerance: Some(1e-9),
            max_iterations: Some(1000),
            ..Default::default()
        };
        series
            .push((format!("sinkhorn ε={eps:.1e}"), observed_curve(&solver, problem, case, 1000)?));
    }
    println!("## Convergence on periodic-2d, {n}²: map error L2(μ) against the closed form\n");
    println!("| method | iterations to 1e-3 | time to 1e-3 | iterations to 1e-4 | time to 1e-4 | final error | final iterations | final time |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut csv = String::from("method,iterations,seconds,map_error_l2\n");
    for (name, rows) in &series {
        let reach = |level: f64| {
            rows.iter().find(|r| r.2 <= level).map_or(("—".to_string(), "—".to_string()), |r| {
                (format!("{}", r.0), format!("{:.3} s", r.1))
            })
        };
        let (i3, t3) = reach(1e-3);
        let (i4, t4) = reach(1e-4);
        let Some(last) = rows.last() else {
            println!("| {name} | — | — | — | — | no iteration on the {n}² grid | | |");
            continue;
        };
        println!(
            "| {name} | {i3} | {t3} | {i4} | {t4} | {:.2e} | {} | {:.3} s |",
            last.2, last.0, last.1
        );
        for r in rows {
            writeln!(csv, "\"{name}\",{},{},{}", r.0, r.1, r.2).expect("string");
        }
    }
    std::fs::write(out.join("convergence.csv"), csv)?;
    let by = |pick: fn(&Point) -> f64| -> Vec<(&str, Vec<(f64, f64)>)> {
        series
            .iter()
            .map(|(name, rows)| {
                (name.as_str(), rows.iter().map(|r| (pick(r), r.2)).filter(|p| p.0 > 0.0).collect())
            })
            .collect()
    };
    svg_plot(
        &out.join("convergence_iterations.svg"),
        &format!("periodic-2d {n}²: map error per iteration"),
        "iterations",
        "map error L2(μ)",
        &by(|r| r.0),
    )?;
    svg_plot(
        &out.join("convergence_time.svg"),
        &format!("periodic-2d {n}²: map error against time"),
        "seconds",
        "map error L2(μ)",
        &by(|r| r.1),
    )?;
    println!("\n(wrote {})", out.display());
    Ok(())
}

/// A log–log line plot as a standalone SVG.
fn svg_plot<S: AsRef<str>>(
    path: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[(S, Vec<(f64, f64)>)],
) -> std::io::Result<()> {
    let (w, h, left, right, top, bottom) = (720.0, 460.0, 80.0, 250.0, 40.0, 60.0);
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .filter(|p| p.0 > 0.0 && p.1 > 0.0)
        .collect();
    let span = |v: Vec<f64>| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min).log10().floor();
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max).log10().ceil();
        (lo, if hi > lo { hi } else { lo + 1.0 })
    };
    let (x0, x1) = span(all.iter().map(|p| p.0).collect());
    let (y0, y1) = span(all.iter().map(|p| p.1).collect());
    let px = |x: f64| left + (x.log10() - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| h - bottom - (y.log10() - y0) / (y1 - y0) * (h - top - bottom);
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"];
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    writeln!(s, "<text x=\"{}\" y=\"22\" font-size=\"14\">{title}</text>", left).expect("s");
    for d in (x0 as i32)..=(x1 as i32) {
        let x = px(10f64.powi(d));
        writeln!(s, "<line x1=\"{x}\" y1=\"{top}\" x2=\"{x}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">1e{d}</text>", h - bottom, h - bottom + 18.0).expect("s");
    }
    for d in (y0 as i32)..=(y1 as i32) {
        let y = py(10f64.powi(d));
        writeln!(s, "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">1e{d}</text>", w - right, left - 6.0, y + 4.0).expect("s");
    }
    writeln!(s, "<rect x=\"{left}\" y=\"{top}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>", w - left - right, h - top - bottom).expect("s");
    writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{xlabel}</text>",
        left + (w - left - right) / 2.0,
        h - 15.0
    )
    .expect("s");
    writeln!(s, "<text x=\"18\" y=\"{}\" transform=\"rotate(-90 18 {})\" text-anchor=\"middle\">{ylabel}</text>", top + (h - top - bottom) / 2.0, top + (h - top - bottom) / 2.0).expect("s");
    for (k, (name, points)) in series.iter().enumerate() {
        let c = colours[k % colours.len()];
        // Long series (explicit steps) thinned to about 300 points.
        let every = (points.len() / 300).max(1);
        let pts: Vec<String> = points
            .iter()
            .enumerate()
            .filter(|(i, _)| i % every == 0 || i + 1 == points.len())
            .map(|(_, p)| p)
            .filter(|p| p.0 > 0.0 && p.1 > 0.0)
            .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.1)))
            .collect();
        writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"/>",
            pts.join(" ")
        )
        .expect("s");
        let ly = top + 10.0 + 18.0 * k as f64;
        writeln!(s, "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{c}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{}</text>", w - right + 10.0, w - right + 30.0, w - right + 35.0, ly + 4.0, name.as_ref()).expect("s");
    }
    s.push_str("</svg>\n");
    std::fs::write(path, s)?;
    Ok(())
}
