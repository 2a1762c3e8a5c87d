//! The deposit push-forward `T#μ` on a slab-decomposed grid (bfm's and the JKO steps'
//! default push-forward, [`crate::ot::push_forward_adaptive`]).
//!
//! Each rank deposits its own source cells. Their sub-cells ([`SubCells`]) place themselves
//! along the map's slopes, which reach two planes beyond the rank's block along the slab axis
//! (the one-sided slopes at a box face): those planes of the map come in one `Alltoallv`.
//! The shares go, by cloud-in-cell weights, into fixed-point cells (exact sums,
//! [`FixedPlanes`]) for the planes they land on — anywhere in the grid: a map moves mass
//! across slabs. Each such plane then goes to its owner (one `Alltoallv` of the counts, one
//! of the planes), which adds them to its own. Integer sums do not depend on their order, and
//! the quantum comes from the global peak of |μ| (a max: exact over ranks), so the result is
//! the serial deposit's to the bit, for every rank count.
//!
//! Communication per call: the map's 2 + 2 halo planes (`4 d × plane` values) and, per plane
//! a rank's shares land on but does not own, `1 + 2 × plane` values (an `i128` travels as two
//! doubles' bits) — for a map that moves mass by at most a plane, about two planes per
//! neighbour.

use super::exchange::Exchange;
use super::{displacements, exchange_blocks};
use crate::error::{Error, Result};
use crate::grid::{Grid, PencilDecomposition, SlabDecomposition};
use crate::ot::pushforward::{
    fixed_exponent, mass_bound, CellDeposit, FixedCells, FixedPlanes, SubCells, MAX_SUBCELLS,
};
use rayon::prelude::*;

/// Planes of the map beyond a rank's block that its sub-cell slopes read (each side).
const MAP_HALO: usize = 2;

/// This rank's planes of `T#μ` (a density on `grid`) for `mu` (this rank's planes of a
/// density on `grid`) and the map `map` (this rank's cells, `d` components each, interleaved
/// as in [`crate::VectorField`]): [`crate::ot::push_forward_adaptive`] with at least
/// `min_subcells` sub-cells per axis, to the bit. A collective: every rank calls it with
/// the same grid and `min_subcells`. A block of the wrong length or with NaN / infinite
/// values on any rank, or too few planes for the slopes, is an error on every rank.
pub fn slab_push_forward(
    exchange: &impl Exchange,
    grid: &Grid,
    mu: &[f64],
    map: &[f64],
    min_subcells: usize,
) -> Result<Vec<f64>> {
    let slabs = SlabDecomposition::new(grid, exchange.size())?;
    let rank = exchange.rank();
    let cells = slabs.cells(rank);
    let d = grid.dim();
    check_inputs(exchange, mu, map, cells.len(), d)?;
    let min_s = min_subcells.clamp(1, MAX_SUBCELLS);
    let sub = SubCells::new(grid, grid, min_s, MAX_SUBCELLS)?;
    let plane = slabs.plane_cells();
    let axis = grid.axis(d - 1);
    let (n, periodic) = (axis.cells, axis.boundary.is_periodic());

    // The map on this rank's planes and MAP_HALO beyond (where they exist), and where each
    // global plane sits in that block.
    let wanted: Vec<Vec<usize>> =
        (0..slabs.ranks()).map(|q| map_planes(&slabs.planes(q), n, periodic)).collect();
    let block = gather_planes(exchange, &slabs, map, plane * d, &wanted)?;
    // Where the block's planes are consecutive (always but where a periodic halo wraps), a
    // cell's place in it is one subtraction away.
    let mine = &wanted[rank];
    let consecutive = mine.windows(2).all(|w| w[1] == w[0] + 1);
    let offset = mine.first().map_or(0, |&j| j * plane);
    let mut position = vec![usize::MAX; n];
    for (k, &j) in mine.iter().enumerate() {
        position[j] = k;
    }
    let at = |flat: usize, a: usize| {
        if consecutive {
            return block[(flat - offset) * d + a];
        }
        let k = position[flat / plane];
        debug_assert!(k != usize::MAX, "a slope read a plane outside the halo");
        block[(k * plane + flat % plane) * d + a]
    };

    let start = cells.start;
    let (exponent, landed) = deposit(exchange, grid, &sub, mu, plane, |k| start + k, at);
    let mine = scatter_to_owners(exchange, &slabs, plane, landed);
    Ok(mine.into_par_iter().map(|v| FixedCells::value(v, exponent) / grid.cell_volume()).collect())
}

