//! ParaView reads otgrid output with the right axes.
//!
//! Writes a 2D and a 3D file whose fields are the cell-centre coordinates (`coord_x = x`,
//! …, `position = (x, y, z)`) on boxes with a different extent per axis, then opens them
//! with ParaView's own readers through `pvpython` (tests/paraview/check_xdmf.py) and checks
//! bounds, cell counts, array names and component counts, time steps, and that each
//! coordinate field equals ParaView's cell-centre coordinate on the same axis. It also checks
//! the HDF5 layout with `h5dump`.
//!
//! The tools come from Debian's `paraview`, `python3-paraview` and `hdf5-tools` (`make deps`).
//! When they are missing the test fails if `OTGRID_REQUIRE_PARAVIEW` is set (as `make test`
//! does) and is skipped with a message otherwise.
//!
//! The spawned readers run with `HDF5_USE_FILE_LOCKING=FALSE`: tests run in parallel threads
//! of one process, and HDF5 opens files without close-on-exec, so a `pvpython` forked while
//! another thread is writing a file inherits that descriptor and its lock for its whole run,
//! and a concurrent `h5dump` of that file then fails to lock it (seen here, intermittently).
//! The readers only read, so they need no lock.

use otgrid::io::{Field, Output};
use otgrid::{BoundaryKind, Grid, ScalarField, VectorField};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tool(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin").join(name);
    if p.exists() {
        return Some(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.exists()))
}

fn require(name: &str) -> Option<PathBuf> {
    match tool(name) {
        Some(p) => Some(p),
        None if std::env::var_os("OTGRID_REQUIRE_PARAVIEW").is_some() => {
            panic!("{name} not found; run `make deps` (Debian packages paraview python3-paraview hdf5-tools)")
        }
        None => {
            eprintln!("skipping: {name} not installed (set OTGRID_REQUIRE_PARAVIEW=1 to make this an error)");
            None
        }
    }
}

fn coordinate_output(grid: &Grid, with_steps: bool) -> Output {
    let mut out = Output::new(grid.clone());
    let names = ["coord_x", "coord_y", "coord_z"];
    for (a, name) in names.iter().enumerate().take(grid.dim()) {
        out.add_field(name, ScalarField::from_fn(grid, |p| p[a])).unwrap();
    }
    out.add_field("position", VectorField::from_fn(grid, |p, v| v.copy_from_slice(p))).unwrap();
    if with_steps {
        for (k, t) in [0.0, 0.5, 1.25].into_iter().enumerate() {
            let f = ScalarField::from_fn(grid, |p| p[0] + k as f64);
            out.add_step(t, vec![("shifted_x", Field::Scalar(f))]).unwrap();
        }
    }
    out
}

