//! The parabolic Monge–Ampère flow on a grid cut into slabs or y–z pencils: the serial flow
//! ([`crate::ot::Parabolic`]: explicit or linearly implicit steps, the step-size schedules,
//! halvings, stopping rules and diagnostics) run by [`crate::ot::Parabolic::iterate`] against
//! one rank's block instead of the whole grid.
//!
//! * `F(u) = log det(I + D²_h u) + log g(x + ∇_h u) − log f` on a rank's cells: what u's
//!   stencils read beyond the block comes in one `Alltoallv` — the neighbouring planes on
//!   slabs (one each side, wrapped on a periodic slab axis), on pencils the x lines one row
//!   and one plane beyond, corners included; then the planes (lines) of `log g` that the
//!   mapped points' multilinear stencils read (after an all-gather of every rank's list). The
//!   serial cell arithmetic ([`crate::ot::monge_ampere`]'s geometry and interpolation) is
//!   shared.
//! * The linearly implicit step `(1/η − J) δ = F − c`: the serial BiCGSTAB
//!   ([`crate::sparse::bicgstab`]) on the serial rows of `1/η − J`, each product with one
//!   halo exchange, preconditioned by the slab or pencil Poisson solver (the serial
//!   transform to the bit), its inner products added in the serial order
//!   ([`super::slab_sum`], [`super::pencil_sum`]).
//! * The dual value by the decomposed c-transform, the map's shift by the decomposed
//!   gradient.
//!
//! Every piece is the serial one to the bit, so every rank takes the serial flow's steps and
//! the potentials equal the serial ones to the bit.
//!
//! * Pairs below [`crate::ot::MIN_CONTRAST`] take the serial Gaussian lift
//!   ([`crate::ot::lift`]: its moments and mass added in the serial order, each cell's
//!   Gaussian from its centre) or its refusal, with the serial message.
//!
//! Not distributed (refused): a warm start or resumed state, checkpoints and sample batches.

use super::blocks::{Blocks, Cut, DecomposedPoisson};
use super::exchange::Exchange;
use super::pushforward::{gather_planes, GatheredLines};
use super::{agree, all_lists, exchange_blocks};
use crate::error::{Error, Result};
use crate::grid::{Grid, SlabDecomposition};
use crate::ot::lift::{first_dip, modes_reason, periodic_reason, separated_modes, GaussianLift};
use crate::ot::monge_ampere::{CellGeometry, MongeAmpere, OwnedCells, Rows, StepOps, Term};
use crate::ot::parabolic::{Evaluation, FlowLayout, Start, METHOD};
use crate::ot::pushforward::linear_stencil;
use crate::ot::{Options, Parabolic, Solution};
use rayon::prelude::*;
use std::time::Instant;

/// Values of a field beyond a rank's block, gathered: whole planes (slabs) or x lines
/// (pencils), read by global cell index.
enum Gathered {
    Planes { values: Vec<f64>, position: Vec<usize>, plane: usize },
    Lines { lines: GatheredLines, nx: usize },
}

impl Gathered {
    /// The value at global cell `c` (in a gathered plane or line).
    #[inline]
    fn at(&self, c: usize) -> f64 {
        match self {
            Gathered::Planes { values, position, plane } => {
                values[position[c / plane] * plane + c % plane]
            }
            Gathered::Lines { lines, nx } => lines.line(c / nx)[c % nx],
        }
    }
}

