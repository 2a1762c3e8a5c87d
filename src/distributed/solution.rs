//! One rank's part of a distributed solve's results file: the fields, diagnostics and
//! attributes of [`crate::ot::Solution::to_output`], each rank computing its planes of every
//! field with the slab operations — `φ = |x|²/2 + p`, `ψ = |y|²/2 + q`, the maps `x + ∇p`
//! and `y + ∇q` (clamped into the other density's support box, found over every rank), the
//! displacement, the push-forward `T#μ` by the deposit, and the transport cost `∫|T − x|² dμ`
//! summed in the serial order — so that a collective write of it
//! ([`super::write_collective`]) is the serial solve's file.

use super::blocks::Blocks;
use super::exchange::Exchange;
use crate::error::{Error, Result};
use crate::field::{ScalarField, VectorField};
use crate::grid::{Grid, PencilDecomposition, SlabDecomposition};
use crate::io::Output;
use crate::ot::problem::{box_of, clamp_points, half_square, transport_term};
use crate::ot::Solution;
use rayon::prelude::*;

fn values(f: &ScalarField) -> &[f64] {
    f.data().as_slice().expect("contiguous")
}

/// The box of the cells where `density` (this rank's planes) is positive, over every rank
/// (as [`crate::ot::Problem::support_box`]). A collective.
fn support_box(
    exchange: &impl Exchange,
    grid: &Grid,
    cells: &[usize],
    density: &[f64],
) -> Vec<Option<(f64, f64)>> {
    let d = grid.dim();
    let shape = grid.storage_shape();
    let mut first = vec![usize::MAX; d];
    let mut last = vec![0usize; d];
    for (local, _) in density.iter().enumerate().filter(|(_, v)| **v > 0.0) {
        let mut rest = cells[local];
        for k in (0..d).rev() {
            let a = d - 1 - k;
            let i = rest % shape[k];
            rest /= shape[k];
            first[a] = first[a].min(i);
            last[a] = last[a].max(i);
        }
    }
    // Cell indices are exact in f64; a rank without positive cells offers −(usize::MAX).
    let first: Vec<usize> = first.iter().map(|&f| (-exchange.max(-(f as f64))) as usize).collect();
    let last: Vec<usize> = last.iter().map(|&l| exchange.max(l as f64) as usize).collect();
    box_of(grid, &first, &last)
}

/// `x + ∇u` on this rank's cells, clamped into `bounds`.
fn map_of(
    exchange: &impl Exchange,
    grid: &Grid,
    blocks: &Blocks,
    u: &[f64],
    centre: &[f64],
    bounds: &[Option<(f64, f64)>],
) -> Result<Vec<f64>> {
    let mut t = blocks.gradient(exchange, grid, u)?;
    t.par_iter_mut().zip(centre.par_iter()).for_each(|(a, b)| *a += b);
    clamp_points(&mut t, bounds);
    Ok(t)
}

/// This rank's part of the results file of `solution`, a decomposed solve
/// ([`super::slab_bfm`], [`super::slab_sinkhorn`]: p and q this rank's planes) between μ and
/// ν (this rank's planes, as passed to the solve) on `grid`; `masses` are the densities'
/// masses before normalisation (the file's `source_mass`, `target_mass`). Its collective
/// write is the serial solve's [`Solution::to_output`] file: the same fields (to the bit
/// where the potentials are the serial ones to the bit), diagnostics and attributes (but
/// `seconds`). A collective.
pub fn slab_output(
    exchange: &impl Exchange,
    grid: &Grid,
    densities: (&[f64], &[f64]),
    masses: (f64, f64),
    solution: &Solution,
) -> Result<Output> {
    let blocks = Blocks::Slabs(SlabDecomposition::new(grid, exchange.size())?);
    output_on(exchange, grid, &blocks, densities, masses, solution)
}

/// [`slab_output`] on the 3D `grid`'s y–z pencils ([`super::pencil_sinkhorn`],
/// [`super::pencil_bfm`]: p, q, μ and ν this rank's blocks): the serial file's fields and
/// transport cost to the bit where the potentials are the serial ones to the bit
/// ([`super::pencil_gradient`], [`super::pencil_push_forward`], [`super::pencil_sum`]). A
/// collective.
pub fn pencil_output(
    exchange: &impl Exchange,
    grid: &Grid,
    densities: (&[f64], &[f64]),
    masses: (f64, f64),
    solution: &Solution,
) -> Result<Output> {
    let blocks = Blocks::Pencils(PencilDecomposition::new(grid, exchange.size())?);
    output_on(exchange, grid, &blocks, densities, masses, solution)
}

