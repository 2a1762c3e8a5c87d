//! The separable Gibbs kernel of the quadratic cost on a grid — the geometry of entropic OT,
//! as OTT-JAX's `Grid`: `exp(−|x − y|²/(2ε)) = Π_k K_k(x_k, y_k)` (wrapped distance on
//! periodic axes), so the soft c-transform `LSE_ε(h)_i = ε log Σ_j K_ij exp(h_j/ε)` is one
//! dense `n × n` product per axis on blocks of lines (faer's GEMM), log-stabilised by a
//! shift per line, with an exact log-sum-exp fallback where the kernel sum underflowed.
//! [`super::sinkhorn`] drives it.

use super::fastmath::{exp_scaled, exp_shifted, ln_shifted, shift_ln};
use crate::error::Result;
use crate::field::{ordered_sum, DisjointWrites};
use crate::grid::Grid;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use std::cell::RefCell;

/// Below this a kernel sum is recomputed exactly in the log domain. (Kernel entries below
/// 1e-308 underflow to 0 at small ε, but every shifted weight is ≤ 1, so a sum above this
/// bound is at least 1e28 times any term lost to that underflow.)
const UNDERFLOW: f64 = 1e-280;

/// Terms of an exact log-sum-exp more than this many ε below the maximum are dropped.
const NEGLIGIBLE: f64 = 40.0;

/// Cells per parallel task of a kernel pass (lines of at least 32 cells at a time, for an
/// efficient product); a smaller pass runs as one task: fork and join would cost the coarse
/// levels of the multiscale solve more than the work.
pub(super) const TASK_CELLS: usize = 8192;

/// The 1D Gibbs kernels of a grid for one ε, and what the soft c-transform needs.
pub(crate) struct GibbsKernel {
    pub(super) eps: f64,
    /// Per grid axis: `K_ij = exp(−d(x_i, x_j)²/(2ε))`, row-major n × n (symmetric).
    kernels: Vec<Vec<f64>>,
    /// Per grid axis: `d(x_i, x_j)²/2`.
    pub(super) costs: Vec<Vec<f64>>,
}

