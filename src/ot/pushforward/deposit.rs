//! Push-forward by deposit: `ν = T#μ` on grids.
//!
//! Each source cell i carries the mass `μ_i |X-cell|` to the point `T(x_i)`, which is
//! deposited on the target cell centres by cloud-in-cell (multilinear) weights. Points are
//! clamped into the target box (the second boundary condition: no mass leaves), periodic
//! axes wrap, and on non-periodic axes a weight beyond the first or last centre goes to that
//! cell. Every deposit's weights sum to one, so mass is conserved to round-off, and linear
//! weights reproduce positions, so the mean is exact; the deposit smooths second moments by
//! O(h²). The result is a density (mass per target cell volume) — but note that for a map
//! that compresses or stretches the lattice, one deposit per cell aliases: the pointwise
//! density carries an O(1) moiré error that refinement does not remove (measured L1 ≈ 0.08
//! for the Gaussian test pair). Density-accurate push-forwards use the Jacobian of the map
//! (`μ(T⁻¹y)/det DT`) instead: [`push_forward_by_inverse_potential`]. Deposition is parallel (one accumulation
//! buffer per rayon worker, summed at the end).

use super::*;

/// `T#μ` on `target` for the density `mu` and the map `map` (both on the source grid).
pub fn push_forward(mu: &ScalarField, map: &VectorField, target: &Grid) -> Result<ScalarField> {
    push_forward_subsampled(mu, map, target, 1)
}

/// [`push_forward`] with each source cell split into `s^d` equal sub-cells, each carrying its
/// share of the mass to `T` at its centre, where T is the cell's value plus the centred
/// (one-sided at non-periodic faces) difference slope times the offset. Grid-scale aliasing
/// falls roughly as 1/s²; mass conservation is unchanged.
pub fn push_forward_subsampled(
    mu: &ScalarField,
    map: &VectorField,
    target: &Grid,
    s: usize,
) -> Result<ScalarField> {
    let s = s.max(1);
    deposit_cells(mu, map, target, s, s)
}

/// A one-sided difference of the map larger than this many times the other one, plus
/// [`JUMP_CELLS`] target cells, marks a jump (a tear of the map) next to the cell; the slope
/// is then the smaller one-sided difference. Smooth maps stay far below: the stretch of the
/// Gaussian → uniform tails changes by a factor 2.2 per cell at 64², 1.1 at 512².
const JUMP_RATIO: f64 = 4.0;
/// See [`JUMP_RATIO`].
const JUMP_CELLS: f64 = 2.0;

/// Largest number of sub-cells per axis that [`push_forward_adaptive`] uses.
pub const MAX_SUBCELLS: usize = 64;

/// [`push_forward_subsampled`] with the number of sub-cells chosen per source cell and axis:
/// at least `min_s`, and enough (up to [`MAX_SUBCELLS`]) that the images of neighbouring
/// sub-cell centres are at most one target cell apart — as the reference back-and-forth
/// code does. Where the map stretches a cell over many target cells a fixed count leaves
/// holes (measured: a Gaussian of width 0.1 pushed onto the uniform density stalled at an H⁻¹
/// marginal error of 3.7e-3 with 2 × 2 sub-cells).
pub fn push_forward_adaptive(
    mu: &ScalarField,
    map: &VectorField,
    target: &Grid,
    min_s: usize,
) -> Result<ScalarField> {
    let min_s = min_s.clamp(1, MAX_SUBCELLS);
    deposit_cells(mu, map, target, min_s, MAX_SUBCELLS)
}

/// The identity map's deposit with `s` sub-cells per axis, `D_s μ`, as its separable 3-point
/// stencil: per axis `(1 − 2w) μᵢ + w (μᵢ₋₁ + μᵢ₊₁)` with `w = Σⱼ max(oⱼ, 0) / s` over the
/// sub-cell offsets `oⱼ = (j + ½)/s − ½` (w = 1/8 for s = 2: `D = I + h²Δ_h/8 + …`); a
/// non-periodic axis' end cell keeps its wall-ward share (the deposit's clamp), a periodic
/// one wraps. Equal to [`push_forward_subsampled`] of the identity, without the deposit.
pub fn identity_deposit(mu: &ScalarField, s: usize) -> ScalarField {
    let s = s.clamp(1, MAX_SUBCELLS);
    let w: f64 =
        (0..s).map(|j| ((j as f64 + 0.5) / s as f64 - 0.5).max(0.0)).sum::<f64>() / s as f64;
    let grid = mu.grid();
    let d = grid.dim();
    let mut data = mu.data().to_owned();
    if w == 0.0 {
        return ScalarField::new(grid.clone(), data).expect("same grid");
    }
    let mut lane_in = Vec::new();
    for a in 0..d {
        let axis = grid.axis(a);
        let (n, periodic) = (axis.cells, axis.boundary.is_periodic());
        lane_in.resize(n, 0.0);
        for mut lane in data.lanes_mut(ndarray::Axis(d - 1 - a)) {
            lane_in.iter_mut().zip(lane.iter()).for_each(|(o, v)| *o = *v);
            for i in 0..n {
                let left = match i {
                    0 if periodic => lane_in[n - 1],
                    0 => lane_in[0],
                    _ => lane_in[i - 1],
                };
                let right = match i + 1 {
                    j if j < n => lane_in[j],
                    _ if periodic => lane_in[0],
                    _ => lane_in[n - 1],
                };
                lane[i] = (1.0 - 2.0 * w) * lane_in[i] + w * (left + right);
            }
        }
    }
    ScalarField::new(grid.clone(), data).expect("same grid")
}

