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
//!
//! DCT-II is computed by Makhoul's algorithm: permute `v = [x_0, x_2, x_4, …, x_5, x_3, x_1]`,
//! take one real FFT `V` of the same length, and `X_k = Re(e^{−iπk/2n} V_k)`; its inverse
//! reverses each step. DST-II reduces to it: `DST(x)_k = DCT((−1)^i x_i)_{n−1−k}`. This costs
//! one real FFT of length n per line, the same as a periodic axis (a DCT through a complex FFT
//! of length n costs about twice as much). Every transform satisfies
//! `inverse(forward(x)) = n · x`.

use crate::grid::BoundaryKind;
use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
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

/// The kind of real-to-real transform of one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Real FFT, half-complex packed.
    Fourier,
    /// DCT-II / its inverse.
    Cosine,
    /// DST-II / its inverse.
    Sine,
}

/// A planned transform of one axis: a real FFT of the line's length plus, for the cosine
/// and sine transforms, Makhoul's twiddles `e^{−iπk/2n}`.
pub(crate) struct LineTransform {
    kind: Kind,
    r2c: Arc<dyn RealToComplex<f64>>,
    c2r: Arc<dyn ComplexToReal<f64>>,
    twiddle: Vec<Complex<f64>>,
}

/// Per-worker scratch for line transforms, sized once at plan time.
pub(crate) struct LineWork {
    spectrum: Vec<Complex<f64>>,
    complex_scratch: Vec<Complex<f64>>,
    real_scratch: Vec<f64>,
}

impl LineTransform {
    pub(crate) fn plan(kind: BoundaryKind, n: usize) -> LineTransform {
        let mut planner = RealFftPlanner::<f64>::new();
        let kind = match kind {
            BoundaryKind::Periodic => Kind::Fourier,
            BoundaryKind::Neumann => Kind::Cosine,
            BoundaryKind::Dirichlet => Kind::Sine,
        };
        let twiddle = if kind == Kind::Fourier {
            Vec::new()
        } else {
            (0..n)
                .map(|k| {
                    Complex::from_polar(1.0, -std::f64::consts::PI * k as f64 / (2.0 * n as f64))
                })
                .collect()
        };
        LineTransform {
            kind,
            r2c: planner.plan_fft_forward(n),
            c2r: planner.plan_fft_inverse(n),
            twiddle,
        }
    }

    /// `inverse(forward(x)) = scale() · x`.
    pub(crate) fn scale(&self, n: usize) -> f64 {
        n as f64
    }

    /// Grows `work` to fit this transform.
    pub(crate) fn reserve(&self, n: usize, work: &mut LineWork) {
        let cs = self.r2c.get_scratch_len().max(self.c2r.get_scratch_len());
        if work.spectrum.len() < n / 2 + 1 {
            work.spectrum.resize(n / 2 + 1, Complex::new(0.0, 0.0));
        }
        if work.complex_scratch.len() < cs {
            work.complex_scratch.resize(cs, Complex::new(0.0, 0.0));
        }
        if work.real_scratch.len() < n {
            work.real_scratch.resize(n, 0.0);
        }
    }