fn output_on(
    exchange: &impl Exchange,
    grid: &Grid,
    blocks: &Blocks,
    (mu, nu): (&[f64], &[f64]),
    masses: (f64, f64),
    solution: &Solution,
) -> Result<Output> {
    let rank = exchange.rank();
    let cells = blocks.cells(rank);
    let n = cells.len();
    let (p, q) = (values(&solution.p), values(&solution.q));
    let bad = [mu.len(), nu.len(), p.len(), q.len()].iter().any(|&l| l != n);
    if exchange.max(f64::from(u8::from(bad))) > 0.0 {
        return Err(Error::invalid("distributed output: a rank's blocks do not match its cells"));
    }
    let d = grid.dim();
    let local = blocks.local_grid(rank)?;
    let centre = crate::grid::cell_centres(grid, cells.clone());
    let half: Vec<f64> = centre.par_chunks(d).map(half_square).collect();
    let plus = |u: &[f64]| -> Vec<f64> { half.iter().zip(u).map(|(a, b)| a + b).collect() };
    let boxes = [mu, nu].map(|rho| support_box(exchange, grid, &cells, rho));
    let map = map_of(exchange, grid, blocks, p, &centre, &boxes[1])?;
    let inverse = map_of(exchange, grid, blocks, q, &centre, &boxes[0])?;
    let mut displacement = map.clone();
    displacement.par_iter_mut().zip(centre.par_iter()).for_each(|(a, b)| *a -= b);
    let subsamples = if d == 2 { 2 } else { 1 };
    let pushed = blocks.push_forward(exchange, grid, mu, &map, subsamples)?;
    let cost =
        blocks.sum(exchange, |i| transport_term(mu, &displacement, d, i)) * grid.cell_volume();
    let scalar = |v: Vec<f64>| ScalarField::from_vec(&local, v);
    let vector = |v: Vec<f64>| -> Result<VectorField> {
        let mut shape = local.storage_shape();
        shape.push(d);
        let data = ndarray::ArrayD::from_shape_vec(shape, v)
            .map_err(|e| Error::invalid(format!("distributed output: {e}")))?;
        VectorField::new(local.clone(), data)
    };
    let mut out = match blocks {
        Blocks::Slabs(s) => Output::slab(grid, s, rank)?,
        Blocks::Pencils(p) => Output::pencil(grid, p, rank)?,
    };
    out.add_field("source", scalar(mu.to_vec())?)?;
    out.add_field("target", scalar(nu.to_vec())?)?;
    out.add_field("phi", scalar(plus(p))?)?;
    out.add_field("psi", scalar(plus(q))?)?;
    out.add_field("map", vector(map)?)?;
    out.add_field("displacement", vector(displacement)?)?;
    out.add_field("inverse_map", vector(inverse)?)?;
    out.add_field("push_forward", scalar(pushed)?)?;
    solution.add_summary(&mut out, cost, masses)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::{slab_bfm, test_grid, LocalWorld};
    use crate::grid::BoundaryKind::{Neumann, Periodic};
    use crate::io::{AttrValue, Field};
    use crate::ot::bfm::PushForward;
    use crate::ot::{BackAndForth, Options, Problem, Solver};

    /// A bump of width² `width` at `centre`, cut to zero below `cut` of its peak.
    fn bump(grid: &Grid, centre: [f64; 3], width: f64, cut: f64) -> ScalarField {
        ScalarField::from_fn(grid, |x| {
            let v =
                (-x.iter().zip(centre).map(|(x, c)| (x - c).powi(2)).sum::<f64>() / width).exp();
            if v < cut {
                0.0
            } else {
                v
            }
        })
    }

    fn values(f: &Field) -> Vec<f64> {
        match f {
            Field::Scalar(s) => s.data().iter().copied().collect(),
            Field::Vector(v) => v.data().iter().copied().collect(),
        }
    }

    /// On 1–4 ranks every rank's part holds its planes of the serial single-level solve's
    /// file — every field to the bit — and the serial diagnostics and attributes (all but
    /// `seconds`): 2D and 3D box grids, and a target that vanishes outside a disc (the maps'
    /// clamp into its support box), a periodic axis across the slabs' x.
    #[test]
    fn slab_output_is_the_serial_file_to_the_bit() {
        let cases = [
            (&[24usize, 21][..], &[Neumann, Neumann][..], 0.0),
            (&[14, 13, 11][..], &[Periodic, Neumann, Neumann][..], 0.0),
            (&[20, 19][..], &[Neumann, Neumann][..], 0.05),
        ];
        for (shape, kinds, cut) in cases {
            let grid = test_grid(shape, kinds);
            let mut mu = bump(&grid, [0.4, 0.5, 0.5], 0.05, 0.0);
            mu.data_mut().mapv_inplace(|v| 3.0 * (v + 0.02));
            let nu = bump(&grid, [0.6, 0.55, 0.45], 0.03, cut);
            let solver = BackAndForth {
                multilevel: false,
                push_forward: PushForward::Deposit,
                tolerance: Some(1e-6),
                max_iterations: Some(12),
                ..BackAndForth::default()
            };
            let problem = Problem::new(&mu, &nu).unwrap();
            let serial = solver.solve(&problem, &Options::default()).unwrap();
            let file = serial.to_output(&problem).unwrap();
            let flat = |f: &ScalarField| f.data().iter().copied().collect::<Vec<f64>>();
            let (m, n) = (flat(problem.source()), flat(problem.target()));
            for ranks in 1..=4 {
                let parts = LocalWorld::run(ranks, |ex| {
                    let c = SlabDecomposition::new(&grid, ranks).unwrap().cells(ex.rank());
                    let blocks = (&m[c.clone()], &n[c.clone()]);
                    let result = slab_bfm(ex, &grid, blocks.0, blocks.1, &solver).unwrap();
                    let out = slab_output(ex, &grid, blocks, problem.masses(), &result);
                    (c, out.unwrap())
                });
                let d = grid.dim();
                for (c, part) in parts {
                    assert_eq!(part.fields().len(), file.fields().len());
                    for (name, field) in file.fields() {
                        let whole = values(field);
                        let width = if matches!(field, Field::Vector(_)) { d } else { 1 };
                        let mine = &whole[c.start * width..c.end * width];
                        let got = values(&part.fields()[name]);
                        assert!(got == mine, "{shape:?}, {ranks} ranks: field {name}");
                    }
                    assert_eq!(part.diagnostics(), file.diagnostics(), "{shape:?}, {ranks} ranks");
                    let mut attributes = part.attributes().clone();
                    let mut expected = file.attributes().clone();
                    for a in [&mut attributes, &mut expected] {
                        assert!(matches!(a.remove("seconds"), Some(AttrValue::Number(_))));
                    }
                    assert_eq!(attributes, expected, "{shape:?}, {ranks} ranks");
                }
            }
        }
    }

    /// On y–z pencils (more ranks than z planes) the part of the serial solve's potentials
    /// gives the serial file: every field to the bit, the diagnostics, and the attributes
    /// (the transport cost to 1e-13, summed per rank).
    #[test]
    fn pencil_output_is_the_serial_file() {
        let cases = [
            ([14usize, 13, 4], [Periodic, Neumann, Neumann], &[6usize, 8][..]),
            ([12, 10, 5], [Neumann, Neumann, Neumann], &[10][..]),
        ];
        for (shape, kinds, rank_counts) in cases {
            let grid = test_grid(&shape, &kinds);
            let mut mu = bump(&grid, [0.4, 0.5, 0.5], 0.05, 0.0);
            mu.data_mut().mapv_inplace(|v| 3.0 * (v + 0.02));
            let nu = bump(&grid, [0.6, 0.55, 0.45], 0.03, 0.05);
            let problem = Problem::new(&mu, &nu).unwrap();
            let solver = crate::ot::Sinkhorn { epsilon: Some(0.02), ..Default::default() };
            let serial = solver.solve(&problem, &Options::default()).unwrap();
            let file = serial.to_output(&problem).unwrap();
            let flat = |f: &ScalarField| f.data().iter().copied().collect::<Vec<f64>>();
            let (m, n) = (flat(problem.source()), flat(problem.target()));
            for &ranks in rank_counts {
                let parts = LocalWorld::run(ranks, |ex| {
                    let pencils = PencilDecomposition::new(&grid, ranks).unwrap();
                    let r = ex.rank();
                    let local = pencils.local_grid(r).unwrap();
                    let mut part = serial.clone();
                    let block = |f: &ScalarField| {
                        ScalarField::from_vec(&local, pencils.block(r, &flat(f))).unwrap()
                    };
                    (part.p, part.q) = (block(&serial.p), block(&serial.q));
                    let blocks = (&pencils.block(r, &m)[..], &pencils.block(r, &n)[..]);
                    let out = pencil_output(ex, &grid, blocks, problem.masses(), &part);
                    (pencils, out.unwrap())
                });
                for (r, (pencils, part)) in parts.into_iter().enumerate() {
                    assert_eq!(part.fields().len(), file.fields().len());
                    for (name, field) in file.fields() {
                        let whole = values(field);
                        let width = if matches!(field, Field::Vector(_)) { 3 } else { 1 };
                        let mine: Vec<f64> = (0..pencils.len(r))
                            .flat_map(|l| {
                                let i = pencils.to_global(r, l);
                                whole[i * width..(i + 1) * width].to_vec()
                            })
                            .collect();
                        let got = values(&part.fields()[name]);
                        assert!(got == mine, "{shape:?}, {ranks} ranks: field {name}");
                    }
                    assert_eq!(part.diagnostics(), file.diagnostics());
                    let mut attributes = part.attributes().clone();
                    let mut expected = file.attributes().clone();
                    let cost = |a: &mut std::collections::BTreeMap<String, AttrValue>| match a
                        .remove("transport_cost")
                    {
                        Some(AttrValue::Number(v)) => v,
                        other => panic!("transport_cost: {other:?}"),
                    };
                    let (a, b) = (cost(&mut attributes), cost(&mut expected));
                    assert!((a - b).abs() <= 1e-13 * b.abs(), "transport cost {a} vs {b}");
                    assert_eq!(attributes, expected, "{shape:?}, {ranks} ranks");
                }
            }
        }
    }
}
