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
    ] {
        let mut args = vec!["ot", "--source", source, "--target", target, "--grid", "32x32"];
        if !extra.is_empty() {
            args.push(extra);
        }
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
