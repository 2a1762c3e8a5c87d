//! Library use: build a grid, sample fields, write HDF5 + XDMF, read it back.
//!
//! `cargo run --release --example write_fields -- out/fields.h5`

use otgrid::grid::GridSpec;
use otgrid::io::{AttrValue, Output};
use otgrid::{ScalarField, VectorField};
use std::path::PathBuf;

fn main() -> otgrid::Result<()> {
    let path: PathBuf = std::env::args().nth(1).unwrap_or_else(|| "fields.h5".into()).into();
    // The same grid as `--grid 128x64 --domain 0,2,0,1 --bc periodic,neumann`.
    let grid = GridSpec::from_flags("128x64", Some("0,2,0,1"), Some("periodic,neumann"))?;
    let two_pi = 2.0 * std::f64::consts::PI;
    // φ(x, y) = cos(πx) cos(2πy) on the periodic-in-x box, and its exact gradient.
    let phi = ScalarField::from_fn(&grid, |p| (two_pi * p[0] / 2.0).cos() * (two_pi * p[1]).cos());
    let grad = VectorField::from_fn(&grid, |p, g| {
        g[0] = -std::f64::consts::PI * (two_pi * p[0] / 2.0).sin() * (two_pi * p[1]).cos();
        g[1] = -two_pi * (two_pi * p[0] / 2.0).cos() * (two_pi * p[1]).sin();
    });
    let mut out = Output::new(grid);
    out.add_field("phi", phi)?;
    out.add_field("grad_phi", grad)?;
    out.set_attribute("description", AttrValue::Text("cos(pi x) cos(2 pi y)".into()))?;
    let written = out.write(&path)?;
    let back = Output::read(&written.hdf5)?;
    println!(
        "wrote {} (+ {}) with fields {:?}",
        written.hdf5.display(),
        written.xdmf.display(),
        back.fields().keys().collect::<Vec<_>>()
    );
    Ok(())
}
