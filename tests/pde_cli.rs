//! `otgrid elliptic|parabolic|fokker-planck` end to end: the shipped examples run, problem
//! files converge at second order, the PDE-induced density pipeline works, and bad input
//! fails cleanly.

use otgrid::analytic::manufactured::observed_orders;
use otgrid::io::{Field, Output};
use std::path::Path;
use std::process::Command;

fn otgrid(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_otgrid")).args(args).current_dir(cwd).output().unwrap()
}

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/problems")
}

fn run_ok(args: &[&str], cwd: &Path) -> String {
    let o = otgrid(args, cwd);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn scalar(out: &Output, name: &str) -> otgrid::ScalarField {
    match &out.fields()[name] {
        Field::Scalar(f) => f.clone(),
        Field::Vector(_) => panic!("{name} is a vector"),
    }
}

#[test]
fn shipped_examples_run() {
    let dir = tempfile::tempdir().unwrap();
    let ex = examples();
    for (cmd, file) in [
        ("elliptic", "poisson_sine"),
        ("elliptic", "mixed_boundaries"),
        ("parabolic", "heat_sine"),
        ("parabolic", "heat_adaptive"),
        ("fokker-planck", "ornstein_uhlenbeck"),
        ("fokker-planck", "double_well"),
    ] {
        let problem = ex.join(format!("{file}.toml"));
        let out = format!("{file}.h5");
        run_ok(&[cmd, problem.to_str().unwrap(), "--out", &out, "-q"], dir.path());
        let back = Output::read(&dir.path().join(&out)).unwrap();
        assert!(dir.path().join(format!("{file}.xmf")).exists());
        match cmd {
            "elliptic" => assert!(back.fields().contains_key("solution")),
            "parabolic" => assert!(back.steps().len() > 5 && back.diagnostics().contains_key("dt")),
            _ => {
                let mass = &back.diagnostics()["mass"];
                assert!(mass.iter().all(|m| ((m - mass[0]) / mass[0]).abs() < 1e-12));
                let ent = &back.diagnostics()["relative_entropy"];
                assert!(ent.windows(2).all(|w| w[1] <= w[0] + 1e-14));
            }
        }
    }
    // The heat example against its exact solution e^{−2π²t} sin πx sin πy.
    let heat = Output::read(&dir.path().join("heat_sine.h5")).unwrap();
    let u = scalar(&heat, "solution");
    let pi = std::f64::consts::PI;
    let exact = otgrid::ScalarField::from_fn(heat.grid(), |p| {
        (-2.0 * pi * pi * 0.05).exp() * (pi * p[0]).sin() * (pi * p[1]).sin()
    });
    let err =
        u.data().iter().zip(exact.data().iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(err < 1e-4, "heat example error {err:e}");
}

/// An elliptic problem file with variable diffusion, an expression source and inhomogeneous
/// Dirichlet/Neumann/Robin data given as expressions converges at second order (the whole
/// TOML → expression → assembly → solve path).
#[test]
fn problem_files_converge_at_second_order() {
    let dir = tempfile::tempdir().unwrap();
    // u = exp(x) sin(2y) + x y, a = 1 + x y: −∇·(a∇u) = −a Δu − ∇a·∇u.
    let u = "exp(x)*sin(2*y) + x*y";
    let ux = "exp(x)*sin(2*y) + y";
    let uy = "2*exp(x)*cos(2*y) + x";
    let lap = "-3*exp(x)*sin(2*y)";
    let source = format!("-(1 + x*y)*({lap}) - (y*({ux}) + x*({uy}))");
    let (mut h, mut e) = (vec![], vec![]);
    for n in [16usize, 32, 64] {
        let text = format!(
            "[grid]\nshape = [{n}, {n}]\nupper = [1.0, 1.5]\nboundary = \"dirichlet\"\n\n\
             [equation]\ndiffusion = \"1 + x*y\"\nsource = \"{source}\"\n\n\
             [boundary]\n\
             x_lower = {{ type = \"dirichlet\", value = \"{u}\" }}\n\
             x_upper = {{ type = \"neumann\", value = \"{ux}\" }}\n\
             y_lower = {{ type = \"robin\", alpha = 3.0, value = \"3*({u}) - ({uy})\" }}\n\
             y_upper = {{ type = \"dirichlet\", value = \"{u}\" }}\n"
        );
        std::fs::write(dir.path().join("p.toml"), text).unwrap();
        run_ok(&["elliptic", "p.toml", "--out", "p.h5", "-q"], dir.path());
        let out = Output::read(&dir.path().join("p.h5")).unwrap();
        let sol = scalar(&out, "solution");
        let exact =
            otgrid::expr::Expression::parse(u, "u").unwrap().sample(out.grid(), 0.0, "u").unwrap();
        let err = sol
            .data()
            .iter()
            .zip(exact.data().iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        h.push(1.0 / n as f64);
        e.push(err);
    }
    let orders = observed_orders(&h, &e);
    assert!(orders.iter().all(|&o| o >= 1.9), "orders {orders:?}, errors {e:?}");
}

/// PDE-induced measure: an elliptic solve written --as-density feeds a Fokker–Planck run
/// through a dataset reference.
#[test]
fn density_pipeline_through_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("e.toml"), "grid = \"unit_square_128\"\n[equation]\nsource = \"exp(-((x-0.3)^2+(y-0.6)^2)/0.01)\"\nreaction = 1.0\n").unwrap();
    run_ok(&["elliptic", "e.toml", "--as-density", "-q"], d);
    let e = Output::read(&d.join("e.h5")).unwrap();
    let rho = scalar(&e, "density");
    assert!((rho.integral() - 1.0).abs() < 1e-12 && rho.min() >= 0.0);
    std::fs::write(
        d.join("f.toml"),
        "grid = \"unit_square_128\"\n[equation]\ndiffusion = 0.1\npotential = \"(x-0.5)^2\"\ninitial = \"e.h5:/fields/density\"\n[time]\nt_end = 0.1\ndt = 0.01\n",
    )
    .unwrap();
    let text = run_ok(&["fokker-planck", "f.toml"], d);
    assert!(text.contains("relative drift"), "{text}");
    let f = Output::read(&d.join("f.h5")).unwrap();
    assert!((f.steps()[0].time - 0.0).abs() < 1e-15);
    let first = match &f.steps()[0].fields["rho"] {
        Field::Scalar(s) => s.clone(),
        _ => unreachable!(),
    };
    assert_eq!(first.data(), rho.data(), "initial density read from the dataset");
}

fn fails(args: &[&str], dir: &Path, needle: &str) {
    let before = std::fs::read_dir(dir).unwrap().count();
    let o = otgrid(args, dir);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{args:?}: '{needle}' not in {err}");
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), before, "{args:?} left files");
}

