//! The HDF5 results format: identical data after a round trip, clear errors on bad files,
//! no partial output on failure.

use otgrid::io::{AttrValue, Field, Output, FORMAT_VERSION};
use otgrid::{BoundaryKind, Grid, ScalarField, VectorField};
use std::path::Path;

fn sample(grid: &Grid) -> Output {
    let mut out = Output::new(grid.clone());
    out.add_field("rho", ScalarField::from_fn(grid, |p| p.iter().map(|x| x.sin()).sum::<f64>()))
        .unwrap();
    out.add_field(
        "map",
        VectorField::from_fn(grid, |p, v| {
            for (a, x) in p.iter().enumerate() {
                v[a] = x * (a + 1) as f64;
            }
        }),
    )
    .unwrap();
    for k in 0..12 {
        let f = ScalarField::from_fn(grid, |p| p[0] * k as f64);
        out.add_step(0.1 * k as f64, vec![("u", Field::Scalar(f))]).unwrap();
    }
    out.add_diagnostic("residual", vec![1.0, 0.1, 1e-3, 1e-9]).unwrap();
    out.set_attribute("method", AttrValue::Text("bfm".into())).unwrap();
    out.set_attribute("w2", AttrValue::Number(0.0254)).unwrap();
    out.set_attribute("iterations", AttrValue::Integer(61)).unwrap();
    out
}

fn grids() -> Vec<Grid> {
    vec![
        Grid::uniform(&[7, 5], &[0.0, -2.0], &[1.0, 3.0], BoundaryKind::Periodic).unwrap(),
        Grid::new(vec![
            otgrid::grid::Axis {
                cells: 4,
                lower: 0.0,
                upper: 1.0,
                boundary: BoundaryKind::Periodic,
            },
            otgrid::grid::Axis {
                cells: 6,
                lower: 0.0,
                upper: 2.0,
                boundary: BoundaryKind::Neumann,
            },
            otgrid::grid::Axis {
                cells: 3,
                lower: -1.0,
                upper: 0.0,
                boundary: BoundaryKind::Dirichlet,
            },
        ])
        .unwrap(),
    ]
}

#[test]
fn round_trip_is_identical() {
    for grid in grids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.h5");
        let out = sample(&grid);
        let written = out.write(&path).unwrap();
        assert!(written.xdmf.ends_with("r.xmf") && written.xdmf.exists());
        let back = Output::read(&path).unwrap();
        let prov = back.provenance.clone().unwrap();
        assert_eq!(prov.format_version, FORMAT_VERSION);
        assert_eq!(prov.otgrid_version, env!("CARGO_PKG_VERSION"));
        assert!(!prov.command_line.is_empty());
        assert!(prov.created.ends_with('Z'), "{}", prov.created);
        let mut back = back;
        back.provenance = None;
        assert_eq!(back, out, "round trip of {grid}");
        // Steps come back in index order even past 10 (HDF5 lists "10" before "2").
        let times: Vec<f64> = back.steps().iter().map(|s| s.time).collect();
        assert_eq!(times, (0..12).map(|k| 0.1 * k as f64).collect::<Vec<_>>());
    }
}

#[test]
fn files_get_ordinary_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.h5");
    sample(&grids()[0]).write(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_ne!(
        mode & 0o044,
        0,
        "results should be readable by others as the umask allows: {mode:o}"
    );
}

fn rewrite_attr(path: &Path, f: impl FnOnce(&hdf5::File)) {
    let file = hdf5::File::open_rw(path).unwrap();
    f(&file);
    file.close().unwrap();
}

#[test]
fn newer_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.h5");
    sample(&grids()[0]).write(&path).unwrap();
    rewrite_attr(&path, |f| {
        f.delete_attr("format_version").unwrap();
        f.new_attr::<u32>()
            .shape(())
            .create("format_version")
            .unwrap()
            .write_scalar(&99u32)
            .unwrap();
    });
    let e = Output::read(&path).unwrap_err().to_string();
    assert!(e.contains("format version 99 is newer"), "{e}");
}

