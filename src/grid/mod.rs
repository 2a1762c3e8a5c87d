//! Cell-centred regular grids on boxes in 2D and 3D.
//!
//! Axis `a` of a grid covers `[lower_a, upper_a]` with `n_a` cells of width
//! `h_a = (upper_a − lower_a) / n_a`; unknowns live at the cell centres
//! `x_i = lower_a + (i + ½) h_a`, `i = 0 … n_a − 1`. Each axis carries the boundary kind
//! that the solvers apply on its two faces.
//!
//! Axis order: everything user-facing (shapes, corners, spacing, points) is in **x, y, z**
//! order. Field storage is C-order **`[z][y][x]`** (x fastest), the layout ParaView's XDMF
//! readers expect; [`Grid::storage_shape`] gives it.

pub mod decomposition;
mod spec;

pub use decomposition::{PencilDecomposition, SlabDecomposition, Window};
pub use spec::{builtin_mesh_names, GridSpec};

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Boundary kind applied on both faces of one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoundaryKind {
    /// The axis wraps around: cell `n−1` neighbours cell `0`.
    Periodic,
    /// Zero normal derivative (no flux) on the faces; also the "box" second boundary condition of OT.
    Neumann,
    /// Prescribed value on the faces (zero unless a solver says otherwise).
    Dirichlet,
}

impl BoundaryKind {
    /// All kinds, in the order they are documented.
    pub const ALL: [BoundaryKind; 3] =
        [BoundaryKind::Periodic, BoundaryKind::Neumann, BoundaryKind::Dirichlet];

    /// Lower-case name as written in TOML, HDF5 and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BoundaryKind::Periodic => "periodic",
            BoundaryKind::Neumann => "neumann",
            BoundaryKind::Dirichlet => "dirichlet",
        }
    }

    /// Whether the axis wraps around (a torus direction). Matched exhaustively here, and
    /// code asks this instead of comparing kinds, so a new kind must decide.
    #[inline]
    pub fn is_periodic(self) -> bool {
        match self {
            BoundaryKind::Periodic => true,
            BoundaryKind::Neumann | BoundaryKind::Dirichlet => false,
        }
    }

    /// Whether the faces prescribe the value (which anchors an elliptic operator and rules
    /// out optimal transport, which needs a box or a torus).
    #[inline]
    pub fn prescribes_value(self) -> bool {
        match self {
            BoundaryKind::Dirichlet => true,
            BoundaryKind::Periodic | BoundaryKind::Neumann => false,
        }
    }
}

impl fmt::Display for BoundaryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BoundaryKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        BoundaryKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            Error::invalid(format!(
                "unknown boundary kind '{s}' (expected periodic, neumann or dirichlet)"
            ))
        })
    }
}

/// One axis of a grid: cell count, extent and boundary kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// Number of cells along the axis.
    pub cells: usize,
    /// Lower face coordinate.
    pub lower: f64,
    /// Upper face coordinate.
    pub upper: f64,
    /// Boundary kind on both faces.
    pub boundary: BoundaryKind,
}

impl Axis {
    /// Cell width `h = (upper − lower) / cells`.
    pub fn spacing(&self) -> f64 {
        (self.upper - self.lower) / self.cells as f64
    }

    /// Cell-centre coordinate `lower + (i + ½) h`.
    pub fn center(&self, i: usize) -> f64 {
        self.lower + (i as f64 + 0.5) * self.spacing()
    }

    /// Length of the axis.
    pub fn length(&self) -> f64 {
        self.upper - self.lower
    }
}

/// Largest number of cells a grid may have (2³³ ≈ 8.6e9); one f64 field of this size is 64 GiB.
pub const MAX_CELLS: usize = 1 << 33;

/// A cell-centred regular grid in 2 or 3 dimensions. Axes are stored in x, y, z order.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    axes: Vec<Axis>,
}

impl Grid {
    /// Builds a grid from its axes (x first), validating dimension, counts and extents.
    pub fn new(axes: Vec<Axis>) -> Result<Grid> {
        if !(2..=3).contains(&axes.len()) {
            return Err(Error::invalid(format!("grids must be 2D or 3D, got {} axes", axes.len())));
        }
        let mut cells: usize = 1;
        for (a, axis) in axes.iter().enumerate() {
            let name = AXIS_NAMES[a];
            if axis.cells == 0 {
                return Err(Error::invalid(format!("axis {name} has zero cells")));
            }
            if !axis.lower.is_finite() || !axis.upper.is_finite() {
                return Err(Error::invalid(format!(
                    "axis {name} has a non-finite extent [{}, {}]",
                    axis.lower, axis.upper
                )));
            }
            let h = axis.spacing();
            if h.is_nan() || h <= 0.0 || h.is_infinite() {
                return Err(Error::invalid(format!(
                    "axis {name} has zero or negative spacing (lower {} must be below upper {})",
                    axis.lower, axis.upper
                )));
            }
            cells = cells.checked_mul(axis.cells).filter(|&c| c <= MAX_CELLS).ok_or_else(|| {
                Error::invalid(format!(
                    "grid {} has too many cells (limit {MAX_CELLS})",
                    axes.iter().map(|a| a.cells.to_string()).collect::<Vec<_>>().join("x")
                ))
            })?;
        }
        Ok(Grid { axes })
    }