/// The neighbours `k − 1` and `k + 1` of the indices `own` along an axis of `n` cells
/// (wrapped when periodic, left out beyond a box face), with `own` itself: what a
/// three-point stencil on `own` reads.
fn with_neighbours(own: std::ops::Range<usize>, n: usize, periodic: bool) -> Vec<usize> {
    let mut out: Vec<usize> = own.clone().collect();
    if own.start > 0 || periodic {
        out.push((own.start + n - 1) % n);
    }
    if own.end < n || periodic {
        out.push(own.end % n);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// One rank's grid operations for the flow ([`FlowLayout`]) on slabs or y–z pencils; every
/// call is a collective.
struct DecomposedFlow<'a, E: Exchange> {
    exchange: &'a E,
    grid: Grid,
    local: Grid,
    blocks: Blocks,
    ma: MongeAmpere,
    /// `log g`, μ and ν on this rank's block.
    log_g: Vec<f64>,
    mu: Vec<f64>,
    nu: Vec<f64>,
    /// What each rank's stencils read: its planes and their slab-axis neighbours (slabs), or
    /// the x lines of its rows and planes and their neighbours along y and z, corners
    /// included (pencils; line ids `z·ny + y`).
    halo: Vec<Vec<usize>>,
    poisson: Option<(f64, DecomposedPoisson)>,
}

impl<'a, E: Exchange> DecomposedFlow<'a, E> {
    /// The flow of the pair `equation` (lifted or as given), its dual value measured on
    /// `given`.
    fn new(
        exchange: &'a E,
        blocks: Blocks,
        given: [&[f64]; 2],
        equation: [&[f64]; 2],
    ) -> Result<DecomposedFlow<'a, E>> {
        let (rank, ranks) = (exchange.rank(), exchange.size());
        let (grid, owned, halo) = match &blocks {
            Blocks::Slabs(slabs) => {
                let axis = slabs.grid().axis(slabs.grid().dim() - 1);
                let (n, periodic) = (axis.cells, axis.boundary.is_periodic());
                let halo =
                    (0..ranks).map(|r| with_neighbours(slabs.planes(r), n, periodic)).collect();
                let first = slabs.cells(rank).start;
                (slabs.grid().clone(), OwnedCells::From(first), halo)
            }
            Blocks::Pencils(pencils) => {
                let grid = pencils.grid();
                let (y, z) = (grid.axis(1), grid.axis(2));
                let halo = (0..ranks)
                    .map(|r| {
                        let rows =
                            with_neighbours(pencils.rows(r), y.cells, y.boundary.is_periodic());
                        let planes =
                            with_neighbours(pencils.planes(r), z.cells, z.boundary.is_periodic());
                        let mut ids: Vec<usize> = planes
                            .iter()
                            .flat_map(|k| rows.iter().map(move |j| k * y.cells + j))
                            .collect();
                        ids.sort_unstable();
                        ids
                    })
                    .collect();
                (grid.clone(), OwnedCells::Listed(blocks.cells(rank)), halo)
            }
        };
        let log = |v: &[f64]| v.iter().map(|v| v.ln()).collect::<Vec<f64>>();
        let ma = MongeAmpere::on_cells(&grid, log(equation[0]), owned);
        Ok(DecomposedFlow {
            exchange,
            local: blocks.local_grid(rank)?,
            grid,
            blocks,
            ma,
            log_g: log(equation[1]),
            mu: given[0].to_vec(),
            nu: given[1].to_vec(),
            halo,
            poisson: None,
        })
    }

    /// `x` (this rank's block) at the planes or lines `wanted[q]` of each rank q: one
    /// `Alltoallv`.
    fn gather(&self, x: &[f64], wanted: &[Vec<usize>]) -> Result<Gathered> {
        match &self.blocks {
            Blocks::Slabs(slabs) => {
                let plane = slabs.plane_cells();
                let values = gather_planes(self.exchange, slabs, x, plane, wanted)?;
                let n = self.grid.axis(self.grid.dim() - 1).cells;
                let mut position = vec![usize::MAX; n];
                for (k, &j) in wanted[self.exchange.rank()].iter().enumerate() {
                    position[j] = k;
                }
                Ok(Gathered::Planes { values, position, plane })
            }
            Blocks::Pencils(pencils) => {
                let nx = self.grid.axis(0).cells;
                let lines = GatheredLines::gather(self.exchange, pencils, x, nx, wanted)?;
                Ok(Gathered::Lines { lines, nx })
            }
        }
    }

    /// `x` on this rank's block and what its stencils read beyond it.
    fn with_halo(&self, x: &[f64]) -> Result<Gathered> {
        self.gather(x, &self.halo)
    }

    /// The planes (slabs) or lines (pencils) that the multilinear stencils at `points` read.
    fn read_by(&self, points: &[CellGeometry]) -> Vec<usize> {
        let d = self.grid.dim();
        let mut mine: Vec<usize> = match &self.blocks {
            Blocks::Slabs(_) => {
                let slab = self.grid.axis(d - 1);
                points
                    .iter()
                    .flat_map(|g| {
                        let (base, next, _, _) = linear_stencil(slab, g.point[d - 1]);
                        [base, next]
                    })
                    .collect()
            }
            Blocks::Pencils(_) => {
                let (y, z) = (self.grid.axis(1), self.grid.axis(2));
                points
                    .iter()
                    .flat_map(|g| {
                        let (y0, y1, _, _) = linear_stencil(y, g.point[1]);
                        let (z0, z1, _, _) = linear_stencil(z, g.point[2]);
                        [z0 * y.cells + y0, z0 * y.cells + y1, z1 * y.cells + y0, z1 * y.cells + y1]
                    })
                    .collect()
            }
        };
        mine.sort_unstable();
        mine.dedup();
        mine
    }

    /// Whether any rank says `bad`.
    fn any(&self, bad: bool) -> bool {
        self.exchange.max(f64::from(u8::from(bad))) > 0.0
    }
}

