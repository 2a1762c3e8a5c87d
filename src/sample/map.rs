//! Transport maps known at cell centres, evaluated at arbitrary points.
//!
//! A map `T(x) = x + D(x)` is given by its displacement `D` at the cell centres of a grid
//! (what `otgrid ot` writes as `/fields/displacement`, and `inverse_map − x` for the inverse).
//! At a point x, `D(x)` is interpolated from the centres — the displacement rather than the
//! map, because on a periodic axis D is periodic while T is not — and `T(x) = x + D(x)`.
//!
//! * [`Interpolation::Cubic`]: tensor-product Lagrange cubics on 4 centres per axis, error
//!   `O(h⁴)` for a smooth D;
//! * [`Interpolation::Linear`]: multilinear on 2 centres per axis, error `O(h²)`.
//!
//! Both reproduce the grid values exactly at the centres. On a box axis the stencil is
//! shifted inwards next to a face and the outer half cell (between the last centre and the
//! face) is reached by extrapolating the boundary stencil, and `T(x)` is clamped into the box
//! (a map between densities on the box maps into it; the extrapolation could overshoot a
//! face by O(h²)); on a periodic axis it wraps, and points are wrapped into the period. A map computed on the grid is itself second-order
//! accurate (the centred differences of the potential), so against a closed-form map both
//! interpolations give `O(h²)`, cubic with the smaller constant (docs/generative.md).

use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::grid::Grid;
use crate::ot::pushforward::cubic_weights;
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// How [`GridMap`] interpolates between cell centres.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Multilinear, 2 centres per axis: second order.
    Linear,
    /// Tensor-product Lagrange cubic, 4 centres per axis: fourth order.
    #[default]
    Cubic,
}

impl Interpolation {
    /// Parses `linear` or `cubic`.
    pub fn from_name(name: &str) -> Result<Interpolation> {
        match name {
            "linear" | "multilinear" => Ok(Interpolation::Linear),
            "cubic" => Ok(Interpolation::Cubic),
            _ => Err(Error::invalid(format!(
                "unknown interpolation '{name}' (expected linear or cubic)"
            ))),
        }
    }

    /// Centres per axis in the stencil.
    fn width(self) -> usize {
        match self {
            Interpolation::Linear => 2,
            Interpolation::Cubic => 4,
        }
    }
}

impl std::str::FromStr for Interpolation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Interpolation> {
        Interpolation::from_name(s)
    }
}

/// A map `T(x) = x + D(x)` with D known at the cell centres of a grid.
#[derive(Clone, Debug)]
pub struct GridMap {
    displacement: VectorField,
    interpolation: Interpolation,
}

