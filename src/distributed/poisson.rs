//! The FFT/DCT/DST Poisson solver on a slab-decomposed grid.
//!
//! Solves `(−Δ_h + c) u = f` as [`crate::spectral::PoissonSolver`] does — the same line
//! transforms, eigenvalues and division, so the result equals the serial solve to round-off —
//! with the grid's slowest axis S (z in 3D, y in 2D) split into slabs over the ranks
//! ([`SlabDecomposition`]). The axes a slab holds whole (x, and y in 3D) are transformed
//! locally; one `Alltoallv` then regroups the data into x-pencils (each rank a range of x,
//! every S plane), where S is transformed and the spectrum divided; the way back mirrors it.
//! This is the 2decomp&FFT / PencilArrays transpose pattern with one transpose each way.
//!
//! Communication per solve: two all-to-alls, each moving the rank's whole block (N/P values)
//! less the part it keeps, 8 bytes a value. Memory per rank: about 5 N/P values (data,
//! scratch, send and receive buffers, the pencil).

use super::exchange::Exchange;
use super::{displacements, pencil_columns};
use crate::error::{Error, Result};
use crate::grid::{Grid, SlabDecomposition};
use crate::spectral::poisson::{check_right_hand_side, Spectrum};
use crate::spectral::transform::{transform_lines, transpose, LineTransform, LineWork};
use crate::spectral::{MeanPolicy, Symbol};
use std::ops::Range;

/// A planned distributed solver of `(−Δ_h + c) u = f` on one rank of a slab decomposition.
/// Every rank of the group constructs it with the same global grid and calls
/// [`solve`](Self::solve) together.
pub struct SlabPoissonSolver {
    grid: Grid,
    slabs: SlabDecomposition,
    /// The x-range of every rank's pencil.
    columns: Vec<Range<usize>>,
    rank: usize,
    shift: f64,
    singular: bool,
    mean_policy: MeanPolicy,
    transforms: Vec<LineTransform>,
    /// The pencil's eigenvalues, x first (this rank's x-range), the slab axis last.
    lambda: Vec<Vec<f64>>,
    scale: f64,
    scratch: Vec<f64>,
    send: Vec<f64>,
    recv: Vec<f64>,
    pencil: Vec<f64>,
    work: Vec<LineWork>,
}

impl std::fmt::Debug for SlabPoissonSolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlabPoissonSolver")
            .field("grid", &self.grid.to_string())
            .field("rank", &self.rank)
            .field("ranks", &self.slabs.ranks())
            .field("shift", &self.shift)
            .finish()
    }
}

impl SlabPoissonSolver {
    /// Plans this rank's part of the solver for `(−Δ_h + shift) u = f` on the global `grid`,
    /// split over the ranks of `exchange`. Refused (on every rank alike): more ranks than
    /// planes of the slab axis or than cells along x, a non-finite shift, a singular shifted
    /// operator.
    pub fn new(
        grid: &Grid,
        shift: f64,
        symbol: Symbol,
        exchange: &impl Exchange,
    ) -> Result<SlabPoissonSolver> {
        let spectrum = Spectrum::plan(grid, shift, symbol)?;
        let ranks = exchange.size();
        let slabs = SlabDecomposition::new(grid, ranks)?;
        let nx = grid.axis(0).cells;
        let columns = pencil_columns(nx, ranks)?;
        // MPI counts blocks in C ints.
        if slabs.cells(0).len() > i32::MAX as usize {
            return Err(Error::invalid(format!(
                "{} cells per rank exceed what one MPI message counts ({}): use more ranks",
                slabs.cells(0).len(),
                i32::MAX
            )));
        }
        let rank = exchange.rank();
        let d = grid.dim();
        let work = spectrum.work(grid);
        let Spectrum { transforms, lambda: all, scale, singular } = spectrum;
        let mut lambda = vec![all[0][columns[rank].clone()].to_vec()];
        lambda.extend(all[1..].iter().cloned());
        let local = slabs.cells(rank).len();
        let planes = grid.axis(d - 1).cells;
        let middle: usize = if d == 3 { grid.axis(1).cells } else { 1 };
        let pencil = columns[rank].len() * middle * planes;
        Ok(SlabPoissonSolver {
            grid: grid.clone(),
            slabs,
            columns,
            rank,
            shift,
            singular,
            mean_policy: MeanPolicy::Reject,
            transforms,
            lambda,
            scale,
            scratch: vec![0.0; local],
            send: vec![0.0; local],
            recv: vec![0.0; pencil],
            pencil: vec![0.0; pencil],
            work,
        })
    }