impl<E: Exchange> StepOps for DecomposedFlow<'_, E> {
    fn apply_rows(&mut self, rows: &Rows, x: &[f64], y: &mut [f64]) -> Result<()> {
        let xs = self.with_halo(x)?;
        rows.apply(|c| xs.at(c), y);
        Ok(())
    }

    fn poisson(&mut self, shift: f64, r: &[f64], z: &mut [f64]) -> Result<()> {
        let solver = match self.poisson.take() {
            Some((s, p)) if s == shift => p,
            _ => self.blocks.shifted_poisson(self.exchange, &self.grid, shift)?,
        };
        self.poisson.insert((shift, solver)).1.solve(self.exchange, r, z)
    }

    fn sum(&self, term: &Term) -> f64 {
        self.blocks.sum(self.exchange, term)
    }

    fn cells(&self) -> usize {
        self.grid.num_cells()
    }
}

impl<E: Exchange> FlowLayout for DecomposedFlow<'_, E> {
    fn ma(&self) -> &MongeAmpere {
        &self.ma
    }

    fn local_grid(&self) -> &Grid {
        &self.local
    }

    fn evaluate(&mut self, u: &[f64]) -> Result<Option<Evaluation>> {
        let us = self.with_halo(u)?;
        let owned = self.ma.owned();
        let geometry: Vec<Option<CellGeometry>> = (0..u.len())
            .into_par_iter()
            .map(|l| self.ma.geometry(|c| us.at(c), owned.global(l)))
            .collect();
        if self.any(geometry.iter().any(Option::is_none)) {
            return Ok(None);
        }
        let geometry: Vec<CellGeometry> = geometry.into_iter().flatten().collect();
        // log g on the planes or lines the mapped points read.
        let wanted = all_lists(self.exchange, &self.read_by(&geometry));
        let gs = self.gather(&self.log_g, &wanted)?;
        let cells: Option<Vec<_>> = geometry
            .par_iter()
            .enumerate()
            .map(|(l, g)| self.ma.finish(g, |c| gs.at(c), l))
            .collect();
        if self.any(cells.is_none()) {
            return Ok(None);
        }
        Ok(cells.map(|c| c.into_iter().unzip()))
    }

    fn max(&self, value: f64) -> f64 {
        self.exchange.max(value)
    }

    fn dual_value(&mut self, p: &[f64]) -> Result<(f64, Vec<f64>)> {
        let q = self.blocks.c_transform(self.exchange, &self.grid, p)?;
        let (mu, nu) = (&self.mu, &self.nu);
        let value =
            -(self.sum(&|i| p[i] * mu[i]) + self.sum(&|i| q[i] * nu[i])) * self.grid.cell_volume();
        Ok((value, q))
    }

    fn map_shift(&mut self, v: &[f64]) -> Result<f64> {
        let d = self.grid.dim();
        let h = self.grid.spacing();
        let g = self.blocks.gradient(self.exchange, &self.grid, v)?;
        let local = g
            .par_chunks(d)
            .map(|c| c.iter().zip(&h).map(|(x, h)| (x / h).abs()).fold(0.0, f64::max))
            .reduce(|| 0.0, f64::max);
        Ok(self.exchange.max(local))
    }
}

/// This rank's part of the parabolic Monge–Ampère flow between the densities whose slab of
/// `grid` this rank holds (`mu`, `nu`: C order, unit mass over all ranks as
/// [`crate::ot::Problem`] normalises them, strictly positive). A collective: every rank calls
/// it with the same grid and solver. The solution's potentials `p`, `q` are this rank's
/// blocks (on [`SlabDecomposition::local_grid`]); its iterations, history and diagnostics are
/// the whole flow's, the same on every rank. Pairs below [`crate::ot::MIN_CONTRAST`] take
/// the serial Gaussian lift. Refused on every rank alike: a bad decomposition, Dirichlet
/// axes, a block of the wrong length or with values that are not positive and finite, a pair
/// the serial flow refuses, a warm start, resumed state, checkpoints or sample batches.
pub fn slab_parabolic(
    exchange: &impl Exchange,
    grid: &Grid,
    mu: &[f64],
    nu: &[f64],
    solver: &Parabolic,
) -> Result<Solution> {
    decomposed_parabolic(exchange, grid, mu, nu, solver, Cut::Slabs)
}

