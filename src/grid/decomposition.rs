//! Slab decomposition of a grid over P ranks: the ownership and index maps a distributed run
//! is built on (issue #23; the transport itself is not here).
//!
//! The slab axis is the slowest-varying axis of the C-order `[z][y][x]` storage (z in 3D, y in
//! 2D), so each rank's block is one contiguous run of the global array. Its n planes are split
//! as evenly as possible: rank r owns `n/P + 1` planes if `r < n mod P`, else `n/P`, in rank
//! order. More ranks than planes is refused (a rank would own nothing).

use super::{Axis, Grid};
use crate::error::{Error, Result};
use std::ops::Range;

/// The box of a grid that one rank holds, in the grid's outermost storage axes: planes of the
/// outermost (z in 3D, y in 2D) and, on y–z pencils, rows of the next (y in 3D; `None`: every
/// row). Its values are in C order, x fastest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Planes of the outermost storage axis.
    pub planes: Range<usize>,
    /// Rows of the next storage axis (3D only); `None`: all of them.
    pub rows: Option<Range<usize>>,
}

impl Window {
    /// Whole planes: a slab.
    pub fn planes(planes: Range<usize>) -> Window {
        Window { planes, rows: None }
    }

    /// The lines (runs of the innermost axis) of the window on `grid`, in storage order, as
    /// their first global flat index; and the line length.
    pub fn lines(&self, grid: &Grid) -> (Vec<usize>, usize) {
        let shape = grid.storage_shape();
        let width = shape[shape.len() - 1];
        let starts = if shape.len() == 3 {
            let ny = shape[1];
            let rows = self.rows.clone().unwrap_or(0..ny);
            self.planes
                .clone()
                .flat_map(|z| rows.clone().map(move |y| (z * ny + y) * width))
                .collect()
        } else {
            self.planes.clone().map(|y| y * width).collect()
        };
        (starts, width)
    }

    /// The window's values of `whole`, a C-order array of the whole `grid`.
    pub fn cut(&self, grid: &Grid, whole: &[f64]) -> Vec<f64> {
        let (starts, width) = self.lines(grid);
        starts.iter().flat_map(|&s| whole[s..s + width].iter().copied()).collect()
    }
}

/// Which planes of the slab axis each rank owns.
#[derive(Clone, Debug, PartialEq)]
pub struct SlabDecomposition {
    grid: Grid,
    ranks: usize,
    /// `starts[r]..starts[r + 1]` are rank r's planes.
    starts: Vec<usize>,
}

impl SlabDecomposition {
    /// Splits `grid` over `ranks` ranks along its slowest axis.
    pub fn new(grid: &Grid, ranks: usize) -> Result<SlabDecomposition> {
        let planes = grid.axis(grid.dim() - 1).cells;
        if ranks == 0 {
            return Err(Error::invalid("a decomposition needs at least one rank"));
        }
        if ranks > planes {
            return Err(Error::invalid(format!(
                "{ranks} ranks for {planes} planes along axis {}: every rank needs a plane \
                 (use at most {planes} ranks)",
                ["x", "y", "z"][grid.dim() - 1]
            )));
        }
        let (base, extra) = (planes / ranks, planes % ranks);
        let mut starts = Vec::with_capacity(ranks + 1);
        let mut start = 0;
        for r in 0..ranks {
            starts.push(start);
            start += base + usize::from(r < extra);
        }
        starts.push(start);
        Ok(SlabDecomposition { grid: grid.clone(), ranks, starts })
    }

    /// The number of ranks.
    pub fn ranks(&self) -> usize {
        self.ranks
    }

    /// The decomposed grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The planes of the slab axis that `rank` owns.
    pub fn planes(&self, rank: usize) -> Range<usize> {
        self.starts[rank]..self.starts[rank + 1]
    }

    /// `rank`'s planes as a [`Window`].
    pub fn window(&self, rank: usize) -> Window {
        Window::planes(self.planes(rank))
    }

    /// The rank that owns `plane`.
    pub fn owner(&self, plane: usize) -> usize {
        // The last start at or below the plane.
        self.starts[1..].partition_point(|&s| s <= plane)
    }

    /// Cells per plane (the product of the other axes' counts).
    pub fn plane_cells(&self) -> usize {
        let d = self.grid.dim();
        (0..d - 1).map(|a| self.grid.axis(a).cells).product()
    }

    /// The flat C-order indices of the global array that `rank` owns (one contiguous run).
    pub fn cells(&self, rank: usize) -> Range<usize> {
        let planes = self.planes(rank);
        planes.start * self.plane_cells()..planes.end * self.plane_cells()
    }

    /// `rank`'s block as a grid: the global grid's axes, the slab axis cut to the owned
    /// planes' faces (its boundary kind is the global one; which faces are interior is
    /// [`Self::planes`]' business).
    pub fn local_grid(&self, rank: usize) -> Result<Grid> {
        let d = self.grid.dim();
        let planes = self.planes(rank);
        let mut axes: Vec<Axis> = self.grid.axes().to_vec();
        let slab = &mut axes[d - 1];
        let h = slab.spacing();
        let lower = slab.lower;
        slab.cells = planes.len();
        slab.lower = lower + planes.start as f64 * h;
        slab.upper = lower + planes.end as f64 * h;
        Grid::new(axes)
    }

