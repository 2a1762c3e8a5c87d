//! The parabolic Monge–Ampère flow on a slab-decomposed grid: the serial flow
//! ([`crate::ot::Parabolic`]: explicit or linearly implicit steps, the step-size schedules,
//! halvings, stopping rules and diagnostics) run by [`crate::ot::Parabolic::iterate`] against
//! one rank's planes instead of the whole grid.
//!
//! * `F(u) = log det(I + D²_h u) + log g(x + ∇_h u) − log f` on a rank's cells: u's
//!   neighbouring planes (one each side, wrapped on a periodic slab axis) come in one
//!   `Alltoallv`; the planes of `log g` that the mapped points' multilinear stencils read in
//!   a second (after an all-gather of every rank's list). The serial cell arithmetic
//!   ([`crate::ot::monge_ampere`]'s geometry and interpolation) is shared.
//! * The linearly implicit step `(1/η − J) δ = F − c`: the serial BiCGSTAB
//!   ([`crate::sparse::bicgstab`]) on the serial rows of `1/η − J`, each product with one
//!   halo exchange, preconditioned by [`SlabPoissonSolver`] (the serial transform to the
//!   bit), its inner products added in the serial order ([`slab_sum`]).
//! * The dual value by [`slab_c_transform`], the map's shift by [`slab_gradient`].
//!
//! Every piece is the serial one to the bit, so every rank takes the serial flow's steps and
//! the potentials equal the serial ones to the bit.
//!
//! * Pairs below [`crate::ot::MIN_CONTRAST`] take the serial Gaussian lift
//!   ([`crate::ot::lift`]: its moments and mass added in the serial order, each cell's
//!   Gaussian from its centre) or its refusal, with the serial message.
//!
//! Not on slabs (refused): a warm start or resumed state, checkpoints and sample batches.

use super::exchange::Exchange;
use super::poisson::SlabPoissonSolver;
use super::pushforward::gather_planes;
use super::sum::slab_sum;
use super::{agree, all_lists, exchange_blocks, slab_c_transform, slab_density, slab_gradient};
use crate::error::{Error, Result};
use crate::grid::{Grid, SlabDecomposition};
use crate::ot::lift::{first_dip, modes_reason, periodic_reason, GaussianLift};
use crate::ot::monge_ampere::{CellGeometry, Rows, StepOps, Term};
use crate::ot::parabolic::{Evaluation, FlowLayout, MongeAmpere, Start, METHOD};
use crate::ot::pushforward::linear_stencil;
use crate::ot::{Options, Parabolic, Solution};
use crate::spectral::Symbol;
use rayon::prelude::*;
use std::time::Instant;

/// One rank's grid operations for the flow ([`FlowLayout`]); every call is a collective.
struct SlabFlow<'a, E: Exchange> {
    exchange: &'a E,
    grid: Grid,
    local: Grid,
    slabs: SlabDecomposition,
    ma: MongeAmpere,
    /// `log g`, μ and ν on this rank's planes.
    log_g: Vec<f64>,
    mu: Vec<f64>,
    nu: Vec<f64>,
    /// Every rank's planes and their neighbours along the slab axis: what its stencils read.
    halo: Vec<Vec<usize>>,
    /// Where each of this rank's halo planes sits in a gathered block.
    position: Vec<usize>,
    poisson: Option<SlabPoissonSolver>,
}