/// [`slab_parabolic`] on y–z pencils ([`crate::grid::PencilDecomposition::new`]; a 3D grid,
/// `mu` and `nu` this rank's pencil block in its storage order): the serial flow to the bit.
/// The lift's separated-modes check runs on the whole target, gathered on every rank once.
/// Refused besides: a grid whose transposed pencils do not fit (as bfm's).
pub fn pencil_parabolic(
    exchange: &impl Exchange,
    grid: &Grid,
    mu: &[f64],
    nu: &[f64],
    solver: &Parabolic,
) -> Result<Solution> {
    decomposed_parabolic(exchange, grid, mu, nu, solver, Cut::Pencils)
}

fn decomposed_parabolic(
    exchange: &impl Exchange,
    grid: &Grid,
    mu: &[f64],
    nu: &[f64],
    solver: &Parabolic,
    cut: Cut,
) -> Result<Solution> {
    if grid.boundaries().iter().any(|k| k.prescribes_value()) {
        return Err(Error::invalid(
            "optimal transport needs neumann (box) or periodic axes, not dirichlet",
        ));
    }
    super::blocks::fits(grid, exchange.size(), cut)?;
    let blocks = Blocks::new(grid, exchange.size(), cut)?;
    let cells = blocks.len(exchange.rank());
    let bad = mu.len() != cells
        || nu.len() != cells
        || mu.iter().chain(nu).any(|v| !(v.is_finite() && *v > 0.0));
    if exchange.max(f64::from(u8::from(bad))) > 0.0 {
        return Err(Error::invalid(format!(
            "distributed parabolic: a rank's density block has the wrong length or values that \
             are not positive and finite (this rank: {} and {} values for its {cells} cells; \
             the flow needs strictly positive densities, use the method bfm)",
            mu.len(),
            nu.len()
        )));
    }
    if solver.initial.is_some()
        || solver.resume.is_some()
        || solver.checkpoint_every.is_some()
        || solver.batches.is_some()
    {
        return Err(Error::invalid(
            "distributed parabolic: a warm start, resumed state, checkpoints or sample batches \
             are not supported",
        ));
    }
    let options =
        Options::default().stopping(&METHOD, grid, solver.tolerance, solver.max_iterations)?;
    let start = Instant::now();
    let lifted = decomposed_lift(exchange, &blocks, [mu, nu], solver.lift)?;
    let equation = lifted.as_ref().map_or([mu, nu], |(_, [a, b])| [&a[..], &b[..]]);
    let mut layout = DecomposedFlow::new(exchange, blocks, [mu, nu], equation)?;
    let u = vec![0.0; cells];
    let evaluation = layout.evaluate(&u)?.ok_or_else(|| {
        Error::invalid("parabolic: the initial potential is not discretely convex")
    })?;
    let begin = Start { u, evaluation, source: equation[0].to_vec(), resumed: None };
    let mut solution = solver.iterate(&mut layout, begin, None, &options, start)?;
    if let Some((lift, _)) = lifted {
        solution.scalars = vec![("lift_mass".to_string(), lift.mass)];
    }
    Ok(solution)
}