/// Where a deposit adds its shares: plain `f64` cells (summed in the order of the adds), or
/// [`FixedCells`] (exact, so in any order).
pub(crate) trait Accumulate {
    /// Adds `v` to cell `i`.
    fn add_at(&mut self, i: usize, v: f64);
}

impl Accumulate for [f64] {
    #[inline]
    fn add_at(&mut self, i: usize, v: f64) {
        self[i] += v;
    }
}

/// Cells that add in fixed point: a value v is held as the integer `⌊v / q⌋` (`i128`, q a
/// power of two), so sums are exact and independent of their order — of the thread count
/// and of how a grid is split over ranks. With q = 2^{⌈log₂ M⌉ − 122} for the total mass M,
/// any cell's sum fits (|sum| ≤ M < 2¹²² q), and a share v loses at most q, relative
/// `2^{-122} M / v`: below double round-off for every share above 1e-20 of M.
pub(crate) struct FixedCells<'a> {
    cells: &'a mut [i128],
    scale: f64,
}

/// The quantum exponent for a total mass `total` (see [`FixedCells`]): `e` with q = 2^e.
pub(crate) fn fixed_exponent(total: f64) -> i32 {
    let e = if total > 0.0 && total.is_finite() { total.log2().ceil() as i32 } else { 0 };
    e - 122
}

/// `x as i128` (truncation toward zero) for |x| < 2¹²⁴, with two native 64-bit conversions
/// instead of the 128-bit one's library call (which made the deposit 35 % slower): x splits
/// exactly into `hi 2⁶² + rest`, hi = trunc(x / 2⁶²) (a multiple of x's ulp, so exact when
/// it needs more than 53 bits) and |rest| < 2⁶², of x's sign.
#[inline]
fn to_fixed(x: f64) -> i128 {
    const TWO_62: f64 = 4_611_686_018_427_387_904.0;
    let hi = (x * (1.0 / TWO_62)) as i64;
    let rest = (x - hi as f64 * TWO_62) as i64;
    ((hi as i128) << 62) + rest as i128
}