impl<'a, E: Exchange> SlabFlow<'a, E> {
    /// The flow of the pair `equation` (lifted or as given), its dual value measured on
    /// `given`.
    fn new(
        exchange: &'a E,
        grid: &Grid,
        given: [&[f64]; 2],
        equation: [&[f64]; 2],
    ) -> Result<SlabFlow<'a, E>> {
        let (rank, ranks) = (exchange.rank(), exchange.size());
        let slabs = SlabDecomposition::new(grid, ranks)?;
        let slab = grid.axis(grid.dim() - 1);
        let (n, periodic) = (slab.cells, slab.boundary.is_periodic());
        let halo: Vec<Vec<usize>> = (0..ranks)
            .map(|r| {
                let own = slabs.planes(r);
                let mut planes: Vec<usize> = own.clone().collect();
                if own.start > 0 || periodic {
                    planes.push((own.start + n - 1) % n);
                }
                if own.end < n || periodic {
                    planes.push(own.end % n);
                }
                planes.sort_unstable();
                planes.dedup();
                planes
            })
            .collect();
        let mut position = vec![usize::MAX; n];
        for (k, &j) in halo[rank].iter().enumerate() {
            position[j] = k;
        }
        let first = slabs.cells(rank).start;
        let log = |v: &[f64]| v.iter().map(|v| v.ln()).collect::<Vec<f64>>();
        let ma = MongeAmpere::on_cells(grid, log(equation[0]), first);
        Ok(SlabFlow {
            exchange,
            grid: grid.clone(),
            local: slabs.local_grid(rank)?,
            slabs,
            ma,
            log_g: log(equation[1]),
            mu: given[0].to_vec(),
            nu: given[1].to_vec(),
            halo,
            position,
            poisson: None,
        })
    }

    /// `x` on this rank's planes and their slab-axis neighbours (one `Alltoallv`).
    fn with_halo(&self, x: &[f64]) -> Result<Vec<f64>> {
        let plane = self.slabs.plane_cells();
        gather_planes(self.exchange, &self.slabs, x, plane, &self.halo)
    }

    /// Whether any rank says `bad`.
    fn any(&self, bad: bool) -> bool {
        self.exchange.max(f64::from(u8::from(bad))) > 0.0
    }
}

impl<E: Exchange> StepOps for SlabFlow<'_, E> {
    fn apply_rows(&mut self, rows: &Rows, x: &[f64], y: &mut [f64]) -> Result<()> {
        let xs = self.with_halo(x)?;
        let plane = self.slabs.plane_cells();
        let position = &self.position;
        rows.apply(|c| xs[position[c / plane] * plane + c % plane], y);
        Ok(())
    }

    fn poisson(&mut self, shift: f64, r: &[f64], z: &mut [f64]) -> Result<()> {
        let solver = match self.poisson.take() {
            Some(p) if p.shift() == shift => p,
            _ => SlabPoissonSolver::new(&self.grid, shift, Symbol::Discrete, self.exchange)?,
        };
        self.poisson.insert(solver).solve(self.exchange, r, z)
    }

    fn sum(&self, term: &Term) -> f64 {
        slab_sum(self.exchange, &self.slabs, term)
    }

    fn cells(&self) -> usize {
        self.grid.num_cells()
    }
}

impl<E: Exchange> FlowLayout for SlabFlow<'_, E> {
    fn ma(&self) -> &MongeAmpere {
        &self.ma
    }

    fn local_grid(&self) -> &Grid {
        &self.local
    }

    fn evaluate(&mut self, u: &[f64]) -> Result<Option<Evaluation>> {
        let plane = self.slabs.plane_cells();
        let us = self.with_halo(u)?;
        let position = &self.position;
        let value = |c: usize| us[position[c / plane] * plane + c % plane];
        let first = self.slabs.cells(self.exchange.rank()).start;
        let geometry: Vec<Option<CellGeometry>> =
            (0..u.len()).into_par_iter().map(|l| self.ma.geometry(value, first + l)).collect();
        if self.any(geometry.iter().any(Option::is_none)) {
            return Ok(None);
        }
        let geometry: Vec<CellGeometry> = geometry.into_iter().flatten().collect();
        // log g on the planes the mapped points read.
        let d = self.grid.dim();
        let slab = self.grid.axis(d - 1);
        let mut mine: Vec<usize> = geometry
            .iter()
            .flat_map(|g| {
                let (base, next, _, _) = linear_stencil(slab, g.point[d - 1]);
                [base, next]
            })
            .collect();
        mine.sort_unstable();
        mine.dedup();
        let wanted = all_lists(self.exchange, &mine);
        let gs = gather_planes(self.exchange, &self.slabs, &self.log_g, plane, &wanted)?;
        let mut at = vec![usize::MAX; slab.cells];
        for (k, &j) in mine.iter().enumerate() {
            at[j] = k;
        }
        let log_g = |c: usize| gs[at[c / plane] * plane + c % plane];
        let cells: Option<Vec<_>> =
            geometry.par_iter().enumerate().map(|(l, g)| self.ma.finish(g, log_g, l)).collect();
        if self.any(cells.is_none()) {
            return Ok(None);
        }
        Ok(cells.map(|c| c.into_iter().unzip()))
    }

    fn max(&self, value: f64) -> f64 {
        self.exchange.max(value)
    }

    fn dual_value(&mut self, p: &[f64]) -> Result<(f64, Vec<f64>)> {
        let q = slab_c_transform(self.exchange, &self.grid, p)?;
        let (mu, nu) = (&self.mu, &self.nu);
        let value =
            -(self.sum(&|i| p[i] * mu[i]) + self.sum(&|i| q[i] * nu[i])) * self.grid.cell_volume();
        Ok((value, q))
    }

    fn map_shift(&mut self, v: &[f64]) -> Result<f64> {
        let d = self.grid.dim();
        let h = self.grid.spacing();
        let g = slab_gradient(self.exchange, &self.grid, v)?;
        let local = g
            .par_chunks(d)
            .map(|c| c.iter().zip(&h).map(|(x, h)| (x / h).abs()).fold(0.0, f64::max))
            .reduce(|| 0.0, f64::max);
        Ok(self.exchange.max(local))
    }
}

