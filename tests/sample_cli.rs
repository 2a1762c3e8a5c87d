//! `otgrid push` and `otgrid sample` end to end: an `otgrid ot` result pushes points in every
//! file format, generates reproducible samples, and bad input fails with one line and no file.

use std::path::Path;
use std::process::Command;

fn otgrid(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_otgrid")).args(args).current_dir(cwd).output().unwrap()
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

fn read_csv(path: &Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

#[test]
fn push_and_sample_through_an_ot_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Gaussian → Gaussian with diagonal covariances: T(x) = m₂ + diag(0.75, 1.25)(x − m₁).
    let ot = otgrid(
        &[
            "ot",
            "--grid",
            "128x128",
            "--source",
            "gaussian:0.4,0.45:0.0064,0,0,0.0064",
            "--target",
            "gaussian:0.6,0.55:0.0036,0,0,0.01",
            "--out",
            "map.h5",
            "-q",
        ],
        d,
    );
    assert!(ot.status.success(), "{}", String::from_utf8_lossy(&ot.stderr));
    std::fs::write(d.join("in.csv"), "x,y\n0.4,0.45\n0.45,0.4\n0.35,0.5\n").unwrap();
    let exact = |p: &[f64]| [0.6 + 0.75 * (p[0] - 0.4), 0.55 + 1.25 * (p[1] - 0.45)];
    for out in ["out.csv", "out.npy", "out.h5"] {
        let o =
            otgrid(&["push", "--map", "map.h5", "--points", "in.csv", "--out", out, "--json"], d);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(json(&o)["points"], 3);
        // Back through --inverse, from each format, to CSV.
        let back = format!("back_{out}.csv");
        let o = otgrid(
            &["push", "--map", "map.h5", "--points", out, "--inverse", "--out", &back, "-q"],
            d,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for (p, q) in [[0.4, 0.45], [0.45, 0.4], [0.35, 0.5]].iter().zip(read_csv(&d.join(&back))) {
            assert!((p[0] - q[0]).abs() < 2e-3 && (p[1] - q[1]).abs() < 2e-3, "{p:?} {q:?}");
        }
    }
    for (p, t) in [[0.4, 0.45], [0.45, 0.4], [0.35, 0.5]].iter().zip(read_csv(&d.join("out.csv"))) {
        let e = exact(p);
        assert!(
            (e[0] - t[0]).abs() < 2e-3 && (e[1] - t[1]).abs() < 2e-3,
            "{p:?}: {t:?} against {e:?}"
        );
    }
    // Sampling: reproducible from the seed, with the target's moments.
    let args = ["sample", "--map", "map.h5", "-n", "20000", "--seed", "5", "--json"];
    let a = otgrid(&[&args[..], &["--out", "a.csv"]].concat(), d);
    let b = otgrid(&[&args[..], &["--out", "b.csv", "--source-out", "s.npy"]].concat(), d);
    assert!(a.status.success() && b.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(std::fs::read(d.join("a.csv")).unwrap(), std::fs::read(d.join("b.csv")).unwrap());
    assert!(d.join("s.npy").exists());
    let r = json(&a);
    let mean = r["mean"].as_array().unwrap();
    assert!((mean[0].as_f64().unwrap() - 0.6).abs() < 3e-3, "{mean:?}");
    assert!((mean[1].as_f64().unwrap() - 0.55).abs() < 3e-3, "{mean:?}");
    let cov = r["covariance"].as_array().unwrap();
    assert!((cov[0][0].as_f64().unwrap() - 0.0036).abs() < 2e-4, "{cov:?}");
    assert!((cov[1][1].as_f64().unwrap() - 0.01).abs() < 4e-4, "{cov:?}");
    // Distances: a set against itself is at 0; the assignment W₂ for equal sizes.
    for (seed, n, out) in [("1", "500", "c1.npy"), ("2", "500", "c2.npy"), ("3", "700", "c3.npy")] {
        let source = format!("s{out}");
        let args = ["sample", "--map", "map.h5", "-n", n, "--seed", seed, "--out", out];
        let o = otgrid(&[&args[..], &["--source-out", &source]].concat(), d);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = otgrid(&["compare", "c1.npy", "c2.npy", "--json"], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let w2 = json(&o)["w2"].as_f64().unwrap();
    assert!(w2 > 0.0 && w2 < 0.05, "{w2}");
    // The Sinkhorn divergence of unequal sizes (500 + 700): positive, below W₂² scale.
    let o = otgrid(&["compare", "c1.npy", "c3.npy", "--sinkhorn", "--json"], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = json(&o);
    let s = r["sinkhorn_divergence"].as_f64().unwrap();
    assert!(s > 0.0 && s < 2.5e-3 && r["sinkhorn_converged"] == true, "{r}");
    let o = otgrid(&["compare", "c1.npy", "c1.npy", "--json"], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = json(&o);
    for key in ["sliced_w2", "mmd2_gaussian", "energy_distance"] {
        assert!(r[key].as_f64().unwrap().abs() < 1e-12, "{key}: {}", r[key]);
    }
    assert!(r["w2"].as_f64().unwrap().abs() < 1e-12);
    let o = otgrid(
        &["compare", "c1.npy", "a.csv", "--sigma", "0.1", "--directions", "50", "--json"],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(json(&o)["w2"].is_string(), "unequal sizes: no assignment");
    let o = otgrid(&["compare", "c1.npy", "sc1.npy", "--sigma", "0.1", "--json"], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sw = json(&o)["sliced_w2"].as_f64().unwrap();
    assert!(sw > 0.05, "generated against source samples: {sw}");
    // The generated samples as a target (KDE and cloud in cell): a plug-in map.
    for spec in ["samples:a.csv", "samples:a.csv:cic", "samples:a.csv:kde=0.02"] {
        let o = otgrid(
            &[
                "ot",
                "--grid",
                "64x64",
                "--source",
                "gaussian:0.4,0.45:0.0064,0,0,0.0064",
                "--target",
                spec,
                "--out",
                "plug.h5",
                "--json",
            ],
            d,
        );
        assert!(o.status.success(), "{spec}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(json(&o)["outcome"], "converged", "{spec}");
    }
    for (spec, needle) in
        [("samples:a.csv:kde=-1", "bandwidth"), ("samples:missing.npy", "no such file")]
    {
        let args =
            ["ot", "--grid", "64x64", "--source", "uniform", "--target", spec, "--out", "x.h5"];
        let o = otgrid(&args, d);
        assert!(
            !o.status.success() && String::from_utf8_lossy(&o.stderr).contains(needle),
            "{spec}"
        );
        assert!(!d.join("x.h5").exists());
    }
}

#[test]
fn bad_push_and_sample_input_fails_with_one_line_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ot = otgrid(
        &[
            "ot",
            "--grid",
            "32x32",
            "--source",
            "gaussian:0.5,0.5:0.01,0,0,0.01",
            "--target",
            "uniform",
            "--out",
            "map.h5",
            "-q",
        ],
        d,
    );
    assert!(ot.status.success(), "{}", String::from_utf8_lossy(&ot.stderr));
    std::fs::write(d.join("outside.csv"), "0.5,0.5\n1.5,0.5\n").unwrap();
    std::fs::write(d.join("three.csv"), "0.5,0.5,0.5\n").unwrap();
    std::fs::write(d.join("nan.csv"), "0.5,0.5\nnan,0.5\n").unwrap();
    std::fs::write(d.join("text.csv"), "0.5,0.5\nhello\n").unwrap();
    std::fs::write(d.join("not.h5"), "not hdf5").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["push", "--map", "map.h5", "--points", "outside.csv", "--out", "o.csv"], "point 1"),
        (vec!["push", "--map", "map.h5", "--points", "three.csv", "--out", "o.csv"], "2 columns"),
        (vec!["push", "--map", "map.h5", "--points", "nan.csv", "--out", "o.csv"], "point 1"),
        (vec!["push", "--map", "map.h5", "--points", "text.csv", "--out", "o.csv"], "line 2"),
        (
            vec!["push", "--map", "map.h5", "--points", "missing.csv", "--out", "o.csv"],
            "no such file",
        ),
        (vec!["push", "--map", "not.h5", "--points", "outside.csv", "--out", "o.csv"], "HDF5"),
        (vec!["push", "--map", "map.h5", "--points", "outside.csv", "--out", "o.dat"], "extension"),
        (vec!["push", "--map", "map.h5", "--points", "three.csv", "--out", "three.csv"], "inputs"),
        (vec!["sample", "--map", "map.h5", "-n", "0", "--out", "o.csv"], "at least 1"),
        (vec!["sample", "--map", "missing.h5", "-n", "5", "--out", "o.csv"], "no such file"),
    ];
    for (args, needle) in cases {
        let o = otgrid(&args, d);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(!d.join("o.csv").exists() && !d.join("o.dat").exists(), "{args:?} left a file");
    }
    let o = otgrid(
        &[
            "push",
            "--map",
            "map.h5",
            "--points",
            "outside.csv",
            "--out",
            "o.csv",
            "--interpolation",
            "quintic",
        ],
        d,
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown interpolation 'quintic'"));
}

/// `otgrid ot --method parabolic --batch B` learns a map from a sample file one batch per
/// step: the run takes its step budget (outcome `completed`, exit 0), writes the per-step
/// diagnostics, moves toward the sample density's map (KL to the all-sample deposit falls),
/// and is the same for the same seed; misuse fails with one line and no file.
#[test]
fn the_sample_based_flow_runs_from_a_sample_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ot = otgrid(
        &[
            "ot",
            "--grid",
            "32x32",
            "--source",
            "uniform",
            "--target",
            "0.5 + exp(-((x-0.4)^2+(y-0.55)^2)/0.03)",
            "--out",
            "map.h5",
            "-q",
        ],
        d,
    );
    assert!(ot.status.success(), "{}", String::from_utf8_lossy(&ot.stderr));
    let s = otgrid(&["sample", "--map", "map.h5", "-n", "20000", "--out", "data.npy", "-q"], d);
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    // `--flag value` pairs override the defaults below.
    let run = |out: &str, extra: &[&str]| {
        let mut pairs = [
            ("--grid", "32x32"),
            ("--source", "uniform"),
            ("--target", "samples:data.npy"),
            ("--method", "parabolic"),
            ("--batch", "1000"),
            ("--max-iterations", "40"),
            ("--out", out),
        ];
        let mut flags = vec![];
        for e in extra.chunks(2) {
            match (pairs.iter_mut().find(|(k, _)| *k == e[0]), e.get(1)) {
                (Some(pair), Some(v)) => pair.1 = v,
                _ => flags.extend_from_slice(e),
            }
        }
        let mut args = vec!["ot", "--json"];
        args.extend(pairs.iter().flat_map(|(k, v)| [*k, *v]));
        args.extend(flags);
        otgrid(&args, d)
    };
    let o = run("flow.h5", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert_eq!(j["outcome"], "completed");
    assert_eq!(j["iterations"], 40);
    let file = otgrid::io::Output::read(&d.join("flow.h5")).unwrap();
    for name in ["batch_kl", "average_kl_divergence", "cumulative_regret", "kl_divergence"] {
        assert!(file.diagnostics().contains_key(name), "{name} missing");
    }
    let kl = file.diagnostics()["kl_divergence"].clone();
    assert!(kl.last().unwrap() < &(0.2 * kl[0]), "{kl:?}");
    let again = run("again.h5", &["--average", "--bandwidth", "0.05"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    // The diagnostics against the known density the samples came from.
    let known = run("known.h5", &["--true-target", "0.5 + exp(-((x-0.4)^2+(y-0.55)^2)/0.03)"]);
    assert!(known.status.success(), "{}", String::from_utf8_lossy(&known.stderr));
    let file = otgrid::io::Output::read(&d.join("known.h5")).unwrap();
    let kl = &file.diagnostics()["kl_divergence"];
    assert!(kl.last().unwrap() < &(0.2 * kl[0]), "{kl:?}");
    let first = json(&o)["marginal_error"].as_f64().unwrap();
    let o2 = run("flow2.h5", &[]);
    assert_eq!(json(&o2)["marginal_error"].as_f64().unwrap(), first);
    for (extra, message) in [
        (&["--method", "bfm"][..], "--batch applies to --method parabolic"),
        (&["--target", "samples:data.npy:cic"][..], "KDE"),
        (&["--target", "uniform"][..], "samples:FILE"),
        (&["--batch", "1"][..], "at least 2"),
        (
            &["--target", "samples:data.npy:kde=0.04", "--bandwidth", "0.05"][..],
            "--bandwidth applies",
        ),
        (&["--bandwidth", "0"][..], "--bandwidth must be positive"),
    ] {
        let o = run("bad.h5", extra);
        assert!(!o.status.success(), "{extra:?}");
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(err.contains(message), "{extra:?}: {err}");
        assert!(!d.join("bad.h5").exists());
    }
}

/// `otgrid study batches` at a small size writes its three tables and the plot, and reports
/// the fitted bias order and noise exponents.
#[test]
fn the_batch_study_writes_tables_and_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = otgrid(
        &[
            "study",
            "batches",
            "--grid",
            "24x24",
            "--steps",
            "20",
            "--bandwidths",
            "1,2",
            "--bias-batch",
            "2000",
            "--noise-etas",
            "0.01,0.1",
            "--noise-batches",
            "500,4000",
            "--noise-steps",
            "40",
            "--out",
            "s",
            "--json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert!(j["bias_order"].as_f64().unwrap().is_finite());
    assert!(j["noise_exponent_eta"].as_f64().unwrap() > 0.0);
    assert_eq!(read_csv_rows(&d.join("s_schedules.csv")), 60);
    assert_eq!(read_csv_rows(&d.join("s_bias.csv")), 2);
    assert_eq!(read_csv_rows(&d.join("s_noise.csv")), 4);
    if j.get("png").is_some() {
        assert!(d.join("s.png").exists());
    }
    let bad = otgrid(&["study", "batches", "--bandwidths", "1", "--out", "t"], d);
    assert!(!bad.status.success());
    assert!(!d.join("t_schedules.csv").exists());
}

fn read_csv_rows(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().skip(1).count()
}

/// `otgrid study generalization` at a small size writes its three tables and the plot; an
/// unknown target is a one-line error and writes nothing.
#[test]
fn the_generalization_study_writes_tables_and_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = otgrid(
        &[
            "study",
            "generalization",
            "--grid",
            "24x24",
            "--targets",
            "elliptic,double-well",
            "--sizes",
            "100,1000",
            "--repetitions",
            "2",
            "--compared",
            "200",
            "--deltas",
            "0.1,0.3",
            "--out",
            "g",
            "--json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert_eq!(j["targets"].as_array().unwrap().len(), 2);
    assert!(j["robustness_exponent"].as_f64().unwrap().is_finite());
    assert_eq!(read_csv_rows(&d.join("g_samples.csv")), 2 * 2 * 2);
    assert_eq!(read_csv_rows(&d.join("g_targets.csv")), 2);
    assert_eq!(read_csv_rows(&d.join("g_robustness.csv")), 2);
    let bad = otgrid(&["study", "generalization", "--targets", "wave", "--out", "h"], d);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("unknown PDE target 'wave'") && err.lines().count() == 1, "{err}");
    assert!(!d.join("h_samples.csv").exists());
}