/// `2^e` as a double (e within the normal range).
fn power_of_two(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

impl<'a> FixedCells<'a> {
    /// Cells with quantum `2^exponent`.
    pub(crate) fn new(cells: &'a mut [i128], exponent: i32) -> FixedCells<'a> {
        FixedCells { cells, scale: power_of_two(-exponent) }
    }

    /// The double nearest to the fixed-point value `v` with quantum `2^exponent`.
    pub(crate) fn value(v: i128, exponent: i32) -> f64 {
        v as f64 * power_of_two(exponent)
    }
}

impl Accumulate for FixedCells<'_> {
    #[inline]
    fn add_at(&mut self, i: usize, v: f64) {
        self.cells[i] += to_fixed(v * self.scale);
    }
}

/// Fixed-point cells ([`FixedCells`]' arithmetic) on a window of whole planes of the
/// slowest axis that grows to the planes where shares land: a slab rank's deposit, whose
/// shares may land on any plane (for bfm's maps, its own planes and a few beyond). One
/// subtraction and one comparison per share (a plane index by division cost the slab
/// deposit 1.6× the serial one).
pub(crate) struct FixedPlanes {
    /// The window's cells, planes `first..first + cells.len() / plane`.
    cells: Vec<i128>,
    first: usize,
    plane: usize,
    scale: f64,
}

impl FixedPlanes {
    /// An empty window on planes of `plane` cells; quantum `2^exponent`.
    pub(crate) fn new(plane: usize, exponent: i32) -> FixedPlanes {
        FixedPlanes { cells: Vec::new(), first: 0, plane, scale: power_of_two(-exponent) }
    }

    /// The window's planes.
    fn planes(&self) -> std::ops::Range<usize> {
        self.first..self.first + self.cells.len() / self.plane
    }

    /// Grows the window to cover `planes` (zeros in the new planes).
    fn cover(&mut self, planes: std::ops::Range<usize>) {
        let now = self.planes();
        if now.start <= planes.start && planes.end <= now.end && !now.is_empty() {
            return;
        }
        let (lo, hi) = if now.is_empty() {
            (planes.start, planes.end)
        } else {
            (now.start.min(planes.start), now.end.max(planes.end))
        };
        let mut cells = vec![0i128; (hi - lo) * self.plane];
        let at = (now.start.max(lo) - lo) * self.plane;
        cells[at..at + self.cells.len()].copy_from_slice(&self.cells);
        self.cells = cells;
        self.first = lo;
    }

    /// Adds `other`'s cells (exact).
    pub(crate) fn merge(&mut self, other: FixedPlanes) {
        let theirs = other.planes();
        if theirs.is_empty() {
            return;
        }
        self.cover(theirs.clone());
        let at = (theirs.start - self.first) * self.plane;
        self.cells[at..at + other.cells.len()]
            .iter_mut()
            .zip(other.cells)
            .for_each(|(a, b)| *a += b);
    }

    /// The window's planes (global indices) and their cells, plane after plane.
    pub(crate) fn into_planes(self) -> (std::ops::Range<usize>, Vec<i128>) {
        (self.planes(), self.cells)
    }
}

impl Accumulate for FixedPlanes {
    #[inline]
    fn add_at(&mut self, i: usize, v: f64) {
        let offset = i.wrapping_sub(self.first * self.plane);
        if offset >= self.cells.len() {
            let j = i / self.plane;
            self.cover(j..j + 1);
        }
        let offset = i - self.first * self.plane;
        self.cells[offset] += to_fixed(v * self.scale);
    }
}

/// The multilinear (cloud-in-cell) deposit of point masses on a grid's cell centres: a mass
/// at y shared between the 2^d centres around it with multilinear weights; on a box axis y is
/// clamped into the box and a share beyond the last centre stays in the boundary cell, on a
/// periodic axis the centres wrap. Adds masses (not densities) to `acc` (one value per cell).
pub(crate) struct CellDeposit {
    d: usize,
    strides: Vec<usize>,
    /// Per axis: cells, 1/h, lower, upper, periodic.
    axes: Vec<(usize, f64, f64, f64, bool)>,
}

impl CellDeposit {
    pub(crate) fn new(target: &Grid) -> CellDeposit {
        CellDeposit {
            d: target.dim(),
            strides: crate::operators::strides(target),
            axes: target
                .axes()
                .iter()
                .map(|a| (a.cells, 1.0 / a.spacing(), a.lower, a.upper, a.boundary.is_periodic()))
                .collect(),
        }
    }

    /// Adds `mass` at `y` (`y.len()` ≥ the dimension; a periodic coordinate within a period
    /// or so of the domain).
    #[inline]
    pub(crate) fn add<A: Accumulate + ?Sized>(&self, acc: &mut A, y: &[f64], mass: f64) {
        // Per axis: two (index, weight) pairs.
        let mut idx = [[0usize; 2]; 3];
        let mut wts = [[0.0f64; 2]; 3];
        for (a, &(n, inv_h, lower, upper, periodic)) in self.axes.iter().enumerate() {
            let yc = if periodic { y[a] } else { y[a].clamp(lower, upper) };
            let s = (yc - lower) * inv_h - 0.5;
            // floor without the libm call (s > −2⁴⁰ here: clamped, or one period off at most
            // for a sane periodic map)
            let i0 = (s + 1_099_511_627_776.0) as i64 - 1_099_511_627_776;
            // (The sum rounds to 2⁻¹² of a cell: just below an integer it rounds up, which
            // would make w slightly negative and the deposit's weights leave [0, 1].)
            let i0 = if i0 as f64 > s { i0 - 1 } else { i0 };
            let w = s - i0 as f64;
            let (i0, i1) = if periodic {
                let n = n as i64;
                (i0.rem_euclid(n) as usize, (i0 + 1).rem_euclid(n) as usize)
            } else {
                let top = n as i64 - 1;
                (i0.clamp(0, top) as usize, (i0 + 1).clamp(0, top) as usize)
            };
            idx[a] = [i0 * self.strides[a], i1 * self.strides[a]];
            wts[a] = [1.0 - w, w];
        }
        if self.d == 2 {
            let (x0, x1) = (mass * wts[0][0], mass * wts[0][1]);
            let ([a0, a1], [b0, b1]) = (idx[0], idx[1]);
            acc.add_at(a0 + b0, x0 * wts[1][0]);
            acc.add_at(a1 + b0, x1 * wts[1][0]);
            acc.add_at(a0 + b1, x0 * wts[1][1]);
            acc.add_at(a1 + b1, x1 * wts[1][1]);
            return;
        }
        for corner in 0..(1usize << self.d) {
            let mut flat = 0;
            let mut weight = mass;
            for a in 0..self.d {
                let bit = (corner >> a) & 1;
                flat += idx[a][bit];
                weight *= wts[a][bit];
            }
            acc.add_at(flat, weight);
        }
    }
}

/// The deposit behind the push-forwards: sub-cell counts per axis in `min_s..=max_s`.
fn deposit_cells(
    mu: &ScalarField,
    map: &VectorField,
    target: &Grid,
    min_s: usize,
    max_s: usize,
) -> Result<ScalarField> {
    let source = mu.grid();
    if map.grid() != source {
        return Err(Error::invalid("push-forward: the map lives on another grid than the density"));
    }
    if map.data().as_slice().expect("contiguous").par_iter().any(|v| !v.is_finite())
        || mu.first_non_finite().is_some()
    {
        return Err(Error::invalid("push-forward: density or map has NaN or infinite values"));
    }
    let sub = SubCells::new(source, target, min_s, max_s)?;
    let d = source.dim();
    let vol_x = source.cell_volume();
    let m = mu.data().as_slice().expect("contiguous");
    let t = map.data().as_slice().expect("contiguous");
    let cells = CellDeposit::new(target);
    let deposit = |acc: &mut FixedCells, i: usize| {
        if m[i] != 0.0 {
            sub.each(i, m[i] * vol_x, |j, a| t[j * d + a], |y, mass| cells.add(acc, y, mass));
        }
    };
    let peak = m.par_iter().map(|v| v.abs()).reduce(|| 0.0, f64::max);
    let exponent = fixed_exponent(mass_bound(peak, source));
    let masses = deposit_in_parts(source.num_cells(), target.num_cells(), exponent, deposit);
    let vol_y = target.cell_volume();
    ScalarField::from_vec(
        target,
        masses.into_par_iter().map(|v| FixedCells::value(v, exponent) / vol_y).collect(),
    )
}

/// A bound on a density's total mass from its largest |value| (`peak · |cell| · cells`):
/// computed the same to the bit whatever the thread count or the ranks (a max is exact in
/// any order; a sum is not), so the fixed-point quantum ([`fixed_exponent`]) is too.
pub(crate) fn mass_bound(peak: f64, grid: &Grid) -> f64 {
    peak * grid.cell_volume() * grid.num_cells() as f64
}

/// The sub-cell sampling of the adaptive deposit: each source cell split into sub-cells
/// (per source axis at least `min_s`, and enough, up to `max_s`, that the images of
/// neighbouring sub-cell centres are at most one target cell apart), each carrying its share
/// of the cell's mass to the map at its centre — the cell's value plus the centred
/// (one-sided at non-periodic faces, the smooth side's at a tear) difference slope times the
/// offset.
pub(crate) struct SubCells {
    d: usize,
    /// Per source axis: cells, stride, periodic, period.
    axes: Vec<(usize, usize, bool, f64)>,
    inv_h: Vec<f64>,
    h_target: Vec<f64>,
    min_s: usize,
    max_s: usize,
}

impl SubCells {
    /// The sampling from `source` onto `target` (same dimension; with sub-cells, at least 3
    /// cells on every non-periodic source axis).
    pub(crate) fn new(source: &Grid, target: &Grid, min_s: usize, max_s: usize) -> Result<Self> {
        if target.dim() != source.dim() {
            return Err(Error::invalid(
                "push-forward: source and target grids differ in dimension",
            ));
        }
        let d = source.dim();
        let strides = crate::operators::strides(source);
        let axes: Vec<(usize, usize, bool, f64)> = (0..d)
            .map(|b| {
                let ax = source.axis(b);
                (ax.cells, strides[b], ax.boundary.is_periodic(), ax.upper - ax.lower)
            })
            .collect();
        if max_s > 1 && axes.iter().any(|&(n, _, p, _)| n < 3 && !p) {
            return Err(Error::invalid(
                "push-forward with sub-cells needs at least 3 cells per axis",
            ));
        }
        Ok(SubCells {
            d,
            axes,
            inv_h: target.axes().iter().map(|a| 1.0 / a.spacing()).collect(),
            h_target: target.axes().iter().map(|a| a.spacing()).collect(),
            min_s,
            max_s,
        })
    }

    /// Calls `emit(y, share)` for every sub-cell of source cell `i` (flat index on the source
    /// grid) holding `mass`; `at(j, a)` is component a of the map at flat index j (called for
    /// i and its neighbours along each axis, at most two cells away).
    #[inline]
    pub(crate) fn each(
        &self,
        i: usize,
        mass: f64,
        at: impl Fn(usize, usize) -> f64,
        mut emit: impl FnMut(&[f64; 3], f64),
    ) {
        let d = self.d;
        let mut centre = [0.0f64; 3];
        for (a, c) in centre.iter_mut().enumerate().take(d) {
            *c = at(i, a);
        }
        if self.max_s == 1 {
            emit(&centre, mass);
            return;
        }
        // Slopes of each map component along each source axis (per source cell).
        let mut slope = [[0.0f64; 3]; 3];
        for (b, &(n, st, periodic, period)) in self.axes.iter().enumerate() {
            let k = (i / st) % n;
            // Neighbours along b (one-sided second-order differences at non-periodic ends).
            let at = |j: usize, a: usize| at(i + j * st - k * st, a);
            for (a, row) in slope.iter_mut().enumerate().take(d) {
                row[b] = if periodic || (k > 0 && k + 1 < n) {
                    let (up, down) = ((k + 1) % n, (k + n - 1) % n);
                    // Across the wrap an unwrapped map (x + displacement) jumps by the
                    // period: take the nearest image of each difference.
                    let image = |diff: f64| {
                        if periodic && a == b {
                            diff - period * (diff / period).round()
                        } else {
                            diff
                        }
                    };
                    let forward = image(at(up, a) - at(k, a));
                    let backward = image(at(k, a) - at(down, a));
                    let (small, large) = if forward.abs() <= backward.abs() {
                        (forward, backward)
                    } else {
                        (backward, forward)
                    };
                    if large.abs() > JUMP_RATIO * small.abs() + JUMP_CELLS * self.h_target[a] {
                        // The map jumps next to this cell (a tear): the centred slope would
                        // smear the cell's mass across the gap, over up to MAX_SUBCELLS²
                        // sub-cells; the smooth side's slope keeps it where it is.
                        small
                    } else {
                        0.5 * (forward + backward)
                    }
                } else if k == 0 {
                    0.5 * (-3.0 * at(0, a) + 4.0 * at(1, a) - at(2, a))
                } else {
                    0.5 * (3.0 * at(n - 1, a) - 4.0 * at(n - 2, a) + at(n - 3, a))
                };
            }
        }
        // Sub-cells along source axis b: enough that neighbouring samples land at most one
        // target cell apart (the image of the cell spans |slope[a][b]|/h_a target cells).
        let mut count = [1usize; 3];
        for (b, c) in count.iter_mut().enumerate().take(d) {
            let span = (0..d).map(|a| slope[a][b].abs() * self.inv_h[a]).fold(0.0, f64::max);
            *c = (span.ceil() as usize).clamp(self.min_s, self.max_s);
        }
        let total: usize = count[..d].iter().product();
        let share = mass / total as f64;
        for sub in 0..total {
            let mut offset = [0.0f64; 3];
            let mut r = sub;
            for (o, &c) in offset.iter_mut().zip(&count).take(d) {
                *o = ((r % c) as f64 + 0.5) / c as f64 - 0.5;
                r /= c;
            }
            let mut y = centre;
            for a in 0..d {
                for b in 0..d {
                    y[a] += slope[a][b] * offset[b];
                }
            }
            emit(&y, share);
        }
    }
}

/// Runs `deposit` over `0..items` in one contiguous part per rayon thread, each part with
/// its own fixed-point accumulation buffer of length `n_out` (quantum `2^exponent`,
/// [`FixedCells`]), and sums the buffers: exact, so the same whatever the thread count.
/// (A rayon `fold` allocates one buffer per work-stealing split: measured 35 ms instead of
/// 6 ms at 512².)
pub(crate) fn deposit_in_parts<F>(
    items: usize,
    n_out: usize,
    exponent: i32,
    deposit: F,
) -> Vec<i128>
where
    F: Fn(&mut FixedCells, usize) + Sync,
{
    let parts = rayon::current_num_threads().clamp(1, items.max(1));
    let len = items.div_ceil(parts);
    let mut partials: Vec<Vec<i128>> = (0..parts)
        .into_par_iter()
        .map(|k| {
            let mut acc = vec![0i128; n_out];
            let mut cells = FixedCells::new(&mut acc, exponent);
            (k * len..((k + 1) * len).min(items)).for_each(|i| deposit(&mut cells, i));
            acc
        })
        .collect();
    let mut total = partials.swap_remove(0);
    total.par_chunks_mut(4096).enumerate().for_each(|(c, out)| {
        for other in &partials {
            let src = &other[c * 4096..c * 4096 + out.len()];
            out.iter_mut().zip(src).for_each(|(x, y)| *x += y);
        }
    });
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytic::gaussian::{Gaussian, GaussianMap};
    use crate::grid::BoundaryKind;

    fn blob(g: &Grid) -> ScalarField {
        ScalarField::from_fn(g, |p| {
            (-(p.iter().map(|x| (x - 0.5) * (x - 0.5)).sum::<f64>()) / 0.01).exp()
        })
    }

    /// The split conversion equals `as i128` (truncation toward zero) across magnitudes and
    /// signs, and fixed-point sums do not depend on the order of the adds.
    #[test]
    fn fixed_point_conversion_and_sums_are_exact() {
        let mut x: f64 = 0.7317;
        for k in 0..2000 {
            x = (x * 3.7 + 0.1).fract();
            let v = (x - 0.3) * 2f64.powi(k % 124);
            assert_eq!(to_fixed(v), v as i128, "{v}");
        }
        let shares: Vec<f64> = (0..1000).map(|i| ((i as f64) * 0.37).sin().abs() * 1e-3).collect();
        let e = fixed_exponent(1.0);
        let sum = |order: &mut dyn Iterator<Item = usize>| {
            let mut cell = [0i128];
            let mut acc = FixedCells::new(&mut cell, e);
            order.for_each(|i| acc.add_at(0, shares[i]));
            cell[0]
        };
        assert_eq!(sum(&mut (0..1000)), sum(&mut (0..1000).rev()));
        let plain: f64 = shares.iter().sum();
        assert!((FixedCells::value(sum(&mut (0..1000)), e) - plain).abs() < 1e-15 * plain);
    }

    /// The deposit is the same to the bit for every thread count.
    #[test]
    fn the_deposit_does_not_depend_on_the_thread_count() {
        let g = Grid::unit(2, 48, BoundaryKind::Neumann).unwrap();
        let mu = blob(&g);
        let map = VectorField::from_fn(&g, |p, v| {
            for (o, x) in v.iter_mut().zip(p) {
                *o = 0.5 + 1.3 * (x - 0.45) + 0.02 * (5.0 * x).sin();
            }
        });
        let runs: Vec<ScalarField> = [1, 2, 3, 5]
            .into_iter()
            .map(|t| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
                pool.install(|| push_forward_adaptive(&mu, &map, &g, 2).unwrap())
            })
            .collect();
        for r in &runs[1..] {
            assert!(r.data() == runs[0].data());
        }
        assert!((runs[0].integral() - mu.integral()).abs() < 1e-14 * mu.integral());
    }

    /// A map that stretches [0.4, 0.6]² onto the unit square five-fold: the adaptive deposit
    /// fills the target (uniform to a few per cent), one point per cell leaves holes.
    #[test]
    fn adaptive_sub_cells_fill_a_stretched_image() {
        // 80 cells: [0.4, 0.6] is exactly 16 of them.
        let g = Grid::unit(2, 80, BoundaryKind::Neumann).unwrap();
        let inside = |x: f64| (0.4..0.6).contains(&x);
        let mu =
            ScalarField::from_fn(&g, |p| if inside(p[0]) && inside(p[1]) { 25.0 } else { 0.0 });
        let map = VectorField::from_fn(&g, |p, v| {
            for (o, x) in v.iter_mut().zip(p) {
                *o = 0.5 + 5.0 * (x - 0.5);
            }
        });
        let l1 = |rho: &ScalarField| {
            rho.data().iter().map(|r| (r - 1.0).abs()).sum::<f64>() * g.cell_volume()
        };
        let adaptive = push_forward_adaptive(&mu, &map, &g, 1).unwrap();
        let single = push_forward(&mu, &map, &g).unwrap();
        assert!((adaptive.integral() - mu.integral()).abs() < 1e-12);
        assert!(l1(&adaptive) < 0.06, "adaptive L1 {}", l1(&adaptive));
        assert!(l1(&single) > 0.5, "single-point L1 {}", l1(&single));
    }

    /// Points a hair below a target centre (in cell units, closer than the 2⁻¹² to which a
    /// sum with 2⁴⁰ rounds) get weights in [0, 1]: the deposit stays non-negative and puts
    /// (almost) all the mass in the cell below.
    #[test]
    fn points_just_below_a_centre_deposit_non_negative_weights() {
        let grid = Grid::unit(2, 8, BoundaryKind::Neumann).unwrap();
        let h = 1.0 / 8.0;
        let mu = ScalarField::from_fn(&grid, |_| 1.0);
        for eps in [1e-6, 1e-9, 1e-13] {
            let map = VectorField::from_fn(&grid, |_, out| {
                out[0] = (2.5 - eps) * h;
                out[1] = (4.5 - eps) * h;
            });
            let rho = push_forward(&mu, &map, &grid).unwrap();
            assert!(rho.min() >= 0.0, "ε = {eps}: min {:e}", rho.min());
            assert!((rho.integral() - 1.0).abs() < 1e-14);
            let peak = rho.data()[[4, 2]] * h * h;
            assert!(peak > 1.0 - 1e-5, "ε = {eps}: {peak}");
        }
    }

    #[test]
    fn identity_reproduces_and_mass_is_conserved() {
        for dim in [2, 3] {
            let g = Grid::unit(dim, 24, BoundaryKind::Neumann).unwrap();
            let mu = blob(&g);
            let id = VectorField::from_fn(&g, |p, v| v.copy_from_slice(p));
            let nu = push_forward(&mu, &id, &g).unwrap();
            let diff = nu
                .data()
                .iter()
                .zip(mu.data().iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(diff < 1e-12 * mu.max(), "{dim}D identity");
            // A map that sends mass outside the box and across a coarser grid keeps all of it.
            let wild = VectorField::from_fn(&g, |p, v| {
                for a in 0..p.len() {
                    v[a] = 3.0 * p[a] - 1.0 + 0.3 * (9.0 * p[(a + 1) % p.len()]).sin();
                }
            });
            let coarse = Grid::uniform(
                &vec![10; dim],
                &vec![0.0; dim],
                &vec![1.0; dim],
                BoundaryKind::Neumann,
            )
            .unwrap();
            let nu = push_forward(&mu, &wild, &coarse).unwrap();
            assert!(((nu.integral() - mu.integral()) / mu.integral()).abs() < 1e-13, "{dim}D mass");
            assert!(nu.min() >= 0.0);
        }
    }

    /// The identity's stencil equals the identity's deposit with 1 to 5 sub-cells, in 2D and
    /// 3D, on box and torus axes (uneven cell counts, so the axes are told apart).
    #[test]
    fn the_identity_stencil_is_the_identity_deposit() {
        for kind in [BoundaryKind::Neumann, BoundaryKind::Periodic] {
            for dim in 2..=3 {
                let cells = [7, 5, 6];
                let g =
                    Grid::uniform(&cells[..dim], &vec![0.0; dim], &vec![1.0; dim], kind).unwrap();
                let mu = ScalarField::from_fn(&g, |p| {
                    p.iter().enumerate().map(|(a, x)| ((a + 2) as f64 * 3.1 * x).sin()).sum::<f64>()
                        + 2.0
                });
                let id = VectorField::from_fn(&g, |p, v| v.copy_from_slice(p));
                for s in 1..=5 {
                    let stencil = identity_deposit(&mu, s);
                    let deposit = push_forward_subsampled(&mu, &id, &g, s).unwrap();
                    let diff = stencil
                        .data()
                        .iter()
                        .zip(deposit.data().iter())
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max);
                    assert!(diff < 1e-12, "{kind:?} {dim}D s = {s}: {diff:e}");
                    let changed = stencil
                        .data()
                        .iter()
                        .zip(mu.data().iter())
                        .any(|(a, b)| (a - b).abs() > 1e-3);
                    assert_eq!(changed, s > 1, "{kind:?} {dim}D s = {s}");
                }
            }
        }
    }

    #[test]
    fn whole_cell_translation_shifts_exactly_and_periodic_axes_wrap() {
        let g = Grid::unit(2, 16, BoundaryKind::Periodic).unwrap();
        let mu =
            ScalarField::from_fn(&g, |p| 1.0 + (2.0 * std::f64::consts::PI * p[0]).sin() * p[1]);
        let h = g.axis(0).spacing();
        // Shift by 3 cells in x (wrapping) and −1 cell in y.
        let shift = VectorField::from_fn(&g, |p, v| {
            v[0] = p[0] + 3.0 * h;
            v[1] = p[1] - h;
        });
        let nu = push_forward(&mu, &shift, &g).unwrap();
        for j in 0..16 {
            for i in 0..16 {
                let got = nu.data()[[(j + 15) % 16, (i + 3) % 16]];
                assert!((got - mu.data()[[j, i]]).abs() < 1e-12);
            }
        }
    }

    /// Regression: with sub-cells, the map's slope at the first and last cell of a periodic
    /// axis was differenced across the wrap, where an unwrapped map (x + displacement) jumps
    /// by the period; those cells were smeared over the whole axis (L1 error 0.13 for the
    /// manufactured torus map at 64², with 1.2 missing in the first row). A uniform density
    /// shifted by a fraction of a cell, given unwrapped or wrapped into the period, must stay
    /// uniform to round-off.
    #[test]
    fn sub_cell_slopes_see_through_the_periodic_wrap() {
        let g = Grid::unit(2, 16, BoundaryKind::Periodic).unwrap();
        let mu = ScalarField::from_fn(&g, |_| 1.0);
        let h = g.axis(0).spacing();
        for wrapped in [false, true] {
            let shift = VectorField::from_fn(&g, |p, v| {
                v[0] = p[0] + 0.37 * h;
                v[1] = p[1] - 0.21 * h;
                if wrapped {
                    v[0] = v[0].rem_euclid(1.0);
                    v[1] = v[1].rem_euclid(1.0);
                }
            });
            for s in [2, 3] {
                let nu = push_forward_adaptive(&mu, &shift, &g, s).unwrap();
                let worst = nu.data().iter().fold(0.0f64, |m, v| m.max((v - 1.0).abs()));
                assert!(worst < 1e-12, "wrapped {wrapped}, {s} sub-cells: {worst:e}");
            }
        }
    }

    /// Pushing N(m₁, Σ₁) through its analytic Brenier map gives the moments of N(m₂, Σ₂):
    /// the mean exactly up to the clamped tail mass (linear weights reproduce positions), the covariance up to the
    /// O(h²) smoothing of the deposit. (The pointwise density does not converge: a deformed
    /// lattice deposited one particle per cell aliases, L1 error ≈ 0.08 at 64²–256² here.)
    #[test]
    fn gaussian_through_its_brenier_map_has_the_target_moments() {
        let s = Gaussian::new(vec![0.4, 0.45], vec![vec![0.0064, 0.0], vec![0.0, 0.0064]]).unwrap();
        let t =
            Gaussian::new(vec![0.6, 0.55], vec![vec![0.0036, 0.0012], vec![0.0012, 0.01]]).unwrap();
        let map = GaussianMap::new(s.clone(), t.clone()).unwrap();
        let (mut h, mut cov_err) = (vec![], vec![]);
        for n in [64usize, 128, 256] {
            let g = Grid::unit(2, n, BoundaryKind::Neumann).unwrap();
            let mu = ScalarField::from_fn(&g, |p| s.density(p));
            let tmap = VectorField::from_fn(&g, |p, v| map.apply(p, v));
            let nu = push_forward(&mu, &tmap, &g).unwrap();
            let moment = |f: &dyn Fn(&[f64]) -> f64, rho: &ScalarField| {
                let mut p = [0.0; 3];
                rho.data()
                    .indexed_iter()
                    .map(|(ix, v)| {
                        g.cell_center(&[ix[0], ix[1]], &mut p);
                        f(&p[..2]) * v
                    })
                    .sum::<f64>()
                    * g.cell_volume()
            };
            // The mean of T#μ is the mean of T over μ (the discrete source), exactly.
            let mean_t: Vec<f64> = (0..2)
                .map(|a| {
                    let mut out = [0.0; 2];
                    let mut p = [0.0; 3];
                    mu.data()
                        .indexed_iter()
                        .map(|(ix, v)| {
                            g.cell_center(&[ix[0], ix[1]], &mut p);
                            map.apply(&p[..2], &mut out);
                            out[a] * v
                        })
                        .sum::<f64>()
                        * g.cell_volume()
                })
                .collect();
            let mass = nu.integral();
            for a in 0..2 {
                let m = moment(&|p| p[a], &nu);
                // Exact except for mass mapped outside the box or into the outer half-cells,
                // which is clamped to the edge (here a tail of ~1e-6 of the mass).
                assert!((m - mean_t[a]).abs() < 1e-6, "n={n}: mean {m} vs {}", mean_t[a]);
            }
            let mx = moment(&|p| p[0], &nu) / mass;
            let my = moment(&|p| p[1], &nu) / mass;
            let cxx = moment(&|p| (p[0] - mx).powi(2), &nu) / mass;
            let cxy = moment(&|p| (p[0] - mx) * (p[1] - my), &nu) / mass;
            let cyy = moment(&|p| (p[1] - my).powi(2), &nu) / mass;
            let e = (cxx - t.covariance[(0, 0)])
                .abs()
                .max((cxy - t.covariance[(0, 1)]).abs())
                .max((cyy - t.covariance[(1, 1)]).abs());
            h.push(1.0 / n as f64);
            cov_err.push(e);
        }
        let orders = crate::analytic::manufactured::observed_orders(&h, &cov_err);
        assert!(
            orders.iter().all(|&o| o >= 1.8),
            "covariance errors {cov_err:?}, orders {orders:?}"
        );
    }
}
