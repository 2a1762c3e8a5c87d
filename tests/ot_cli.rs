//! `otgrid ot`: a solve written as HDF5 + XDMF with the documented fields and attributes,
//! JSON summary, and clean failures (exit 2, one line, no file) on bad input.

use otgrid::io::{AttrValue, Field, Output as Results};
use std::path::Path;
use std::process::{Command, Output};

fn otgrid(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otgrid")).args(args).current_dir(cwd).output().unwrap()
}

const SOURCE: &str = "gaussian:0.4,0.45:0.0064,0,0,0.0064";
const TARGET: &str = "gaussian:0.6,0.55:0.0036,0,0,0.01";

#[test]
fn gaussian_solve_writes_every_field_and_a_json_summary() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "ot", "--source", SOURCE, "--target", TARGET, "--grid", "128x128", "--tol", "2.5e-3",
        "--out", "r.h5", "--json",
    ];
    let o = otgrid(&args, dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = String::from_utf8_lossy(&o.stdout);
    for key in ["\"converged\": true", "\"w2_squared\"", "\"map_error_l2_bulk\"", "\"iterations\""]
    {
        assert!(json.contains(key), "{key} missing in {json}");
    }
    assert!(dir.path().join("r.xmf").is_file());
    let r = Results::read(&dir.path().join("r.h5")).unwrap();
    for name in
        ["source", "target", "phi", "psi", "map", "displacement", "inverse_map", "push_forward"]
    {
        assert!(r.fields().contains_key(name), "field {name}");
    }
    assert!(matches!(r.fields()["map"], Field::Vector(_)));
    assert!(r.diagnostics()["marginal_error"].len() > 1);
    match r.attributes().get("map_error_l2_bulk") {
        Some(AttrValue::Number(e)) => assert!(*e < 1e-2, "map error {e}"),
        other => panic!("map_error_l2_bulk: {other:?}"),
    }
    match r.attributes().get("w2_squared") {
        Some(AttrValue::Number(w)) => assert!((w - 0.0508).abs() < 5e-4, "W2² {w}"),
        other => panic!("w2_squared: {other:?}"),
    }
}

#[test]
fn bad_input_fails_with_one_line_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    for (source, target, extra, needle) in [
        ("x - 0.5", "uniform", "", "negative values"),
        ("0", "uniform", "", "mass is zero"),
        ("uniform", "missing.h5:/fields/density", "", "no such file"),
        ("gaussian:0.5,0.5:1,2,2,1", "uniform", "", "positive definite"),
        ("uniform", "uniform", "--method=simplex", "unknown OT method"),
        ("uniform", "uniform", "--tol=-1", "tolerance"),
        (SOURCE, TARGET, "--max-iterations=2", "did not converge"),
        ("case:nope", "uniform", "", "unknown case 'nope'"),
        ("case:periodic-2d", "case:periodic-2d", "", "needs periodic boundaries"),
        ("abs(x - 0.5) + x - 0.5", "uniform", "--method=newton", "use --method bfm"),
        ("uniform", "uniform", "--push-forward=splat", "unknown push-forward 'splat'"),
        ("uniform", "uniform", "--method=newton --push-forward=deposit", "applies to --method bfm"),
        ("sin(2*pi*x)", "uniform", "", "constants PI and E"),
        ("uniform", "uniform", "--metric=weighted:0", "unknown metric 'weighted:0'"),
        ("uniform", "uniform", "--method=sinkhorn --metric=laplacian", "applies to --method bfm"),
        ("uniform", "uniform", "--repeat=0", "--repeat must be at least 1"),
        ("uniform", "uniform", "--set=epsilon=1e-3", "bfm takes no setting 'epsilon'"),
        ("uniform", "uniform", "--set=nonsense", "not of the form NAME=VALUE"),
        ("uniform", "uniform", "--method=sinkhorn --set=epsilon=x", "setting epsilon=x"),
    ] {
        let mut args = vec!["ot", "--source", source, "--target", target, "--grid", "32x32"];
        args.extend(extra.split_whitespace());
        args.extend(["--out", "bad.h5"]);
        let o = otgrid(&args, dir.path());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(err.contains(needle), "{needle} not in {err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{args:?} left files");
    }
}