    /// The global flat index of `rank`'s local flat index `local`.
    pub fn to_global(&self, rank: usize, local: usize) -> usize {
        self.cells(rank).start + local
    }

    /// `(rank, local flat index)` of the global flat index `global`.
    pub fn to_local(&self, global: usize) -> (usize, usize) {
        let rank = self.owner(global / self.plane_cells());
        (rank, global - self.cells(rank).start)
    }
}

/// A y–z pencil decomposition of a 3D grid over `py × pz` ranks, for rank counts beyond the
/// z planes a slab decomposition needs: rank `r = iz·py + iy` owns the cells with y in
/// [`Self::rows`] and z in [`Self::planes`] — whole lines along x, `[z_local][y_local][x]` in
/// C order. Rows and planes are split as [`SlabDecomposition`] splits planes (the first
/// `n mod p` parts one longer). `py = 1` is the slab decomposition.
#[derive(Clone, Debug, PartialEq)]
pub struct PencilDecomposition {
    grid: Grid,
    py: usize,
    pz: usize,
    rows: Vec<Range<usize>>,
    planes: Vec<Range<usize>>,
}

impl PencilDecomposition {
    /// Splits the 3D `grid` over `ranks` ranks: slabs (`py = 1`) while there are at least as
    /// many z planes as ranks, else `pz` the largest divisor of `ranks` not above the planes
    /// and `py = ranks / pz`. Refused: a 2D grid, zero ranks, a rank count with no such
    /// divisor whose `py` fits the y rows.
    pub fn new(grid: &Grid, ranks: usize) -> Result<PencilDecomposition> {
        if grid.dim() != 3 {
            return Err(Error::invalid("a pencil decomposition needs a 3D grid"));
        }
        if ranks == 0 {
            return Err(Error::invalid("a decomposition needs at least one rank"));
        }
        let (ny, nz) = (grid.axis(1).cells, grid.axis(2).cells);
        let pz = (1..=ranks.min(nz)).rev().find(|p| ranks % p == 0).unwrap_or(1);
        let py = ranks / pz;
        if py > ny {
            return Err(Error::invalid(format!(
                "{ranks} ranks do not split into y–z pencils of {ny} rows by {nz} planes (no \
                 divisor pz ≤ {nz} of {ranks} leaves py = {ranks}/pz ≤ {ny}): use at most \
                 {} ranks, or a count with such a divisor",
                ny * nz
            )));
        }
        PencilDecomposition::with_shape(grid, py, pz)
    }

    /// Splits the 3D `grid` over `py` parts along y and `pz` along z. Refused: a 2D grid, a
    /// zero part count, more parts than rows or planes.
    pub fn with_shape(grid: &Grid, py: usize, pz: usize) -> Result<PencilDecomposition> {
        if grid.dim() != 3 {
            return Err(Error::invalid("a pencil decomposition needs a 3D grid"));
        }
        let (ny, nz) = (grid.axis(1).cells, grid.axis(2).cells);
        if py == 0 || pz == 0 || py > ny || pz > nz {
            return Err(Error::invalid(format!(
                "{py} × {pz} pencils for {ny} rows along y by {nz} planes along z: every rank \
                 needs a row and a plane"
            )));
        }
        Ok(PencilDecomposition {
            grid: grid.clone(),
            py,
            pz,
            rows: balanced(ny, py),
            planes: balanced(nz, pz),
        })
    }

    /// The decomposed grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The number of ranks, `py · pz`.
    pub fn ranks(&self) -> usize {
        self.py * self.pz
    }