    /// A grid with the same boundary kind on every axis. `shape`, `lower`, `upper` are in x, y, z order.
    pub fn uniform(
        shape: &[usize],
        lower: &[f64],
        upper: &[f64],
        boundary: BoundaryKind,
    ) -> Result<Grid> {
        if shape.len() != lower.len() || shape.len() != upper.len() {
            return Err(Error::invalid(format!(
                "shape has {} axes but the domain has {} lower and {} upper bounds",
                shape.len(),
                lower.len(),
                upper.len()
            )));
        }
        Grid::new(
            (0..shape.len())
                .map(|a| Axis { cells: shape[a], lower: lower[a], upper: upper[a], boundary })
                .collect(),
        )
    }

    /// The unit square or cube `[0,1]^d` with `n` cells per axis.
    pub fn unit(dim: usize, n: usize, boundary: BoundaryKind) -> Result<Grid> {
        Grid::uniform(&vec![n; dim], &vec![0.0; dim], &vec![1.0; dim], boundary)
    }

    /// Number of axes (2 or 3).
    pub fn dim(&self) -> usize {
        self.axes.len()
    }

    /// The axes, x first.
    pub fn axes(&self) -> &[Axis] {
        &self.axes
    }

    /// Axis `a` (0 = x, 1 = y, 2 = z).
    pub fn axis(&self, a: usize) -> &Axis {
        &self.axes[a]
    }

    /// Cells per axis, x first.
    pub fn shape(&self) -> Vec<usize> {
        self.axes.iter().map(|a| a.cells).collect()
    }

    /// Shape of a scalar field's storage array: C-order `[nz, ny, nx]` (3D) or `[ny, nx]` (2D).
    pub fn storage_shape(&self) -> Vec<usize> {
        self.axes.iter().rev().map(|a| a.cells).collect()
    }

    /// Lower corner, x first.
    pub fn lower(&self) -> Vec<f64> {
        self.axes.iter().map(|a| a.lower).collect()
    }

    /// Upper corner, x first.
    pub fn upper(&self) -> Vec<f64> {
        self.axes.iter().map(|a| a.upper).collect()
    }

    /// Cell widths, x first.
    pub fn spacing(&self) -> Vec<f64> {
        self.axes.iter().map(Axis::spacing).collect()
    }

    /// The widest cell width over the axes.
    pub fn max_spacing(&self) -> f64 {
        self.axes.iter().map(Axis::spacing).fold(0.0, f64::max)
    }

    /// Boundary kinds, x first.
    pub fn boundaries(&self) -> Vec<BoundaryKind> {
        self.axes.iter().map(|a| a.boundary).collect()
    }

    /// Total number of cells.
    pub fn num_cells(&self) -> usize {
        self.axes.iter().map(|a| a.cells).product()
    }

    /// Volume (area in 2D) of one cell.
    pub fn cell_volume(&self) -> f64 {
        self.axes.iter().map(Axis::spacing).product()
    }

    /// Volume (area in 2D) of the whole box.
    pub fn volume(&self) -> f64 {
        self.axes.iter().map(Axis::length).product()
    }

    /// Writes the centre of the cell at C-order storage index `index` (`[k, j, i]` or `[j, i]`)
    /// into `point`, in x, y, z order.
    pub fn cell_center(&self, index: &[usize], point: &mut [f64]) {
        let d = self.dim();
        for a in 0..d {
            point[a] = self.axes[a].center(index[d - 1 - a]);
        }
    }

    /// Same grid with a different boundary kind on every axis.
    pub fn with_boundary(&self, boundary: BoundaryKind) -> Grid {
        let mut g = self.clone();
        for a in &mut g.axes {
            a.boundary = boundary;
        }
        g
    }

    /// Memory in bytes of one f64 scalar field on this grid.
    pub fn scalar_bytes(&self) -> usize {
        self.num_cells() * std::mem::size_of::<f64>()
    }
}

