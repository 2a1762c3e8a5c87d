//! A one-step generator for a PDE-induced measure, learnt two ways from its samples:
//! `cargo run --release --example generative_pde -- [N_CELLS] [N_SAMPLES]`.
//!
//! 1. Make the target with otgrid's own PDE solver: the elliptic problem
//!    `−∇·(a∇u) = 1`, `u = 0` on the boundary, `a = 1 + x/2` (`study::PdeTarget::Elliptic`),
//!    normalised to a density ν, and the map T of ν from the uniform density (bfm).
//! 2. Draw N exact samples of ν and learn (a) the plug-in map: bfm to their KDE, and (b) the
//!    sample-based parabolic Monge–Ampère flow: 200 steps, each with a fresh batch of 1000
//!    samples resampled from the N (`Batches`, schedule 0.01/√(k+1)), last and average
//!    iterates.
//! 3. Compare each learnt map with T (μ-weighted L²), and its generated samples (uniform draws
//!    pushed through it) with held-out draws of ν (energy distance).

use otgrid::field::{ScalarField, VectorField};
use otgrid::grid::{BoundaryKind, Grid};
use otgrid::ot::method::Settings;
use otgrid::ot::parabolic::{with_background, Batches, SampleStream};
use otgrid::ot::{GaussianLift, Method, Options, Parabolic, Problem, Schedule, Solver};
use otgrid::sample::{draw, kde, mmd_squared, GridMap, Interpolation, MmdKernel};
use otgrid::study::PdeTarget;
use std::sync::Arc;

fn main() -> otgrid::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (cells, n) = (args.first().copied().unwrap_or(64), args.get(1).copied().unwrap_or(20_000));
    let grid = Grid::unit(2, cells, BoundaryKind::Neumann)?;
    let uniform = ScalarField::from_fn(&grid, |_| 1.0);
    let nu = PdeTarget::Elliptic.density(&grid, 0.0)?;
    let bfm = Method::BFM.configure(&Settings::default())?;
    let options = Options::default();
    let problem = Problem::new(&uniform, &nu)?;
    let exact = bfm.solve(&problem, &options)?;
    let t = exact.map(&problem);
    let samples = draw(&nu, n, 1)?;
    let held_out = draw(&nu, 2000, 2)?;
    let distance = |map: &VectorField| -> otgrid::Result<(f64, f64)> {
        let sq: f64 = map.data().iter().zip(t.data().iter()).map(|(a, b)| (a - b).powi(2)).sum();
        let generated =
            GridMap::from_map(map, Interpolation::Cubic)?.apply(draw(&uniform, 2000, 3)?.view())?;
        let energy = mmd_squared(generated.view(), held_out.view(), MmdKernel::Energy)?;
        Ok(((sq / grid.num_cells() as f64).sqrt(), energy))
    };
    println!("elliptic target on {cells}², {n} samples; errors against the exact density's map");
    println!("| generator | map error (L²(μ)) | energy distance to held-out | seconds |");
    println!("|---|---|---|---|");
    let report = |name: &str, map: &VectorField, seconds: f64| -> otgrid::Result<()> {
        let (e, energy) = distance(map)?;
        println!("| {name} | {e:.3e} | {energy:.3e} | {seconds:.2} |");
        Ok(())
    };
    report("exact density (bfm)", &t, exact.seconds)?;
    let (plug_in, b) = kde(samples.view(), &grid, None)?;
    let learnt = bfm.solve(&Problem::new(&uniform, &plug_in)?, &options)?;
    report(&format!("plug-in (KDE b = {b:.3}, bfm)"), &learnt.map(&problem), learnt.seconds)?;
    // The sample-based flow: the problem's target is the deposit of all samples with the
    // batches' background (what `otgrid ot --batch` uses).
    let reference = Problem::new(&uniform, &with_background(&plug_in, GaussianLift::default())?)?;
    for average in [false, true] {
        let mut batches = Batches::new(SampleStream::Points(Arc::new(samples.clone())), 1000);
        batches.average = average;
        let flow = Parabolic {
            schedule: Schedule::InverseSqrt(0.01),
            max_iterations: Some(200),
            batches: Some(batches),
            ..Default::default()
        };
        let s = flow.solve(&reference, &options)?;
        let which = if average { "average" } else { "last" };
        report(
            &format!("sample-based flow, 200 × 1000, {which} iterate"),
            &s.map(&problem),
            s.seconds,
        )?;
    }
    Ok(())
}