/// This rank's pencil block of `T#μ` on the 3D `grid`'s [`PencilDecomposition`] (more
/// ranks than z planes): [`slab_push_forward`] on pencils, to the bit. The map's rows the
/// sub-cells' slopes read — the rank's rows and planes and [`MAP_HALO`] beyond each side —
/// come in one `Alltoallv`; the shares' fixed-point planes go, row block by row block, to
/// their owners, which add them (exact integer sums). A collective; bad blocks fail every
/// rank.
pub fn pencil_push_forward(
    exchange: &impl Exchange,
    grid: &Grid,
    mu: &[f64],
    map: &[f64],
    min_subcells: usize,
) -> Result<Vec<f64>> {
    let pencils = PencilDecomposition::new(grid, exchange.size())?;
    let rank = exchange.rank();
    let n = pencils.len(rank);
    check_inputs(exchange, mu, map, n, 3)?;
    let sub = SubCells::new(grid, grid, min_subcells.clamp(1, MAX_SUBCELLS), MAX_SUBCELLS)?;
    let (nx, ny, nz) = (grid.axis(0).cells, grid.axis(1).cells, grid.axis(2).cells);
    let periodic = |a: usize| grid.axis(a).boundary.is_periodic();
    // Rows (id z·ny + y) of the map: those each rank reads, and where a row lives.
    let wanted: Vec<Vec<usize>> = (0..pencils.ranks())
        .map(|q| {
            let ys = map_planes(&pencils.rows(q), ny, periodic(1));
            let zs = map_planes(&pencils.planes(q), nz, periodic(2));
            zs.iter().flat_map(|z| ys.iter().map(move |y| z * ny + y)).collect()
        })
        .collect();
    let block = GatheredLines::gather(exchange, &pencils, map, nx * 3, &wanted)?;
    let at = |flat: usize, a: usize| block.line(flat / nx)[(flat % nx) * 3 + a];
    let global = |k: usize| pencils.to_global(rank, k);
    let (exponent, (landed, shares)) = deposit(exchange, grid, &sub, mu, nx * ny, global, at);

    // Each landed plane's row blocks to their owners: records of the plane's index and its
    // cells' `i128`s as pairs of doubles' bits.
    let rows = |q: usize| pencils.rows(q);
    let mut mine = vec![0i128; n];
    let mut send = Vec::new();
    let mut counts = vec![0.0; pencils.ranks()];
    let mut send_counts = vec![0; pencils.ranks()];
    for (q, count) in counts.iter_mut().enumerate() {
        let planes = pencils.planes(q);
        for j in planes.start.max(landed.start)..planes.end.min(landed.end) {
            let cells =
                &shares[((j - landed.start) * ny + rows(q).start) * nx..][..rows(q).len() * nx];
            if q == rank {
                let at = &mut mine[(j - planes.start) * rows(q).len() * nx..][..cells.len()];
                at.iter_mut().zip(cells).for_each(|(a, b)| *a += b);
                continue;
            }
            send.push(j as f64);
            for &v in cells {
                let bits = v as u128;
                send.push(f64::from_bits(bits as u64));
                send.push(f64::from_bits((bits >> 64) as u64));
            }
            *count += 1.0;
            send_counts[q] += 1 + 2 * cells.len();
        }
    }
    let ones = vec![1; pencils.ranks()];
    let record = 1 + 2 * rows(rank).len() * nx;
    let incoming = exchange_blocks(exchange, &counts, &ones, &ones);
    let recv_counts: Vec<usize> = incoming.iter().map(|&c| c as usize * record).collect();
    let recv = exchange_blocks(exchange, &send, &send_counts, &recv_counts);
    let first = pencils.planes(rank).start;
    for r in recv.chunks_exact(record) {
        let j = r[0] as usize;
        let at = &mut mine[(j - first) * rows(rank).len() * nx..][..record / 2];
        for (a, pair) in at.iter_mut().zip(r[1..].chunks_exact(2)) {
            let bits = u128::from(pair[0].to_bits()) | (u128::from(pair[1].to_bits()) << 64);
            *a += bits as i128;
        }
    }
    let vol = grid.cell_volume();
    Ok(mine.into_par_iter().map(|v| FixedCells::value(v, exponent) / vol).collect())
}