    /// The process grid `(py, pz)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.py, self.pz)
    }

    /// `rank`'s place `(iy, iz)` in the process grid.
    pub fn coordinates(&self, rank: usize) -> (usize, usize) {
        (rank % self.py, rank / self.py)
    }

    /// The rank at `(iy, iz)` of the process grid.
    pub fn rank_at(&self, iy: usize, iz: usize) -> usize {
        iz * self.py + iy
    }

    /// The y rows `rank` owns.
    pub fn rows(&self, rank: usize) -> Range<usize> {
        self.rows[rank % self.py].clone()
    }

    /// The z planes `rank` owns.
    pub fn planes(&self, rank: usize) -> Range<usize> {
        self.planes[rank / self.py].clone()
    }

    /// The number of cells `rank` owns.
    pub fn len(&self, rank: usize) -> usize {
        self.grid.axis(0).cells * self.rows(rank).len() * self.planes(rank).len()
    }

    /// Whether `rank` owns no cells (never, for a valid decomposition).
    pub fn is_empty(&self, rank: usize) -> bool {
        self.len(rank) == 0
    }

    /// `rank`'s block as a [`Window`]: its planes and rows.
    pub fn window(&self, rank: usize) -> Window {
        Window { planes: self.planes(rank), rows: Some(self.rows(rank)) }
    }

    /// The global flat C-order index of `rank`'s local flat index `local`.
    pub fn to_global(&self, rank: usize, local: usize) -> usize {
        let (nx, ny) = (self.grid.axis(0).cells, self.grid.axis(1).cells);
        let (rows, planes) = (self.rows(rank), self.planes(rank));
        let (x, line) = (local % nx, local / nx);
        let (y, z) = (rows.start + line % rows.len(), planes.start + line / rows.len());
        (z * ny + y) * nx + x
    }

    /// `(rank, local flat index)` of the global flat index `global`.
    pub fn to_local(&self, global: usize) -> (usize, usize) {
        let (nx, ny) = (self.grid.axis(0).cells, self.grid.axis(1).cells);
        let (x, y, z) = (global % nx, (global / nx) % ny, global / (nx * ny));
        let iy = self.rows[1..].partition_point(|r| r.start <= y);
        let iz = self.planes[1..].partition_point(|r| r.start <= z);
        let rank = self.rank_at(iy, iz);
        let (rows, planes) = (self.rows(rank), self.planes(rank));
        let local = ((z - planes.start) * rows.len() + (y - rows.start)) * nx + x;
        (rank, local)
    }

    /// `rank`'s block as a grid: the global grid's axes, y and z cut to the owned rows' and
    /// planes' faces (their boundary kinds the global ones).
    pub fn local_grid(&self, rank: usize) -> Result<Grid> {
        let mut axes: Vec<Axis> = self.grid.axes().to_vec();
        for (a, cells) in [(1, self.rows(rank)), (2, self.planes(rank))] {
            let axis = &mut axes[a];
            let (h, lower) = (axis.spacing(), axis.lower);
            axis.cells = cells.len();
            axis.lower = lower + cells.start as f64 * h;
            axis.upper = lower + cells.end as f64 * h;
        }
        Grid::new(axes)
    }

    /// `rank`'s block of the global C-order array `global`, `[z_local][y_local][x]`.
    pub fn block(&self, rank: usize, global: &[f64]) -> Vec<f64> {
        let (nx, ny) = (self.grid.axis(0).cells, self.grid.axis(1).cells);
        let rows = self.rows(rank);
        self.planes(rank)
            .flat_map(|z| {
                let start = (z * ny + rows.start) * nx;
                global[start..start + rows.len() * nx].iter().copied()
            })
            .collect()
    }
}

/// The balanced split of `n` items over `parts` parts: part r gets `n/parts + 1` items if
/// `r < n mod parts`, else `n/parts`.
pub(crate) fn balanced(n: usize, parts: usize) -> Vec<Range<usize>> {
    let (base, extra) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|r| {
            let len = base + usize::from(r < extra);
            start += len;
            start - len..start
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::BoundaryKind;

    /// Every plane has exactly one owner; block sizes differ by at most one plane and come in
    /// rank order; the cell runs tile the global array; local grids have the owned planes'
    /// extent and centres; index maps are inverse; too many ranks and zero ranks are refused.
    #[test]
    fn slabs_tile_the_grid() {
        for (shape, ranks) in [(vec![8, 6, 13], 4), (vec![5, 7, 7], 7), (vec![9, 10], 3)] {
            let d = shape.len();
            let lower = vec![0.0; d];
            let upper: Vec<f64> = (0..d).map(|a| 1.0 + a as f64).collect();
            let grid = Grid::uniform(&shape, &lower, &upper, BoundaryKind::Neumann).unwrap();
            let slab = SlabDecomposition::new(&grid, ranks).unwrap();
            let planes = shape[d - 1];
            let sizes: Vec<usize> = (0..ranks).map(|r| slab.planes(r).len()).collect();
            assert_eq!(sizes.iter().sum::<usize>(), planes);
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            for p in 0..planes {
                let r = slab.owner(p);
                assert!(slab.planes(r).contains(&p), "plane {p}");
            }
            let mut next = 0;
            for r in 0..ranks {
                let cells = slab.cells(r);
                assert_eq!(cells.start, next);
                next = cells.end;
                let local = slab.local_grid(r).unwrap();
                assert_eq!(local.num_cells(), cells.len());
                // The local centres are the global ones of the owned planes.
                let a = d - 1;
                let first = slab.planes(r).start;
                assert!((local.axis(a).center(0) - grid.axis(a).center(first)).abs() < 1e-12);
                for local_index in [0, cells.len() / 2, cells.len() - 1] {
                    let g = slab.to_global(r, local_index);
                    assert_eq!(slab.to_local(g), (r, local_index));
                }
            }
            assert_eq!(next, grid.num_cells());
        }
        let grid = Grid::unit(3, 4, BoundaryKind::Periodic).unwrap();
        let e = SlabDecomposition::new(&grid, 5).unwrap_err().to_string();
        assert!(e.contains("5 ranks for 4 planes along axis z"), "{e}");
        assert!(SlabDecomposition::new(&grid, 0).is_err());
    }
}
