//! The FFT/DCT/DST Poisson solver on a y–z pencil decomposition of a 3D grid, for more ranks
//! than z planes.
//!
//! Solves `(−Δ_h + c) u = f` as [`crate::spectral::PoissonSolver`] does — the same line
//! transforms in the same order (x, y, z forward; z, y, x back), eigenvalues and division, so
//! the result equals the serial solve to the bit — on a [`PencilDecomposition`] over
//! `py × pz` ranks. Each rank's block holds whole x lines, which it transforms; an
//! `Alltoallv` among the `py` ranks of its z-range (its row of the process grid) then makes
//! y whole (each rank a range of x), y is transformed; an `Alltoallv` among the `pz` ranks of
//! its x-range (its column) makes z whole (each rank a range of x and of y), z is transformed
//! and the spectrum divided; the way back mirrors it. This is the 2decomp&FFT /
//! PencilArrays pattern with two transposes each way ([`PencilSpreads`]: world
//! `Alltoallv`s in which a rank's blocks for the ranks outside its row or column are empty).
//!
//! Communication per solve: four all-to-alls, each moving the rank's block (N/P values) less
//! the part it keeps (1/py of it within a row, 1/pz within a column), 8 bytes a value:
//! `2 · 8 (N/P)(2 − 1/py − 1/pz)` bytes per rank.
//! Memory per rank: about 5 N/P values, held from planning on (the data with y whole and
//! with z whole, the send and receive buffers, the line work): a solve allocates nothing
//! where the exchange does not.

use super::exchange::Exchange;
use super::layout::{PencilSpreads, Transpose};
use super::poisson::agree_right_hand_side;
use crate::error::{Error, Result};
use crate::grid::{Grid, PencilDecomposition};
use crate::spectral::poisson::{divide, Spectrum};
use crate::spectral::transform::{transform_lines, LineTransform, LineWork};
use crate::spectral::{MeanPolicy, Symbol};

/// A planned distributed solver of `(−Δ_h + c) u = f` on one rank of a pencil
/// decomposition. Every rank constructs it with the same global grid and calls
/// [`solve`](Self::solve) together.
pub struct PencilPoissonSolver {
    grid: Grid,
    pencils: PencilDecomposition,
    rank: usize,
    spreads: PencilSpreads,
    shift: f64,
    singular: bool,
    mean_policy: MeanPolicy,
    transforms: Vec<LineTransform>,
    /// This rank's eigenvalues once z is whole: its x-range, its y-range, every z.
    lambda: Vec<Vec<f64>>,
    scale: f64,
    work: Vec<LineWork>,
    /// The four moves of a solve, planned: blocks → y lines → z lines, and back.
    moves: Box<[Transpose; 4]>,
    /// The data with y whole, and with z whole.
    y: Vec<f64>,
    z: Vec<f64>,
    /// The moves' send and receive buffers.
    buffers: (Vec<f64>, Vec<f64>),
}

impl std::fmt::Debug for PencilPoissonSolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PencilPoissonSolver")
            .field("grid", &self.grid.to_string())
            .field("rank", &self.rank)
            .field("shape", &self.pencils.shape())
            .field("shift", &self.shift)
            .finish()
    }
}

impl PencilPoissonSolver {
    /// Plans this rank's part of the solver for `(−Δ_h + shift) u = f` on the global 3D
    /// `grid`, split over the ranks of `exchange` as [`PencilDecomposition::new`] splits it.
    /// Refused (on every rank alike): a decomposition that does not exist, fewer x cells
    /// than `py` or y rows than `pz` (the transposed pencils need one each), a non-finite
    /// shift, a singular shifted operator.
    pub fn new(
        grid: &Grid,
        shift: f64,
        symbol: Symbol,
        exchange: &impl Exchange,
    ) -> Result<PencilPoissonSolver> {
        let pencils = PencilDecomposition::new(grid, exchange.size())?;
        PencilPoissonSolver::on(pencils, shift, symbol, exchange)
    }

