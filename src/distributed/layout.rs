//! Boxes of a 3D array spread over the ranks, and the one all-to-all that moves data from
//! one spread to another (the PencilArrays / 2decomp&FFT transpose, in general form).
//!
//! A [`Spread`] gives every rank one box — a range of cells per axis — stored in an order of
//! its own (e.g. `[z][y][x]` for a pencil block, `[z][x][y]` for whole y lines). Moving data
//! between two spreads of the same array ([`Spread::redistribute`]) sends each rank the
//! intersection of its new box with every old one, walked in the new box's storage order on
//! both sides, so packing and unpacking agree without indices on the wire. Any operation
//! along one axis (a line transform, a resampling, a 1D stencil) runs as the serial one on a
//! spread whose boxes hold that axis whole.

use super::balanced;
use super::exchange::Exchange;
use crate::error::{Error, Result};
use crate::grid::PencilDecomposition;
use std::ops::Range;

/// One rank's box: `ranges[a]` the cells along grid axis a (x = 0); `order` the grid axes
/// from the slowest- to the fastest-varying in its storage.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Block {
    pub ranges: [Range<usize>; 3],
    pub order: [usize; 3],
}

impl Block {
    /// The number of cells in the box.
    pub fn len(&self) -> usize {
        self.ranges.iter().map(Range::len).product()
    }

    /// The box's storage shape, slowest first.
    pub fn shape(&self) -> [usize; 3] {
        self.order.map(|a| self.ranges[a].len())
    }

    /// The storage axis (0 slowest) of grid axis `axis`.
    pub fn storage_axis(&self, axis: usize) -> usize {
        self.order.iter().position(|&a| a == axis).expect("an axis of the box")
    }

    /// The intersection with `other`'s ranges (in `self`'s order), or `None` if empty.
    fn meet(&self, other: &Block) -> Option<[Range<usize>; 3]> {
        let r: [Range<usize>; 3] = std::array::from_fn(|a| {
            self.ranges[a].start.max(other.ranges[a].start)
                ..self.ranges[a].end.min(other.ranges[a].end)
        });
        r.iter().all(|r| r.start < r.end).then_some(r)
    }

    /// Calls `f(offset in self's storage)` for every cell of `cells` (a sub-box), walking
    /// them in `walk`'s storage order.
    fn walk(&self, cells: &[Range<usize>; 3], walk: [usize; 3], mut f: impl FnMut(usize)) {
        let stride = |a: usize| -> usize {
            let k = self.storage_axis(a);
            self.order[k + 1..].iter().map(|&b| self.ranges[b].len()).product()
        };
        let [s0, s1, s2] = walk.map(stride);
        let [a0, a1, a2] = walk;
        let local = |a: usize, i: usize| i - self.ranges[a].start;
        for i in cells[a0].clone() {
            for j in cells[a1].clone() {
                let base = local(a0, i) * s0 + local(a1, j) * s1;
                for k in cells[a2].clone() {
                    f(base + local(a2, k) * s2);
                }
            }
        }
    }
}

/// Every rank's box of one array, in rank order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Spread(pub Vec<Block>);

impl Spread {
    /// `data` (this rank's box of `self`) moved to this rank's box of `to`: one `Alltoallv`.
    /// Both spreads cover the same array.
    pub fn redistribute(&self, exchange: &impl Exchange, to: &Spread, data: &[f64]) -> Vec<f64> {
        let plan = Transpose::plan(self, to, exchange.rank());
        let mut buffers = (vec![0.0; plan.send_len()], vec![0.0; plan.recv_len()]);
        let mut out = vec![0.0; to.0[exchange.rank()].len()];
        plan.apply(exchange, (self, to), data, &mut buffers, &mut out);
        out
    }
}

/// One rank's [`Spread::redistribute`] between two spreads, planned: the counts and
/// displacements of its `Alltoallv`, so that a move with buffers of its own allocates nothing
/// (a solver that moves data every solve plans once).
#[derive(Clone, Debug)]
pub(crate) struct Transpose {
    send_counts: Vec<usize>,
    send_displs: Vec<usize>,
    recv_counts: Vec<usize>,
    recv_displs: Vec<usize>,
}