    /// Sets how a non-zero mean is handled when the operator is singular.
    pub fn with_mean_policy(mut self, policy: MeanPolicy) -> Self {
        self.mean_policy = policy;
        self
    }

    /// The shift of `(−Δ_h + shift)`.
    pub fn shift(&self) -> f64 {
        self.shift
    }

    /// The decomposition: which planes this rank's `rhs` and `out` hold.
    pub fn decomposition(&self) -> &SlabDecomposition {
        &self.slabs
    }

    /// Solves for this rank's block: `rhs` and `out` are the rank's planes of the global
    /// C-order array (`decomposition().cells(rank)`). A collective: every rank calls it.
    /// Errors (wrong lengths, NaN, a non-zero mean with [`MeanPolicy::Reject`]) are agreed
    /// over the ranks, so every rank returns the same one.
    pub fn solve(&mut self, exchange: &impl Exchange, rhs: &[f64], out: &mut [f64]) -> Result<()> {
        let local = self.slabs.cells(self.rank).len();
        let grid = &self.grid;
        agree_right_hand_side(exchange, (rhs, out), local, grid, self.singular, self.mean_policy)?;
        out.copy_from_slice(rhs);
        self.forward_local(out);
        self.exchange_to_pencils(exchange, out);
        self.diagonal_on_pencil();
        self.exchange_to_slabs(exchange, out);
        self.inverse_local(out);
        Ok(())
    }

    /// Cells of one S plane in the slab layout `[s][x][m]` (m = y in 3D, nothing in 2D).
    fn middle(&self) -> usize {
        if self.grid.dim() == 3 {
            self.grid.axis(1).cells
        } else {
            1
        }
    }

    /// `[s][m][x]` → x and m transformed, laid out `[s][x][m]` (in `data`).
    fn forward_local(&mut self, data: &mut [f64]) {
        let nx = self.grid.axis(0).cells;
        transform_lines(data, nx, &self.transforms[0], true, &mut self.work);
        if self.grid.dim() == 3 {
            let (ny, sl) = (self.middle(), self.slabs.planes(self.rank).len());
            transpose(data, &mut self.scratch, sl, ny, nx); // [s][y][x] → [s][x][y]
            transform_lines(&mut self.scratch, ny, &self.transforms[1], true, &mut self.work);
            data.copy_from_slice(&self.scratch);
        }
    }

    /// The inverse of [`Self::forward_local`].
    fn inverse_local(&mut self, data: &mut [f64]) {
        let nx = self.grid.axis(0).cells;
        if self.grid.dim() == 3 {
            let (ny, sl) = (self.middle(), self.slabs.planes(self.rank).len());
            self.scratch.copy_from_slice(data);
            transform_lines(&mut self.scratch, ny, &self.transforms[1], false, &mut self.work);
            transpose(&self.scratch, data, sl, nx, ny); // [s][x][y] → [s][y][x]
        }
        transform_lines(data, nx, &self.transforms[0], false, &mut self.work);
    }

    /// Counts (in values) of the blocks this rank sends to each rank on the way to the
    /// pencils, and receives from each.
    fn counts(&self) -> (Vec<usize>, Vec<usize>) {
        let m = self.middle();
        let sl = self.slabs.planes(self.rank).len();
        let mine = self.columns[self.rank].len();
        let ranks = self.slabs.ranks();
        let send = (0..ranks).map(|q| sl * self.columns[q].len() * m).collect();
        let recv = (0..ranks).map(|r| self.slabs.planes(r).len() * mine * m).collect();
        (send, recv)
    }

