//! The `otgrid` binary: exit codes, one-line errors, no partial output.

use std::path::Path;
use std::process::{Command, Output};

fn otgrid(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otgrid")).args(args).current_dir(cwd).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The command fails with status 2, one `error:` line that mentions `needle`, and leaves
/// `dir` with exactly the entries it had.
fn fails_cleanly(args: &[&str], dir: &Path, needle: &str) {
    let before = std::fs::read_dir(dir).unwrap().count();
    let o = otgrid(args, dir);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{args:?}: '{needle}' not in: {err}");
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), before, "{args:?} left files behind");
}

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let o = otgrid(&["--version"], dir.path());
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("otgrid {}", env!("CARGO_PKG_VERSION"))
    );
    let help = String::from_utf8_lossy(&otgrid(&["--help"], dir.path()).stdout).to_string();
    assert!(help.contains("info") && help.contains("demo"));
}

#[test]
fn demo_then_info() {
    let dir = tempfile::tempdir().unwrap();
    let o = otgrid(
        &[
            "-q",
            "demo",
            "--grid",
            "32x24",
            "--domain",
            "-1,1,0,2",
            "--bc",
            "periodic,neumann",
            "--out",
            "d.h5",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("d.h5").exists() && dir.path().join("d.xmf").exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary files left");
    let o = otgrid(&["info", "d.h5"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("2D 32x24 cells on [-1, 1] x [0, 2], boundary periodic/neumann"),
        "{text}"
    );
    assert!(text.contains("density") && text.contains("1.000000e0"), "mass 1 shown: {text}");
    assert!(text.contains("11 snapshots"), "{text}");
    assert!(text.contains("demo --grid 32x24"), "command line recorded: {text}");
    let o = otgrid(
        &["-q", "demo", "--mesh", "unit_cube_64", "--steps", "2", "--out", "sub/d3.h5"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text =
        String::from_utf8_lossy(&otgrid(&["info", "sub/d3.h5"], dir.path()).stdout).to_string();
    assert!(text.contains("3D 64x64x64"), "{text}");
}

#[test]
fn bad_input_gives_one_line_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bad.toml"), "shape = [8, 8\n").unwrap();
    std::fs::write(d.join("neg.toml"), "shape = [8, 8]\nlower = [0.0, 1.0]\nupper = [1.0, 0.5]\n")
        .unwrap();
    std::fs::write(d.join("unknown.toml"), "shape = [8, 8]\ncells = 3\n").unwrap();
    std::fs::write(d.join("notes.txt"), "not hdf5").unwrap();
    fails_cleanly(
        &["demo", "--mesh", "nope.toml", "--out", "o.h5"],
        d,
        "unknown grid file 'nope.toml'",
    );
    fails_cleanly(&["demo", "--mesh", "bad.toml", "--out", "o.h5"], d, "bad.toml: line");
    fails_cleanly(&["demo", "--mesh", "neg.toml", "--out", "o.h5"], d, "zero or negative spacing");
    fails_cleanly(&["demo", "--mesh", "unknown.toml", "--out", "o.h5"], d, "unknown field `cells`");
    fails_cleanly(
        &["demo", "--grid", "8x8", "--domain", "0,0,0,1", "--out", "o.h5"],
        d,
        "zero or negative spacing",
    );
    fails_cleanly(&["demo", "--grid", "8x", "--out", "o.h5"], d, "--grid '8x'");
    fails_cleanly(
        &["demo", "--grid", "8x8", "--bc", "robin", "--out", "o.h5"],
        d,
        "unknown boundary kind 'robin'",
    );
    fails_cleanly(
        &["demo", "--grid", "100000x100000x100000", "--out", "o.h5"],
        d,
        "too many cells",
    );
    fails_cleanly(&["demo", "--grid", "8x8", "--out", "/proc/otgrid/o.h5"], d, "/proc/otgrid");
    fails_cleanly(&["demo", "--grid", "8x8", "--out", "o.xmf"], d, "sidecar");
    fails_cleanly(&["info", "missing.h5"], d, "missing.h5");
    fails_cleanly(&["info", "notes.txt"], d, "not an HDF5 file");
    // clap's own usage errors also exit with 2.
    assert_eq!(otgrid(&["demo", "--no-such-flag"], d).status.code(), Some(2));
    assert_eq!(otgrid(&["frobnicate"], d).status.code(), Some(2));
}