#[test]
fn missing_groups_and_foreign_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.h5");
    sample(&grids()[1]).write(&path).unwrap();
    rewrite_attr(&path, |f| f.unlink("grid").unwrap());
    let e = Output::read(&path).unwrap_err().to_string();
    assert!(e.contains("missing group /grid"), "{e}");

    let foreign = dir.path().join("foreign.h5");
    hdf5::File::create(&foreign).unwrap().close().unwrap();
    let e = Output::read(&foreign).unwrap_err().to_string();
    assert!(e.contains("not an otgrid results file"), "{e}");

    let text = dir.path().join("t.h5");
    std::fs::write(&text, "hello").unwrap();
    assert!(Output::read(&text).unwrap_err().to_string().contains("not an HDF5 file"));
    assert!(Output::read(&dir.path().join("absent.h5"))
        .unwrap_err()
        .to_string()
        .contains("absent.h5"));
}

#[test]
fn wrong_shape_in_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.h5");
    sample(&grids()[0]).write(&path).unwrap();
    rewrite_attr(&path, |f| {
        f.unlink("fields/rho").unwrap();
        f.new_dataset_builder()
            .with_data(&ndarray::Array2::<f64>::zeros((3, 3)))
            .create("fields/rho")
            .unwrap();
    });
    let e = Output::read(&path).unwrap_err().to_string();
    assert!(e.contains("/fields/rho") && e.contains("shape"), "{e}");
}

#[test]
fn fields_must_match_the_output_grid() {
    let g = grids();
    let mut out = Output::new(g[0].clone());
    let other = Grid::unit(2, 8, BoundaryKind::Periodic).unwrap();
    let e = out.add_field("x", ScalarField::zeros(&other)).unwrap_err().to_string();
    assert!(e.contains("lives on"), "{e}");
    assert!(out.add_field("bad name", ScalarField::zeros(&g[0])).is_err());
    assert!(out.set_attribute("format", AttrValue::Integer(1)).is_err());
    out.add_step(1.0, vec![]).unwrap();
    assert!(out.add_step(1.0, vec![]).is_err(), "times must increase");
}

#[test]
fn failed_write_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.xmf");
    assert!(sample(&grids()[0]).write(&path).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // A directory where the file should go.
    let d = dir.path().join("taken.h5");
    std::fs::create_dir(&d).unwrap();
    assert!(sample(&grids()[0]).write(&d).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// One rank's part of a distributed output: fields on the rank's planes, XDMF of the whole
/// grid (what the collective writer stores), and no serial write of a part.
#[test]
fn a_slab_part_describes_the_whole_file_and_is_not_written_serially() {
    let global = Grid::unit(3, 6, BoundaryKind::Neumann).unwrap();
    let decomposition = otgrid::grid::SlabDecomposition::new(&global, 4).unwrap();
    let whole = sample(&global);
    for rank in 0..4 {
        let mut part = Output::slab(&global, &decomposition, rank).unwrap();
        let local = decomposition.local_grid(rank).unwrap();
        assert_eq!(part.grid(), &local);
        assert_eq!(part.file_grid(), &global);
        assert_eq!(part.part().unwrap().first_plane, decomposition.planes(rank).start);
        // A whole-grid field is refused; the rank's planes are taken.
        let refused = part.add_field("rho", whole.fields()["rho"].clone()).unwrap_err();
        assert!(refused.to_string().contains("lives on"), "{refused}");
        let v = VectorField::from_fn(&local, |p, v| v.copy_from_slice(p));
        part.add_field("map", v.clone()).unwrap();
        let mut serial = Output::new(global.clone());
        serial
            .add_field("map", VectorField::from_fn(&global, |p, v| v.copy_from_slice(p)))
            .unwrap();
        // The sidecar names the whole arrays: equal to the serial output's.
        assert_eq!(
            otgrid::io::render_xdmf(&part, "f.h5"),
            otgrid::io::render_xdmf(&serial, "f.h5")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part.h5");
        let err = part.write(&path).unwrap_err().to_string();
        assert!(err.contains("written collectively"), "{err}");
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing left behind");
    }
}