impl Transpose {
    /// The move of `rank`'s box of `from` to its box of `to`.
    pub fn plan(from: &Spread, to: &Spread, rank: usize) -> Transpose {
        let size =
            |a: &Block, b: &Block| a.meet(b).map_or(0, |c| c.iter().map(Range::len).product());
        let (mine, target) = (&from.0[rank], &to.0[rank]);
        let send_counts: Vec<usize> = to.0.iter().map(|theirs| size(mine, theirs)).collect();
        let recv_counts: Vec<usize> = from.0.iter().map(|theirs| size(target, theirs)).collect();
        let (send_displs, recv_displs) =
            (super::displacements(&send_counts), super::displacements(&recv_counts));
        Transpose { send_counts, send_displs, recv_counts, recv_displs }
    }

    /// Values this rank sends.
    pub fn send_len(&self) -> usize {
        self.send_counts.iter().sum()
    }

    /// Values this rank receives.
    pub fn recv_len(&self) -> usize {
        self.recv_counts.iter().sum()
    }

    /// `data` (this rank's box of `from`) into `out` (its box of `to`), the spreads planned;
    /// `buffers`: send and receive buffers of at least [`Self::send_len`] and
    /// [`Self::recv_len`] values.
    pub fn apply(
        &self,
        exchange: &impl Exchange,
        (from, to): (&Spread, &Spread),
        data: &[f64],
        (send, recv): &mut (Vec<f64>, Vec<f64>),
        out: &mut [f64],
    ) {
        let rank = exchange.rank();
        let (mine, target) = (&from.0[rank], &to.0[rank]);
        let mut at = 0;
        for theirs in &to.0 {
            if let Some(cells) = mine.meet(theirs) {
                mine.walk(&cells, theirs.order, |i| {
                    send[at] = data[i];
                    at += 1;
                });
            }
        }
        let (send, recv) = (&send[..self.send_len()], &mut recv[..self.recv_len()]);
        exchange.all_to_all_v(
            send,
            &self.send_counts,
            &self.send_displs,
            recv,
            &self.recv_counts,
            &self.recv_displs,
        );
        let mut at = 0;
        for theirs in &from.0 {
            if let Some(cells) = target.meet(theirs) {
                target.walk(&cells, target.order, |i| {
                    out[i] = recv[at];
                    at += 1;
                });
            }
        }
    }
}

/// The three spreads of a [`PencilDecomposition`]'s array that make each axis whole in turn:
/// the pencil blocks (`[z][y][x]`, x whole); whole y lines (`[z][x][y]`: each rank its
/// planes and the x-range `columns[iy]`, x split over the py ranks of its row); whole z lines
/// (`[x][y][z]`: the x-range `columns[iy]` and the y-range `spans[iz]`, y split over the pz
/// ranks of its column). [`axis_by_axis`] walks the same spreads.
pub(crate) struct PencilSpreads {
    pub blocks: Spread,
    pub y_lines: Spread,
    pub z_lines: Spread,
}

impl PencilSpreads {
    /// The spreads of `pencils`; refused with fewer cells along x than py or along y than
    /// pz (the transposed boxes need one each).
    pub fn new(pencils: &PencilDecomposition) -> Result<PencilSpreads> {
        let n = pencils.grid().shape();
        let lines = Lines::new(pencils, [n[0], n[1]])?;
        Ok(PencilSpreads {
            blocks: lines.blocks(pencils, n[0]),
            y_lines: lines.y_lines(n[1]),
            z_lines: lines.z_lines(n[2]),
        })
    }
}

/// The split of x over each row of a pencil process grid and of y over each column — the
/// boxes of whole y and z lines — for arrays of `cells[0]` x and `cells[1]` y cells.
struct Lines<'a> {
    pencils: &'a PencilDecomposition,
    columns: Vec<Range<usize>>,
    spans: Vec<Range<usize>>,
}