/// The pair the flow works on, as the serial `lifted_for` picks it: `None` (the densities as
/// given) without a lift or when both densities stay above [`crate::ot::MIN_CONTRAST`] of
/// their peak, else the lifted pair on this rank's block (`ρ + ε L_ρ`, normalised: the
/// serial lifted problem's values to the bit) — or the serial `unsuited` verdict as an error
/// on every rank (a periodic axis, a target with separated modes along a grid line). On
/// pencils the modes are sought in the whole target, gathered on every rank once.
#[allow(clippy::type_complexity)]
fn decomposed_lift(
    exchange: &impl Exchange,
    blocks: &Blocks,
    [mu, nu]: [&[f64]; 2],
    lift: Option<GaussianLift>,
) -> Result<Option<(GaussianLift, [Vec<f64>; 2])>> {
    let ratio = |v: &[f64]| {
        let low = -exchange.max(-v.iter().copied().fold(f64::INFINITY, f64::min));
        low / exchange.max(v.iter().copied().fold(0.0, f64::max))
    };
    let contrast = ratio(mu).min(ratio(nu));
    let Some(lift) = lift.filter(|_| contrast < crate::ot::MIN_CONTRAST) else {
        return Ok(None);
    };
    lift.validate()?;
    let grid = blocks.grid();
    let reason = if grid.axes().iter().any(|a| a.boundary.is_periodic()) {
        Some(periodic_reason(contrast))
    } else {
        match blocks {
            Blocks::Slabs(slabs) => slab_separated_modes(exchange, slabs, nu),
            Blocks::Pencils(_) => separated_modes(&blocks.whole(exchange, nu)?),
        }
    };
    if let Some(reason) = reason {
        return Err(Error::UnsuitedMethod {
            method: "parabolic",
            reason,
            suggestion: "the method bfm (or auto)",
        });
    }
    let centres = crate::grid::cell_centres(grid, blocks.cells(exchange.rank()));
    let sum = |t: &Term| blocks.sum(exchange, t);
    let mut pair = [vec![], vec![]];
    for (k, (rho, what)) in [(mu, "source"), (nu, "target")].into_iter().enumerate() {
        let l = agree(exchange, lift.gaussian_values(grid, rho, &centres, &sum), "lifting")?;
        pair[k] = blocks.density(exchange, lift.plus(rho, &l), what)?.0;
    }
    Ok(Some((lift, pair)))
}

