//! Real-to-real line transforms that diagonalise the 1D second-difference operator for each
//! boundary kind, and the parallel blocked transpose that makes strided axes contiguous.
//!
//! On a cell-centred axis with n cells of width h, the 3-point operator
//! `(−δ²u)_i = (2u_i − u_{i−1} − u_{i+1})/h²` with ghost values
//! periodic `u_{−1} = u_{n−1}`, Neumann `u_{−1} = u_0`, Dirichlet `u_{−1} = −u_0` (zero on the
//! face) has eigenvectors and eigenvalues
//!
//! | kind      | transform (forward / inverse)       | eigenvector i ↦                 | λ_k h²            |
//! |-----------|-------------------------------------|---------------------------------|-------------------|
//! | periodic  | real FFT, half-complex packed       | cos, sin(2πk i/n)               | 4 sin²(πk/n)      |
//! | Neumann   | DCT-II / DCT-III                    | cos(πk(i+½)/n)                  | 4 sin²(πk/(2n))   |
//! | Dirichlet | DST-II / DST-III                    | sin(π(k+1)(i+½)/n)              | 4 sin²(π(k+1)/(2n)) |
//!
//! The continuous (spectral) symbols are (2πk/L)², (πk/L)² and (π(k+1)/L)².
//! `inverse(forward(x)) = scale · x` with scale n (FFT) or n/2 (DCT/DST; rustdct's DCT-III
//! already halves X₀).

use crate::grid::BoundaryKind;
use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustdct::{DctPlanner, TransformType2And3};
use std::sync::Arc;

/// Which eigenvalues of the Laplacian to divide by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Symbol {
    /// Eigenvalues of the second-order finite-difference Laplacian: the solve is the exact
    /// inverse of the 5-point (2D) / 7-point (3D) operator with the grid's boundary kinds.
    #[default]
    Discrete,
    /// The continuous symbol |k|²: a spectral (not finite-difference) Laplacian.
    Continuous,
}

/// A planned transform of one axis.
pub(crate) enum LineTransform {
    Periodic { r2c: Arc<dyn RealToComplex<f64>>, c2r: Arc<dyn ComplexToReal<f64>> },
    Cosine(Arc<dyn TransformType2And3<f64>>),
    Sine(Arc<dyn TransformType2And3<f64>>),
}

/// Per-worker scratch for line transforms, sized once at plan time.
pub(crate) struct LineWork {
    spectrum: Vec<Complex<f64>>,
    complex_scratch: Vec<Complex<f64>>,
    real_scratch: Vec<f64>,
}

impl LineTransform {
    pub(crate) fn plan(kind: BoundaryKind, n: usize) -> LineTransform {
        match kind {
            BoundaryKind::Periodic => {
                let mut planner = RealFftPlanner::<f64>::new();
                LineTransform::Periodic {
                    r2c: planner.plan_fft_forward(n),
                    c2r: planner.plan_fft_inverse(n),
                }
            }
            BoundaryKind::Neumann => LineTransform::Cosine(DctPlanner::new().plan_dct2(n)),
            BoundaryKind::Dirichlet => LineTransform::Sine(DctPlanner::new().plan_dct2(n)),
        }
    }

    /// `inverse(forward(x)) = scale() · x`.
    pub(crate) fn scale(&self, n: usize) -> f64 {
        match self {
            LineTransform::Periodic { .. } => n as f64,
            _ => n as f64 / 2.0,
        }
    }

    /// Grows `work` to fit this transform.
    pub(crate) fn reserve(&self, n: usize, work: &mut LineWork) {
        let (c, cs, rs) = match self {
            LineTransform::Periodic { r2c, c2r } => {
                (n / 2 + 1, r2c.get_scratch_len().max(c2r.get_scratch_len()), 0)
            }
            LineTransform::Cosine(t) | LineTransform::Sine(t) => (0, 0, t.get_scratch_len()),
        };
        let grow_c = |v: &mut Vec<Complex<f64>>, len: usize| {
            if v.len() < len {
                v.resize(len, Complex::new(0.0, 0.0));
            }
        };
        grow_c(&mut work.spectrum, c);
        grow_c(&mut work.complex_scratch, cs);
        if work.real_scratch.len() < rs {
            work.real_scratch.resize(rs, 0.0);
        }
    }