    /// [`Self::new`] on a given decomposition (its rank count that of `exchange`).
    pub fn on(
        pencils: PencilDecomposition,
        shift: f64,
        symbol: Symbol,
        exchange: &impl Exchange,
    ) -> Result<PencilPoissonSolver> {
        let grid = pencils.grid().clone();
        if pencils.ranks() != exchange.size() {
            return Err(Error::invalid(format!(
                "a decomposition over {} ranks used by {}",
                pencils.ranks(),
                exchange.size()
            )));
        }
        let spectrum = Spectrum::plan(&grid, shift, symbol)?;
        let spreads = PencilSpreads::new(&pencils)?;
        let rank = exchange.rank();
        if pencils.len(rank) > i32::MAX as usize {
            return Err(Error::invalid(format!(
                "{} cells per rank exceed what one MPI message counts ({}): use more ranks",
                pencils.len(rank),
                i32::MAX
            )));
        }
        let work = spectrum.work(&grid);
        let Spectrum { transforms, lambda: all, scale, singular } = spectrum;
        let lines = &spreads.z_lines.0[rank].ranges;
        let lambda = (0..3).map(|a| all[a][lines[a].clone()].to_vec()).collect();
        let PencilSpreads { blocks, y_lines, z_lines, .. } = &spreads;
        let moves = [(blocks, y_lines), (y_lines, z_lines), (z_lines, y_lines), (y_lines, blocks)]
            .map(|(from, to)| Transpose::plan(from, to, rank));
        let moves = Box::new(moves);
        let most = |len: fn(&Transpose) -> usize| moves.iter().map(len).max().unwrap_or(0);
        let buffers = (vec![0.0; most(Transpose::send_len)], vec![0.0; most(Transpose::recv_len)]);
        let (y, z) = (vec![0.0; y_lines.0[rank].len()], vec![0.0; z_lines.0[rank].len()]);
        Ok(PencilPoissonSolver {
            grid,
            pencils,
            rank,
            spreads,
            shift,
            singular,
            mean_policy: MeanPolicy::Reject,
            transforms,
            lambda,
            scale,
            work,
            moves,
            y,
            z,
            buffers,
        })
    }

    /// Sets how a non-zero mean is handled when the operator is singular.
    pub fn with_mean_policy(mut self, policy: MeanPolicy) -> Self {
        self.mean_policy = policy;
        self
    }

    /// The decomposition: which cells this rank's `rhs` and `out` hold.
    pub fn decomposition(&self) -> &PencilDecomposition {
        &self.pencils
    }