/// The serial `separated_modes` of the density whose planes `rho` this rank holds: the
/// first dip in the serial scan order (lines along the slab axis first, in column order,
/// then the in-plane axes plane by plane), found on every rank. Lines along the slab axis
/// cross ranks: each rank's column maxima go to every rank (one `Alltoallv`), so each scans
/// its part with the highest values before and after it.
fn slab_separated_modes(
    exchange: &impl Exchange,
    slabs: &SlabDecomposition,
    rho: &[f64],
) -> Option<String> {
    let (rank, ranks) = (exchange.rank(), exchange.size());
    let grid = slabs.grid();
    let d = grid.dim();
    let plane = slabs.plane_cells();
    let planes = slabs.planes(rank);
    let local = planes.len();
    let significant = 1e-6 * exchange.max(rho.iter().copied().fold(0.0, f64::max));
    // Along the slab axis: every rank's column maxima.
    let column_max: Vec<f64> = (0..plane)
        .into_par_iter()
        .map(|c| (0..local).map(|p| rho[p * plane + c]).fold(0.0, f64::max))
        .collect();
    let send: Vec<f64> = (0..ranks).flat_map(|_| column_max.iter().copied()).collect();
    let all = exchange_blocks(exchange, &send, &vec![plane; ranks], &vec![plane; ranks]);
    let n = grid.axis(d - 1).cells;
    let first: Option<(usize, f64)> = (0..plane)
        .into_par_iter()
        .filter_map(|c| {
            let max_of =
                |rs: std::ops::Range<usize>| rs.map(|r| all[r * plane + c]).fold(0.0, f64::max);
            let beyond = [max_of(0..rank), max_of(rank + 1..ranks)];
            first_dip(local, |p| rho[p * plane + c], beyond, significant)
                .map(|(p, ratio)| (c * n + planes.start + p, ratio))
        })
        .min_by_key(|(key, _)| *key);
    let key = -exchange.max(-first.map_or(f64::INFINITY, |(key, _)| key as f64));
    if key.is_finite() {
        let mine = first.filter(|(k, _)| *k as f64 == key).map_or(f64::NEG_INFINITY, |f| f.1);
        return Some(modes_reason(d - 1, exchange.max(mine)));
    }
    // The in-plane axes: lines within a plane, the ranks' planes in order.
    let mut shape = grid.storage_shape();
    shape[0] = local;
    let view = ndarray::ArrayViewD::from_shape(shape, rho).expect("a rank's planes");
    for k in 1..d {
        let mine = view.lanes(ndarray::Axis(k)).into_iter().find_map(|lane| {
            first_dip(lane.len(), |i| lane[i], [0.0; 2], significant).map(|(_, ratio)| ratio)
        });
        let first_rank = -exchange.max(-mine.map_or(f64::INFINITY, |_| rank as f64));
        if first_rank.is_finite() {
            let ratio = if first_rank == rank as f64 { mine } else { None };
            return Some(modes_reason(d - 1 - k, exchange.max(ratio.unwrap_or(f64::NEG_INFINITY))));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::LocalWorld;
    use crate::field::ScalarField;
    use crate::grid::{Axis, BoundaryKind};
    use crate::ot::Stepping;
    use crate::ot::{Problem, Schedule, Solver};

    fn bump(grid: &Grid, c: [f64; 3], s: f64, floor: f64) -> ScalarField {
        ScalarField::from_fn(grid, |x| {
            let r2: f64 = x.iter().zip(c).map(|(x, c)| (x - c) * (x - c)).sum();
            (-r2 / (2.0 * s * s)).exp() + floor
        })
    }

    /// The flow's solver, linearly implicit or explicit (CFL 0.9), with an iteration budget.
    fn flow(explicit: bool, iterations: usize) -> Parabolic {
        let mut solver = Parabolic { max_iterations: Some(iterations), ..Default::default() };
        if explicit {
            solver.stepping = Stepping::Explicit;
            solver.schedule = Schedule::Cfl(0.9);
        }
        solver
    }

    fn grid(shape: &[usize], kind: BoundaryKind) -> Grid {
        let axes = shape
            .iter()
            .map(|&n| Axis { cells: n, lower: 0.0, upper: 1.0, boundary: kind })
            .collect();
        Grid::new(axes).unwrap()
    }

    /// On 1–4 ranks the slab flow takes the serial flow's steps: the same outcome, iterations
    /// and step sizes, potentials and diagnostics to the bit — linearly implicit (the default)
    /// and explicit, 3D and 2D, box and torus, slab axes that do not divide.
    #[test]
    fn slab_flow_is_the_serial_flow_to_the_bit() {
        use BoundaryKind::*;
        for (shape, kind, explicit) in [
            (vec![12, 11, 9], Neumann, false),
            (vec![10, 9, 11], Periodic, false),
            (vec![14, 13], Neumann, false),
            (vec![12, 10, 9], Neumann, true),
            (vec![13, 15], Periodic, true),
        ] {
            let g = grid(&shape, kind);
            let source = bump(&g, [0.45, 0.5, 0.5], 0.2, 0.3);
            let target = bump(&g, [0.55, 0.45, 0.52], 0.25, 0.4);
            let problem = Problem::new(&source, &target).unwrap();
            let solver = flow(explicit, 40);
            let serial = solver.solve(&problem, &Options::default()).unwrap();
            assert!(serial.iterations > 2, "{shape:?}: {}", serial.stop_reason);
            for ranks in 1..=4 {
                let slabs = SlabDecomposition::new(&g, ranks).unwrap();
                let parts = LocalWorld::run(ranks, |ex| {
                    let block = |f: &ScalarField| {
                        let all = f.data().as_slice().unwrap();
                        all[slabs.cells(ex.rank())].to_vec()
                    };
                    let (mu, nu) = (block(problem.source()), block(problem.target()));
                    slab_parabolic(ex, &g, &mu, &nu, &solver).unwrap()
                });
                let p: Vec<f64> = parts.iter().flat_map(|s| s.p.data().iter().copied()).collect();
                let q: Vec<f64> = parts.iter().flat_map(|s| s.q.data().iter().copied()).collect();
                let what = format!("{shape:?} {kind:?} explicit={explicit}, {ranks} ranks");
                for s in &parts {
                    assert_eq!(s.outcome, serial.outcome, "{what}");
                    assert_eq!(s.iterations, serial.iterations, "{what}");
                    assert_eq!(s.history, serial.history, "{what}");
                    assert_eq!(s.diagnostics, serial.diagnostics, "{what}");
                    assert_eq!(s.marginal_error.to_bits(), serial.marginal_error.to_bits());
                }
                assert!(p.iter().eq(serial.p.data().iter()), "{what}: potentials differ");
                assert!(q.iter().eq(serial.q.data().iter()), "{what}: conjugates differ");
            }
        }
    }

    /// On y–z pencils (more ranks than z planes: 2 × 3, 2 × 4, 4 × 3) the flow takes the
    /// serial flow's steps to the bit — box and torus, linearly implicit and explicit — and a
    /// low-contrast box pair the serial Gaussian lift (or, with separated modes, the serial
    /// refusal).
    #[test]
    fn pencil_flow_is_the_serial_flow_to_the_bit() {
        use crate::grid::PencilDecomposition;
        use BoundaryKind::*;
        for (shape, kind, explicit, floor, all_ranks) in [
            (vec![12, 11, 4], Neumann, false, 0.3, vec![6, 8]),
            (vec![10, 9, 4], Periodic, false, 0.3, vec![6, 12]),
            (vec![12, 10, 4], Neumann, true, 0.3, vec![8]),
            (vec![12, 11, 4], Neumann, false, 1e-9, vec![6]),
        ] {
            let g = grid(&shape, kind);
            let (s, t) = if floor < 0.01 { (0.12, 0.15) } else { (0.2, 0.25) };
            let source = bump(&g, [0.45, 0.5, 0.5], s, floor);
            let target = bump(&g, [0.55, 0.45, 0.52], t, floor + 0.1 * floor);
            let problem = Problem::new(&source, &target).unwrap();
            let solver = flow(explicit, 30);
            let serial = solver.solve(&problem, &Options::default()).unwrap();
            assert!(serial.iterations > 2, "{shape:?}: {}", serial.stop_reason);
            assert_eq!(serial.scalars.is_empty(), floor > 0.01, "{shape:?}: the lift or not");
            for ranks in all_ranks {
                let pencils = PencilDecomposition::new(&g, ranks).unwrap();
                assert!(pencils.shape().0 > 1, "{ranks} ranks: pencils");
                let parts = LocalWorld::run(ranks, |ex| {
                    let block = |f: &ScalarField| {
                        let all = f.data().as_slice().unwrap();
                        let r = ex.rank();
                        (0..pencils.len(r)).map(|k| all[pencils.to_global(r, k)]).collect()
                    };
                    let (mu, nu): (Vec<f64>, Vec<f64>) =
                        (block(problem.source()), block(problem.target()));
                    pencil_parabolic(ex, &g, &mu, &nu, &solver).unwrap()
                });
                let whole = |f: fn(&Solution) -> &ScalarField| {
                    let mut out = vec![f64::NAN; g.num_cells()];
                    for (r, s) in parts.iter().enumerate() {
                        for (k, v) in f(s).data().iter().enumerate() {
                            out[pencils.to_global(r, k)] = *v;
                        }
                    }
                    out
                };
                let what = format!("{shape:?} {kind:?} explicit={explicit}, {ranks} ranks");
                for s in &parts {
                    assert_eq!(s.outcome, serial.outcome, "{what}");
                    assert_eq!(s.iterations, serial.iterations, "{what}");
                    assert_eq!(s.history, serial.history, "{what}");
                    assert_eq!(s.diagnostics, serial.diagnostics, "{what}");
                    assert_eq!(s.scalars, serial.scalars, "{what}");
                    assert_eq!(s.marginal_error.to_bits(), serial.marginal_error.to_bits());
                }
                let p = whole(|s| &s.p);
                let q = whole(|s| &s.q);
                assert!(p.iter().eq(serial.p.data().iter()), "{what}: potentials differ");
                assert!(q.iter().eq(serial.q.data().iter()), "{what}: conjugates differ");
            }
        }
        // A low-contrast target with two modes along y: the serial refusal on every rank.
        let g = grid(&[12, 11, 4], Neumann);
        let source = bump(&g, [0.45, 0.5, 0.5], 0.12, 1e-9);
        let target = ScalarField::from_fn(&g, |x| {
            let b = |c: f64| (-((x[0] - 0.5).powi(2) + (x[1] - c).powi(2)) / 0.01).exp();
            b(0.2) + b(0.8) + 1e-9
        });
        let problem = Problem::new(&source, &target).unwrap();
        let solver = Parabolic { max_iterations: Some(5), ..Default::default() };
        let serial = solver.solve(&problem, &Options::default()).unwrap_err().to_string();
        let pencils = PencilDecomposition::new(&g, 6).unwrap();
        let results = LocalWorld::run(6, |ex| {
            let block = |f: &ScalarField| {
                let all = f.data().as_slice().unwrap();
                let r = ex.rank();
                (0..pencils.len(r)).map(|k| all[pencils.to_global(r, k)]).collect::<Vec<f64>>()
            };
            pencil_parabolic(ex, &g, &block(problem.source()), &block(problem.target()), &solver)
                .map(|s| s.iterations)
        });
        for r in results {
            assert_eq!(r.unwrap_err().to_string(), serial);
        }
    }

    #[test]
    fn bad_inputs_fail_every_rank() {
        let g = grid(&[8, 8, 8], BoundaryKind::Neumann);
        let solver = Parabolic::default();
        let results = LocalWorld::run(2, |ex| {
            let n = SlabDecomposition::new(&g, 2).unwrap().cells(ex.rank()).len();
            let mut mu = vec![1.0; n];
            if ex.rank() == 1 {
                mu[3] = 0.0;
            }
            slab_parabolic(ex, &g, &mu, &vec![1.0; n], &solver).map(|s| s.iterations)
        });
        for r in &results {
            let e = r.as_ref().unwrap_err().to_string();
            assert!(e.contains("positive"), "{e}");
        }
    }

    /// Pairs below 5 % contrast: on a box through the Gaussian lift, the serial lifted flow to
    /// the bit (1–4 ranks, 3D and 2D); refused as the serial flow refuses them — on a torus,
    /// and for a target with separated modes along the slab axis or within a plane — with
    /// the serial message on every rank.
    #[test]
    fn low_contrast_pairs_take_the_serial_lift_or_its_refusal() {
        use BoundaryKind::*;
        let two_bumps = |g: &Grid, axis: usize| {
            let mut c = [0.5; 3];
            c[axis] = 0.25;
            let a = bump(g, c, 0.08, 0.0);
            c[axis] = 0.75;
            let b = bump(g, c, 0.08, 1e-6);
            ScalarField::from_vec(
                g,
                a.data().iter().zip(b.data().iter()).map(|(a, b)| a + b).collect(),
            )
            .unwrap()
        };
        for (shape, kind, target_modes) in [
            (vec![12, 11, 10], Neumann, None),
            (vec![14, 13], Neumann, None),
            (vec![10, 9, 11], Periodic, None),
            (vec![12, 11, 10], Neumann, Some(2)),
            (vec![12, 11, 10], Neumann, Some(0)),
            (vec![14, 13], Neumann, Some(1)),
        ] {
            let g = grid(&shape, kind);
            let source = bump(&g, [0.45, 0.5, 0.5], 0.12, 1e-9);
            let target = match target_modes {
                Some(axis) => two_bumps(&g, axis),
                None => bump(&g, [0.55, 0.45, 0.52], 0.15, 1e-9),
            };
            let problem = Problem::new(&source, &target).unwrap();
            assert!(problem.contrast() < crate::ot::MIN_CONTRAST);
            let solver = Parabolic { max_iterations: Some(12), ..Default::default() };
            let serial = solver.solve(&problem, &Options::default());
            for ranks in 1..=4 {
                let slabs = SlabDecomposition::new(&g, ranks).unwrap();
                let parts = LocalWorld::run(ranks, |ex| {
                    let block = |f: &ScalarField| {
                        f.data().as_slice().unwrap()[slabs.cells(ex.rank())].to_vec()
                    };
                    let (mu, nu) = (block(problem.source()), block(problem.target()));
                    slab_parabolic(ex, &g, &mu, &nu, &solver)
                });
                let what = format!("{shape:?} {kind:?} modes {target_modes:?}, {ranks} ranks");
                match &serial {
                    Ok(serial) => {
                        assert_eq!(serial.scalars, vec![("lift_mass".to_string(), 1e-4)]);
                        let p: Vec<f64> = parts
                            .iter()
                            .flat_map(|s| s.as_ref().unwrap().p.data().iter().copied())
                            .collect();
                        for s in &parts {
                            let s = s.as_ref().unwrap();
                            assert_eq!(s.history, serial.history, "{what}");
                            assert_eq!(s.diagnostics, serial.diagnostics, "{what}");
                            assert_eq!(s.scalars, serial.scalars, "{what}");
                        }
                        assert!(p.iter().eq(serial.p.data().iter()), "{what}: potentials differ");
                    }
                    Err(e) => {
                        for s in &parts {
                            let mine = s.as_ref().map(|s| s.iterations).unwrap_err();
                            assert_eq!(mine.to_string(), e.to_string(), "{what}");
                        }
                    }
                }
            }
            // Each refusal case refuses, each lift case solves.
            assert_eq!(serial.is_err(), kind == Periodic || target_modes.is_some(), "{shape:?}");
        }
    }
}
