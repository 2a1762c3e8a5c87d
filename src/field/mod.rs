//! Scalar and vector fields on cell-centred grids.
//!
//! Storage is an `ndarray` in C order `[z][y][x]` (2D: `[y][x]`); a vector field has a
//! trailing component axis of length `dim` holding the x, y (, z) components in that order.
//! Construction from a closure is rayon-parallel over the slowest axis.

pub mod resample;

use crate::error::{Error, Result};
use crate::grid::Grid;
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis as NdAxis, Dimension, IxDyn, Zip};
use rayon::prelude::*;

/// A scalar field: one value per cell.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalarField {
    grid: Grid,
    data: ArrayD<f64>,
}

/// A vector field: `dim` components per cell, stored on a trailing axis.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorField {
    grid: Grid,
    data: ArrayD<f64>,
}

/// Calls `f(index, out)` for every cell, in parallel over the outermost storage axis, where
/// `out` is the cell's slice of `data` (length `per_cell`).
fn fill_cells<F>(grid: &Grid, data: &mut ArrayD<f64>, per_cell: usize, f: F)
where
    F: Fn(&[usize], &mut [f64]) + Sync,
{
    let shape = grid.storage_shape();
    let inner: usize = shape[1..].iter().product::<usize>() * per_cell;
    let slice = data.as_slice_mut().expect("fields are contiguous in C order");
    slice.par_chunks_mut(inner).enumerate().for_each(|(outer, chunk)| {
        let mut index = vec![0usize; shape.len()];
        index[0] = outer;
        for (flat, out) in chunk.chunks_mut(per_cell).enumerate() {
            crate::grid::unflatten(flat, &shape, &mut index, 1);
            f(&index, out);
        }
    });
}

/// The values of `f` at the cell centres of `window` (one rank's box of `grid`), C order —
/// the window's part of [`ScalarField::from_fn`], to the bit.
pub fn sample_window<F>(grid: &Grid, window: &crate::grid::Window, f: F) -> Vec<f64>
where
    F: Fn(&[f64]) -> f64 + Sync,
{
    let shape = grid.storage_shape();
    let d = grid.dim();
    let (starts, width) = window.lines(grid);
    let mut values = vec![0.0; starts.len() * width];
    values.par_chunks_mut(width.max(1)).zip(starts.par_iter()).for_each(|(line, &start)| {
        let mut index = vec![0usize; shape.len()];
        let mut p = [0.0; 3];
        for (x, out) in line.iter_mut().enumerate() {
            crate::grid::unflatten(start + x, &shape, &mut index, 0);
            grid.cell_center(&index, &mut p);
            *out = f(&p[..d]);
        }
    });
    values
}

impl ScalarField {
    /// Wraps `data` (shape must equal `grid.storage_shape()`).
    pub fn new(grid: Grid, data: ArrayD<f64>) -> Result<Self> {
        let expected = grid.storage_shape();
        if data.shape() != expected.as_slice() {
            return Err(Error::invalid(format!(
                "scalar field has shape {:?} but the grid needs {:?} (C order [z][y][x])",
                data.shape(),
                expected
            )));
        }
        let data =
            if data.is_standard_layout() { data } else { data.as_standard_layout().into_owned() };
        Ok(ScalarField { grid, data })
    }

    /// The zero field.
    pub fn zeros(grid: &Grid) -> Self {
        ScalarField { data: ArrayD::zeros(IxDyn(&grid.storage_shape())), grid: grid.clone() }
    }

    /// Wraps a flat C-order vector of `grid.num_cells()` values.
    pub fn from_vec(grid: &Grid, values: Vec<f64>) -> Result<Self> {
        let n = values.len();
        let data = ArrayD::from_shape_vec(IxDyn(&grid.storage_shape()), values).map_err(|_| {
            Error::invalid(format!("{n} values for a grid of {} cells", grid.num_cells()))
        })?;
        Ok(ScalarField { grid: grid.clone(), data })
    }

    /// Samples `f(point)` at every cell centre; `point` is in x, y, z order.
    pub fn from_fn<F>(grid: &Grid, f: F) -> Self
    where
        F: Fn(&[f64]) -> f64 + Sync,
    {
        let mut field = ScalarField::zeros(grid);
        let d = grid.dim();
        fill_cells(grid, &mut field.data, 1, |index, out| {
            let mut p = [0.0; 3];
            grid.cell_center(index, &mut p);
            out[0] = f(&p[..d]);
        });
        field
    }

    /// The grid the field lives on.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// Values, C order `[z][y][x]`.
    pub fn data(&self) -> &ArrayD<f64> {
        &self.data
    }

