//! `otgrid flow` end to end: a Fokker–Planck flow and a porous-medium flow write a ParaView
//! time series with per-step diagnostics; bad input fails with one line and no file.

use otgrid::io::{AttrValue, Output};
use std::path::Path;
use std::process::Command;

fn otgrid(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_otgrid")).args(args).current_dir(cwd).output().unwrap()
}

/// `otgrid flow` from the off-centre Gaussian the tests share, on `grid`, with `energy`'s
/// terms and then `rest`.
fn gaussian_flow<'a>(grid: &'a str, energy: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["flow", "--grid", grid, "--initial", "gaussian:0.35,0.4:0.01,0,0,0.01"];
    for term in energy {
        args.extend(["--energy", term]);
    }
    args.extend_from_slice(rest);
    args
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn flows_write_time_series_with_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fp = [
        "flow",
        "--grid",
        "48x48",
        "--initial",
        "gaussian:0.35,0.4:0.01,0,0,0.01",
        "--energy",
        "entropy:0.05",
        "--energy",
        "potential:2*((x-0.5)^2+(y-0.5)^2)",
        "--tau",
        "0.01",
        "--t-end",
        "0.05",
        "--snapshots",
        "5",
        "--out",
        "fp.h5",
        "--json",
    ];
    let o = otgrid(&fp, d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["steps"], 5);
    assert!(v["relative_mass_drift"].as_f64().unwrap() < 1e-12);
    assert!(v["energy"]["last"].as_f64() < v["energy"]["first"].as_f64());
    let out = Output::read(&d.join("fp.h5")).unwrap();
    assert_eq!(out.steps().len(), 6, "t = 0 and five steps");
    let energy = &out.diagnostics()["energy"];
    assert_eq!(energy.len(), 5);
    assert!(energy.windows(2).all(|w| w[1] <= w[0]), "{energy:?}");
    // Each step's primal–dual gap is far below its objective W₂²/(2τ) ≈ 2.5e-3.
    let gap = &out.diagnostics()["dual_gap"];
    assert!(gap.iter().all(|g| g.abs() < 1e-4), "{gap:?}");
    assert!(matches!(out.attributes()["problem"], AttrValue::Text(ref t) if t == "flow"));
    assert!(d.join("fp.xmf").exists());
    // A porous-medium flow from a compact bump keeps its mass and stays non-negative.
    let pme = [
        "flow",
        "--grid",
        "32x32",
        "--initial",
        "max(0.1-4*((x-0.5)^2+(y-0.5)^2),0)",
        "--energy",
        "porous:2,0.1",
        "--tau",
        "0.002",
        "--steps",
        "4",
        "--out",
        "pme.h5",
        "--json",
    ];
    let v = json(&otgrid(&pme, d));
    assert_eq!(v["status"], "ok", "{v}");
    assert!(v["relative_mass_drift"].as_f64().unwrap() < 1e-12);
    assert!(v["min_density"].as_f64().unwrap() >= 0.0);
}

