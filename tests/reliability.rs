//! Reliability and safe I/O (one test per item of the reliability issue): grid-aware input,
//! safe outputs, resource guards, pipes and signals, errors in the user's words, JSON on
//! success and failure, checkpoint/resume.

use otgrid::io::{AttrValue, Field, Output};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Words of a command line (no quoting: arguments without spaces).
fn args(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn otgrid(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_otgrid")).args(args).current_dir(cwd).output().unwrap()
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let o = otgrid(args, cwd);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Status 2, one `error:` line containing every needle, and `dir` unchanged.
fn refused(args: &[&str], dir: &Path, needles: &[&str]) -> String {
    let before = entries(dir);
    let o = otgrid(args, dir);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "{args:?}: '{n}' not in {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(entries(dir), before, "{args:?} changed the directory");
    lines[0].to_string()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn scalar(out: &Output, name: &str) -> otgrid::ScalarField {
    match &out.fields()[name] {
        Field::Scalar(f) => f.clone(),
        Field::Vector(_) => panic!("{name} is a vector"),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Item 1: a dataset carries its grid. One written on [-6,6]² is refused on [0,1]² and on
/// the torus with both grids named; `--resample` maps it conservatively (mass to round-off);
/// a `.npy` array and a plain HDF5 dataset are read with a warning that the domain is
/// assumed; a file of a newer format version is refused by `ot` as by `info`.
#[test]
fn inputs_carry_their_grid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &args("ot --grid 32x32 --domain -6,6,-6,6 --source exp(-(x*x+y*y)/2) --target uniform --out wide.h5 -q"),
        d,
    );
    let msg = refused(
        &args("ot --grid 32x32 --source wide.h5:/fields/source --target uniform --out o.h5"),
        d,
        &["[-6, 6] x [-6, 6]", "[0, 1] x [0, 1]", "--resample"],
    );
    assert!(msg.contains("source"), "{msg}");
    refused(
        &args("ot --grid 32x32 --domain -6,6,-6,6 --bc periodic --source wide.h5:/fields/source --target uniform --out o.h5"),
        d,
        &["periodic", "neumann"],
    );
    // Conservative resampling onto a finer, smaller box keeps the mass inside it.
    let o = otgrid(
        &args("ot --grid 64x64 --domain -4,4,-4,4 --resample --source wide.h5:/fields/source --target uniform --out r.h5 --json"),
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let wide = Output::read(&d.join("wide.h5")).unwrap();
    let src = scalar(&wide, "source");
    // The exact mass of the piecewise-constant field inside [-4, 4]²: cell value × the area
    // of the cell's overlap with the box.
    let inside: f64 = {
        let g = src.grid();
        let overlap = |a: usize, i: usize| {
            let h = g.axis(a).spacing();
            let (lo, hi) = (g.axis(a).lower + i as f64 * h, g.axis(a).lower + (i + 1) as f64 * h);
            (hi.min(4.0) - lo.max(-4.0)).max(0.0)
        };
        let data = src.data().clone().into_dimensionality::<ndarray::Ix2>().unwrap();
        data.indexed_iter().map(|((j, i), v)| v * overlap(0, i) * overlap(1, j)).sum()
    };
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mass = json["source_mass"].as_f64().unwrap();
    assert!((mass - inside).abs() < 1e-12, "resampled mass {mass} vs {inside} inside the box");
    // .npy arrays and plain HDF5 datasets: shape checked, domain assumed (a warning).
    let npy = d.join("a.npy");
    let arr = ndarray::Array2::<f64>::from_shape_fn((16, 16), |(j, i)| 1.0 + (i + j) as f64);
    ndarray_npy::write_npy(&npy, &arr).unwrap();
    let o = otgrid(
        &["ot", "--grid", "16x16", "--source", "a.npy", "--target", "uniform", "--out", "n.h5"],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("carries no grid"));
    refused(
        &["ot", "--grid", "16x8", "--source", "a.npy", "--target", "uniform", "--out", "n2.h5"],
        d,
        &["a.npy", "shape"],
    );
    refused(
        &args("ot --grid 16x16 --resample --source a.npy --target uniform --out n2.h5"),
        d,
        &["carries no grid", "resampled"],
    );
    {
        let f = hdf5::File::create(d.join("plain.h5")).unwrap();
        f.new_dataset_builder().with_data(&arr).create("rho").unwrap();
    }
    let o = otgrid(&args("ot --grid 16x16 --source plain.h5:/rho --target uniform --out p.h5"), d);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stderr).contains("carries no grid"));
    // A newer format version is refused when read as input.
    std::fs::copy(d.join("wide.h5"), d.join("future.h5")).unwrap();
    {
        let f = hdf5::File::open_rw(d.join("future.h5")).unwrap();
        f.attr("format_version").unwrap().write_scalar(&99u32).unwrap();
    }
    refused(
        &args("ot --grid 32x32 --domain -6,6,-6,6 --source future.h5:/fields/source --target uniform --out f.h5"),
        d,
        &["version 99"],
    );
    // Problem files: a dataset on another grid is refused, and resampled on request.
    write(d, "heat.toml", "[grid]\nshape = [24, 24]\nboundary = \"dirichlet\"\n[equation]\ninitial = \"wide.h5:/fields/source\"\n[time]\nt_end = 0.01\ndt = 0.005\n");
    refused(&["parabolic", "heat.toml", "--out", "h.h5"], d, &["initial", "--resample"]);
    ok(&["parabolic", "heat.toml", "--out", "h.h5", "--resample"], d);
}

/// Item 2: outputs. A FIFO, a directory or a device is refused before computing; an output
/// that is an input (by name, symlink or hard link) is refused; a symlink is written
/// through; a SIGINT during the write leaves no temporary and no output; stale temporaries
/// of dead processes are removed by the next run.
#[test]
fn outputs_are_safe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let demo = |out: &str| vec!["demo", "--grid", "16x16", "--out", out.to_string().leak()];
    let fifo = d.join("pipe.h5");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    refused(&demo("pipe.h5"), d, &["FIFO"]);
    std::fs::create_dir(d.join("sub.h5")).unwrap();
    refused(&demo("sub.h5"), d, &["directory"]);
    refused(&demo("/dev/null"), d, &["device"]);
    ok(&demo("in.h5"), d);
    let ot = |out: &str| {
        vec![
            "ot",
            "--grid",
            "16x16",
            "--source",
            "in.h5:/fields/density",
            "--target",
            "uniform",
            "--out",
            out.to_string().leak(),
        ]
    };
    refused(&ot("in.h5"), d, &["is the source", "in.h5"]);
    std::os::unix::fs::symlink("in.h5", d.join("link.h5")).unwrap();
    refused(&ot("link.h5"), d, &["is the source"]);
    std::fs::hard_link(d.join("in.h5"), d.join("hard.h5")).unwrap();
    refused(&ot("hard.h5"), d, &["is the source"]);
    // Written through a symlink: the link stays, its target is replaced.
    std::fs::write(d.join("real.h5"), "old").unwrap();
    std::os::unix::fs::symlink("real.h5", d.join("via.h5")).unwrap();
    ok(&ot("via.h5"), d);
    assert!(std::fs::symlink_metadata(d.join("via.h5")).unwrap().file_type().is_symlink());
    assert!(Output::read(&d.join("real.h5")).is_ok());
    // A stale temporary of a dead process (PID above pid_max) is removed by the next run.
    let stale = d.join(".in.h5.4999999.abcdef.tmp");
    std::fs::write(&stale, "x").unwrap();
    ok(&demo("in.h5"), d);
    assert!(!stale.exists());
    // SIGINT or SIGTERM while the (large) output is being written: nothing left behind.
    let big = write(d, "big.toml", "[grid]\nshape = [256, 256]\nboundary = \"dirichlet\"\n[equation]\ninitial = \"sin(PI*x)*sin(PI*y)\"\n[time]\nt_end = 0.4\ndt = 0.002\n[output]\nsnapshots = 200\n");
    for signal in [libc::SIGINT, libc::SIGTERM] {
        interrupt_while_writing(d, &big, signal);
    }
}

/// Starts a run of `problem` writing `big.h5`, sends `signal` once its temporary output has
/// grown past 1 MiB, and checks that the process died of the signal leaving `dir` as it was.
fn interrupt_while_writing(d: &Path, problem: &Path, signal: i32) {
    let before = entries(d);
    let mut child = Command::new(env!("CARGO_BIN_EXE_otgrid"))
        .args(["parabolic", problem.to_str().unwrap(), "--out", "big.h5", "-q"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let writing = loop {
        let tmp = std::fs::read_dir(d).unwrap().flatten().find(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.starts_with(".big.h5.") && e.metadata().is_ok_and(|m| m.len() > 1 << 20)
        });
        if tmp.is_some() {
            break true;
        }
        if started.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(writing, "never saw the output being written");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert!(status.signal() == Some(signal) || status.code() == Some(128 + signal), "{status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(entries(d), before, "the interrupted run (signal {signal}) left files behind");
}

/// Item 3: a run that does not fit in memory is refused with the estimate before anything
/// is allocated; an absurd step count is refused without --force; at -v a long run logs its
/// progress with an ETA.
#[test]
fn resource_guards() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let msg = refused(
        &args("ot --grid 50000x50000 --source uniform --target uniform --out o.h5"),
        d,
        &["GiB", "--memory-limit"],
    );
    assert!(msg.contains("50000x50000"), "{msg}");
    refused(
        &args("ot --grid 256x256 --source uniform --target uniform --memory-limit 1M --out o.h5"),
        d,
        &["more than the memory limit", "--memory-limit"],
    );
    refused(&args("demo --grid 40000x40000 --out o.h5"), d, &["GiB"]);
    refused(&args("verify --case gaussian-2d --sizes 60000"), d, &["GiB", "verify gaussian-2d"]);
    ok(&args("demo --grid 16x16 --out small.h5"), d);
    refused(&args("info small.h5 --memory-limit 1K"), d, &["reading small.h5"]);
    let heat = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/problems/heat_sine.toml");
    let heat = heat.to_str().unwrap();
    let started = Instant::now();
    refused(
        &["parabolic", heat, "--dt", "1e-12", "--out", "o.h5"],
        d,
        &["5.000e10 steps", "--force"],
    );
    refused(
        &[
            "fokker-planck",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples/problems/ornstein_uhlenbeck.toml")
                .to_str()
                .unwrap(),
            "--dt",
            "1e-12",
            "--out",
            "o.h5",
        ],
        d,
        &["--force"],
    );
    assert!(started.elapsed() < Duration::from_secs(5), "refusals must come before computing");
    let o = Command::new(env!("CARGO_BIN_EXE_otgrid"))
        .args(["parabolic", heat, "--out", "h.h5", "-v"])
        .env("OTGRID_PROGRESS_SECONDS", "0")
        .current_dir(d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("eta") && err.contains("steps"), "{err}");
    // Fewer steps than snapshots: one snapshot per step, no failure after computing.
    ok(&["parabolic", heat, "--dt", "0.01", "--out", "few.h5"], d);
    assert_eq!(Output::read(&d.join("few.h5")).unwrap().steps().len(), 6);
    // An OT solve at -v logs its progress when stderr is not a terminal.
    let o = Command::new(env!("CARGO_BIN_EXE_otgrid"))
        .args(args("ot --grid 64x64 --source case:separable-2d --target case:separable-2d --method parabolic --explicit --max-iterations 300 --keep-unconverged --out p.h5 -v"))
        .env("OTGRID_PROGRESS_SECONDS", "0")
        .current_dir(d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("iteration") && err.contains("to the limit"), "{err}");
}

/// Item 4: a closed stdout ends the program quietly (SIGPIPE or status 0), never a panic.
#[test]
fn closed_stdout_is_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["demo", "--grid", "16x16", "--out", "d.h5"], d);
    for args in [vec!["info", "d.h5"], vec!["verify", "--list"], vec!["--help"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_otgrid"))
            .args(&args)
            .current_dir(d)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before the first line
        let out = child.wait_with_output().unwrap();
        use std::os::unix::process::ExitStatusExt;
        let quiet = out.status.signal() == Some(libc::SIGPIPE) || out.status.code() == Some(0);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(quiet && !err.contains("panicked"), "{args:?}: {:?} {err}", out.status);
    }
}

/// Item 5: errors name the input and say what the mathematics needs.
#[test]
fn errors_speak_the_users_language() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grid = "[grid]\nshape = [16, 16]\n";
    write(
        d,
        "neumann.toml",
        &format!("{grid}boundary = \"neumann\"\n[equation]\nsource = \"x - 0.3\"\n"),
    );
    refused(
        &["elliptic", "neumann.toml"],
        d,
        &["singular", "up to a constant", "Dirichlet or Robin"],
    );
    write(
        d,
        "reaction.toml",
        &format!("{grid}boundary = \"dirichlet\"\n[equation]\nreaction = -100\nsource = \"1\"\n"),
    );
    refused(&["elliptic", "reaction.toml"], d, &["reaction", "negative", "indefinite"]);
    write(d, "robin.toml", &format!("{grid}boundary = \"neumann\"\n[equation]\nsource = \"1\"\n[boundary]\nx_lower = {{ type = \"robin\", alpha = -5.0 }}\n"));
    refused(&["elliptic", "robin.toml"], d, &["x_lower", "alpha = -5"]);
    write(
        d,
        "type.toml",
        &format!("{grid}boundary = \"dirichlet\"\n[equation]\nsource = [1, 2]\n"),
    );
    let msg = refused(
        &["elliptic", "type.toml"],
        d,
        &["type.toml", "line 5", "source", "expected a number"],
    );
    assert!(!msg.contains("untagged"), "{msg}");
    write(d, "grid.toml", "[grid]\nshape = \"abc\"\n[equation]\nsource = 1\n");
    let msg = refused(&["elliptic", "grid.toml"], d, &["shape", "sequence"]);
    assert!(!msg.contains("untagged"), "{msg}");
    write(d, "face.toml", &format!("{grid}boundary = \"dirichlet\"\n[equation]\nsource = \"1\"\n[boundary]\nx_lower = {{ type = \"dirichlet\", value = \"1/(y-y)\" }}\n"));
    refused(&["elliptic", "face.toml"], d, &["x_lower", "1/(y-y)", "inf"]);
    refused(&["info", "missing.h5"], d, &["missing.h5", "no such file"]);
    write(d, "para.toml", &format!("{grid}boundary = \"dirichlet\"\n[equation]\nreaction = -500\ninitial = \"1\"\n[time]\nt_end = 1\ndt = 0.5\nscheme = \"backward-euler\"\n"));
    refused(&["parabolic", "para.toml"], d, &["reaction", "negative"]);
    refused(&args("verify --suite zoo --scheme bdf2"), d, &["--scheme", "flows suite"]);
}

/// Item 6: `--json` prints one valid JSON object on success and on failure (status, error,
/// grid as an object, parameters, outcome), numbers at full precision; the parameters and
/// the problem file's text are stored in the HDF5.
#[test]
fn json_always_and_parameters_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| -> (Option<i32>, serde_json::Value) {
        let o = otgrid(args, d);
        let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!("{args:?}: invalid JSON ({e}): {}", String::from_utf8_lossy(&o.stdout))
        });
        (o.status.code(), v)
    };
    let pair = ["ot", "--grid", "32x32", "--source", "gaussian:0.45,0.5:0.01,0,0,0.01"];
    let pair = [&pair[..], &["--target", "uniform", "--json"]].concat();
    let (code, v) = run(&[&pair[..], &["--out", "ok.h5"]].concat());
    assert_eq!(code, Some(0));
    assert_eq!(v["status"], "ok");
    assert_eq!(v["grid"]["shape"], serde_json::json!([32, 32]));
    assert_eq!(v["grid"]["boundary"], serde_json::json!(["neumann", "neumann"]));
    assert!(
        v["parameters"]["solver"]["metric"].is_object()
            || v["parameters"]["solver"]["metric"].is_string()
    );
    // The tolerance and budget solved for are the solver's parameters (defaults resolved).
    let tolerance = v["parameters"]["solver"]["tolerance"].as_f64().unwrap();
    assert_eq!(tolerance, v["tolerance"].as_f64().unwrap());
    assert_eq!(v["parameters"]["solver"]["max_iterations"], 500);
    let w2 = v["w2_squared"].as_f64().unwrap();
    let file = Output::read(&d.join("ok.h5")).unwrap();
    match &file.attributes()["w2_squared"] {
        AttrValue::Number(x) => assert_eq!(*x, w2, "JSON numbers keep full precision"),
        other => panic!("{other:?}"),
    }
    let stored: serde_json::Value = match &file.attributes()["parameters"] {
        AttrValue::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(stored, v["parameters"]);
    // Failures: not converged (typed outcome), bad input, an output path with a quote.
    let (code, v) = run(&[&pair[..], &["--max-iterations", "1", "--out", "no\"t.h5"]].concat());
    assert_eq!(code, Some(2));
    assert_eq!(v["status"], "error");
    assert_eq!(v["outcome"], "iteration_limit");
    assert!(v["error"].as_str().unwrap().contains("did not converge"));
    let (code, v) = run(&["ot", "--source", "gaussian:0.5", "--target", "uniform", "--json"]);
    assert_eq!((code, v["status"].as_str()), (Some(2), Some("error")));
    assert!(v["error"].as_str().unwrap().contains("gaussian:MEAN:COV"));
    let heat = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/problems/heat_sine.toml");
    let (code, v) = run(&["parabolic", heat.to_str().unwrap(), "--out", "heat.h5", "--json"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["parameters"]["time"]["t_end"], 0.05);
    assert!(v["steps"].as_u64().unwrap() > 0);
    let file = Output::read(&d.join("heat.h5")).unwrap();
    match &file.attributes()["problem_file"] {
        AttrValue::Text(t) => assert_eq!(t, &std::fs::read_to_string(&heat).unwrap()),
        other => panic!("{other:?}"),
    }
    let (code, v) = run(&["elliptic", "nope.toml", "--json"]);
    assert_eq!((code, v["status"].as_str()), (Some(2), Some("error")));
    let (code, v) =
        run(&["verify", "--case", "gaussian-2d", "--method", "bfm", "--sizes", "16", "--json"]);
    assert_eq!(code, Some(0));
    assert!(v["rows"].as_array().is_some_and(|r| r.len() == 1), "{v}");
}

/// Runs `args` until `checkpoint` appears, kills it (SIGKILL), and returns.
fn kill_after_checkpoint(args: &[&str], d: &Path, checkpoint: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_otgrid"))
        .args(args)
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !d.join(checkpoint).exists() {
        assert!(child.try_wait().unwrap().is_none(), "{args:?} ended before its first checkpoint");
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn assert_same_fields(a: &Path, b: &Path) {
    let (a, b) = (Output::read(a).unwrap(), Output::read(b).unwrap());
    assert_eq!(a.fields().keys().collect::<Vec<_>>(), b.fields().keys().collect::<Vec<_>>());
    for (name, f) in a.fields() {
        assert_eq!(f.data(), b.fields()[name].data(), "field {name} differs");
    }
    assert_eq!(a.steps().len(), b.steps().len());
    for (s, t) in a.steps().iter().zip(b.steps()) {
        assert_eq!(s.time, t.time);
    }
    for (name, v) in a.diagnostics() {
        let w = &b.diagnostics()[name];
        assert_eq!(v.len(), w.len(), "diagnostic {name} has another length");
        let worst = v.iter().zip(w).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(v == w, "diagnostic {name} differs (by up to {worst:e})");
    }
}

/// Item 7: a run killed mid-way and resumed from its checkpoint gives the uninterrupted
/// run's result (bit for bit here): parabolic, Fokker–Planck, and the parabolic MA flow.
#[test]
fn resume_equals_uninterrupted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "heat.toml", "[grid]\nshape = [64, 64]\nboundary = \"dirichlet\"\n[equation]\ninitial = \"sin(PI*x)*sin(PI*y)\"\nsource = \"exp(-t)*x\"\n[time]\nt_end = 0.05\ndt = 2e-5\n[output]\nsnapshots = 7\n");
    ok(&["parabolic", "heat.toml", "--out", "full.h5"], d);
    kill_after_checkpoint(
        &["parabolic", "heat.toml", "--out", "part.h5", "--checkpoint-every", "300"],
        d,
        "part.checkpoint.h5",
    );
    assert!(!d.join("part.h5").exists());
    ok(&["parabolic", "heat.toml", "--out", "part.h5", "--resume", "part.checkpoint.h5"], d);
    assert_same_fields(&d.join("full.h5"), &d.join("part.h5"));
    // A checkpoint is refused for other settings.
    refused(
        &args("parabolic heat.toml --out x.h5 --dt 1e-4 --resume part.checkpoint.h5"),
        d,
        &["other settings"],
    );

    write(d, "ou.toml", "[grid]\nshape = [48, 48]\nlower = [-6.0, -6.0]\nupper = [6.0, 6.0]\n[equation]\ndiffusion = 1.0\npotential = \"0.5*(x^2 + y^2)\"\ninitial = \"exp(-((x-1)^2 + (y+0.5)^2)/(2*0.25))\"\n[time]\nt_end = 0.5\ndt = 2e-4\n[output]\nsnapshots = 9\n");
    ok(&["fokker-planck", "ou.toml", "--out", "fp_full.h5"], d);
    kill_after_checkpoint(
        &["fokker-planck", "ou.toml", "--out", "fp.h5", "--checkpoint-every", "200"],
        d,
        "fp.checkpoint.h5",
    );
    ok(
        &args("fokker-planck ou.toml --out fp.h5 --resume fp.checkpoint.h5 --checkpoint-every 200"),
        d,
    );
    assert!(!d.join("fp.checkpoint.h5").exists(), "a completed run removes its checkpoint");
    assert_same_fields(&d.join("fp_full.h5"), &d.join("fp.h5"));

    let flow = [
        "ot",
        "--grid",
        "40x40",
        "--source",
        "case:separable-2d",
        "--target",
        "case:separable-2d",
        "--method",
        "parabolic",
        "--explicit",
        "--max-iterations",
        "4000",
        "--keep-unconverged",
        "-q",
    ];
    fn with<'a>(flow: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        flow.iter().chain(extra).copied().collect()
    }
    ok(&with(&flow, &["--out", "ma_full.h5"]), d);
    kill_after_checkpoint(
        &with(&flow, &["--out", "ma.h5", "--checkpoint-every", "400"]),
        d,
        "ma.checkpoint.h5",
    );
    ok(&with(&flow, &["--out", "ma.h5", "--resume", "ma.checkpoint.h5"]), d);
    assert_same_fields(&d.join("ma_full.h5"), &d.join("ma.h5"));
    // The map error against the closed form is recorded at every iteration (by an observer
    // on the flow's potentials), through the resume too, and falls.
    let full = Output::read(&d.join("ma_full.h5")).unwrap();
    let (map, kl) = (&full.diagnostics()["map_error_l2"], &full.diagnostics()["kl_divergence"]);
    assert_eq!(map.len(), kl.len());
    assert!(map.last().unwrap() < &(0.5 * map[0]), "map error {} -> {:?}", map[0], map.last());
}
