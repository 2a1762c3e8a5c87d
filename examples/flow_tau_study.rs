//! The JKO τ study (docs/flows.md): the KL gradient flow from a Gaussian to a two-bump
//! mixture ν, run to a fixed horizon T with K = T/τ steps for several τ; for each τ the
//! divergence KL(ρ_K‖ν), W₂(ρ_K, ν) by otgrid's own OT (bfm, default settings) and the wall
//! time of the flow.
//!
//! `cargo run --release --example flow_tau_study -- [N] [T] [OUT_DIR]` (defaults 64, 0.5,
//! `target/flow_tau_study`). Writes `tau_study.csv` into OUT_DIR and prints a Markdown table.

use otgrid::ot::flow::{Energy, GradientFlow, Internal, JkoParams, TimeScheme};
use otgrid::ot::{Method, Options, Problem};
use otgrid::{BoundaryKind, Grid, ScalarField};
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::PathBuf;

fn unit_mass(mut f: ScalarField) -> ScalarField {
    let m = f.integral();
    f.data_mut().mapv_inplace(|v| v / m);
    f
}

fn bump(x: &[f64], c: [f64; 2], var: f64) -> f64 {
    (-((x[0] - c[0]).powi(2) + (x[1] - c[1]).powi(2)) / (2.0 * var)).exp()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().map_or(Ok(64), |s| s.parse()).expect("N: cells per axis");
    let t_end: f64 = args.get(1).map_or(Ok(0.5), |s| s.parse()).expect("T: a positive time");
    let out: PathBuf = args.get(2).map_or("target/flow_tau_study".into(), PathBuf::from);
    std::fs::create_dir_all(&out)?;
    let grid = Grid::unit(2, n, BoundaryKind::Neumann)?;
    let initial = unit_mass(ScalarField::from_fn(&grid, |x| bump(x, [0.3, 0.35], 0.008)));
    // ν: two bumps on a 1e-3 floor (KL needs ν > 0).
    let nu = unit_mass(ScalarField::from_fn(&grid, |x| {
        bump(x, [0.65, 0.3], 0.006) + 0.7 * bump(x, [0.6, 0.72], 0.01) + 1e-3
    }));
    let mut v = nu.clone();
    v.data_mut().mapv_inplace(|x| -x.ln());
    let energy = Energy::new(Internal::Entropy { diffusion: 1.0 }, Some(v));
    println!("## KL flow to a two-bump mixture, T = {t_end}, {n}² cells\n");
    println!("| τ | steps | KL(ρ_K‖ν) | W₂(ρ_K, ν) | flow time | iterations per step |");
    println!("|---|---|---|---|---|---|");
    let mut csv = String::from("tau,steps,kl,w2,seconds,iterations_per_step\n");
    for k in [1usize, 2, 5, 10, 20, 50] {
        let tau = t_end / k as f64;
        let flow = GradientFlow {
            energy: energy.clone(),
            jko: JkoParams { tau, ..Default::default() },
            steps: k,
            scheme: TimeScheme::Jko,
        };
        let start = std::time::Instant::now();
        let run = flow.run(&initial, 1, |_| ControlFlow::Continue(()))?;
        let seconds = start.elapsed().as_secs_f64();
        let rho = &run.snapshots.last().expect("the last step").1;
        let kl = energy.value(rho)?;
        let w2 = Method::BFM.solve(&Problem::new(rho, &nu)?, &Options::default())?.w2_squared();
        let w2 = w2.max(0.0).sqrt();
        let its = run.records.iter().map(|r| r.iterations).sum::<usize>() as f64 / k as f64;
        println!("| {tau:.3e} | {k} | {kl:.3e} | {w2:.3e} | {seconds:.2} s | {its:.1} |");
        writeln!(csv, "{tau},{k},{kl},{w2},{seconds},{its}")?;
    }
    std::fs::write(out.join("tau_study.csv"), csv)?;
    println!("\nwrote {}", out.join("tau_study.csv").display());
    Ok(())
}
