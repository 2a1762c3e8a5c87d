//! `otgrid demo`: writes a small field set that exercises the whole output path.
//!
//! On the chosen grid it samples an anisotropic, off-centre Gaussian density
//! ρ(x) ∝ exp(−½ Σ_a (x_a − m_a)² / σ_a²), normalised to unit discrete mass, and its
//! exact gradient ∇ρ = −ρ (x − m)/σ²; then a time series of the free-space heat-kernel
//! solution of ∂ₜρ = Δρ from that Gaussian (σ_a² → σ_a² + 2t), each snapshot normalised,
//! with the raw (pre-normalisation) mass recorded as a diagnostic.

use super::GridArgs;
use otgrid::io::{AttrValue, Field, Output};
use otgrid::{Error, Grid, Result, ScalarField, VectorField};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub grid: GridArgs,
    /// Output HDF5 file; the XDMF sidecar goes next to it with extension .xmf.
    #[arg(short, long, default_value = "demo.h5")]
    pub out: PathBuf,
    /// Number of heat-equation snapshots after t = 0.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Final time of the heat-equation series.
    #[arg(long, default_value_t = 2e-3)]
    pub t_end: f64,
}

/// Mean and standard deviations (x, y, z) of the demo Gaussian, relative to the box.
fn gaussian_parameters(grid: &Grid) -> (Vec<f64>, Vec<f64>) {
    let rel_mean = [0.35, 0.6, 0.45];
    let rel_sigma = [0.08, 0.12, 0.1];
    let mean = grid
        .axes()
        .iter()
        .enumerate()
        .map(|(a, ax)| ax.lower + rel_mean[a] * ax.length())
        .collect();
    let sigma = grid.axes().iter().enumerate().map(|(a, ax)| rel_sigma[a] * ax.length()).collect();
    (mean, sigma)
}

/// Gaussian density N(mean, diag(var)) at `p` (not truncated to the box).
fn gaussian_at(p: &[f64], mean: &[f64], var: &[f64]) -> f64 {
    let norm: f64 = var.iter().map(|v| (2.0 * std::f64::consts::PI * v).sqrt()).product();
    let q: f64 = p.iter().zip(mean).zip(var).map(|((x, m), v)| (x - m).powi(2) / v).sum();
    (-0.5 * q).exp() / norm
}

/// The Gaussian sampled on the grid and normalised to unit discrete mass, with the raw mass.
fn gaussian(grid: &Grid, mean: &[f64], var: &[f64]) -> (ScalarField, f64) {
    let mut rho = ScalarField::from_fn(grid, |p| gaussian_at(p, mean, var));
    let mass = rho.integral();
    rho.data_mut().mapv_inplace(|v| v / mass);
    (rho, mass)
}

pub fn run(args: &DemoArgs, report: &mut super::Report) -> Result<()> {
    if !(args.t_end > 0.0 && args.t_end.is_finite()) {
        return Err(Error::invalid(format!("--t-end must be positive, got {}", args.t_end)));
    }
    let grid = args.grid.resolve("unit_square_128")?;
    otgrid::io::check_output_path(&args.out, &[])?;
    let fields = 8.0 + 2.0 * (args.steps as f64 + 1.0) + grid.dim() as f64;
    otgrid::resources::MemoryEstimate::fields(&grid, fields, 0, "demo")
        .check(report.memory_limit)?;
    tracing::info!("demo on {grid}");
    let (mean, sigma) = gaussian_parameters(&grid);
    let var0: Vec<f64> = sigma.iter().map(|s| s * s).collect();
    let (rho, mass0) = gaussian(&grid, &mean, &var0);
    let grad = VectorField::from_fn(&grid, |p, out| {
        let r = gaussian_at(p, &mean, &var0) / mass0;
        for a in 0..p.len() {
            out[a] = -r * (p[a] - mean[a]) / var0[a];
        }
    });

    let mut out = Output::new(grid.clone());
    out.add_field("density", rho)?;
    out.add_field("density_gradient", grad)?;
    let bar = super::progress::bar(args.steps as u64 + 1, "heat kernel");
    let mut masses = Vec::with_capacity(args.steps + 1);
    for k in 0..=args.steps {
        let t = args.t_end * k as f64 / args.steps.max(1) as f64;
        let var: Vec<f64> = var0.iter().map(|v| v + 2.0 * t).collect();
        let (rho_t, raw_mass) = gaussian(&grid, &mean, &var);
        masses.push(raw_mass);
        out.add_step(t, vec![("density", Field::Scalar(rho_t))])?;
        bar.inc(1);
        if args.steps == 0 {
            break;
        }
    }
    bar.finish_and_clear();
    out.add_diagnostic("unnormalised_mass", masses)?;
    for (a, name) in ["x", "y", "z"].iter().take(grid.dim()).enumerate() {
        out.set_attribute(&format!("gaussian_mean_{name}"), AttrValue::Number(mean[a]))?;
        out.set_attribute(&format!("gaussian_sigma_{name}"), AttrValue::Number(sigma[a]))?;
    }
    out.set_attribute("description", AttrValue::Text("otgrid demo field set".into()))?;
    let written = out.write(&args.out)?;
    println!("wrote {} and {}", written.hdf5.display(), written.xdmf.display());
    Ok(())
}