    /// Mutable values, C order `[z][y][x]`: a view, so the grid's shape cannot change.
    pub fn data_mut(&mut self) -> ArrayViewMutD<'_, f64> {
        self.data.view_mut()
    }

    /// The values on planes `planes` of the outermost storage axis (z in 3D, y in 2D), C order.
    pub fn planes(&self, planes: std::ops::Range<usize>) -> &[f64] {
        let plane: usize = self.data.shape()[1..].iter().product();
        &self.data.as_slice().expect("fields are contiguous")
            [planes.start * plane..planes.end * plane]
    }

    /// Mutable values as one contiguous slice, C order (x fastest).
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        self.data.as_slice_mut().expect("fields are contiguous in C order")
    }

    /// Consumes the field, returning its values.
    pub fn into_data(self) -> ArrayD<f64> {
        self.data
    }

    /// Smallest value (NaN if any value is NaN).
    pub fn min(&self) -> f64 {
        self.data.iter().copied().fold(f64::INFINITY, nan_min)
    }

    /// Largest value (NaN if any value is NaN).
    pub fn max(&self) -> f64 {
        self.data.iter().copied().fold(f64::NEG_INFINITY, nan_max)
    }

    /// Midpoint-rule integral `Σ u_i |cell|` (second-order accurate for smooth u).
    pub fn integral(&self) -> f64 {
        let u = self.data.as_slice().expect("contiguous");
        ordered_sum(u.len(), |r| u[r].iter().sum()) * self.grid.cell_volume()
    }

    /// This non-negative field normalised to unit mass (a probability density), with the
    /// mass it had. Negative values beyond round-off (below −1e-10 max|u|) or zero mass are
    /// errors; round-off negatives are set to zero.
    pub fn to_density(&self) -> Result<(ScalarField, f64)> {
        if let Some(i) = self.first_non_finite() {
            return Err(Error::invalid(format!(
                "field has a NaN or infinite value at index {i:?}"
            )));
        }
        let scale = self.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let min = self.min();
        if min < -1e-10 * scale {
            return Err(Error::invalid(format!(
                "cannot be a density: it has negative values (min {min:.3e}, max |u| {scale:.3e})"
            )));
        }
        let mut rho = self.clone();
        rho.data.mapv_inplace(|v| v.max(0.0));
        let mass = rho.integral();
        if mass.is_nan() || mass <= 0.0 {
            return Err(Error::invalid("cannot be a density: its mass is zero"));
        }
        rho.data.mapv_inplace(|v| v / mass);
        Ok((rho, mass))
    }

    /// First index (C order) of a NaN or infinite value, if any.
    pub fn first_non_finite(&self) -> Option<Vec<usize>> {
        // Fast scan first: the dynamic-dimension indexed iterator costs ~10 ns per element.
        if let Some(all) = self.data.as_slice() {
            if all.par_iter().all(|v| v.is_finite()) {
                return None;
            }
        }
        self.data
            .indexed_iter()
            .find(|(_, v)| !v.is_finite())
            .map(|(i, _)| i.as_array_view().to_vec())
    }
}

impl VectorField {
    /// Wraps `data` (shape must equal `grid.storage_shape()` followed by `grid.dim()`).
    pub fn new(grid: Grid, data: ArrayD<f64>) -> Result<Self> {
        let mut expected = grid.storage_shape();
        expected.push(grid.dim());
        if data.shape() != expected.as_slice() {
            return Err(Error::invalid(format!(
                "vector field has shape {:?} but the grid needs {:?} (C order [z][y][x][component])",
                data.shape(),
                expected
            )));
        }
        let data =
            if data.is_standard_layout() { data } else { data.as_standard_layout().into_owned() };
        Ok(VectorField { grid, data })
    }

    /// The zero field.
    pub fn zeros(grid: &Grid) -> Self {
        let mut shape = grid.storage_shape();
        shape.push(grid.dim());
        VectorField { data: ArrayD::zeros(IxDyn(&shape)), grid: grid.clone() }
    }

    /// Samples `f(point, value)` at every cell centre; both are in x, y, z order.
    pub fn from_fn<F>(grid: &Grid, f: F) -> Self
    where
        F: Fn(&[f64], &mut [f64]) + Sync,
    {
        let mut field = VectorField::zeros(grid);
        let d = grid.dim();
        fill_cells(grid, &mut field.data, d, |index, out| {
            let mut p = [0.0; 3];
            grid.cell_center(index, &mut p);
            f(&p[..d], out);
        });
        field
    }