/// `--set NAME=VALUE` reaches a method's settings by name; a method flag is the setting of
/// its name: `--set epsilon=2e-3` and `--epsilon 2e-3` give the same run.
#[test]
fn set_and_method_flags_are_the_same_settings() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "ot", "--source", SOURCE, "--target", TARGET, "--grid", "32x32", "--method",
            "sinkhorn", "--out", "s.h5", "--json",
        ];
        args.extend(extra);
        let o = otgrid(&args, dir.path());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (
            v["parameters"]["solver"]["epsilon"].clone(),
            v["w2_squared"].clone(),
            v["epsilon"].clone(),
        )
    };
    let by_set = run(&["--set", "epsilon=2e-3"]);
    assert_eq!(by_set.0, serde_json::json!(2e-3));
    assert_eq!(by_set.2, serde_json::json!(2e-3), "the ε solved for is reported");
    assert_eq!(by_set, run(&["--epsilon", "2e-3"]));
    let default = run(&[]);
    assert_ne!(by_set.1, default.1, "the default ε differs");
    assert_eq!(default.2, serde_json::json!(1e-3), "on the unit box the default ε is 1e-3");
}

/// `--repeat N` solves N times and reports one of them (the run of median time): the same
/// result as a single solve, with its own time.
#[test]
fn repeat_reports_the_same_solution() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "ot", "--source", SOURCE, "--target", TARGET, "--grid", "64x64", "--method",
            "sinkhorn", "--out", "r.h5", "--json",
        ];
        args.extend(extra);
        let o = otgrid(&args, dir.path());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let json = String::from_utf8_lossy(&o.stdout).to_string();
        let line = |key: &str| {
            json.lines().find(|l| l.contains(key)).unwrap_or_else(|| panic!("{key}")).to_string()
        };
        (line("\"w2_squared\""), line("\"iterations\""), line("\"seconds\""))
    };
    let (single, repeated) = (run(&[]), run(&["--repeat", "3"]));
    assert_eq!(single.0, repeated.0);
    assert_eq!(single.1, repeated.1);
    let seconds: f64 =
        repeated.2.split(':').nth(1).unwrap().trim().trim_end_matches(',').parse().unwrap();
    assert!(seconds > 0.0 && seconds < 60.0, "{}", repeated.2);
}

/// Newton on the manufactured periodic case given by presets: converged, with the error
/// against the closed-form map in the summary.
#[test]
fn newton_on_a_preset_case_reports_its_map_error() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "ot",
        "--source",
        "case:periodic-2d",
        "--target",
        "case:periodic-2d",
        "--grid",
        "64x64",
        "--bc",
        "periodic",
        "--method",
        "newton",
        "--out",
        "m.h5",
        "--json",
    ];
    let o = otgrid(&args, dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = String::from_utf8_lossy(&o.stdout);
    assert!(json.contains("\"converged\": true") && json.contains("\"method\": \"newton\""));
    let error: f64 = json
        .lines()
        .find(|l| l.contains("map_error_l2_bulk"))
        .and_then(|l| l.split(':').nth(1))
        .map(|v| v.trim().trim_end_matches(',').parse().unwrap())
        .expect("map error in the summary");
    assert!(error < 1e-4, "map error {error}");
    let r = Results::read(&dir.path().join("m.h5")).unwrap();
    assert!(matches!(r.attributes().get("method"), Some(AttrValue::Text(m)) if m == "newton"));
}