impl<'a> Lines<'a> {
    /// Refused with fewer x cells than py or y cells than pz.
    fn new(pencils: &'a PencilDecomposition, cells: [usize; 2]) -> Result<Lines<'a>> {
        let (py, pz) = pencils.shape();
        if py > cells[0] || pz > cells[1] {
            return Err(Error::invalid(format!(
                "{py} × {pz} pencils need at least {py} cells along x and {pz} along y (the \
                 grid has {} and {})",
                cells[0], cells[1]
            )));
        }
        Ok(Lines { pencils, columns: balanced(cells[0], py), spans: balanced(cells[1], pz) })
    }

    fn spread(&self, f: impl Fn(usize) -> Block) -> Spread {
        Spread((0..self.pencils.ranks()).map(f).collect())
    }

    /// `decomposition`'s blocks (`[z][y][x]`) of an array `nx` cells wide.
    fn blocks(&self, decomposition: &PencilDecomposition, nx: usize) -> Spread {
        self.spread(|r| Block {
            ranges: [0..nx, decomposition.rows(r), decomposition.planes(r)],
            order: [2, 1, 0],
        })
    }

    /// Whole y lines of `ny` cells (`[z][x][y]`): the rank's planes, its row's x-range.
    fn y_lines(&self, ny: usize) -> Spread {
        let p = self.pencils;
        self.spread(|r| Block {
            ranges: [self.columns[p.coordinates(r).0].clone(), 0..ny, p.planes(r)],
            order: [2, 0, 1],
        })
    }

    /// Whole z lines of `nz` cells (`[x][y][z]`): its row's x-range, its column's y-range.
    fn z_lines(&self, nz: usize) -> Spread {
        self.spread(|r| {
            let (iy, iz) = self.pencils.coordinates(r);
            Block {
                ranges: [self.columns[iy].clone(), self.spans[iz].clone(), 0..nz],
                order: [0, 1, 2],
            }
        })
    }
}

/// `data` (this rank's block of `from`) taken through one operation per axis — x, then y,
/// then z, each on a spread whose boxes hold that axis whole — onto this rank's block of
/// `to` (the same ranks; each axis of `to`'s grid the length `op` makes it).
/// `op(values, shape, axis)` gets a box in C order whose last (fastest) storage axis is grid
/// axis `axis`, whole, of `shape[2]` cells, and returns the box with that axis' cells
/// replaced by `to`'s (e.g. a resampling, a line transform: the serial line operation).
/// Refused (on every rank alike, from the shapes): fewer cells along x in `to` than py, or
/// along y than pz.
pub(crate) fn axis_by_axis(
    exchange: &impl Exchange,
    from: &PencilDecomposition,
    to: &PencilDecomposition,
    data: &[f64],
    op: impl Fn(&[f64], [usize; 3], usize) -> Vec<f64>,
) -> Result<Vec<f64>> {
    let (n, m) = (from.grid().shape(), to.grid().shape());
    if to.ranks() != from.ranks() {
        return Err(Error::invalid("axis_by_axis: decompositions over different rank counts"));
    }
    let lines = Lines::new(from, [m[0], m[1]])?;
    let rank = exchange.rank();
    // x, on the blocks.
    let shape = [from.planes(rank).len(), from.rows(rank).len(), n[0]];
    let values = op(data, shape, 0);
    // y, on whole y lines.
    let y_lines = lines.y_lines(n[1]);
    let values = lines.blocks(from, m[0]).redistribute(exchange, &y_lines, &values);
    let values = op(&values, y_lines.0[rank].shape(), 1);
    // z, on whole z lines.
    let z_lines = lines.z_lines(n[2]);
    let values = lines.y_lines(m[1]).redistribute(exchange, &z_lines, &values);
    let values = op(&values, z_lines.0[rank].shape(), 2);
    let z_done = lines.z_lines(m[2]);
    Ok(z_done.redistribute(exchange, &lines.blocks(to, m[0]), &values))
}
