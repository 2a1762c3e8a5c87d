//! A Brenier map as a one-step generator, and a plug-in map learnt from samples:
//! `cargo run --release --example generative -- [N_CELLS] [N_SAMPLES]`.
//!
//! 1. Solve the reference Gaussian pair (`Case::Gaussian2d`) on an N² grid, with Newton (its
//!    map is accurate into the far tails, where a few generated samples land) and with bfm.
//! 2. Draw exact samples from the source density and push them through the map; compare the
//!    generated samples with exact draws from the target density (sliced W₂, energy
//!    distance, and the exact assignment W₂ on the first 2000 of each).
//! 3. Learn a plug-in map from the target samples alone (their KDE as the target density) and
//!    measure it against the closed-form map.

use otgrid::ot::method::Settings;
use otgrid::ot::verify::{map_error, Exact};
use otgrid::ot::{Case, Method, Options, Problem};
use otgrid::sample::{
    draw, kde, mmd_squared, sliced_w2, w2_assignment, GridMap, Interpolation, MmdKernel,
};

fn main() -> otgrid::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (cells, n) = (args.first().copied().unwrap_or(128), args.get(1).copied().unwrap_or(20_000));
    let case = Case::Gaussian2d;
    let problem = case.problem(cells)?;
    let Some(Exact::Gaussian(exact)) = case.exact() else { unreachable!("a Gaussian case") };
    let bfm = Method::BFM.configure(&Settings::default())?;
    let newton = Method::NEWTON.configure(&Settings::default())?;
    let reference = draw(problem.target(), n, 2)?;
    let head = |p: &ndarray::Array2<f64>| p.slice(ndarray::s![..n.min(2000), ..]).to_owned();
    let mut solution = None;
    for (name, method) in [("newton", &newton), ("bfm", &bfm)] {
        let s = method.solve(&problem, &Options::default())?;
        let map = GridMap::from_displacement(s.displacement(&problem), Interpolation::Cubic)?;
        let generated = map.apply(draw(problem.source(), n, 1)?.view())?;
        println!(
            "{name} on {cells}² ({}, {} iterations): generated vs target samples (n = {n}): sliced W₂ {:.3e}, energy distance {:.3e}, W₂ (first {}) {:.3e}",
            s.outcome.name(),
            s.iterations,
            sliced_w2(generated.view(), reference.view(), 200, 0)?,
            mmd_squared(generated.view(), reference.view(), MmdKernel::Energy)?,
            n.min(2000),
            w2_assignment(head(&generated).view(), head(&reference).view())?
        );
        solution.get_or_insert(s);
    }
    let solution = solution.expect("solved");
    let other = draw(problem.target(), n, 3)?;
    println!(
        "two independent target samples, for scale: sliced W₂ {:.3e}",
        sliced_w2(other.view(), reference.view(), 200, 0)?
    );

    let (nu, b) = kde(reference.view(), problem.grid(), None)?;
    let plug_in = Problem::new(problem.source(), &nu)?;
    let learnt = bfm.solve(&plug_in, &Options::default())?;
    let e = map_error(&learnt, &problem, |x, out| exact.apply(x, out));
    let e_grid = map_error(&solution, &problem, |x, out| exact.apply(x, out));
    println!(
        "plug-in map (bfm) from {n} samples (KDE bandwidth {b:.3e}): L2 error {:.3e} (Newton's map from the density: {:.3e})",
        e.l2, e_grid.l2
    );
    Ok(())
}