impl GridMap {
    /// The map with displacement `D` (at the cell centres; finite). The grid needs at least
    /// the stencil's width of cells per axis (2 for linear, 4 for cubic).
    pub fn from_displacement(
        displacement: VectorField,
        interpolation: Interpolation,
    ) -> Result<GridMap> {
        let grid = displacement.grid();
        let width = interpolation.width();
        if let Some(a) = grid.axes().iter().find(|a| a.cells < width) {
            return Err(Error::invalid(format!(
                "{interpolation:?} interpolation needs at least {width} cells per axis, the map's \
                 grid has {}",
                a.cells
            )));
        }
        if displacement.data().iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("the map's displacement has NaN or infinite values"));
        }
        Ok(GridMap { displacement, interpolation })
    }

    /// The map `T` given at the cell centres (`T(x) − x` is stored).
    pub fn from_map(map: &VectorField, interpolation: Interpolation) -> Result<GridMap> {
        let mut d = map.clone();
        let identity = VectorField::from_fn(map.grid(), |x, out| out.copy_from_slice(x));
        d.data_mut().zip_mut_with(identity.data(), |a, b| *a -= b);
        GridMap::from_displacement(d, interpolation)
    }

    /// The grid the map is known on.
    pub fn grid(&self) -> &Grid {
        self.displacement.grid()
    }

    /// The interpolation in use.
    pub fn interpolation(&self) -> Interpolation {
        self.interpolation
    }

    /// `T(x)` at one point (`x.len()` = the grid's dimension; inside the domain on box axes,
    /// anywhere on periodic ones).
    pub fn apply_one(&self, x: &[f64], out: &mut [f64]) -> Result<()> {
        let grid = self.grid();
        let d = grid.dim();
        if x.len() != d || out.len() != d {
            return Err(Error::invalid(format!(
                "a point of the {d}D map needs {d} coordinates, got {}",
                x.len()
            )));
        }
        let mut wrapped = [0.0; 3];
        locate(grid, x, &mut wrapped[..d])?;
        self.displacement_at(&wrapped[..d], out);
        for (a, axis) in grid.axes().iter().enumerate() {
            out[a] += x[a];
            if !axis.boundary.is_periodic() {
                // A map between densities on the box maps into it: the extrapolated outer
                // half cell must not carry points past a face.
                out[a] = out[a].clamp(axis.lower, axis.upper);
            }
        }
        Ok(())
    }

    /// `T` at every row of `points` (`[n][dim]`), in parallel. A non-finite coordinate or a
    /// point outside the domain on a box axis is an error naming the first such row.
    pub fn apply(&self, points: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
        let d = self.grid().dim();
        if points.ncols() != d {
            return Err(Error::invalid(format!(
                "points for a {d}D map need {d} columns, got {}",
                points.ncols()
            )));
        }
        let mut out = Array2::<f64>::zeros((points.nrows(), d));
        let bad: Option<(usize, Error)> = out
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(points.axis_iter(Axis(0)).into_par_iter())
            .enumerate()
            .filter_map(|(i, (mut o, p))| {
                let mut x = [0.0f64; 3];
                x[..d].iter_mut().zip(p.iter()).for_each(|(x, p)| *x = *p);
                let o = o.as_slice_mut().expect("rows of a C-order array are contiguous");
                self.apply_one(&x[..d], o).err().map(|e| (i, e))
            })
            .min_by_key(|(i, _)| *i);
        match bad {
            Some((i, e)) => Err(Error::invalid(format!("point {i}: {e}"))),
            None => Ok(out),
        }
    }

    /// The interpolated displacement at a point already wrapped into the domain.
    fn displacement_at(&self, x: &[f64], out: &mut [f64]) {
        let grid = self.grid();
        let d = grid.dim();
        let w = self.interpolation.width();
        let mut index = [[0usize; 4]; 3];
        let mut weight = [[0.0f64; 4]; 3];
        let mut stride = [0usize; 3];
        let mut s_acc = 1usize;
        for a in 0..d {
            let ax = grid.axis(a);
            let n = ax.cells;
            let periodic = ax.boundary.is_periodic();
            // Position in units of cells from the first centre.
            let s = (x[a] - ax.lower) / ax.spacing() - 0.5;
            let first: i64 = if periodic {
                s.floor() as i64 - (w as i64 / 2 - 1)
            } else {
                (s.floor() as i64 - (w as i64 / 2 - 1)).clamp(0, (n - w) as i64)
            };
            let u = s - first as f64;
            match self.interpolation {
                Interpolation::Linear => {
                    weight[a][0] = 1.0 - u;
                    weight[a][1] = u;
                }
                Interpolation::Cubic => weight[a] = cubic_weights(u),
            }
            for k in 0..w {
                index[a][k] = (first + k as i64).rem_euclid(n as i64) as usize;
            }
            stride[a] = s_acc;
            s_acc *= n;
        }
        let data = self.displacement.data().as_slice().expect("contiguous");
        out.iter_mut().for_each(|v| *v = 0.0);
        let (wz, wy) = (if d == 3 { w } else { 1 }, w);
        for kz in 0..wz {
            let (oz, cz) =
                if d == 3 { (index[2][kz] * stride[2], weight[2][kz]) } else { (0, 1.0) };
            for ky in 0..wy {
                let oy = oz + index[1][ky] * stride[1];
                let cy = cz * weight[1][ky];
                for kx in 0..w {
                    let cell = oy + index[0][kx];
                    let c = cy * weight[0][kx];
                    let v = &data[cell * d..cell * d + d];
                    for (o, v) in out.iter_mut().zip(v) {
                        *o += c * v;
                    }
                }
            }
        }
    }
}