    /// Forward transform of one contiguous line, in place. Periodic lines are stored
    /// half-complex: `[Re X_0, Re X_1, …, Re X_{n/2}, Im X_{(n−1)/2}, …, Im X_1]`, so entry j
    /// belongs to frequency `min(j, n − j)`; cosine entry k to frequency k; sine entry k to
    /// frequency k + 1.
    pub(crate) fn forward(&self, line: &mut [f64], work: &mut LineWork) {
        let n = line.len();
        let spec = &mut work.spectrum[..n / 2 + 1];
        let scratch = &mut work.complex_scratch[..self.r2c.get_scratch_len()];
        match self.kind {
            Kind::Fourier => {
                self.r2c.process_with_scratch(line, spec, scratch).expect("lengths planned");
                for k in 0..=n / 2 {
                    line[k] = spec[k].re;
                }
                for k in 1..n.div_ceil(2) {
                    line[n - k] = spec[k].im;
                }
            }
            Kind::Cosine | Kind::Sine => {
                let v = &mut work.real_scratch[..n];
                let sign =
                    |i: usize| if self.kind == Kind::Sine && i % 2 == 1 { -1.0 } else { 1.0 };
                for m in 0..n.div_ceil(2) {
                    v[m] = sign(2 * m) * line[2 * m];
                }
                for m in 0..n / 2 {
                    v[n - 1 - m] = sign(2 * m + 1) * line[2 * m + 1];
                }
                self.r2c.process_with_scratch(v, spec, scratch).expect("lengths planned");
                // X_k = Re(w_k V_k) and X_{n−k} = −Im(w_k V_k).
                let mut put = |k: usize, x: f64| {
                    let idx = if self.kind == Kind::Sine { n - 1 - k } else { k };
                    line[idx] = x;
                };
                put(0, spec[0].re);
                for k in 1..=n / 2 {
                    let z = self.twiddle[k] * spec[k];
                    put(k, z.re);
                    if n - k != k {
                        put(n - k, -z.im);
                    }
                }
            }
        }
    }

    /// Inverse of [`forward`](Self::forward) up to the factor [`scale`](Self::scale).
    pub(crate) fn inverse(&self, line: &mut [f64], work: &mut LineWork) {
        let n = line.len();
        let spec = &mut work.spectrum[..n / 2 + 1];
        let scratch = &mut work.complex_scratch[..self.c2r.get_scratch_len()];
        match self.kind {
            Kind::Fourier => {
                spec[0] = Complex::new(line[0], 0.0);
                for k in 1..n.div_ceil(2) {
                    spec[k] = Complex::new(line[k], line[n - k]);
                }
                if n % 2 == 0 && n > 1 {
                    spec[n / 2] = Complex::new(line[n / 2], 0.0);
                }
                self.c2r.process_with_scratch(spec, line, scratch).expect("lengths planned");
            }
            Kind::Cosine | Kind::Sine => {
                let get =
                    |k: usize| if self.kind == Kind::Sine { line[n - 1 - k] } else { line[k] };
                // V_k = conj(w_k) (X_k − i X_{n−k}), V_0 = X_0.
                spec[0] = Complex::new(get(0), 0.0);
                for k in 1..=n / 2 {
                    spec[k] = self.twiddle[k].conj() * Complex::new(get(k), -get(n - k));
                }
                if n % 2 == 0 && n > 1 {
                    spec[n / 2].im = 0.0;
                }
                let v = &mut work.real_scratch[..n];
                self.c2r.process_with_scratch(spec, v, scratch).expect("lengths planned");
                let sign =
                    |i: usize| if self.kind == Kind::Sine && i % 2 == 1 { -1.0 } else { 1.0 };
                for m in 0..n.div_ceil(2) {
                    line[2 * m] = sign(2 * m) * v[m];
                }
                for m in 0..n / 2 {
                    line[2 * m + 1] = sign(2 * m + 1) * v[n - 1 - m];
                }
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

    /// The Makhoul DCT-II and the DST-II built on it agree with rustdct's reference transforms.
    #[test]
    fn cosine_and_sine_transforms_match_rustdct() {
        for n in [1usize, 2, 3, 8, 15, 64, 100] {
            let x: Vec<f64> = (0..n).map(|i| ((i * 13 + 5) % 17) as f64 - 7.5).collect();
            let reference = rustdct::DctPlanner::new().plan_dct2(n);
            for kind in [BoundaryKind::Neumann, BoundaryKind::Dirichlet] {
                let t = LineTransform::plan(kind, n);
                let mut work = LineWork::new();
                t.reserve(n, &mut work);
                let mut ours = x.clone();
                t.forward(&mut ours, &mut work);
                let mut theirs = x.clone();
                if kind == BoundaryKind::Neumann {
                    reference.process_dct2(&mut theirs);
                } else {
                    reference.process_dst2(&mut theirs);
                }
                for k in 0..n {
                    assert!(
                        (ours[k] - theirs[k]).abs() < 1e-10,
                        "{kind} n={n} k={k}: {} vs {}",
                        ours[k],
                        theirs[k]
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