#[test]
fn bad_problem_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&str, &str, &str, &str)] = &[
        ("elliptic", "unknown.toml", "grid = \"unit_square_128\"\n[equation]\nsorce = 1.0\n", "unknown field `sorce`"),
        ("elliptic", "parse.toml", "grid = \"unit_square_128\"\n[equation]\nsource = \"sin(x\"\n", "cannot parse expression 'sin(x'"),
        ("elliptic", "nan.toml", "grid = \"unit_square_128\"\n[equation]\nsource = \"log(x-0.5)\"\n", "not finite at"),
        ("elliptic", "negd.toml", "grid = \"unit_square_128\"\n[equation]\ndiffusion = -1.0\n", "diffusion coefficient must be positive"),
        ("elliptic", "face.toml", "grid = \"unit_square_128\"\n[equation]\n[boundary]\nw_lower = { type = \"dirichlet\" }\n", "unknown face 'w_lower'"),
        ("elliptic", "dataset.toml", "grid = \"unit_square_128\"\n[equation]\nsource = \"missing.h5:/fields/x\"\n", "no such file"),
        ("elliptic", "badtoml.toml", "grid = \"unit_square_128\"\n[equation\n", "line 2"),
        ("parabolic", "dt.toml", "grid = \"unit_square_128\"\n[equation]\ninitial = 0.0\n[time]\nt_end = 1.0\ndt = 0.0\n", "dt must be positive"),
        ("parabolic", "bct.toml", "grid = \"unit_square_128\"\n[equation]\ninitial = 0.0\n[boundary]\nx_lower = { type = \"dirichlet\", value = \"sin(t)\" }\n[time]\nt_end = 1.0\ndt = 0.1\n", "must not depend on t"),
        ("parabolic", "notime.toml", "grid = \"unit_square_128\"\n[equation]\ninitial = 0.0\n", "missing [time]"),
        ("fokker-planck", "fpneg.toml", "grid = \"unit_square_128\"\n[equation]\ndiffusion = 1.0\npotential = 0.0\ninitial = \"x - 0.5\"\n[time]\nt_end = 1.0\ndt = 0.1\n", "negative values"),
        ("fokker-planck", "fpdir.toml", "[grid]\nshape = [8, 8]\nboundary = \"dirichlet\"\n[equation]\ndiffusion = 1.0\npotential = 0.0\ninitial = 1.0\n[time]\nt_end = 1.0\ndt = 0.1\n", "no-flux"),
    ];
    for (cmd, name, text, needle) in cases {
        std::fs::write(d.join(name), text).unwrap();
        fails(&[cmd, name], d, needle);
    }
    // --as-density of a solution with negative values.
    std::fs::write(
        d.join("neg.toml"),
        "grid = \"unit_square_128\"\n[equation]\nsource = \"x - 0.5\"\nreaction = 1.0\n",
    )
    .unwrap();
    fails(&["elliptic", "neg.toml", "--as-density"], d, "negative values");
}