    /// Stacks `dim` scalar fields (x component first) into a vector field.
    pub fn from_components(components: &[ScalarField]) -> Result<Self> {
        let grid =
            components.first().ok_or_else(|| Error::invalid("no components"))?.grid().clone();
        if components.len() != grid.dim() || components.iter().any(|c| c.grid() != &grid) {
            return Err(Error::invalid(format!(
                "a vector field on a {}D grid needs {} components on that grid",
                grid.dim(),
                grid.dim()
            )));
        }
        let mut field = VectorField::zeros(&grid);
        for (a, c) in components.iter().enumerate() {
            let last = field.data.ndim() - 1;
            field.data.index_axis_mut(NdAxis(last), a).assign(c.data());
        }
        Ok(field)
    }

    /// The grid the field lives on.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// Values, C order `[z][y][x][component]`.
    pub fn data(&self) -> &ArrayD<f64> {
        &self.data
    }

    /// Mutable values: a view, so the grid's shape cannot change.
    pub fn data_mut(&mut self) -> ArrayViewMutD<'_, f64> {
        self.data.view_mut()
    }

    /// Mutable values as one contiguous slice, C order, components fastest.
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        self.data.as_slice_mut().expect("fields are contiguous in C order")
    }

    /// Component `a` (0 = x) as a view with the grid's storage shape.
    pub fn component(&self, a: usize) -> ArrayViewD<'_, f64> {
        self.data.index_axis(NdAxis(self.data.ndim() - 1), a)
    }

    /// Euclidean norm per cell.
    pub fn magnitude(&self) -> ScalarField {
        let mut out = ScalarField::zeros(&self.grid);
        let last = self.data.ndim() - 1;
        Zip::from(out.data_mut()).and(self.data.lanes(NdAxis(last))).par_for_each(|m, v| {
            *m = v.iter().map(|c| c * c).sum::<f64>().sqrt();
        });
        out
    }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// A pointer into one buffer shared by parallel tasks that each write a disjoint set of its
/// elements (where the disjoint pieces are not contiguous chunks that `par_chunks_mut` could
/// hand out: columns of a matrix, strided lanes of an axis).
#[derive(Clone, Copy)]
pub(crate) struct DisjointWrites(*mut f64);

// SAFETY: the wrapper only carries the address. Every user guarantees that concurrent tasks
// write disjoint elements, read nothing another task writes, and finish before the buffer
// is used again (rayon's scoped iterators do), so no data race can occur.
unsafe impl Send for DisjointWrites {}
unsafe impl Sync for DisjointWrites {}

impl DisjointWrites {
    /// Shares `buffer` (which must outlive the tasks).
    pub(crate) fn new(buffer: &mut [f64]) -> DisjointWrites {
        DisjointWrites(buffer.as_mut_ptr())
    }

    /// The address of element `offset` (a method, so closures capture the `Sync` wrapper).
    ///
    /// # Safety
    /// `offset` must lie within the shared buffer (an in-bounds offset, as `pointer::add`).
    #[inline]
    pub(crate) unsafe fn at(self, offset: usize) -> *mut f64 {
        // SAFETY: the caller keeps `offset` inside the buffer.
        unsafe { self.0.add(offset) }
    }
}

/// A term `l ↦ value` over this process's cells, for sums over the whole grid in one fixed
/// order ([`ordered_sum`] on one process, `distributed::slab_sum` on the ranks of a grid).
pub(crate) type Term<'a> = dyn Fn(usize) -> f64 + Sync + 'a;

/// `Σ_k part(chunk_k)` over `0..n` cut into fixed chunks of [`SUM_CHUNK`], summed in parallel and
/// added in chunk order: the same floating-point result whatever the thread scheduling (a
/// rayon `sum` adds in the order of its work-stealing splits, which varies from run to run).
pub fn ordered_sum<F>(n: usize, part: F) -> f64
where
    F: Fn(std::ops::Range<usize>) -> f64 + Sync,
{
    let parts: Vec<f64> = (0..n.div_ceil(SUM_CHUNK))
        .into_par_iter()
        .map(|k| part(k * SUM_CHUNK..((k + 1) * SUM_CHUNK).min(n)))
        .collect();
    parts.iter().sum()
}