impl serde::Serialize for Grid {
    /// `{dim, shape, lower, upper, spacing, boundary, description}`, lists in x, y, z order.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut g = s.serialize_struct("Grid", 7)?;
        g.serialize_field("dim", &self.dim())?;
        g.serialize_field("shape", &self.shape())?;
        g.serialize_field("lower", &self.lower())?;
        g.serialize_field("upper", &self.upper())?;
        g.serialize_field("spacing", &self.spacing())?;
        g.serialize_field(
            "boundary",
            &self.axes.iter().map(|a| a.boundary.name()).collect::<Vec<_>>(),
        )?;
        g.serialize_field("description", &self.to_string())?;
        g.end()
    }
}

/// Writes into `index` the C-order multi-index (slowest axis first) of element `flat` of an
/// array of shape `shape`; `index[..skip]` is left as it is (callers that iterate the
/// slowest axes themselves pass the remaining offset and `skip`).
#[inline]
pub fn unflatten(mut flat: usize, shape: &[usize], index: &mut [usize], skip: usize) {
    for a in (skip..shape.len()).rev() {
        index[a] = flat % shape[a];
        flat /= shape[a];
    }
}

/// Names of the axes in x, y, z order.
pub const AXIS_NAMES: [&str; 3] = ["x", "y", "z"];

impl fmt::Display for Grid {
    /// `2D 256x256 cells on [0, 1] x [0, 1], boundary neumann/neumann`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape: Vec<String> = self.axes.iter().map(|a| a.cells.to_string()).collect();
        let domain: Vec<String> =
            self.axes.iter().map(|a| format!("[{}, {}]", a.lower, a.upper)).collect();
        let bc: Vec<&str> = self.axes.iter().map(|a| a.boundary.name()).collect();
        write!(
            f,
            "{}D {} cells on {}, boundary {}",
            self.dim(),
            shape.join("x"),
            domain.join(" x "),
            bc.join("/")
        )
    }
}

/// The cell centres of `cells` (global flat indices of `grid`), d per cell, x first.
pub(crate) fn cell_centres<I>(grid: &Grid, cells: I) -> Vec<f64>
where
    I: rayon::iter::IntoParallelIterator<Item = usize>,
    I::Iter: rayon::iter::IndexedParallelIterator,
{
    use rayon::prelude::*;
    let cells = cells.into_par_iter();
    let d = grid.dim();
    let shape = grid.storage_shape();
    let mut out = vec![0.0; cells.len() * d];
    out.par_chunks_mut(d).zip(cells.into_par_iter()).for_each(|(point, flat)| {
        let mut index = [0usize; 3];
        unflatten(flat, &shape, &mut index[..d], 0);
        let mut centre = [0.0; 3];
        grid.cell_center(&index[..d], &mut centre);
        point.copy_from_slice(&centre[..d]);
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centres_spacing_and_storage_order() {
        let g =
            Grid::uniform(&[4, 2, 8], &[0.0, -1.0, 0.0], &[1.0, 1.0, 2.0], BoundaryKind::Neumann)
                .unwrap();
        assert_eq!(g.shape(), vec![4, 2, 8]);
        assert_eq!(g.storage_shape(), vec![8, 2, 4]);
        assert_eq!(g.spacing(), vec![0.25, 1.0, 0.25]);
        assert_eq!(g.num_cells(), 64);
        assert!((g.cell_volume() * g.num_cells() as f64 - g.volume()).abs() < 1e-15);
        let mut p = [0.0; 3];
        g.cell_center(&[7, 1, 0], &mut p);
        assert_eq!(p, [0.125, 0.5, 1.875]);
    }

    #[test]
    fn rejects_bad_axes() {
        let bad = |shape: &[usize], lo: &[f64], hi: &[f64]| {
            Grid::uniform(shape, lo, hi, BoundaryKind::Periodic).unwrap_err().to_string()
        };
        assert!(bad(&[0, 4], &[0.0, 0.0], &[1.0, 1.0]).contains("zero cells"));
        assert!(bad(&[4, 4], &[0.0, 1.0], &[1.0, 1.0]).contains("zero or negative spacing"));
        assert!(bad(&[4, 4], &[0.0, 2.0], &[1.0, 1.0]).contains("zero or negative spacing"));
        assert!(bad(&[4, 4], &[0.0, f64::NAN], &[1.0, 1.0]).contains("non-finite"));
        assert!(bad(&[4], &[0.0], &[1.0]).contains("2D or 3D"));
        assert!(bad(&[4, 4], &[0.0], &[1.0, 1.0]).contains("bounds"));
        assert!(bad(&[1 << 12, 1 << 12, 1 << 12], &[0.0; 3], &[1.0; 3]).contains("too many cells"));
    }

    #[test]
    fn boundary_names_round_trip() {
        for k in BoundaryKind::ALL {
            assert_eq!(k.name().parse::<BoundaryKind>().unwrap(), k);
        }
        assert!("robin".parse::<BoundaryKind>().is_err());
    }
}