    /// Forward transform of one contiguous line, in place. Periodic lines are stored
    /// half-complex: `[Re X_0, Re X_1, …, Re X_{n/2}, Im X_{(n−1)/2}, …, Im X_1]`, so entry j
    /// belongs to frequency `min(j, n − j)`.
    pub(crate) fn forward(&self, line: &mut [f64], work: &mut LineWork) {
        match self {
            LineTransform::Periodic { r2c, .. } => {
                let n = line.len();
                let spec = &mut work.spectrum[..n / 2 + 1];
                let scratch = &mut work.complex_scratch[..r2c.get_scratch_len()];
                r2c.process_with_scratch(line, spec, scratch).expect("lengths planned");
                line[0] = spec[0].re;
                for k in 1..=n / 2 {
                    line[k] = spec[k].re;
                }
                for k in 1..n.div_ceil(2) {
                    line[n - k] = spec[k].im;
                }
            }
            LineTransform::Cosine(t) => {
                let s = &mut work.real_scratch[..t.get_scratch_len()];
                t.process_dct2_with_scratch(line, s)
            }
            LineTransform::Sine(t) => {
                let s = &mut work.real_scratch[..t.get_scratch_len()];
                t.process_dst2_with_scratch(line, s)
            }
        }
    }

    /// Inverse of [`forward`](Self::forward) up to the factor [`scale`](Self::scale).
    pub(crate) fn inverse(&self, line: &mut [f64], work: &mut LineWork) {
        match self {
            LineTransform::Periodic { c2r, .. } => {
                let n = line.len();
                let spec = &mut work.spectrum[..n / 2 + 1];
                spec[0] = Complex::new(line[0], 0.0);
                for k in 1..n.div_ceil(2) {
                    spec[k] = Complex::new(line[k], line[n - k]);
                }
                if n % 2 == 0 && n > 1 {
                    spec[n / 2] = Complex::new(line[n / 2], 0.0);
                }
                let scratch = &mut work.complex_scratch[..c2r.get_scratch_len()];
                c2r.process_with_scratch(spec, line, scratch).expect("lengths planned");
            }
            LineTransform::Cosine(t) => {
                let s = &mut work.real_scratch[..t.get_scratch_len()];
                t.process_dct3_with_scratch(line, s)
            }
            LineTransform::Sine(t) => {
                let s = &mut work.real_scratch[..t.get_scratch_len()];
                t.process_dst3_with_scratch(line, s)
            }
        }
    }
}

impl LineWork {
    pub(crate) fn new() -> LineWork {
        LineWork { spectrum: Vec::new(), complex_scratch: Vec::new(), real_scratch: Vec::new() }
    }
}

/// Eigenvalues λ_k (k = storage index after the forward transform) of `−δ²` on one axis.
pub(crate) fn eigenvalues(kind: BoundaryKind, n: usize, h: f64, symbol: Symbol) -> Vec<f64> {
    use std::f64::consts::PI;
    let length = n as f64 * h;
    (0..n)
        .map(|j| match (kind, symbol) {
            (BoundaryKind::Periodic, s) => {
                let k = j.min(n - j) as f64;
                match s {
                    Symbol::Discrete => 4.0 / (h * h) * (PI * k / n as f64).sin().powi(2),
                    Symbol::Continuous => (2.0 * PI * k / length).powi(2),
                }
            }
            (BoundaryKind::Neumann, Symbol::Discrete) => {
                4.0 / (h * h) * (PI * j as f64 / (2.0 * n as f64)).sin().powi(2)
            }
            (BoundaryKind::Neumann, Symbol::Continuous) => (PI * j as f64 / length).powi(2),
            (BoundaryKind::Dirichlet, Symbol::Discrete) => {
                4.0 / (h * h) * (PI * (j + 1) as f64 / (2.0 * n as f64)).sin().powi(2)
            }
            (BoundaryKind::Dirichlet, Symbol::Continuous) => (PI * (j + 1) as f64 / length).powi(2),
        })
        .collect()
}

