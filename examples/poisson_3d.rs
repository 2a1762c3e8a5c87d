//! Solve −Δu = f on an N³ Neumann cube with the spectral solver, check it against the
//! finite-difference operator and report time and peak memory.
//!
//! `cargo run --release --example poisson_3d -- 256`

use otgrid::operators::apply_shifted_laplacian;
use otgrid::spectral::{MeanPolicy, PoissonSolver, Symbol};
use otgrid::{BoundaryKind, Grid, ScalarField};
use std::time::Instant;

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> otgrid::Result<()> {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(128);
    let grid = Grid::unit(3, n, BoundaryKind::Neumann)?;
    let pi = std::f64::consts::PI;
    let f = ScalarField::from_fn(&grid, |p| {
        (pi * p[0]).cos() * (2.0 * pi * p[1]).cos() * (3.0 * pi * p[2]).cos()
    });
    let plan = Instant::now();
    let mut solver =
        PoissonSolver::new(&grid, 0.0, Symbol::Discrete)?.with_mean_policy(MeanPolicy::Project);
    let plan = plan.elapsed();
    let mut u = vec![0.0; grid.num_cells()];
    let rhs = f.data().as_slice().expect("contiguous");
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        solver.solve(rhs, &mut u)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let mut back = vec![0.0; u.len()];
    apply_shifted_laplacian(&grid, 0.0, &u, &mut back);
    let residual = back.iter().zip(rhs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let field_mib = grid.scalar_bytes() as f64 / (1 << 20) as f64;
    println!(
        "grid {n}^3 neumann: plan {:.1} ms, solve median {:.1} ms (5 runs)",
        plan.as_secs_f64() * 1e3,
        times[2] * 1e3
    );
    println!("max |(-Δ_h u) - f| = {residual:.2e}");
    println!(
        "one field {field_mib:.0} MiB; peak RSS {:.0} MiB (rhs + solution + solver scratch + this check's buffer)",
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}