    /// Slab `[s_local][x][m]` → pencil `[x_mine][m][S]`, S transformed forward.
    fn exchange_to_pencils(&mut self, exchange: &impl Exchange, data: &[f64]) {
        let nx = self.grid.axis(0).cells;
        let m = self.middle();
        let sl = self.slabs.planes(self.rank).len();
        let (send_counts, recv_counts) = self.counts();
        let mut at = 0;
        for q in 0..self.slabs.ranks() {
            let cols = self.columns[q].clone();
            for s in 0..sl {
                let row = &data[(s * nx + cols.start) * m..(s * nx + cols.end) * m];
                self.send[at..at + row.len()].copy_from_slice(row);
                at += row.len();
            }
        }
        exchange.all_to_all_v(
            &self.send,
            &send_counts,
            &displacements(&send_counts),
            &mut self.recv,
            &recv_counts,
            &displacements(&recv_counts),
        );
        // Received `[S][x_mine][m]` (ranks' planes in order) → `[x_mine][m][S]`.
        let planes = self.grid.axis(self.grid.dim() - 1).cells;
        let width = self.columns[self.rank].len() * m;
        transpose(&self.recv, &mut self.pencil, 1, planes, width);
        let t = &self.transforms[self.grid.dim() - 1];
        transform_lines(&mut self.pencil, planes, t, true, &mut self.work);
    }

    /// The inverse of [`Self::exchange_to_pencils`]: S transformed back, the pencil returned
    /// to the slabs.
    fn exchange_to_slabs(&mut self, exchange: &impl Exchange, data: &mut [f64]) {
        let nx = self.grid.axis(0).cells;
        let m = self.middle();
        let sl = self.slabs.planes(self.rank).len();
        let planes = self.grid.axis(self.grid.dim() - 1).cells;
        let width = self.columns[self.rank].len() * m;
        let t = &self.transforms[self.grid.dim() - 1];
        transform_lines(&mut self.pencil, planes, t, false, &mut self.work);
        transpose(&self.pencil, &mut self.recv, 1, width, planes); // → [S][x_mine][m]
        let (send_counts, recv_counts) = self.counts();
        exchange.all_to_all_v(
            &self.recv,
            &recv_counts,
            &displacements(&recv_counts),
            &mut self.send,
            &send_counts,
            &displacements(&send_counts),
        );
        let mut at = 0;
        for q in 0..self.slabs.ranks() {
            let cols = self.columns[q].clone();
            for s in 0..sl {
                let len = cols.len() * m;
                data[(s * nx + cols.start) * m..(s * nx + cols.end) * m]
                    .copy_from_slice(&self.send[at..at + len]);
                at += len;
            }
        }
    }

    /// Divides the pencil's spectrum by `(Σλ + c)·scale`; the constant mode (on the rank
    /// whose pencil holds x = 0) is set to zero when the operator is singular.
    fn diagonal_on_pencil(&mut self) {
        crate::spectral::poisson::divide(
            &mut self.pencil,
            &self.lambda,
            self.shift,
            self.scale,
            self.singular && self.columns[self.rank].start == 0,
        );
    }
}