/// Writes x wrapped into the domain (periodic axes) into `out`; refuses a non-finite
/// coordinate or one outside `[lower, upper]` on a box axis.
fn locate(grid: &Grid, x: &[f64], out: &mut [f64]) -> Result<()> {
    for (a, ax) in grid.axes().iter().enumerate() {
        let v = x[a];
        if !v.is_finite() {
            return Err(Error::invalid(format!("coordinate {a} is {v}")));
        }
        out[a] = if ax.boundary.is_periodic() {
            ax.lower + (v - ax.lower).rem_euclid(ax.length())
        } else if v < ax.lower || v > ax.upper {
            return Err(Error::invalid(format!(
                "coordinate {a} = {v} is outside the map's domain [{}, {}]",
                ax.lower, ax.upper
            )));
        } else {
            v
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytic::manufactured::observed_orders;
    use crate::grid::{Axis as GridAxis, BoundaryKind};
    use std::f64::consts::PI;

    fn grid(dim: usize, n: usize, kinds: &[BoundaryKind]) -> Grid {
        Grid::new(
            (0..dim)
                .map(|a| GridAxis {
                    cells: n + 3 * a,
                    lower: -0.25 * a as f64,
                    upper: 1.0 + 0.5 * a as f64,
                    boundary: kinds[a],
                })
                .collect(),
        )
        .unwrap()
    }

    /// A smooth displacement, periodic with the grid on periodic axes and vanishing at the
    /// faces of box axes (so `x + D` maps the box into itself, as a transport map does).
    fn smooth(g: &Grid, x: &[f64], out: &mut [f64]) {
        let t: Vec<f64> = (0..g.dim())
            .map(|a| {
                let ax = g.axis(a);
                2.0 * PI * (x[a] - ax.lower) / ax.length()
            })
            .collect();
        for a in 0..g.dim() {
            let mut v = if g.axis(a).boundary.is_periodic() {
                0.05 * (t[a] + 0.3).sin()
            } else {
                0.05 * (0.5 * t[a]).sin()
            };
            for b in 0..g.dim() {
                if b != a {
                    v *= 1.0 + 0.5 * (t[b] + 0.2 * a as f64).cos();
                }
            }
            out[a] = v;
        }
    }

    fn points(g: &Grid, n: usize) -> Array2<f64> {
        // Deterministic points spread over the whole domain, faces' half cells included.
        let mut p = Array2::zeros((n, g.dim()));
        let mut state = 12345u64;
        for i in 0..n {
            for a in 0..g.dim() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                let ax = g.axis(a);
                p[[i, a]] = ax.lower + u * ax.length();
            }
        }
        p
    }

    /// At the cell centres both interpolations return the grid values; between them the
    /// error against a smooth displacement falls at order 4 (cubic) and 2 (linear), on box,
    /// torus and mixed grids in 2D and 3D, the outer half cells included.
    #[test]
    fn interpolation_is_exact_at_centres_and_converges_at_its_order() {
        use BoundaryKind::*;
        for dim in [2, 3] {
            for kinds in [[Neumann; 3], [Periodic; 3], [Periodic, Neumann, Periodic]] {
                for interp in [Interpolation::Cubic, Interpolation::Linear] {
                    let sizes: &[usize] = if dim == 2 { &[16, 32, 64] } else { &[12, 24, 48] };
                    let (mut hs, mut errs) = (vec![], vec![]);
                    for &n in sizes {
                        let g = grid(dim, n, &kinds);
                        let disp = VectorField::from_fn(&g, |x, out| smooth(&g, x, out));
                        let map = GridMap::from_displacement(disp.clone(), interp).unwrap();
                        // Exact at centres.
                        let centres = VectorField::from_fn(&g, |x, out| out.copy_from_slice(x));
                        let c = centres.data().as_slice().unwrap();
                        let c = ArrayView2::from_shape((g.num_cells(), dim), c).unwrap();
                        let t = map.apply(c).unwrap();
                        let dv = disp.data().as_slice().unwrap();
                        for (i, row) in t.axis_iter(Axis(0)).enumerate() {
                            for a in 0..dim {
                                let want = c[[i, a]] + dv[i * dim + a];
                                assert!((row[a] - want).abs() < 1e-13, "{kinds:?} {interp:?}");
                            }
                        }
                        let p = points(&g, 16000);
                        let t = map.apply(p.view()).unwrap();
                        let mut err: f64 = 0.0;
                        let mut exact = [0.0; 3];
                        for (x, tx) in p.axis_iter(Axis(0)).zip(t.axis_iter(Axis(0))) {
                            let x = x.to_vec();
                            smooth(&g, &x, &mut exact[..dim]);
                            for a in 0..dim {
                                err = err.max((tx[a] - x[a] - exact[a]).abs());
                            }
                        }
                        hs.push(g.max_spacing());
                        errs.push(err);
                    }
                    let orders = observed_orders(&hs, &errs);
                    eprintln!(
                        "{dim}D {kinds:?} {interp:?}: max errors {errs:?}, orders {orders:?}"
                    );
                    let need = if interp == Interpolation::Cubic { 3.7 } else { 1.9 };
                    assert!(
                        orders.iter().all(|&o| o >= need),
                        "{dim}D {kinds:?} {interp:?}: max errors {errs:?}, orders {orders:?}"
                    );
                }
            }
        }
    }

    /// Points are wrapped on periodic axes (T(x + L) = T(x) + L) and refused outside a box
    /// axis or when not finite, naming the row; a grid too small for the stencil is refused.
    #[test]
    fn points_wrap_on_periodic_axes_and_bad_points_are_refused() {
        use BoundaryKind::*;
        let g = grid(2, 16, &[Periodic, Neumann, Neumann]);
        let disp = VectorField::from_fn(&g, |x, out| smooth(&g, x, out));
        let map = GridMap::from_displacement(disp, Interpolation::Cubic).unwrap();
        let mut a = [0.0; 2];
        let mut b = [0.0; 2];
        map.apply_one(&[0.3, 0.4], &mut a).unwrap();
        map.apply_one(&[0.3 + 2.0 * g.axis(0).length(), 0.4], &mut b).unwrap();
        assert!(
            (b[0] - a[0] - 2.0 * g.axis(0).length()).abs() < 1e-12 && (b[1] - a[1]).abs() < 1e-12
        );
        let p = ndarray::array![[0.1, 0.2], [0.5, 1.7], [0.2, f64::NAN]];
        let e = map.apply(p.view()).unwrap_err().to_string();
        assert!(e.contains("point 1") && e.contains("outside"), "{e}");
        let p = ndarray::array![[0.1, 0.2], [0.2, f64::NAN]];
        let e = map.apply(p.view()).unwrap_err().to_string();
        assert!(e.contains("point 1") && e.contains("NaN"), "{e}");
        let p = ndarray::array![[0.1, 0.2, 0.3]];
        assert!(map.apply(p.view()).unwrap_err().to_string().contains("2 columns"));
        let small = Grid::unit(2, 3, Neumann).unwrap();
        let disp = VectorField::zeros(&small);
        assert!(GridMap::from_displacement(disp.clone(), Interpolation::Cubic).is_err());
        assert!(GridMap::from_displacement(disp, Interpolation::Linear).is_ok());
    }
}
