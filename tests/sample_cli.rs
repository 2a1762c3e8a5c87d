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