/// Runs the pvpython script; returns the parsed JSON.
fn paraview_view(pvpython: &Path, xmf: &Path, reader: &str) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/paraview/check_xdmf.py");
    // Debian's pvpython embeds Debian's /usr/bin/python3: keep other Pythons (pyenv, venvs) out.
    let output = Command::new(pvpython)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", std::env::temp_dir())
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .arg(&script)
        .arg(xmf)
        .arg(reader)
        .output()
        .expect("pvpython runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("OTGRID_JSON ")).unwrap_or_else(|| {
        panic!(
            "pvpython printed no result for {} with {reader}:\n{stdout}\n{}",
            xmf.display(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    serde_json::from_str(line).unwrap()
}

fn check_paraview(pvpython: &Path, grid: &Grid, xmf: &Path, reader: &str, times: &[f64]) {
    let v = paraview_view(pvpython, xmf, reader);
    let got_times: Vec<f64> =
        v["times"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
    assert_eq!(got_times, times, "{reader}: time steps");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), times.len().max(1));
    for step in steps {
        let bounds: Vec<f64> =
            step["bounds"].as_array().unwrap().iter().map(|b| b.as_f64().unwrap()).collect();
        for a in 0..3 {
            let (lo, hi) =
                if a < grid.dim() { (grid.axis(a).lower, grid.axis(a).upper) } else { (0.0, 0.0) };
            assert!(
                (bounds[2 * a] - lo).abs() < 1e-12 && (bounds[2 * a + 1] - hi).abs() < 1e-12,
                "{reader} {}: bounds {bounds:?} on axis {a}, expected [{lo}, {hi}]",
                xmf.display()
            );
        }
        assert_eq!(step["cells"].as_u64().unwrap() as usize, grid.num_cells(), "{reader}: cells");
        let arrays = step["arrays"].as_object().unwrap();
        for a in 0..grid.dim() {
            let name = ["coord_x", "coord_y", "coord_z"][a];
            assert_eq!(arrays[name]["components"], 1, "{reader}: {name}");
            let err = step["axis_error"][name].as_f64().unwrap();
            assert!(err < 1e-12, "{reader}: {name} differs from ParaView's {name} by {err}");
            let perr = step["axis_error"][format!("position_{a}")].as_f64().unwrap();
            assert!(perr < 1e-12, "{reader}: position component {a} off by {perr}");
        }
        // The legacy reader pads 2D vectors to 3 components; Xdmf3 keeps 2.
        let comps = arrays["position"]["components"].as_u64().unwrap() as usize;
        assert!(comps == grid.dim() || comps == 3, "{reader}: position has {comps} components");
        if !times.is_empty() {
            let k = times.iter().position(|t| *t == step["time"].as_f64().unwrap()).unwrap();
            let r = &arrays["shifted_x"]["range"];
            let expected_min = grid.axis(0).center(0) + k as f64;
            assert!(
                (r[0].as_f64().unwrap() - expected_min).abs() < 1e-12,
                "{reader}: step {k} data"
            );
        }
    }
}

/// `h5dump` without HDF5 file locking (see the module docs).
fn h5dump_command(h5dump: &Path) -> Command {
    let mut c = Command::new(h5dump);
    c.env("HDF5_USE_FILE_LOCKING", "FALSE");
    c
}

fn h5dump_dims(h5dump: &Path, h5: &Path, dataset: &str) -> String {
    let out = h5dump_command(h5dump).arg("-H").arg("-d").arg(dataset).arg(h5).output().unwrap();
    assert!(
        out.status.success(),
        "h5dump failed on {dataset}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text.lines().find(|l| l.contains("DATASPACE")).unwrap_or_else(|| panic!("{text}"));
    line.to_string()
}

fn case(dim: usize) -> (Grid, tempfile::TempDir) {
    let grid = if dim == 3 {
        Grid::uniform(&[12, 8, 5], &[0.0, -1.0, 2.0], &[3.0, 1.0, 2.5], BoundaryKind::Neumann)
    } else {
        Grid::uniform(&[10, 6], &[0.0, -1.0], &[2.0, 0.5], BoundaryKind::Periodic)
    }
    .unwrap();
    (grid, tempfile::tempdir().unwrap())
}

#[test]
fn paraview_reads_2d_and_3d_with_the_right_axes() {
    let Some(pvpython) = require("pvpython") else { return };
    for dim in [2, 3] {
        let (grid, dir) = case(dim);
        for with_steps in [false, true] {
            let h5 = dir.path().join(format!("coords{dim}d_{with_steps}.h5"));
            let written = coordinate_output(&grid, with_steps).write(&h5).unwrap();
            let times: &[f64] = if with_steps { &[0.0, 0.5, 1.25] } else { &[] };
            for reader in ["XDMFReader", "Xdmf3ReaderS"] {
                check_paraview(&pvpython, &grid, &written.xdmf, reader, times);
            }
        }
    }
}

#[test]
fn a_moved_results_folder_still_opens() {
    let Some(pvpython) = require("pvpython") else { return };
    let (grid, dir) = case(3);
    let h5 = dir.path().join("a/run.h5");
    coordinate_output(&grid, false).write(&h5).unwrap();
    let moved = dir.path().join("b");
    std::fs::rename(dir.path().join("a"), &moved).unwrap();
    check_paraview(&pvpython, &grid, &moved.join("run.xmf"), "Xdmf3ReaderS", &[]);
}

#[test]
fn h5dump_sees_c_order_datasets() {
    let Some(h5dump) = require("h5dump") else { return };
    for dim in [2, 3] {
        let (grid, dir) = case(dim);
        let h5 = dir.path().join("coords.h5");
        coordinate_output(&grid, true).write(&h5).unwrap();
        let expect = if dim == 3 { "( 5, 8, 12 )" } else { "( 6, 10 )" };
        assert!(h5dump_dims(&h5dump, &h5, "/fields/coord_x").contains(expect));
        let vexpect = if dim == 3 { "( 5, 8, 12, 3 )" } else { "( 6, 10, 2 )" };
        assert!(h5dump_dims(&h5dump, &h5, "/fields/position").contains(vexpect));
        assert!(h5dump_dims(&h5dump, &h5, "/steps/2/shifted_x").contains(expect));
        let header =
            h5dump_command(&h5dump).arg("-A").arg("-g").arg("/grid").arg(&h5).output().unwrap();
        let text = String::from_utf8_lossy(&header.stdout);
        for attr in ["shape", "lower", "upper", "spacing", "boundary"] {
            assert!(text.contains(&format!("ATTRIBUTE \"{attr}\"")), "{text}");
        }
    }
}