/// The chunk length of [`ordered_sum`]: a pass that writes a vector in chunks of this length
/// and sums each chunk in order adds like `ordered_sum` (same result to the bit).
pub const SUM_CHUNK: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::BoundaryKind;

    #[test]
    fn from_fn_uses_c_order_with_x_fastest() {
        let g =
            Grid::uniform(&[4, 3, 2], &[0.0; 3], &[4.0, 3.0, 2.0], BoundaryKind::Neumann).unwrap();
        let f = ScalarField::from_fn(&g, |p| p[0] + 10.0 * p[1] + 100.0 * p[2]);
        assert_eq!(f.data().shape(), &[2, 3, 4]);
        assert_eq!(f.data()[[0, 0, 1]] - f.data()[[0, 0, 0]], 1.0);
        assert_eq!(f.data()[[0, 1, 0]] - f.data()[[0, 0, 0]], 10.0);
        assert_eq!(f.data()[[1, 0, 0]] - f.data()[[0, 0, 0]], 100.0);
        assert_eq!(f.as_slice_first_values(), vec![55.5, 56.5]);
        let v = VectorField::from_fn(&g, |p, out| out.copy_from_slice(p));
        assert_eq!(v.data().shape(), &[2, 3, 4, 3]);
        assert_eq!(v.component(0)[[1, 2, 3]], 3.5);
        assert_eq!(v.component(1)[[1, 2, 3]], 2.5);
        assert_eq!(v.component(2)[[1, 2, 3]], 1.5);
        let m = v.magnitude();
        assert!((m.data()[[0, 0, 0]] - (0.75f64).sqrt()).abs() < 1e-15);
    }

    impl ScalarField {
        fn as_slice_first_values(&self) -> Vec<f64> {
            self.data.as_slice().unwrap()[..2].to_vec()
        }
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let g = Grid::unit(2, 8, BoundaryKind::Neumann).unwrap();
        let e = ScalarField::new(g.clone(), ArrayD::zeros(IxDyn(&[8, 9]))).unwrap_err();
        assert!(e.to_string().contains("[8, 9]"));
        assert!(VectorField::new(g.clone(), ArrayD::zeros(IxDyn(&[8, 8, 3]))).is_err());
        assert!(VectorField::new(g, ArrayD::zeros(IxDyn(&[8, 8, 2]))).is_ok());
    }

    /// The midpoint rule behind `integral` (and `otgrid info`'s mass) is second order:
    /// measured on ∫ exp(x) sin(πy) cos(z) over [0,1]×[0,1]×[0,2] on three grids.
    #[test]
    fn integral_is_second_order() {
        let exact = (1f64.exp() - 1.0) * (2.0 / std::f64::consts::PI) * 2f64.sin();
        let errors: Vec<f64> = [8, 16, 32]
            .iter()
            .map(|&n| {
                let g = Grid::uniform(
                    &[n, n, 2 * n],
                    &[0.0; 3],
                    &[1.0, 1.0, 2.0],
                    BoundaryKind::Neumann,
                )
                .unwrap();
                let f = ScalarField::from_fn(&g, |p| {
                    p[0].exp() * (std::f64::consts::PI * p[1]).sin() * p[2].cos()
                });
                (f.integral() - exact).abs()
            })
            .collect();
        for w in errors.windows(2) {
            let order = (w[0] / w[1]).log2();
            assert!(order > 1.95 && order < 2.05, "observed order {order}, errors {errors:?}");
        }
    }

    #[test]
    fn densities() {
        let g = Grid::unit(2, 8, BoundaryKind::Neumann).unwrap();
        let (rho, mass) = ScalarField::from_fn(&g, |p| 2.0 * p[0]).to_density().unwrap();
        assert!((mass - 1.0).abs() < 1e-14 && (rho.integral() - 1.0).abs() < 1e-14);
        let e = ScalarField::from_fn(&g, |p| p[0] - 0.5).to_density().unwrap_err();
        assert!(e.to_string().contains("negative values"));
        assert!(ScalarField::zeros(&g).to_density().unwrap_err().to_string().contains("zero"));
        let tiny_negative = ScalarField::from_fn(&g, |p| if p[0] < 0.1 { -1e-14 } else { 1.0 });
        assert!(tiny_negative.to_density().unwrap().0.min() >= 0.0);
    }

    #[test]
    fn min_max_propagate_nan() {
        let g = Grid::unit(2, 4, BoundaryKind::Neumann).unwrap();
        let mut f = ScalarField::from_fn(&g, |p| p[0]);
        assert_eq!(f.min(), 0.125);
        assert_eq!(f.max(), 0.875);
        assert!(f.first_non_finite().is_none());
        f.data_mut()[[1, 2]] = f64::NAN;
        assert!(f.min().is_nan() && f.max().is_nan());
        assert_eq!(f.first_non_finite(), Some(vec![1, 2]));
    }
}