/// A density of `n` values and a map of `n · d` on this rank, all finite — or an error on
/// every rank.
fn check_inputs(
    exchange: &impl Exchange,
    mu: &[f64],
    map: &[f64],
    n: usize,
    d: usize,
) -> Result<()> {
    let bad = mu.len() != n || map.len() != n * d || mu.iter().chain(map).any(|v| !v.is_finite());
    if exchange.max(f64::from(u8::from(bad))) > 0.0 {
        return Err(Error::invalid(format!(
            "distributed push-forward: a rank's density or map has the wrong length or NaN / \
             infinite values (this rank: {} and {} values for its {n} cells, {d} components)",
            mu.len(),
            map.len(),
        )));
    }
    Ok(())
}

/// This rank's shares of the deposit of its cells of `mu` (`global(k)` the global index of
/// its k-th cell) by the sub-cells `sub`, the map read through `at(global, component)`: the
/// fixed-point exponent (from the global peak of |μ|, as the serial deposit's from the
/// whole grid's) and the window of global planes (of `plane` cells) the shares landed on,
/// with their fixed-point cells.
fn deposit(
    exchange: &impl Exchange,
    grid: &Grid,
    sub: &SubCells,
    mu: &[f64],
    plane: usize,
    global: impl Fn(usize) -> usize + Sync,
    at: impl Fn(usize, usize) -> f64 + Sync,
) -> (i32, (std::ops::Range<usize>, Vec<i128>)) {
    let local_peak = mu.par_iter().map(|v| v.abs()).reduce(|| 0.0, f64::max);
    let exponent = fixed_exponent(mass_bound(exchange.max(local_peak), grid));
    let vol = grid.cell_volume();
    let target = CellDeposit::new(grid);
    let parts = rayon::current_num_threads().clamp(1, mu.len().max(1));
    let len = mu.len().div_ceil(parts).max(1);
    let landed = mu
        .par_chunks(len)
        .enumerate()
        .map(|(part, chunk)| {
            let mut acc = FixedPlanes::new(plane, exponent);
            for (k, &m) in chunk.iter().enumerate() {
                if m != 0.0 {
                    let i = global(part * len + k);
                    sub.each(i, m * vol, &at, |y, share| target.add(&mut acc, y, share));
                }
            }
            acc
        })
        .reduce_with(|mut a, b| {
            a.merge(b);
            a
        })
        .map(FixedPlanes::into_planes)
        .unwrap_or_default();
    (exponent, landed)
}

/// The planes of the slab axis (n planes) whose map a block of `planes` reads: the block and
/// [`MAP_HALO`] beyond on each side (wrapped on a periodic axis, cut at a box face), in order,
/// each once.
fn map_planes(planes: &std::ops::Range<usize>, n: usize, periodic: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(planes.len() + 2 * MAP_HALO);
    let (lo, hi) = (planes.start as isize - MAP_HALO as isize, (planes.end + MAP_HALO) as isize);
    for j in lo..hi {
        let j = if periodic {
            j.rem_euclid(n as isize) as usize
        } else if (0..n as isize).contains(&j) {
            j as usize
        } else {
            continue;
        };
        if !out.contains(&j) {
            out.push(j);
        }
    }
    out
}