/// Applies `forward` or `inverse` of `t` to every contiguous line of length `n` in `data`,
/// in parallel, one [`LineWork`] per group of lines (no allocation).
pub(crate) fn transform_lines(
    data: &mut [f64],
    n: usize,
    t: &LineTransform,
    forward: bool,
    work: &mut [LineWork],
) {
    let lines = data.len() / n;
    let per_group = lines.div_ceil(work.len()).max(1);
    data.par_chunks_mut(per_group * n).zip(work.par_iter_mut()).for_each(|(chunk, w)| {
        for line in chunk.chunks_exact_mut(n) {
            if forward {
                t.forward(line, w)
            } else {
                t.inverse(line, w)
            }
        }
    });
}

/// Batched transpose: for each of `batch` matrices of `rows × cols` in `src`,
/// `dst[b][c][r] = src[b][r][c]`. Parallel over blocks of destination rows; reads are
/// contiguous runs of `TILE` elements, writes `TILE` sequential streams.
pub(crate) fn transpose(src: &[f64], dst: &mut [f64], batch: usize, rows: usize, cols: usize) {
    const TILE: usize = 16;
    debug_assert_eq!(src.len(), batch * rows * cols);
    debug_assert_eq!(dst.len(), src.len());
    let per_batch = rows * cols;
    dst.par_chunks_mut(per_batch).zip(src.par_chunks(per_batch)).for_each(|(d, s)| {
        d.par_chunks_mut(TILE * rows).enumerate().for_each(|(block, out)| {
            let c0 = block * TILE;
            let width = out.len() / rows;
            for r in 0..rows {
                let row = &s[r * cols + c0..r * cols + c0 + width];
                for (i, v) in row.iter().enumerate() {
                    out[i * rows + r] = *v;
                }
            }
        });
    });
    let _ = batch;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second_difference(kind: BoundaryKind, u: &[f64], h: f64) -> Vec<f64> {
        let n = u.len();
        (0..n)
            .map(|i| {
                let left = if i > 0 {
                    u[i - 1]
                } else {
                    match kind {
                        BoundaryKind::Periodic => u[n - 1],
                        BoundaryKind::Neumann => u[0],
                        BoundaryKind::Dirichlet => -u[0],
                    }
                };
                let right = if i + 1 < n {
                    u[i + 1]
                } else {
                    match kind {
                        BoundaryKind::Periodic => u[0],
                        BoundaryKind::Neumann => u[n - 1],
                        BoundaryKind::Dirichlet => -u[n - 1],
                    }
                };
                (2.0 * u[i] - left - right) / (h * h)
            })
            .collect()
    }

    /// Each transform round-trips with its scale, and diagonalises −δ² with the tabulated
    /// eigenvalues: forward(−δ² u) = λ · forward(u), for even and odd n.
    #[test]
    fn transforms_diagonalise_the_second_difference() {
        for kind in BoundaryKind::ALL {
            for n in [1usize, 2, 7, 16, 33] {
                let h = 0.3;
                let t = LineTransform::plan(kind, n);
                let mut work = LineWork::new();
                t.reserve(n, &mut work);
                let u: Vec<f64> = (0..n).map(|i| ((i * 7 + 3) % 11) as f64 - 4.2).collect();
                let mut x = u.clone();
                t.forward(&mut x, &mut work);
                let mut back = x.clone();
                t.inverse(&mut back, &mut work);
                for i in 0..n {
                    assert!((back[i] / t.scale(n) - u[i]).abs() < 1e-12, "{kind} n={n} round trip");
                }
                let mut lu = second_difference(kind, &u, h);
                t.forward(&mut lu, &mut work);
                let lam = eigenvalues(kind, n, h, Symbol::Discrete);
                for j in 0..n {
                    assert!(
                        (lu[j] - lam[j] * x[j]).abs() < 1e-9 * (1.0 + lu[j].abs()),
                        "{kind} n={n} j={j}: {} vs {}",
                        lu[j],
                        lam[j] * x[j]
                    );
                }
            }
        }
    }

    #[test]
    fn transpose_is_a_transpose() {
        let (b, r, c) = (3, 5, 37);
        let src: Vec<f64> = (0..b * r * c).map(|i| i as f64).collect();
        let mut dst = vec![0.0; src.len()];
        transpose(&src, &mut dst, b, r, c);
        for bb in 0..b {
            for rr in 0..r {
                for cc in 0..c {
                    assert_eq!(dst[bb * r * c + cc * r + rr], src[bb * r * c + rr * c + cc]);
                }
            }
        }
    }
}