/// `--scheme bdf2` (and `scheme = "bdf2"` in a problem file): every step after the first is
/// a BDF2 step — reported in the JSON (`scheme`, `bdf2_steps`), in `/diagnostics/bdf2` and
/// the `scheme` attribute — and the flow lands closer to the exact Ornstein–Uhlenbeck
/// solution than the JKO scheme's (the mean, exact `c + (m₀ − c)e^{−at}`).
#[test]
fn bdf2_flows_report_their_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = "grid = { shape = [48, 48] }\ninitial = \"gaussian:0.35,0.4:0.01,0,0,0.01\"\n\
                energy = [\"entropy:0.05\", \"potential:2*((x-0.5)^2+(y-0.5)^2)\"]\n\
                [time]\ntau = 0.05\nsteps = 4\n";
    std::fs::write(d.join("ou.toml"), format!("{text}scheme = \"bdf2\"\n")).unwrap();
    let o = otgrid(&["flow", "--problem", "ou.toml", "--out", "bdf2.h5", "--json"], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    assert_eq!(v["scheme"], "bdf2");
    assert_eq!(v["bdf2_steps"], 3);
    assert_eq!(v["parameters"]["scheme"], "bdf2");
    let out = Output::read(&d.join("bdf2.h5")).unwrap();
    assert_eq!(out.diagnostics()["bdf2"], vec![0.0, 1.0, 1.0, 1.0]);
    assert!(matches!(out.attributes()["scheme"], AttrValue::Text(ref t) if t == "bdf2"));
    // The same flow by the JKO scheme, from the flags.
    let flags = [
        "flow",
        "--grid",
        "48x48",
        "--initial",
        "gaussian:0.35,0.4:0.01,0,0,0.01",
        "--energy",
        "entropy:0.05",
        "--energy",
        "potential:2*((x-0.5)^2+(y-0.5)^2)",
        "--tau",
        "0.05",
        "--steps",
        "4",
    ];
    let mean_error = |scheme: &str, file: &str| {
        let mut args = flags.to_vec();
        args.extend(["--scheme", scheme, "--out", file, "--json"]);
        let o = otgrid(&args, d);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = Output::read(&d.join(file)).unwrap();
        let Some(otgrid::io::Field::Scalar(rho)) = out.fields().get("rho") else {
            panic!("no scalar field rho")
        };
        let grid = rho.grid().clone();
        let (mut m, mut mass) = ([0.0; 2], 0.0);
        for (i, r) in rho.data().indexed_iter() {
            let mut x = [0.0; 2];
            grid.cell_center(&[i[0], i[1]], &mut x);
            m[0] += r * x[0];
            m[1] += r * x[1];
            mass += r;
        }
        let decay = (-4.0f64 * 0.2).exp();
        let exact = [0.5 + (0.35 - 0.5) * decay, 0.5 + (0.4 - 0.5) * decay];
        ((m[0] / mass - exact[0]).powi(2) + (m[1] / mass - exact[1]).powi(2)).sqrt()
    };
    let (jko, bdf2) = (mean_error("jko", "jko.h5"), mean_error("bdf2", "b.h5"));
    assert!(bdf2 < jko / 3.0, "mean errors: BDF2 {bdf2:e}, JKO {jko:e}");
}

/// A step whose dual ascent stalls is the entropic one (its JKO objective is lower), and its
/// warning says why the ascent stalled: against a target negligible over most of the density
/// (the flow zoo's `hellinger-far`), or above the grid's floor (JS to a two-bump target at
/// 32²). Both runs write their file, with `/diagnostics/entropic`, and exit 0.
#[test]
fn stalled_steps_are_entropic_steps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |initial: &str, energy: &str, steps: &str, out: &str| {
        let args = ["flow", "--grid", "32x32", "--initial", initial, "--energy", energy];
        let args =
            [&args[..], &["--tau", "0.01", "--steps", steps, "--out", out, "--json"]].concat();
        let o = otgrid(&args, d);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (json(&o), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (v, log) = run(
        "gaussian:0.35,0.4:0.01,0,0,0.01",
        "hellinger:gaussian:0.8,0.2:0.005,0,0,0.005",
        "2",
        "far.h5",
    );
    // The dual ascent stalls against the far target: both steps are the entropic ones,
    // each says so, and the energy falls.
    assert_eq!(v["step_outcomes"]["stalled"], 0, "{v}");
    assert_eq!(v["step_outcomes"]["entropic"], 2, "{v}");
    assert_eq!(log.matches("the step is the entropic one").count(), 2, "{log}");
    assert!(!log.contains("a smaller τ helps"), "{log}");
    let (first, last) =
        (v["energy"]["first"].as_f64().unwrap(), v["energy"]["last"].as_f64().unwrap());
    assert!(last < 0.85 * first, "{v}");
    let out = Output::read(&d.join("far.h5")).unwrap();
    assert_eq!(out.diagnostics()["entropic"], vec![1.0, 1.0]);
    let energy = &out.diagnostics()["energy"];
    assert!(energy[1] < energy[0] && energy[0] < first, "{energy:?}");
    let bumps = "js:exp(-((x-0.3)^2+(y-0.3)^2)/0.0098)+exp(-((x-0.7)^2+(y-0.7)^2)/0.0098)";
    let (v, log) = run("gaussian:0.4,0.45:0.02,0,0,0.02", bumps, "1", "js.h5");
    // Not a far target: its stalled step is the entropic one too, and says why it stalled.
    assert_eq!(v["step_outcomes"]["stalled"], 0, "{v}");
    assert_eq!(v["step_outcomes"]["entropic"], 1, "{v}");
    assert!(log.contains("above the grid's floor; the step is the entropic one"), "{log}");
    assert_eq!(Output::read(&d.join("js.h5")).unwrap().diagnostics()["entropic"], vec![1.0]);
    assert!(d.join("far.h5").exists() && d.join("js.h5").exists());
}

/// Non-local terms from the command line: an MMD flow with no internal term (Lagrangian
/// steps) and an aggregation flow (entropy + quadratic interaction) descend, keep their mass
/// and record their fixed points.
#[test]
fn nonlocal_flows_record_their_fixed_points() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let initial = "gaussian:0.3,0.3:0.005,0,0,0.005";
    for (energy, out) in [
        (vec!["--energy", "mmd:distance:gaussian:0.7,0.6:0.01,0,0,0.01"], "mmd.h5"),
        (vec!["--energy", "entropy:0.002", "--energy", "interaction:0.5*(x^2+y^2)"], "agg.h5"),
    ] {
        let mut args = vec!["flow", "--grid", "32x32", "--initial", initial];
        args.extend(energy);
        args.extend(["--tau", "0.02", "--steps", "4", "--out", out, "--json"]);
        let o = otgrid(&args, d);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v = json(&o);
        assert!(v["relative_mass_drift"].as_f64().unwrap() < 1e-12, "{v}");
        assert!(v["min_density"].as_f64().unwrap() >= 0.0, "{v}");
        assert!(v["energy"]["last"].as_f64() < v["energy"]["first"].as_f64(), "{v}");
        assert!(v["fixed_point_solves"].as_u64().unwrap() >= 8, "{v}");
        let out = Output::read(&d.join(out)).unwrap();
        let solves = &out.diagnostics()["fixed_point_iterations"];
        assert_eq!(solves.len(), 4);
        assert!(out.diagnostics()["fixed_point_change"].iter().all(|c| *c <= 1e-2));
    }
}