    /// Solves for this rank's block: `rhs` and `out` are the rank's cells
    /// `[z_local][y_local][x]` ([`PencilDecomposition::block`]). A collective: every rank
    /// calls it. Errors (wrong lengths, NaN, a non-zero mean with [`MeanPolicy::Reject`]) are
    /// agreed over the ranks, so every rank returns the same one.
    pub fn solve(&mut self, exchange: &impl Exchange, rhs: &[f64], out: &mut [f64]) -> Result<()> {
        let local = self.pencils.len(self.rank);
        let grid = &self.grid;
        agree_right_hand_side(exchange, (rhs, out), local, grid, self.singular, self.mean_policy)?;
        let shape: [usize; 3] = std::array::from_fn(|a| self.grid.axis(a).cells);
        let PencilSpreads { blocks, y_lines, z_lines, .. } = &self.spreads;
        let (t, work) = (&self.transforms, &mut self.work);
        let (y, z, buffers, moves) = (&mut self.y, &mut self.z, &mut self.buffers, &self.moves);
        out.copy_from_slice(rhs);
        transform_lines(out, shape[0], &t[0], true, work);
        moves[0].apply(exchange, (blocks, y_lines), out, buffers, y);
        transform_lines(y, shape[1], &t[1], true, work);
        moves[1].apply(exchange, (y_lines, z_lines), y, buffers, z);
        transform_lines(z, shape[2], &t[2], true, work);
        let zero_mode =
            self.singular && z_lines.0[self.rank].ranges[..2].iter().all(|r| r.start == 0);
        divide(z, &self.lambda, self.shift, self.scale, zero_mode);
        transform_lines(z, shape[2], &t[2], false, work);
        moves[2].apply(exchange, (z_lines, y_lines), z, buffers, y);
        transform_lines(y, shape[1], &t[1], false, work);
        moves[3].apply(exchange, (y_lines, blocks), y, buffers, out);
        transform_lines(out, shape[0], &t[0], false, work);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::exchange::LocalWorld;
    use crate::grid::BoundaryKind;
    use crate::spectral::PoissonSolver;

    /// A right-hand side with structure along every axis (and a non-zero mean).
    fn rhs(grid: &Grid) -> Vec<f64> {
        let f = crate::field::ScalarField::from_fn(grid, |x| {
            (3.0 * x[0]).sin() + (x[1] * x[1] - 0.2 * x[2]).cos() * (1.0 + x[0] * x[2])
        });
        f.data().iter().copied().collect()
    }

    /// The pencils tile the grid, the index maps are inverse, and slabs run out before
    /// pencils are chosen.
    #[test]
    fn pencils_tile_the_grid() {
        let grid = crate::distributed::test_grid(&[7, 5, 3], &[BoundaryKind::Neumann; 3]);
        for (ranks, shape) in [(2, (1, 2)), (3, (1, 3)), (4, (2, 2)), (6, (2, 3)), (5, (5, 1))] {
            let pencils = PencilDecomposition::new(&grid, ranks).unwrap();
            assert_eq!(pencils.shape(), shape, "{ranks} ranks");
            let mut owner = vec![usize::MAX; grid.num_cells()];
            for r in 0..ranks {
                for local in 0..pencils.len(r) {
                    let g = pencils.to_global(r, local);
                    assert_eq!(owner[g], usize::MAX, "cell {g} owned twice");
                    owner[g] = r;
                    assert_eq!(pencils.to_local(g), (r, local));
                }
                let global: Vec<f64> = (0..grid.num_cells()).map(|g| g as f64).collect();
                let block = pencils.block(r, &global);
                assert!(block
                    .iter()
                    .enumerate()
                    .all(|(l, &g)| g as usize == pencils.to_global(r, l)));
            }
            assert!(owner.iter().all(|&r| r < ranks));
        }
        // 7 ranks: no divisor ≤ 3 planes leaves 7 ≤ 5 rows.
        let e = PencilDecomposition::new(&grid, 7).unwrap_err().to_string();
        assert!(e.contains("7 ranks do not split into y–z pencils"), "{e}");
        assert!(PencilDecomposition::new(&grid, 0).is_err());
        let flat = crate::distributed::test_grid(&[7, 5], &[BoundaryKind::Neumann; 2]);
        assert!(PencilDecomposition::new(&flat, 2).is_err());
    }

    /// Pencil and serial solves agree to the bit on rank counts beyond the z planes (and on
    /// slabs, py = 1), on shapes that do not divide, periodic, Neumann, Dirichlet and mixed
    /// axes, singular with the mean projected, and shifted.
    #[test]
    fn pencil_solve_equals_the_serial_solve_to_the_bit() {
        use BoundaryKind::*;
        let cases = [
            (&[13usize, 10, 3][..], [Periodic, Neumann, Dirichlet], 0.0, &[2usize, 4, 6, 9][..]),
            (&[12, 9, 2][..], [Neumann, Neumann, Neumann], 0.0, &[1, 3, 4, 8][..]),
            (&[8, 7, 4][..], [Periodic, Periodic, Periodic], 2.5, &[6, 8, 12][..]),
            (&[9, 11, 1][..], [Neumann, Periodic, Neumann], 0.0, &[5, 7][..]),
        ];
        for (shape, kinds, shift, rank_counts) in cases {
            let grid = crate::distributed::test_grid(shape, &kinds);
            let f = rhs(&grid);
            let mut serial = PoissonSolver::new(&grid, shift, Symbol::Discrete)
                .unwrap()
                .with_mean_policy(MeanPolicy::Project);
            let mut expected = vec![0.0; f.len()];
            serial.solve(&f, &mut expected).unwrap();
            for &ranks in rank_counts {
                let blocks = LocalWorld::run(ranks, |ex| {
                    let mut solver = PencilPoissonSolver::new(&grid, shift, Symbol::Discrete, ex)
                        .unwrap()
                        .with_mean_policy(MeanPolicy::Project);
                    let pencils = solver.decomposition().clone();
                    let block = pencils.block(ex.rank(), &f);
                    let mut out = vec![0.0; block.len()];
                    solver.solve(ex, &block, &mut out).unwrap();
                    (pencils, out)
                });
                for (r, (pencils, out)) in blocks.iter().enumerate() {
                    for (l, v) in out.iter().enumerate() {
                        let e = expected[pencils.to_global(r, l)];
                        assert!(
                            v.to_bits() == e.to_bits(),
                            "{shape:?} {kinds:?} on {ranks} ranks {:?}: rank {r} cell {l}: \
                             {v:e} against {e:e}",
                            pencils.shape()
                        );
                    }
                }
            }
        }
    }

    /// Bad decompositions and inputs end every rank with the same one-line error.
    #[test]
    fn every_rank_gets_the_same_error() {
        let grid = Grid::uniform(&[3, 5, 2], &[0.0; 3], &[1.0; 3], BoundaryKind::Neumann).unwrap();
        // 4 ranks: 2 × 2 pencils need 2 cells along x (fine) — 8 ranks: 4 × 2, 4 > 3 x cells.
        let errors = LocalWorld::run(8, |ex| {
            PencilPoissonSolver::new(&grid, 0.0, Symbol::Discrete, ex).unwrap_err().to_string()
        });
        assert!(errors.iter().all(|e| e == &errors[0] && e.contains("4 × 2 pencils need")));
        let errors = LocalWorld::run(4, |ex| {
            let mut solver = PencilPoissonSolver::new(&grid, 0.0, Symbol::Discrete, ex).unwrap();
            let n = solver.decomposition().len(ex.rank());
            let mut out = vec![0.0; n];
            let mean = solver.solve(ex, &vec![1.0; n], &mut out).unwrap_err().to_string();
            let short = vec![0.0; if ex.rank() == 3 { n - 1 } else { n }];
            let length = solver.solve(ex, &short, &mut out).unwrap_err().to_string();
            (mean, length)
        });
        assert!(errors.iter().all(|e| e.0.contains("mean") && e.0 == errors[0].0));
        assert!(errors.iter().all(|e| e.1.contains("wrong length")));
    }
}