/// Rank q's copy of the planes `wanted[q]` (in that order) of a field stored per rank by
/// planes of `plane` values: every rank sends each the wanted planes it owns, one
/// `Alltoallv`.
pub(crate) fn gather_planes(
    exchange: &impl Exchange,
    slabs: &SlabDecomposition,
    data: &[f64],
    plane: usize,
    wanted: &[Vec<usize>],
) -> Result<Vec<f64>> {
    let locate = |j: usize| {
        let owner = slabs.owner(j);
        (owner, j - slabs.planes(owner).start)
    };
    gather_units(exchange, data, plane, wanted, locate)
}

/// Rank q's copy of the units `wanted[q]` (in that order) of a field stored per rank in
/// units of `unit` values (planes, rows), `locate(j)` giving unit j's owner and its index
/// among the owner's units: every rank sends each the wanted units it owns, one
/// `Alltoallv`.
pub(crate) fn gather_units(
    exchange: &impl Exchange,
    data: &[f64],
    unit: usize,
    wanted: &[Vec<usize>],
    locate: impl Fn(usize) -> (usize, usize),
) -> Result<Vec<f64>> {
    let rank = exchange.rank();
    let ranks = exchange.size();
    let mut send = Vec::new();
    let mut send_counts = vec![0; ranks];
    for (q, list) in wanted.iter().enumerate() {
        for &j in list {
            let (owner, local) = locate(j);
            if owner == rank {
                send.extend_from_slice(&data[local * unit..][..unit]);
                send_counts[q] += unit;
            }
        }
    }
    let mut recv_counts = vec![0; ranks];
    for &j in &wanted[rank] {
        recv_counts[locate(j).0] += unit;
    }
    let recv = exchange_blocks(exchange, &send, &send_counts, &recv_counts);
    // Each owner's units arrive in `wanted` order: take them in that order.
    let mut next = displacements(&recv_counts);
    let mut out = Vec::with_capacity(wanted[rank].len() * unit);
    for &j in &wanted[rank] {
        let s = locate(j).0;
        out.extend_from_slice(&recv[next[s]..][..unit]);
        next[s] += unit;
    }
    Ok(out)
}

/// The x lines (ids `z·ny + y`) of a field on y–z pencils that each rank reads, gathered:
/// this rank's copies, `width` values per line (`nx`, or `nx · 3` for a map).
pub(crate) struct GatheredLines {
    values: Vec<f64>,
    /// Where line id's copy lies among `values`' lines (`usize::MAX`: not gathered).
    position: Vec<usize>,
    width: usize,
}

impl GatheredLines {
    /// `data` (this rank's pencil block, `width` values per x line) read at the lines
    /// `wanted[q]` by each rank q: one `Alltoallv`. A collective.
    pub fn gather(
        exchange: &impl Exchange,
        pencils: &PencilDecomposition,
        data: &[f64],
        width: usize,
        wanted: &[Vec<usize>],
    ) -> Result<GatheredLines> {
        let nx = pencils.grid().axis(0).cells;
        let locate = |id: usize| {
            let (owner, at) = pencils.to_local(id * nx);
            (owner, at / nx)
        };
        let values = gather_units(exchange, data, width, wanted, locate)?;
        let (ny, nz) = (pencils.grid().axis(1).cells, pencils.grid().axis(2).cells);
        let mut position = vec![usize::MAX; ny * nz];
        for (k, &id) in wanted[exchange.rank()].iter().enumerate() {
            position[id] = k;
        }
        Ok(GatheredLines { values, position, width })
    }

    /// This rank's copy of line `id` (one of its wanted lines).
    pub fn line(&self, id: usize) -> &[f64] {
        let k = self.position[id];
        debug_assert!(k != usize::MAX, "line {id} was not gathered");
        &self.values[k * self.width..][..self.width]
    }
}