/// `--tau-sweep` runs the flow to one end time per τ and writes the CSV (one row per τ,
/// the step counts T/τ, W₂ to the KL target by bfm) and the PNG plot; `--w2-target` adds W₂
/// to the target at every snapshot, falling along a KL flow.
#[test]
fn tau_sweep_and_w2_to_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = [
        "flow",
        "--grid",
        "32x32",
        "--initial",
        "gaussian:0.35,0.4:0.01,0,0,0.01",
        "--energy",
        "kl:gaussian:0.6,0.55:0.01,0,0,0.01",
        "--t-end",
        "0.2",
        "--json",
    ];
    let mut args = base.to_vec();
    args.extend(["--tau-sweep", "0.1,0.05,0.02", "--out", "study/kl.h5"]);
    let o = otgrid(&args, d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    let rows = v["tau_sweep"].as_array().unwrap();
    let steps: Vec<u64> = rows.iter().map(|r| r["steps"].as_u64().unwrap()).collect();
    assert_eq!(steps, [2, 4, 10]);
    assert!(rows.iter().all(|r| r["w2_target"].as_f64().unwrap() < 0.3), "{v}");
    let csv = std::fs::read_to_string(d.join("study/kl_tau_sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("scheme,tau,steps,energy,normalised_energy,w2_target,"));
    assert!(csv.lines().skip(1).all(|l| l.starts_with("jko,")), "{csv}");
    assert_eq!(v["scheme"], "jko", "{v}");
    assert!(rows.iter().all(|r| r["scheme"] == "jko"), "{v}");
    let font = Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").exists();
    assert_eq!(d.join("study/kl_tau_sweep.png").exists(), font, "{v}");
    if font {
        let png = std::fs::read(d.join("study/kl_tau_sweep.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
    assert!(!d.join("study/kl.h5").exists(), "a sweep writes no HDF5");
    // A BDF2 sweep names its scheme in the JSON and in every CSV row.
    let mut args = base.to_vec();
    args.extend(["--tau-sweep", "0.1,0.05", "--scheme", "bdf2", "--out", "study/bdf2.h5"]);
    let o = otgrid(&args, d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    assert_eq!(v["scheme"], "bdf2", "{v}");
    let csv = std::fs::read_to_string(d.join("study/bdf2_tau_sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.starts_with("bdf2,")), "{csv}");
    let mut args = base.to_vec();
    args.extend(["--tau", "0.02", "--snapshots", "5", "--w2-target", "--out", "kl.h5"]);
    let v = json(&otgrid(&args, d));
    assert_eq!(v["status"], "ok", "{v}");
    let out = Output::read(&d.join("kl.h5")).unwrap();
    let w2 = &out.diagnostics()["w2_target"];
    assert_eq!(w2.len(), 6, "t = 0 and five snapshots");
    assert!(w2.windows(2).all(|w| w[1] <= w[0]) && w2[5] < 0.01, "{w2:?}");
    assert!((w2[0] - 0.25f64.hypot(0.15)).abs() < 0.02, "W₂ of the shifted Gaussians: {w2:?}");
}

#[test]
fn bad_flows_fail_with_one_line_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = ["flow", "--grid", "16x16", "--initial", "uniform", "--out", "bad.h5"];
    for (extra, needle) in [
        (vec!["--energy", "entropy:0.1", "--tau", "0", "--steps", "2"], "τ"),
        (vec!["--energy", "entropy:0.1", "--tau", "0.01"], "--steps or --t-end"),
        (vec!["--energy", "mmd:gaussian(0):uniform", "--tau", "0.01", "--steps", "2"], "width"),
        (vec!["--energy", "mmd:distance", "--tau", "0.01", "--steps", "2"], "mmd:KERNEL:SPEC"),
        (
            vec!["--energy", "entropy:0.1", "--tau-sweep", "0.5,0.01", "--t-end", "0.1"],
            "longer than the end time",
        ),
        (vec!["--energy", "heat:1", "--tau", "0.01", "--steps", "2"], "unknown kind"),
        (
            vec!["--energy", "entropy:1", "--energy", "porous:2", "--tau", "0.01", "--steps", "2"],
            "more than one",
        ),
        (vec!["--energy", "porous:0.5", "--tau", "0.01", "--steps", "2"], "m > 1"),
        (vec!["--energy", "kl:x-0.5", "--tau", "0.01", "--steps", "2"], "positive everywhere"),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let o = otgrid(&args, d);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle) && err.trim().lines().count() == 1, "{needle}: {err}");
        assert!(!d.join("bad.h5").exists(), "{args:?} left a file");
    }
    // Problem files: an unknown key, no energy term, both steps and t_end, flags besides.
    for (text, needle) in [
        ("grid = { shape = [16, 16] }\ninitial = \"uniform\"\nenergy = [\"entropy:1\"]\n[time]\ntau = 0.01\nsteps = 2\ndt = 1\n", "dt"),
        ("grid = { shape = [16, 16] }\ninitial = \"uniform\"\nenergy = []\n[time]\ntau = 0.01\nsteps = 2\n", "no term"),
        ("grid = { shape = [16, 16] }\ninitial = \"uniform\"\nenergy = [\"entropy:1\"]\n[time]\ntau = 0.01\nsteps = 2\nt_end = 1\n", "not both"),
        ("grid = { shape = [16, 16] }\ninitial = \"uniform\"\nenergy = [\"entropy:1\"]\n[time]\ntau = 0.01\nsteps = 2\nscheme = \"bdf3\"\n", "jko, bdf2"),
    ] {
        std::fs::write(d.join("bad.toml"), text).unwrap();
        let o = otgrid(&["flow", "--problem", "bad.toml", "--out", "bad.h5"], d);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(needle) && err.trim().lines().count() == 1, "{needle}: {err}");
        assert!(!d.join("bad.h5").exists(), "{text} left a file");
    }
}

/// A potential given as a dataset (`potential:FILE.h5:/DATASET`) is the same energy as the
/// expression it was sampled from: the flow reading the first run's `/fields/potential`
/// gives its density bit for bit. An output that would overwrite the energy's input, and a
/// missing file, are one-line errors.
#[test]
fn a_dataset_potential_is_the_expression_it_was_sampled_from() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |potential: &str, out: &str| {
        let rest = ["--tau", "0.01", "--steps", "3", "--out", out, "--json"];
        otgrid(&gaussian_flow("32x32", &["entropy:0.05", potential], &rest), d)
    };
    let rho = |file: &str| {
        let out = Output::read(&d.join(file)).unwrap();
        let Some(otgrid::io::Field::Scalar(rho)) = out.fields().get("rho").cloned() else {
            panic!("{file}: no /fields/rho")
        };
        rho
    };
    let o = run("potential:2*((x-0.5)^2+(y-0.5)^2)", "expr.h5");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run("potential:expr.h5:/fields/potential", "data.h5");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (rho("expr.h5"), rho("data.h5"));
    assert!(a.data().iter().zip(b.data().iter()).all(|(x, y)| x == y), "densities differ");
    let before = std::fs::read(d.join("expr.h5")).unwrap();
    let o = run("potential:expr.h5:/fields/potential", "expr.h5");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("expr.h5"), "{err}");
    assert_eq!(std::fs::read(d.join("expr.h5")).unwrap(), before, "the input was rewritten");
    let o = run("potential:missing.h5:/fields/potential", "m.h5");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no such file") && err.trim().lines().count() == 1, "{err}");
    assert!(!d.join("m.h5").exists());
}

/// `--displacements` writes each snapshot's step displacement beside its density: a vector
/// field `displacement` in every /steps entry (zero at t = 0), listed in the XDMF time
/// series; without the flag there is none.
#[test]
fn displacements_are_written_with_the_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = |out: &'static str, extra: &'static [&'static str]| {
        let energy = ["entropy:0.05", "potential:2*((x-0.5)^2+(y-0.5)^2)"];
        let mut rest = vec!["--tau", "0.01", "--steps", "4", "--snapshots", "2", "--out", out];
        rest.extend_from_slice(extra);
        gaussian_flow("32x24", &energy, &rest)
    };
    let o = otgrid(&args("d.h5", &["--displacements"]), d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = Output::read(&d.join("d.h5")).unwrap();
    assert_eq!(out.steps().len(), 3);
    for (k, step) in out.steps().iter().enumerate() {
        let Some(otgrid::io::Field::Vector(v)) = step.fields.get("displacement") else {
            panic!("step {k}: no displacement")
        };
        let largest = v.data().iter().fold(0.0f64, |m, x| m.max(x.abs()));
        if k == 0 {
            assert_eq!(largest, 0.0);
        } else {
            // The OU flow moves mass by a fraction of a cell (h = 1/32) per step.
            assert!(largest > 1e-4 && largest < 0.05, "step {k}: {largest}");
        }
    }
    let xmf = std::fs::read_to_string(d.join("d.xmf")).unwrap();
    assert_eq!(xmf.matches("Attribute Name=\"displacement\" AttributeType=\"Vector\"").count(), 3);
    let o = otgrid(&args("plain.h5", &[]), d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = Output::read(&d.join("plain.h5")).unwrap();
    assert!(out.steps().iter().all(|s| !s.fields.contains_key("displacement")));
}

/// An energy with a target density writes the divergence of each snapshot's unit-mass
/// density to it (`snapshot_divergence`): along a KL flow between Gaussians of equal
/// covariance σ²I it starts at the closed form `|m₀ − m₁|²/(2σ²)` = 4.25 (measured 4.2479
/// at 32²) and falls at every snapshot.
#[test]
fn snapshot_divergences_follow_the_flow() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rest = ["--tau", "0.02", "--steps", "6", "--snapshots", "3", "--out", "kl.h5", "--json"];
    let o = otgrid(&gaussian_flow("32x32", &["kl:gaussian:0.6,0.55:0.01,0,0,0.01"], &rest), d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = Output::read(&d.join("kl.h5")).unwrap();
    let kl = &out.diagnostics()["snapshot_divergence"];
    assert_eq!(kl.len(), 4);
    assert_eq!(out.diagnostics()["snapshot_time"].len(), 4);
    assert!((kl[0] - 4.25).abs() < 1e-2, "{kl:?}");
    assert!(kl.windows(2).all(|w| w[1] < w[0]) && kl[3] >= 0.0 && kl[3] < 1e-3, "{kl:?}");
    assert_eq!(json(&o)["divergence"]["first"].as_f64().unwrap(), kl[0]);
}