/// The checks of a distributed solve's block, agreed over the ranks: `rhs` and `out` of the
/// rank's `local` cells, and the whole right-hand side finite and (where `singular` and the
/// policy rejects a mean) of zero mean. Every rank returns the same error.
pub(crate) fn agree_right_hand_side(
    exchange: &impl Exchange,
    (rhs, out): (&[f64], &[f64]),
    local: usize,
    grid: &Grid,
    singular: bool,
    policy: MeanPolicy,
) -> Result<()> {
    let bad_length = rhs.len() != local || out.len() != local;
    if exchange.max(f64::from(u8::from(bad_length))) > 0.0 {
        return Err(Error::invalid(format!(
            "distributed Poisson solve: a rank's block has the wrong length (this rank: {} \
             and {} values for its {local} cells)",
            rhs.len(),
            out.len()
        )));
    }
    let (sum, abs_sum) = rhs.iter().fold((0.0, 0.0), |(s, a), v| (s + v, a + v.abs()));
    let (sum, abs_sum) = (exchange.sum(sum), exchange.sum(abs_sum));
    check_right_hand_side(sum, abs_sum, grid.num_cells(), singular, policy)
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
            let z = x.get(2).copied().unwrap_or(0.3);
            (3.0 * x[0]).sin() + (x[1] * x[1] - 0.2 * z).cos() * (1.0 + x[0] * z)
        });
        f.data().iter().copied().collect()
    }

    /// Serial and decomposed solves agree to round-off on every rank count from 1 to 4, on
    /// shapes that do not divide (2D and 3D; periodic, Neumann, Dirichlet and mixed axes;
    /// singular with the mean projected, and shifted).
    #[test]
    fn slab_solve_equals_the_serial_solve() {
        use BoundaryKind::*;
        let cases: Vec<(Vec<usize>, Vec<BoundaryKind>, f64)> = vec![
            (vec![13, 10, 11], vec![Periodic, Neumann, Dirichlet], 0.0),
            (vec![12, 9, 7], vec![Neumann, Neumann, Neumann], 0.0),
            (vec![8, 8, 9], vec![Periodic, Periodic, Periodic], 2.5),
            (vec![11, 14], vec![Dirichlet, Periodic], 0.0),
            (vec![9, 7], vec![Neumann, Neumann], 0.0),
        ];
        for (shape, kinds, shift) in cases {
            let grid = crate::distributed::test_grid(&shape, &kinds);
            let f = rhs(&grid);
            let mut serial = PoissonSolver::new(&grid, shift, Symbol::Discrete)
                .unwrap()
                .with_mean_policy(MeanPolicy::Project);
            let mut expected = vec![0.0; f.len()];
            serial.solve(&f, &mut expected).unwrap();
            let peak = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for ranks in 1..=4 {
                let blocks = LocalWorld::run(ranks, |ex| {
                    let mut solver = SlabPoissonSolver::new(&grid, shift, Symbol::Discrete, ex)
                        .unwrap()
                        .with_mean_policy(MeanPolicy::Project);
                    let cells = solver.decomposition().cells(ex.rank());
                    let mut out = vec![0.0; cells.len()];
                    solver.solve(ex, &f[cells.clone()], &mut out).unwrap();
                    (cells, out)
                });
                let mut worst = 0.0f64;
                for (cells, out) in blocks {
                    for (v, e) in out.iter().zip(&expected[cells]) {
                        worst = worst.max((v - e).abs());
                    }
                }
                assert!(
                    worst <= 1e-12 * peak,
                    "{shape:?} {kinds:?} on {ranks} ranks: off by {worst:e} (peak {peak:e})"
                );
            }
        }
    }

    /// Bad decompositions and inputs end every rank with the same one-line error.
    #[test]
    fn every_rank_gets_the_same_error() {
        let grid = Grid::uniform(&[6, 5, 3], &[0.0; 3], &[1.0; 3], BoundaryKind::Neumann).unwrap();
        let errors = LocalWorld::run(4, |ex| {
            SlabPoissonSolver::new(&grid, 0.0, Symbol::Discrete, ex).unwrap_err().to_string()
        });
        assert!(errors.iter().all(|e| e == &errors[0] && e.contains("4 ranks for 3 planes")));
        let errors = LocalWorld::run(2, |ex| {
            let mut solver = SlabPoissonSolver::new(&grid, 0.0, Symbol::Discrete, ex).unwrap();
            let n = solver.decomposition().cells(ex.rank()).len();
            let rhs = vec![1.0; n];
            let mut out = vec![0.0; n];
            let mean = solver.solve(ex, &rhs, &mut out).unwrap_err().to_string();
            let short = vec![0.0; if ex.rank() == 1 { n - 1 } else { n }];
            let length = solver.solve(ex, &short, &mut out).unwrap_err().to_string();
            (mean, length)
        });
        assert!(errors[0].0.contains("mean") && errors[0].0 == errors[1].0);
        assert!(errors[0].1.contains("wrong length") && errors[1].1.contains("wrong length"));
    }
}