/// This rank's part of the parabolic Monge–Ampère flow between the densities whose planes of
/// `grid` this rank holds (`mu`, `nu`: C order, unit mass over all ranks as
/// [`crate::ot::Problem`] normalises them, strictly positive). A collective: every rank calls
/// it with the same grid and solver. The solution's potentials `p`, `q` are this rank's
/// blocks (on [`SlabDecomposition::local_grid`]); its iterations, history and diagnostics are
/// the whole flow's, the same on every rank. Refused on every rank alike: a bad
/// decomposition, Dirichlet axes, a block of the wrong length or with values that are not
/// positive and finite, a pair that needs the Gaussian lift, a warm start, resumed state,
/// checkpoints or sample batches.
pub fn slab_parabolic(
    exchange: &impl Exchange,
    grid: &Grid,
    mu: &[f64],
    nu: &[f64],
    solver: &Parabolic,
) -> Result<Solution> {
    if grid.boundaries().iter().any(|k| k.prescribes_value()) {
        return Err(Error::invalid(
            "optimal transport needs neumann (box) or periodic axes, not dirichlet",
        ));
    }
    let slabs = SlabDecomposition::new(grid, exchange.size())?;
    let cells = slabs.cells(exchange.rank()).len();
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
    let lifted = slab_lift(exchange, &slabs, [mu, nu], solver.lift)?;
    let equation = lifted.as_ref().map_or([mu, nu], |(_, [a, b])| [&a[..], &b[..]]);
    let mut layout = SlabFlow::new(exchange, grid, [mu, nu], equation)?;
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
/// their peak, else the lifted pair on this rank's planes (`ρ + ε L_ρ`, normalised: the
/// serial lifted problem's planes to the bit) — or the serial `unsuited` verdict as an error
/// on every rank (a periodic axis, a target with separated modes along a grid line).
#[allow(clippy::type_complexity)]
fn slab_lift(
    exchange: &impl Exchange,
    slabs: &SlabDecomposition,
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
    let grid = slabs.grid();
    let reason = if grid.axes().iter().any(|a| a.boundary.is_periodic()) {
        Some(periodic_reason(contrast))
    } else {
        slab_separated_modes(exchange, slabs, nu)
    };
    if let Some(reason) = reason {
        return Err(Error::UnsuitedMethod {
            method: "parabolic",
            reason,
            suggestion: "the method bfm (or auto)",
        });
    }
    let centres = crate::grid::cell_centres(grid, slabs.cells(exchange.rank()));
    let sum = |t: &Term| slab_sum(exchange, slabs, t);
    let mut pair = [vec![], vec![]];
    for (k, (rho, what)) in [(mu, "source"), (nu, "target")].into_iter().enumerate() {
        let l = agree(exchange, lift.gaussian_values(grid, rho, &centres, &sum), "lifting")?;
        pair[k] = slab_density(exchange, slabs, lift.plus(rho, &l), what)?.0;
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
            let mut solver = Parabolic { max_iterations: Some(40), ..Default::default() };
            if explicit {
                solver.stepping = Stepping::Explicit;
                solver.schedule = Schedule::Cfl(0.9);
            }
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