/// The sum over ranks of the fixed-point planes `landed` (this rank's shares on that window
/// of global planes, plane after plane), on this rank's own planes: each plane goes to its owner, which adds (exact
/// integer sums, in any order). Two `Alltoallv`s: the plane counts, then the planes, each as
/// its index and its `i128` cells as pairs of doubles' bits.
fn scatter_to_owners(
    exchange: &impl Exchange,
    slabs: &SlabDecomposition,
    plane: usize,
    (landed, shares): (std::ops::Range<usize>, Vec<i128>),
) -> Vec<i128> {
    let rank = exchange.rank();
    let ranks = slabs.ranks();
    let own = slabs.planes(rank);
    let mut mine = vec![0i128; own.len() * plane];
    let record = 1 + 2 * plane;
    let mut send = Vec::new();
    let mut counts = vec![0.0; ranks];
    let mut send_counts = vec![0; ranks];
    for (q, count) in counts.iter_mut().enumerate() {
        let theirs = slabs.planes(q);
        for j in theirs.start.max(landed.start)..theirs.end.min(landed.end) {
            let cells = &shares[(j - landed.start) * plane..][..plane];
            if q == rank {
                let at = &mut mine[(j - own.start) * plane..][..plane];
                at.iter_mut().zip(cells).for_each(|(a, b)| *a += b);
                continue;
            }
            send.push(j as f64);
            for &v in cells {
                let bits = v as u128;
                send.push(f64::from_bits(bits as u64));
                send.push(f64::from_bits((bits >> 64) as u64));
            }
            *count += 1.0;
            send_counts[q] += record;
        }
    }
    // How many planes each rank sends me.
    let ones = vec![1; ranks];
    let incoming = exchange_blocks(exchange, &counts, &ones, &ones);
    let recv_counts: Vec<usize> = incoming.iter().map(|&c| c as usize * record).collect();
    let recv = exchange_blocks(exchange, &send, &send_counts, &recv_counts);
    for block in recv.chunks_exact(record) {
        let j = block[0] as usize;
        let at = &mut mine[(j - own.start) * plane..][..plane];
        for (a, pair) in at.iter_mut().zip(block[1..].chunks_exact(2)) {
            let bits = u128::from(pair[0].to_bits()) | (u128::from(pair[1].to_bits()) << 64);
            *a += bits as i128;
        }
    }
    mine
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::{test_grid, LocalWorld};
    use crate::grid::BoundaryKind::{self, Dirichlet, Neumann, Periodic};
    use crate::ot::push_forward_adaptive;
    use crate::{ScalarField, VectorField};

    /// A density and a map that shifts, stretches and (on a periodic axis) wraps it — by up
    /// to several planes, so that shares land on other ranks' planes.
    fn data(grid: &Grid) -> (ScalarField, VectorField) {
        let mu = ScalarField::from_fn(grid, |p| {
            0.05 + (-p.iter().map(|x| (x - 0.45) * (x - 0.45)).sum::<f64>() / 0.05).exp()
        });
        let map = VectorField::from_fn(grid, |p, out| {
            for (a, (o, x)) in out.iter_mut().zip(p).enumerate() {
                *o = x + 0.15 * (3.0 * x + a as f64).sin() + 0.08 * (2.0 * p[0]).cos();
            }
        });
        (mu, map)
    }

    /// On 1–4 ranks the slab deposit equals the serial one to the bit, on 2D and 3D grids
    /// whose planes do not divide, with every boundary kind on the slab axis.
    #[test]
    fn the_slab_deposit_equals_the_serial_one_to_the_bit() {
        let cases: [(&[usize], &[BoundaryKind]); 5] = [
            (&[13, 11], &[Neumann, Neumann]),
            (&[12, 10], &[Neumann, Periodic]),
            (&[9, 8, 11], &[Neumann, Periodic, Dirichlet]),
            (&[8, 7, 10], &[Periodic, Neumann, Periodic]),
            (&[10, 9, 7], &[Neumann, Neumann, Neumann]),
        ];
        for (shape, kinds) in cases {
            let grid = test_grid(shape, kinds);
            let (mu, map) = data(&grid);
            for subcells in [1, 2] {
                let serial = push_forward_adaptive(&mu, &map, &grid, subcells).unwrap();
                let serial = serial.data().as_slice().unwrap().to_vec();
                let m = mu.data().as_slice().unwrap();
                let t = map.data().as_slice().unwrap();
                let d = grid.dim();
                for ranks in 1..=4 {
                    let blocks = LocalWorld::run(ranks, |ex| {
                        let slabs = SlabDecomposition::new(&grid, ranks).unwrap();
                        let c = slabs.cells(ex.rank());
                        let t = &t[c.start * d..c.end * d];
                        (c.clone(), slab_push_forward(ex, &grid, &m[c], t, subcells).unwrap())
                    });
                    for (cells, block) in blocks {
                        assert!(
                            block == serial[cells.clone()],
                            "{shape:?} {kinds:?}, {ranks} ranks, {subcells} sub-cells: cells \
                             {cells:?} differ"
                        );
                    }
                }
            }
        }
    }

    /// On y–z pencils (more ranks than z planes for most) the deposit equals the serial one
    /// to the bit: shares land on other ranks' rows and planes, every boundary kind.
    #[test]
    fn the_pencil_deposit_equals_the_serial_one_to_the_bit() {
        for (shape, kinds, rank_counts) in [
            ([9, 8, 3], [Neumann, Periodic, Dirichlet], &[2usize, 4, 6][..]),
            ([8, 10, 4], [Periodic, Neumann, Periodic], &[6, 8, 12][..]),
        ] {
            let grid = test_grid(&shape, &kinds);
            let (mu, map) = data(&grid);
            let m: Vec<f64> = mu.data().iter().copied().collect();
            let t = map.data().as_slice().unwrap();
            for subcells in [1, 2] {
                let serial = push_forward_adaptive(&mu, &map, &grid, subcells).unwrap();
                let serial: Vec<f64> = serial.data().iter().copied().collect();
                for &ranks in rank_counts {
                    let same = LocalWorld::run(ranks, |ex| {
                        let pencils = PencilDecomposition::new(&grid, ranks).unwrap();
                        let r = ex.rank();
                        let local: Vec<f64> = (0..pencils.len(r))
                            .flat_map(|l| {
                                let i = pencils.to_global(r, l);
                                t[3 * i..3 * i + 3].to_vec()
                            })
                            .collect();
                        let block = pencils.block(r, &m);
                        let pushed = pencil_push_forward(ex, &grid, &block, &local, subcells);
                        pushed.unwrap() == pencils.block(r, &serial)
                    });
                    assert!(
                        same.iter().all(|&s| s),
                        "{shape:?} {kinds:?}, {ranks} ranks, {subcells} sub-cells"
                    );
                }
            }
        }
    }

    /// A short or non-finite block on one rank is an error on every rank.
    #[test]
    fn a_bad_block_fails_every_rank() {
        let grid = test_grid(&[8, 6, 9], &[Neumann, Neumann, Neumann]);
        let (mu, map) = data(&grid);
        let m = mu.data().as_slice().unwrap();
        let t = map.data().as_slice().unwrap();
        for broken in [0, 1] {
            let results = LocalWorld::run(3, |ex| {
                let slabs = SlabDecomposition::new(&grid, 3).unwrap();
                let c = slabs.cells(ex.rank());
                let mut t = t[c.start * 3..c.end * 3].to_vec();
                if ex.rank() == 1 {
                    if broken == 0 {
                        t.pop();
                    } else {
                        t[4] = f64::NAN;
                    }
                }
                slab_push_forward(ex, &grid, &m[c], &t, 2)
            });
            assert!(results.iter().all(|r| r.is_err()), "case {broken}");
        }
    }
}