thread_local! {
    /// Work arrays of the kernel passes run on this thread (fresh ones per pass cost page
    /// faults and zeroing: 8 % of a run).
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Work arrays of one task of a kernel pass.
#[derive(Default)]
struct Scratch {
    /// Exponentiated, shifted values (lines × n or n × columns).
    weights: Vec<f64>,
    /// Kernel sums, same layout.
    sums: Vec<f64>,
    /// Shift per line (rows) or per column.
    shifts: Vec<f64>,
    /// Original values of the lines that need the exact fallback.
    originals: Vec<f64>,
    /// Exponents of one exact log-sum-exp.
    terms: Vec<f64>,
}

impl GibbsKernel {
    /// The axes are uniform, so `d(x_i, x_j)` depends on `|i − j|` only (wrapped on periodic
    /// axes): n costs and n exponentials per axis, spread over the matrices.
    pub(crate) fn new(grid: &Grid, eps: f64) -> GibbsKernel {
        let toeplitz = |by_offset: &[f64]| -> Vec<f64> {
            let n = by_offset.len();
            let mut m = vec![0.0; n * n];
            m.chunks_mut(n).enumerate().for_each(|(i, row)| {
                row.iter_mut().enumerate().for_each(|(j, v)| *v = by_offset[i.abs_diff(j)])
            });
            m
        };
        let (mut costs, mut kernels) = (Vec::new(), Vec::new());
        for ax in grid.axes() {
            let n = ax.cells;
            let (period, h) = (ax.upper - ax.lower, ax.spacing());
            let cost: Vec<f64> = (0..n)
                .map(|k| {
                    let mut d = k as f64 * h;
                    if ax.boundary.is_periodic() {
                        d = d.min(period - d);
                    }
                    0.5 * d * d
                })
                .collect();
            let kernel: Vec<f64> = cost.iter().map(|c| (-c / eps).exp()).collect();
            costs.push(toeplitz(&cost));
            kernels.push(toeplitz(&kernel));
        }
        GibbsKernel { eps, kernels, costs }
    }

    /// ε.
    pub(crate) fn eps(&self) -> f64 {
        self.eps
    }

    /// `LSE_ε(h)` over all axes (the soft c-transform without its sign), in place.
    pub(crate) fn soft_transform(&self, h: &mut [f64], shape: &[usize]) {
        let d = shape.len();
        for a in 0..d {
            self.soft_transform_axis(h, shape, d - 1 - a, a);
        }
    }

    /// `LSE_ε` along storage axis `k` of the C-order array `h` of `shape`, with the kernel of
    /// grid axis `a` (the axis' cells are `shape[k]`), in place.
    pub(crate) fn soft_transform_axis(&self, h: &mut [f64], shape: &[usize], k: usize, a: usize) {
        let n = shape[k];
        let inner: usize = shape[k + 1..].iter().product();
        if inner == 1 {
            self.rows_pass(h, n, a);
        } else {
            self.columns_pass(h, n, inner, a);
        }
    }

    /// Lines per task of a pass over `total` cells in lines of n.
    fn lines_per_task(total: usize, n: usize) -> usize {
        if total <= TASK_CELLS {
            total / n
        } else {
            (TASK_CELLS / n).max(32).min(total / n)
        }
    }

    /// The transform along contiguous lines of length n (grid axis `a`): per task of
    /// lines, shifts by each line's maximum and exponentials, one sequential GEMM
    /// `S = W Kᵀ`, then logarithms (the tasks in parallel).
    fn rows_pass(&self, h: &mut [f64], n: usize, a: usize) {
        let eps = self.eps;
        let kernel = MatRef::from_row_major_slice(&self.kernels[a], n, n);
        let cost = &self.costs[a];
        let lines = Self::lines_per_task(h.len(), n);
        h.par_chunks_mut(lines * n).for_each(|block| {
            SCRATCH.with_borrow_mut(|s| {
                let r = block.len() / n;
                s.weights.resize(block.len(), 0.0);
                s.sums.resize(block.len(), 0.0);
                s.shifts.clear();
                for (line, w) in block.chunks(n).zip(s.weights.chunks_mut(n)) {
                    let m = line.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    if m == f64::NEG_INFINITY {
                        w.fill(0.0);
                    } else {
                        exp_scaled(line, m, 1.0 / eps, w);
                    }
                    s.shifts.push(m);
                }
                matmul(
                    MatMut::from_row_major_slice_mut(&mut s.sums, r, n),
                    Accum::Replace,
                    MatRef::from_row_major_slice(&s.weights, r, n),
                    kernel.transpose(),
                    1.0,
                    Par::Seq,
                );
                let Scratch { sums, shifts, originals, terms, .. } = s;
                for ((line, sums), &m) in block.chunks_mut(n).zip(sums.chunks(n)).zip(&*shifts) {
                    if m == f64::NEG_INFINITY {
                        continue; // an empty line stays −∞
                    }
                    let underflowed = sums.iter().any(|&v| v <= UNDERFLOW);
                    if underflowed {
                        originals.clear();
                        originals.extend_from_slice(line);
                    }
                    shift_ln(sums, m, eps, line);
                    if underflowed {
                        for i in (0..n).filter(|&i| sums[i] <= UNDERFLOW) {
                            line[i] = exact_lse(originals, &cost[i * n..(i + 1) * n], eps, terms);
                        }
                    }
                }
            })
        });
    }

    /// The transform along a strided axis: `h` is `[outer][n][inner]`, the lines are its
    /// columns. Per task of columns of one outer index, no transpose: shifts by each
    /// column's maximum, exponentials row by row, one sequential GEMM `S = K W`, then
    /// logarithms row by row (the tasks in parallel).
    fn columns_pass(&self, h: &mut [f64], n: usize, inner: usize, a: usize) {
        let eps = self.eps;
        let kernel = MatRef::from_row_major_slice(&self.kernels[a], n, n);
        let cost = &self.costs[a];
        let outer = h.len() / (n * inner);
        let width = if n * inner <= TASK_CELLS { inner } else { (TASK_CELLS / n).clamp(32, inner) };
        let blocks = inner.div_ceil(width);
        let data = DisjointWrites::new(h);
        (0..outer * blocks).into_par_iter().for_each(|task| {
            let (o, b) = (task / blocks, task % blocks);
            let c0 = b * width;
            let w = width.min(inner - c0);
            let base = o * n * inner + c0;
            // SAFETY: row j of this task's block, [base + j·inner, + w): inside `h`, and the
            // tasks' blocks (outer index, column range) are disjoint; no other reference to
            // `h` is used while the tasks run.
            let row =
                |j: usize| unsafe { std::slice::from_raw_parts_mut(data.at(base + j * inner), w) };
            SCRATCH.with_borrow_mut(|s| {
                s.shifts.clear();
                s.shifts.resize(w, f64::NEG_INFINITY);
                for j in 0..n {
                    s.shifts.iter_mut().zip(row(j).iter()).for_each(|(m, v)| *m = m.max(*v));
                }
                // Empty columns (all −∞) take shift 0: their weights are 0 and their sums 0,
                // whose logarithm keeps them at −∞.
                let empty: Vec<bool> = s.shifts.iter().map(|m| *m == f64::NEG_INFINITY).collect();
                s.shifts.iter_mut().filter(|m| **m == f64::NEG_INFINITY).for_each(|m| *m = 0.0);
                s.weights.resize(n * w, 0.0);
                s.sums.resize(n * w, 0.0);
                for (j, wj) in s.weights.chunks_mut(w).enumerate() {
                    exp_shifted(row(j), &s.shifts, 1.0 / eps, wj);
                }
                matmul(
                    MatMut::from_row_major_slice_mut(&mut s.sums, n, w),
                    Accum::Replace,
                    kernel,
                    MatRef::from_row_major_slice(&s.weights, n, w),
                    1.0,
                    Par::Seq,
                );
                let Scratch { weights, sums, shifts, originals, terms } = s;
                // Columns with an underflowed sum, from the column minima (row by row: a
                // strided scan per column cost 8 % of a run).
                let minima = &mut weights[..w];
                minima.copy_from_slice(&sums[..w]);
                for sj in sums.chunks(w).skip(1) {
                    minima.iter_mut().zip(sj).for_each(|(m, v)| *m = m.min(*v));
                }
                let flagged: Vec<usize> =
                    (0..w).filter(|&c| !empty[c] && minima[c] <= UNDERFLOW).collect();
                originals.clear();
                for &c in &flagged {
                    originals.extend((0..n).map(|j| row(j)[c]));
                }
                for (j, sj) in sums.chunks(w).enumerate() {
                    ln_shifted(sj, shifts, eps, row(j));
                }
                for (f, &c) in flagged.iter().enumerate() {
                    let original = &originals[f * n..(f + 1) * n];
                    for i in (0..n).filter(|&i| sums[i * w + c] <= UNDERFLOW) {
                        row(i)[c] = exact_lse(original, &cost[i * n..(i + 1) * n], eps, terms);
                    }
                }
            })
        });
    }
}

/// `ε log Σ_j exp((h_j − c_j)/ε)` exactly: the exponents first (no exp), then exponentials
/// only of the terms within NEGLIGIBLE·ε of the maximum (the others add < n e⁻⁴⁰ relatively).
fn exact_lse(h: &[f64], cost: &[f64], eps: f64, terms: &mut Vec<f64>) -> f64 {
    terms.clear();
    terms.extend(h.iter().zip(cost).map(|(v, c)| v - c));
    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    let floor = m - NEGLIGIBLE * eps;
    let sum: f64 = terms.iter().filter(|&&t| t > floor).map(|t| ((t - m) / eps).exp()).sum();
    m + eps * sum.ln()
}

/// Sinkhorn's operations on one grid at one ε: the soft c-transform `LSE_ε` of a potential
/// given on this process's cells and sums over the whole grid — every cell here
/// ([`WholeGrid`]), or one rank's block of a decomposed grid
/// (`crate::distributed::SlabGibbs`, `crate::distributed::PencilGibbs`). The Sinkhorn
/// iteration is written once against it.
pub(crate) trait SoftTransform {
    /// ε.
    fn eps(&self) -> f64;
    /// `h ← LSE_ε(h)` on this process's cells (a collective where the grid is decomposed).
    fn apply(&self, h: &mut Vec<f64>) -> Result<()>;
    /// `Σ terms` over this process's cells (`terms`: one per cell) and every other
    /// process's, added as [`crate::field::ordered_sum`] adds the whole grid's terms: the
    /// same result to the bit whatever the decomposition (a collective where the grid is
    /// decomposed).
    fn sum(&self, terms: &[f64]) -> f64;
}

/// The whole grid in this process: [`GibbsKernel`] over the grid's storage shape.
pub(crate) struct WholeGrid {
    pub(crate) kernel: GibbsKernel,
    shape: Vec<usize>,
}

impl WholeGrid {
    pub(crate) fn new(grid: &Grid, eps: f64) -> WholeGrid {
        WholeGrid { kernel: GibbsKernel::new(grid, eps), shape: grid.storage_shape() }
    }
}

impl SoftTransform for WholeGrid {
    fn eps(&self) -> f64 {
        self.kernel.eps
    }

    fn apply(&self, h: &mut Vec<f64>) -> Result<()> {
        self.kernel.soft_transform(h, &self.shape);
        Ok(())
    }

    fn sum(&self, terms: &[f64]) -> f64 {
        ordered_sum(terms.len(), |cells| terms[cells].iter().sum())
    }
}

/// `−LSE_ε(potential + ε log weights)`: the Sinkhorn update of the other potential.
pub(super) fn update(
    kernel: &dyn SoftTransform,
    other: &[f64],
    log_weights: &[f64],
    out: &mut Vec<f64>,
) -> Result<()> {
    let eps = kernel.eps();
    out.clear();
    out.extend(other.iter().zip(log_weights).map(|(g, lb)| g + eps * lb));
    kernel.apply(out)?;
    out.iter_mut().for_each(|v| *v = -*v);
    Ok(())
}