/// `otgrid verify` prints one row per resolution with observed orders; Newton's on the
/// separable box case are second order.
#[test]
fn verify_prints_orders() {
    let dir = tempfile::tempdir().unwrap();
    let args =
        ["verify", "--case", "separable-2d", "--method", "newton", "--sizes", "16,32,64", "--json"];
    let o = otgrid(&args, dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = String::from_utf8_lossy(&o.stdout);
    let orders: Vec<f64> = json
        .split("\"order\": ")
        .skip(1)
        .filter_map(|t| t.split('}').next()?.trim().parse().ok())
        .collect();
    assert_eq!(orders.len(), 2, "{json}");
    assert!(orders.iter().all(|&o| o > 1.9), "{orders:?}");
    let bad = otgrid(&["verify", "--sizes", "3"], dir.path());
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cell count"));
}

/// The default `otgrid ot` (method auto → bfm) solves ordinary pairs off the reference one —
/// a Gaussian onto the uniform density and a two-bump mixture onto another — writes the
/// result with its typed outcome (the discretisation floor, with the measured floor), and
/// says so in the JSON summary.
#[test]
fn default_method_solves_ordinary_pairs_and_stores_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = [
        ("exp(-((x-0.5)^2+(y-0.5)^2)/0.02)", "uniform"),
        (
            "exp(-((x-0.3)^2+(y-0.3)^2)/0.005)+exp(-((x-0.7)^2+(y-0.6)^2)/0.005)",
            "exp(-((x-0.3)^2+(y-0.7)^2)/0.005)+exp(-((x-0.7)^2+(y-0.3)^2)/0.005)",
        ),
    ];
    for (source, target) in pairs {
        let args = [
            "ot", "--grid", "128x128", "--source", source, "--target", target, "--out", "r.h5",
            "--json",
        ];
        let o = otgrid(&args, dir.path());
        assert!(o.status.success(), "{source}: {}", String::from_utf8_lossy(&o.stderr));
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let outcome = json["outcome"].as_str().unwrap();
        assert!(matches!(outcome, "converged" | "discretisation_floor"), "{json}");
        assert_eq!(json["method"], "bfm");
        let r = Results::read(&dir.path().join("r.h5")).unwrap();
        assert!(matches!(r.attributes().get("outcome"), Some(AttrValue::Text(t)) if t == outcome));
        if outcome == "discretisation_floor" {
            assert!(
                json["discretisation_floor"].as_f64().unwrap()
                    > json["tolerance"].as_f64().unwrap()
            );
        }
    }
    // Newton on a target with two separated bumps: refused at once, naming the method to
    // use; on the Gaussian (tails 1e-11 of the peak) → uniform: solved through the lift.
    let start = std::time::Instant::now();
    let o = otgrid(
        &[
            "ot", "--grid", "64x64", "--source", pairs[1].0, "--target", pairs[1].1, "--method",
            "newton",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("separated modes") && err.contains("use --method bfm"), "{err}");
    assert!(start.elapsed().as_secs_f64() < 1.0);
    let o = otgrid(
        &[
            "ot", "--grid", "64x64", "--source", pairs[0].0, "--target", "uniform", "--method",
            "newton", "--out", "n.h5", "--json",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["outcome"], "converged", "{json}");
    std::fs::remove_file(dir.path().join("n.h5")).unwrap();
    std::fs::remove_file(dir.path().join("n.xmf")).ok();
    // A time limit is an outcome, not a crash: nothing written without --keep-unconverged.
    let o = otgrid(
        &[
            "ot",
            "--grid",
            "64x64",
            "--source",
            pairs[1].0,
            "--target",
            pairs[1].1,
            "--time-limit",
            "1e-6",
            "--out",
            "t.h5",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("time_limit"));
    assert!(!dir.path().join("t.h5").exists());
}

/// `otgrid verify --suite zoo --list` names every zoo case with its dimension.
#[test]
fn verify_lists_the_zoo() {
    let dir = tempfile::tempdir().unwrap();
    let o = otgrid(&["verify", "--suite", "zoo", "--list"], dir.path());
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for name in
        ["gaussian-uniform", "disk-annulus", "mixture-2d", "double-well-gaussian", "mixture-3d"]
    {
        assert!(text.contains(name), "{name} missing: {text}");
    }
}

/// `otgrid verify --suite flows` lists its cases, runs two as JSON with their checks (one
/// of them a far target, whose steps are the entropic ones), and refuses an unknown case or
/// a method.
#[test]
fn verify_runs_the_flow_zoo() {
    let dir = tempfile::tempdir().unwrap();
    let o = otgrid(&["verify", "--suite", "flows", "--list"], dir.path());
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for name in ["torus-seam", "compact-heat", "kl-two-bumps", "porous-m2", "torus-3d"] {
        assert!(text.contains(name), "{name} missing: {text}");
    }
    let o = otgrid(&["verify", "--suite", "flows", "--case", "torus-seam", "--json"], dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["solved"], 1, "{v}");
    assert!(v["rows"][0]["first_error"].as_f64().unwrap() < 0.5 / 64.0, "{v}");
    assert_eq!(v["rows"][0]["entropic_steps"], 0, "{v}");
    // A far target: every step is the entropic one, and the case is solved.
    let o = otgrid(&["verify", "--suite", "flows", "--case", "js-far", "--json"], dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["solved"], 1, "{v}");
    assert_eq!(v["rows"][0]["entropic_steps"], 3, "{v}");
    let o = otgrid(&["verify", "--suite", "flows", "--case", "nope"], dir.path());
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown flow case"));
    let o = otgrid(&["verify", "--suite", "flows", "--method", "bfm"], dir.path());
    assert!(!o.status.success());
}

/// A PNG image with large zero regions (the zoo's `shapes` source drawn as a grayscale
/// image: an L-shaped block, a half-grey bar, black elsewhere) solves with the default
/// settings onto a disk given as an expression, and its W₂² matches the zoo case sampled
/// directly to within the 8-bit quantisation of the grey bar (measured 2.6e-4 relative).
#[test]
fn a_png_with_zero_regions_solves_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let n = 128usize;
    let mut pixels = vec![0u8; n * n];
    for row in 0..n {
        // The top image row is the largest y.
        let y = (n - 1 - row) as f64 / n as f64 + 0.5 / n as f64;
        for col in 0..n {
            let x = (col as f64 + 0.5) / n as f64;
            let inside =
                |x0: f64, x1: f64, y0: f64, y1: f64| x >= x0 && x <= x1 && y >= y0 && y <= y1;
            pixels[row * n + col] = if inside(0.1, 0.5, 0.1, 0.25) || inside(0.1, 0.25, 0.1, 0.8) {
                255
            } else if inside(0.6, 0.9, 0.1, 0.2) {
                128
            } else {
                0
            };
        }
    }
    let file = std::fs::File::create(dir.path().join("shapes.png")).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), n as u32, n as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header().unwrap().write_image_data(&pixels).unwrap();
    let disk = "0.5+0.5*signum(0.0625-((x-0.62)^2+(y-0.6)^2))";
    let grid = format!("{n}x{n}");
    let o = otgrid(
        &[
            "ot",
            "--grid",
            &grid,
            "--source",
            "shapes.png",
            "--target",
            disk,
            "--out",
            "p.h5",
            "--json",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png_run: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let o = otgrid(
        &[
            "ot",
            "--grid",
            &grid,
            "--source",
            "case:shapes",
            "--target",
            "case:shapes",
            "--out",
            "c.h5",
            "--json",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let case_run: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for run in [&png_run, &case_run] {
        assert!(
            matches!(run["outcome"].as_str(), Some("converged" | "discretisation_floor")),
            "{run}"
        );
    }
    let (a, b) =
        (png_run["w2_squared"].as_f64().unwrap(), case_run["w2_squared"].as_f64().unwrap());
    assert!((a - b).abs() < 5e-3 * b, "PNG {a} vs case {b}");
}
