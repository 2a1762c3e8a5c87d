//! `otgrid info FILE.h5`: a human-readable summary of a results file.

use otgrid::io::{Field, Output};
use otgrid::{Result, ScalarField};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// An otgrid HDF5 results file.
    pub file: PathBuf,
}

fn field_row(name: &str, field: &Field) -> String {
    match field {
        Field::Scalar(f) => format!(
            "  {name:<16} {:<10} {:>13.6e} {:>13.6e} {:>13.6e}",
            "scalar",
            f.min(),
            f.max(),
            f.integral()
        ),
        Field::Vector(v) => {
            let m = v.magnitude();
            let integrals: Vec<String> = (0..v.grid().dim())
                .map(|a| {
                    let c = ScalarField::new(v.grid().clone(), v.component(a).to_owned())
                        .expect("component has the grid's shape");
                    format!("{:.6e}", c.integral())
                })
                .collect();
            format!(
                "  {name:<16} {:<10} {:>13.6e} {:>13.6e} ({})  [min/max of |v|, integral per component]",
                format!("vector({})", v.grid().dim()),
                m.min(),
                m.max(),
                integrals.join(", ")
            )
        }
    }
}

pub fn run(args: &InfoArgs, report: &mut super::Report) -> Result<()> {
    // The whole file is read into memory (twice its size at the peak: datasets and fields).
    if let Ok(meta) = std::fs::metadata(&args.file) {
        let estimate = otgrid::resources::MemoryEstimate {
            bytes: otgrid::resources::BASE_BYTES.saturating_add(meta.len().saturating_mul(2)),
            detail: format!("reading {} ({} bytes)", args.file.display(), meta.len()),
        };
        estimate.check(report.memory_limit)?;
    }
    let out = Output::read(&args.file)?;
    let grid = out.grid();
    println!("file         {}", args.file.display());
    if let Some(p) = &out.provenance {
        println!(
            "format       otgrid format {}, written by otgrid {} at {}",
            p.format_version, p.otgrid_version, p.created
        );
        println!("command      {}", p.command_line);
    }
    println!("grid         {grid}");
    println!(
        "             spacing {}, {} cells, cell volume {:.6e}",
        grid.spacing().iter().map(|h| format!("{h:.6e}")).collect::<Vec<_>>().join(" x "),
        grid.num_cells(),
        grid.cell_volume()
    );
    println!("fields       {} in /fields", out.fields().len());
    if !out.fields().is_empty() {
        println!("  {:<16} {:<10} {:>13} {:>13} {:>13}", "name", "kind", "min", "max", "mass");
        for (name, f) in out.fields() {
            println!("{}", field_row(name, f));
        }
    }
    if let (Some(first), Some(last)) = (out.steps().first(), out.steps().last()) {
        println!(
            "steps        {} snapshots in /steps, t = {} … {}",
            out.steps().len(),
            first.time,
            last.time
        );
        for (name, f) in &last.fields {
            println!("{}   (last step)", field_row(name, f));
        }
    }
    if !out.diagnostics().is_empty() {
        println!("diagnostics");
        for (name, v) in out.diagnostics() {
            match (v.first(), v.last()) {
                (Some(a), Some(b)) => {
                    println!("  {name:<16} {} values, first {a:.6e}, last {b:.6e}", v.len())
                }
                _ => println!("  {name:<16} empty"),
            }
        }
    }
    if !out.attributes().is_empty() {
        println!("attributes");
        for (k, v) in out.attributes() {
            println!("  {k:<16} {v}");
        }
    }
    Ok(())
}
