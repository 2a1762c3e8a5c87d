//! Grid hierarchies on slabs: [`crate::ot::multilevel`]'s restriction (cell averages) and
//! cubic prolongation, each rank computing its planes of the coarse (fine) level from the
//! planes of the fine (coarse) level that its cells read — gathered in one `Alltoallv` —
//! with the serial arithmetic in the serial order, so the result is the serial one to the
//! bit. Every level has its own balanced slab decomposition.

use super::exchange::Exchange;
use super::layout::axis_by_axis;
use super::pushforward::{gather_planes, GatheredLines};
use super::sum::{pencil_sum, slab_sum};
use super::with_slab_cells;
use crate::error::Result;
use crate::grid::{Grid, PencilDecomposition, SlabDecomposition};
use crate::ot::multilevel::{cell_average, resample_axis, stencil, PROLONG_POINTS, SAMPLE_POINTS};
use rayon::prelude::*;

/// This rank's planes of [`crate::ot::multilevel::restrict`]`(fine, coarse)`: each coarse
/// cell the mean of the fine cells it covers (2^k per halved axis), summed x fastest as the
/// serial restriction sums. `block`: this rank's planes of the fine field. A collective.
pub fn slab_restrict(
    exchange: &impl Exchange,
    fine: &Grid,
    coarse: &Grid,
    block: &[f64],
) -> Result<Vec<f64>> {
    let ranks = exchange.size();
    let rank = exchange.rank();
    let (fs, cs) = (SlabDecomposition::new(fine, ranks)?, SlabDecomposition::new(coarse, ranks)?);
    let d = fine.dim();
    let ratio: Vec<usize> = (0..d).map(|a| fine.axis(a).cells / coarse.axis(a).cells).collect();
    let rz = ratio[d - 1];
    // Each rank reads the fine planes under its coarse planes, in order.
    let wanted: Vec<Vec<usize>> =
        (0..ranks).map(|q| (cs.planes(q).start * rz..cs.planes(q).end * rz).collect()).collect();
    let under = gather_planes(exchange, &fs, block, fs.plane_cells(), &wanted)?;
    let (fshape, cshape) = (fine.shape(), coarse.shape());
    let mine = cs.cells(rank);
    let first = wanted[rank].first().map_or(0, |&j| j * fs.plane_cells());
    Ok(mine
        .into_par_iter()
        .map(|flat| cell_average(flat, (&cshape, &fshape), &ratio, |i| under[i - first]))
        .collect())
}

/// This rank's planes of [`crate::ot::multilevel::prolong`]`(coarse, fine)` (fine's axes
/// the same or twice coarse's): the axes a slab holds whole resampled on the rank's coarse
/// planes, then the slab axis' cubic stencils on the coarse planes they read (gathered), in
/// the serial order. `block`: this rank's planes of the coarse field. A collective.
pub fn slab_prolong(
    exchange: &impl Exchange,
    coarse: &Grid,
    fine: &Grid,
    block: &[f64],
) -> Result<Vec<f64>> {
    let ranks = exchange.size();
    let rank = exchange.rank();
    let (cs, fs) = (SlabDecomposition::new(coarse, ranks)?, SlabDecomposition::new(fine, ranks)?);
    let d = coarse.dim();
    // The axes within a plane (x first), on this rank's coarse planes.
    let mut shape = coarse.storage_shape();
    shape[0] = cs.planes(rank).len();
    let mut data = block.to_vec();
    for a in 0..d - 1 {
        let k = d - 1 - a;
        if fine.axis(a).cells == coarse.axis(a).cells {
            continue;
        }
        let periodic = coarse.axis(a).boundary.is_periodic();
        let m = 2 * shape[k];
        data = resample_axis(&data, &shape, k, periodic, PROLONG_POINTS, m, |i| {
            (i as f64 - 0.5) / 2.0
        });
        shape[k] = m;
    }
    if fine.axis(d - 1).cells == coarse.axis(d - 1).cells {
        return Ok(data);
    }
    resample_planes(exchange, (&cs, &fs), &data, PROLONG_POINTS, |i| (i as f64 - 0.5) / 2.0)
}

/// This rank's planes of [`crate::ot::multilevel::sample`]`(fine, coarse)` — the fine
/// density's point values at the coarse centres by 6-point quintic interpolation per halving,
/// clamped at 0 and normalised to unit mass (the cell averages, [`slab_restrict`], where
/// that leaves no mass) — to the bit: the axes a slab holds whole halved on the rank's fine
/// planes, then the slab axis one halving at a time (each on its own balanced slabs), the
/// mass added in the serial order ([`slab_sum`]). `block`: this rank's planes of the fine
/// density. A collective.
pub fn slab_sample(
    exchange: &impl Exchange,
    fine: &Grid,
    coarse: &Grid,
    block: &[f64],
) -> Result<Vec<f64>> {
    let ranks = exchange.size();
    let rank = exchange.rank();
    let d = fine.dim();
    let mut shape = fine.storage_shape();
    shape[0] = SlabDecomposition::new(fine, ranks)?.planes(rank).len();
    let mut data = block.to_vec();
    let at = |i: usize| 2.0 * i as f64 + 0.5;
    for a in 0..d - 1 {
        let k = d - 1 - a;
        let periodic = fine.axis(a).boundary.is_periodic();
        while shape[k] > coarse.axis(a).cells {
            let m = shape[k] / 2;
            data = resample_axis(&data, &shape, k, periodic, SAMPLE_POINTS, m, at);
            shape[k] = m;
        }
    }
    // The slab axis, halving by halving: `from` has the coarse axes within a plane.
    let mut from = with_slab_cells(coarse, fine.axis(d - 1).cells)?;
    while from.axis(d - 1).cells > coarse.axis(d - 1).cells {
        let to = with_slab_cells(coarse, from.axis(d - 1).cells / 2)?;
        let slabs = (SlabDecomposition::new(&from, ranks)?, SlabDecomposition::new(&to, ranks)?);
        data = resample_planes(exchange, (&slabs.0, &slabs.1), &data, SAMPLE_POINTS, at)?;
        from = to;
    }
    data.par_iter_mut().for_each(|v| *v = v.max(0.0));
    let slabs = SlabDecomposition::new(coarse, ranks)?;
    let mass = slab_sum(exchange, &slabs, |i| data[i]) * coarse.cell_volume();
    if !(mass > 0.0 && mass.is_finite()) {
        return slab_restrict(exchange, fine, coarse, block);
    }
    data.par_iter_mut().for_each(|v| *v /= mass);
    Ok(data)
}

/// This rank's pencil block of [`crate::ot::multilevel::restrict`]`(fine, coarse)` on y–z
/// pencils ([`PencilDecomposition::new`] of each grid): each coarse cell the mean of the
/// fine cells it covers, summed as the serial restriction sums, from the fine x lines under
/// the rank's coarse rows and planes (gathered in one `Alltoallv`) — to the bit. `block`:
/// this rank's block of the fine field. A collective.
pub fn pencil_restrict(
    exchange: &impl Exchange,
    fine: &Grid,
    coarse: &Grid,
    block: &[f64],
) -> Result<Vec<f64>> {
    let ranks = exchange.size();
    let rank = exchange.rank();
    let (fp, cp) =
        (PencilDecomposition::new(fine, ranks)?, PencilDecomposition::new(coarse, ranks)?);
    let ratio: Vec<usize> = (0..3).map(|a| fine.axis(a).cells / coarse.axis(a).cells).collect();
    let (fshape, cshape) = (fine.shape(), coarse.shape());
    let (nx, ny) = (fshape[0], fshape[1]);
    // The fine x lines (id z·ny + y) under each rank's coarse rows and planes.
    let wanted: Vec<Vec<usize>> = (0..ranks)
        .map(|q| {
            let (rows, planes) = (cp.rows(q), cp.planes(q));
            let ys = rows.start * ratio[1]..rows.end * ratio[1];
            (planes.start * ratio[2]..planes.end * ratio[2])
                .flat_map(|z| ys.clone().map(move |y| z * ny + y))
                .collect()
        })
        .collect();
    let under = GatheredLines::gather(exchange, &fp, block, nx, &wanted)?;
    Ok((0..cp.len(rank))
        .into_par_iter()
        .map(|k| {
            let flat = cp.to_global(rank, k);
            cell_average(flat, (&cshape, &fshape), &ratio, |i| under.line(i / nx)[i % nx])
        })
        .collect())
}

/// This rank's pencil block of [`crate::ot::multilevel::prolong`]`(coarse, fine)` on y–z
/// pencils ([`PencilDecomposition::new`] of each grid): each doubled axis' cubic stencils on
/// whole lines ([`axis_by_axis`]) — the serial prolongation's values (the test asserts them
/// equal). A collective.
pub fn pencil_prolong(
    exchange: &impl Exchange,
    coarse: &Grid,
    fine: &Grid,
    block: &[f64],
) -> Result<Vec<f64>> {
    let ranks = exchange.size();
    let (from, to) =
        (PencilDecomposition::new(coarse, ranks)?, PencilDecomposition::new(fine, ranks)?);
    axis_by_axis(exchange, &from, &to, block, |values, shape, a| {
        if fine.axis(a).cells == shape[2] {
            return values.to_vec();
        }
        let periodic = coarse.axis(a).boundary.is_periodic();
        resample_axis(values, &shape, 2, periodic, PROLONG_POINTS, 2 * shape[2], |i| {
            (i as f64 - 0.5) / 2.0
        })
    })
}

/// This rank's pencil block of [`crate::ot::multilevel::sample`]`(fine, coarse)` on y–z
/// pencils: each axis halved by the serial quintic interpolation on whole lines
/// ([`axis_by_axis`]), clamped at 0 and normalised to unit mass; where that leaves no mass,
/// the cell averages (pairs averaged axis by axis). The mass added in the serial order
/// ([`pencil_sum`]): the serial sampling to the bit. A collective.
pub fn pencil_sample(
    exchange: &impl Exchange,
    fine: &Grid,
    coarse: &Grid,
    block: &[f64],
) -> Result<Vec<f64>> {
    let ranks = exchange.size();
    let (from, to) =
        (PencilDecomposition::new(fine, ranks)?, PencilDecomposition::new(coarse, ranks)?);
    let mut data = axis_by_axis(exchange, &from, &to, block, |values, shape, a| {
        let periodic = fine.axis(a).boundary.is_periodic();
        let (mut values, mut shape) = (values.to_vec(), shape);
        while shape[2] > coarse.axis(a).cells {
            let m = shape[2] / 2;
            values = resample_axis(&values, &shape, 2, periodic, SAMPLE_POINTS, m, |i| {
                2.0 * i as f64 + 0.5
            });
            shape[2] = m;
        }
        values
    })?;
    data.par_iter_mut().for_each(|v| *v = v.max(0.0));
    let mass = pencil_sum(exchange, &to, |i| data[i]) * coarse.cell_volume();
    if !(mass > 0.0 && mass.is_finite()) {
        return axis_by_axis(exchange, &from, &to, block, |values, shape, a| {
            let ratio = shape[2] / coarse.axis(a).cells;
            values
                .chunks_exact(ratio)
                .map(|cells| cells.iter().sum::<f64>() / ratio as f64)
                .collect()
        });
    }
    data.par_iter_mut().for_each(|v| *v /= mass);
    Ok(data)
}

/// This rank's planes of [`resample_axis`] along the slab axis, from the planes `data` this
/// rank holds under `slabs.0` to its planes under `slabs.1` (the two grids differ only in the
/// slab axis' cells): output plane i at source coordinate `at(i)`, by Lagrange
/// interpolation on `points` source planes — the planes its stencils read gathered in one
/// `Alltoallv`, each output plane summed in the serial order.
fn resample_planes(
    exchange: &impl Exchange,
    slabs: (&SlabDecomposition, &SlabDecomposition),
    data: &[f64],
    points: usize,
    at: impl Fn(usize) -> f64,
) -> Result<Vec<f64>> {
    let (from, to) = slabs;
    let (ranks, rank) = (exchange.size(), exchange.rank());
    let source = from.grid();
    let slab = source.axis(source.dim() - 1);
    let (n, periodic) = (slab.cells, slab.boundary.is_periodic());
    let stencils = |planes: std::ops::Range<usize>| -> Vec<(usize, Vec<f64>)> {
        planes.map(|i| stencil(n, periodic, points, at(i))).collect()
    };
    let wanted: Vec<Vec<usize>> = (0..ranks)
        .map(|q| {
            let mut planes: Vec<usize> = stencils(to.planes(q))
                .iter()
                .flat_map(|(first, w)| (0..w.len()).map(move |j| (first + j) % n))
                .collect();
            planes.sort_unstable();
            planes.dedup();
            planes
        })
        .collect();
    let plane = to.plane_cells();
    let read = gather_planes(exchange, from, data, plane, &wanted)?;
    let mut position = vec![usize::MAX; n];
    for (k, &j) in wanted[rank].iter().enumerate() {
        position[j] = k;
    }
    let mine = stencils(to.planes(rank));
    let mut out = vec![0.0; mine.len() * plane];
    out.par_chunks_mut(plane).zip(mine.par_iter()).for_each(|(row, (first, w))| {
        for (j, wj) in w.iter().enumerate() {
            let line = &read[position[(first + j) % n] * plane..][..plane];
            row.iter_mut().zip(line).for_each(|(v, s)| *v += wj * s);
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::{test_grid, LocalWorld};
    use crate::field::ScalarField;
    use crate::grid::BoundaryKind::{Neumann, Periodic};
    use crate::ot::multilevel::{coarsen, prolong, restrict, sample};

    /// On y–z pencils (2–12 ranks, more than the z planes for most) the sampling (a
    /// zero region: the clamp acts) and prolongation equal the serial ones to the bit,
    /// every axis halved (z too), box and periodic axes.
    #[test]
    fn pencil_sampling_and_prolongation_equal_the_serial_ones_to_the_bit() {
        for (shape, kinds, rank_counts) in [
            (&[12usize, 16, 8][..], &[Neumann, Neumann, Neumann][..], &[2usize, 6, 8, 12][..]),
            (&[16, 12, 6][..], &[Periodic, Neumann, Periodic][..], &[4, 9][..]),
        ] {
            let fine = test_grid(shape, kinds);
            let coarse = coarsen(&fine, 2).expect("coarsens");
            let rho = ScalarField::from_fn(&fine, |x| {
                (-30.0 * x.iter().map(|v| (v - 0.4).powi(2)).sum::<f64>()).exp()
                    * f64::from(u8::from(x[0] < 0.7))
            });
            let c = ScalarField::from_fn(&coarse, |x| (2.0 * x[0]).cos() * x[1] + x[2] * 0.3);
            let sampled = sample(&rho, &coarse).unwrap();
            let prolonged = prolong(&c, &fine);
            let flat = |v: &ScalarField| v.data().iter().copied().collect::<Vec<f64>>();
            let (rv, cv, sv, pv) = (flat(&rho), flat(&c), flat(&sampled), flat(&prolonged));
            for &ranks in rank_counts {
                let parts = LocalWorld::run(ranks, |ex| {
                    let fp = PencilDecomposition::new(&fine, ranks).unwrap();
                    let cp = PencilDecomposition::new(&coarse, ranks).unwrap();
                    let r = ex.rank();
                    let s = pencil_sample(ex, &fine, &coarse, &fp.block(r, &rv)).unwrap();
                    let p = pencil_prolong(ex, &coarse, &fine, &cp.block(r, &cv)).unwrap();
                    let worst = |a: &[f64], b: &[f64]| {
                        a.iter().zip(b).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
                    };
                    (worst(&s, &cp.block(r, &sv)), worst(&p, &fp.block(r, &pv)))
                });
                for (s, p) in parts {
                    assert!(s == 0.0, "{shape:?} {ranks} ranks: sample off by {s:e}");
                    assert!(p == 0.0, "{shape:?} {ranks} ranks: prolong off by {p:e}");
                }
            }
        }
    }

    /// On y–z pencils (1–12 ranks) the restriction and the prolongation equal the serial
    /// ones to the bit: every axis halved, some axes only, two levels at once, box and
    /// periodic axes.
    #[test]
    fn pencil_restriction_and_prolongation_equal_the_serial_ones_to_the_bit() {
        // (shape, kinds, levels down, the coarsening's minimum cells per axis)
        for (shape, kinds, levels, min) in [
            (&[12usize, 16, 8][..], &[Neumann, Neumann, Neumann][..], 1, 2),
            (&[16, 12, 6][..], &[Periodic, Neumann, Periodic][..], 1, 2),
            (&[16, 10, 4][..], &[Neumann, Periodic, Neumann][..], 1, 4),
            (&[16, 16, 8][..], &[Neumann, Periodic, Neumann][..], 2, 2),
        ] {
            let fine = test_grid(shape, kinds);
            let mut coarse = fine.clone();
            for _ in 0..levels {
                coarse = coarsen(&coarse, min).expect("coarsens");
            }
            let rho = ScalarField::from_fn(&fine, |x| {
                (-30.0 * x.iter().map(|v| (v - 0.4).powi(2)).sum::<f64>()).exp() + x[1]
            });
            let c = ScalarField::from_fn(&coarse, |x| (2.0 * x[0]).cos() * x[1] + x[2] * 0.3);
            let flat = |v: &ScalarField| v.data().iter().copied().collect::<Vec<f64>>();
            let restricted = flat(&restrict(&rho, &coarse).unwrap());
            let (rv, cv) = (flat(&rho), flat(&c));
            for ranks in [1, 2, 3, 4, 6, 8, 12] {
                let (Ok(fp), Ok(cp)) = (
                    PencilDecomposition::new(&fine, ranks),
                    PencilDecomposition::new(&coarse, ranks),
                ) else {
                    continue;
                };
                let parts = LocalWorld::run(ranks, |ex| {
                    let r = ex.rank();
                    let s = pencil_restrict(ex, &fine, &coarse, &fp.block(r, &rv)).unwrap();
                    (r, s)
                });
                for (r, s) in parts {
                    assert!(s == cp.block(r, &restricted), "{shape:?} {ranks} ranks: restrict");
                }
                if levels == 1 {
                    let prolonged = flat(&prolong(&c, &fine));
                    let parts = LocalWorld::run(ranks, |ex| {
                        let r = ex.rank();
                        (r, pencil_prolong(ex, &coarse, &fine, &cp.block(r, &cv)).unwrap())
                    });
                    for (r, p) in parts {
                        assert!(p == fp.block(r, &prolonged), "{shape:?} {ranks} ranks: prolong");
                    }
                }
            }
        }
    }

    /// On 1–4 ranks the slab restriction, sampling and prolongation equal the serial ones to
    /// the bit: 2D and 3D, box and periodic slab axes, a level that halves only some axes,
    /// and two levels at once (restriction and sampling by 4 along each halved axis).
    #[test]
    fn slab_restriction_sampling_and_prolongation_equal_the_serial_ones_to_the_bit() {
        let cases = [
            (&[24usize, 20][..], &[Neumann, Neumann][..], 1),
            (&[16, 12, 20][..], &[Neumann, Periodic, Neumann][..], 1),
            (&[12, 16, 16][..], &[Periodic, Neumann, Periodic][..], 2),
            (&[10, 16, 9][..], &[Neumann, Neumann, Neumann][..], 1),
        ];
        let mut clamped = 0;
        for (shape, kinds, down) in cases {
            let fine = test_grid(shape, kinds);
            let mut coarse = fine.clone();
            for _ in 0..down {
                coarse = coarsen(&coarse, 2).expect("coarsens");
            }
            let f = ScalarField::from_fn(&fine, |x| {
                (3.0 * x[0]).sin() + x[1] * x[1] + x.get(2).map_or(0.0, |z| (2.0 * z).cos())
            });
            let c = ScalarField::from_fn(&coarse, |x| (2.0 * x[0]).cos() * x[1] + x[d(x)] * 0.3);
            let restricted = restrict(&f, &coarse).unwrap();
            // (A density with a zero region: the sample's clamp at 0 acts.)
            let rho = ScalarField::from_fn(&fine, |x| {
                (-30.0 * x.iter().map(|v| (v - 0.4).powi(2)).sum::<f64>()).exp()
                    * f64::from(u8::from(x[0] < 0.7))
            });
            let sampled = sample(&rho, &coarse).unwrap();
            clamped += usize::from(sampled.data().iter().any(|v| *v == 0.0));
            let mut prolonged = c.clone();
            let mut grids = vec![coarse.clone()];
            while prolonged.grid().axis(0).cells < fine.axis(0).cells
                || prolonged.grid().num_cells() < fine.num_cells()
            {
                let next = finer(prolonged.grid(), &fine);
                prolonged = prolong(&prolonged, &next);
                grids.push(next);
            }
            let flat = |v: &ScalarField| v.data().iter().copied().collect::<Vec<f64>>();
            let (fv, cv, rv) = (flat(&f), flat(&c), flat(&rho));
            for ranks in 1..=4 {
                let got = LocalWorld::run(ranks, |ex| {
                    let fc = SlabDecomposition::new(&fine, ranks).unwrap().cells(ex.rank());
                    let cc = SlabDecomposition::new(&coarse, ranks).unwrap().cells(ex.rank());
                    let r = slab_restrict(ex, &fine, &coarse, &fv[fc.clone()]).unwrap();
                    let s = slab_sample(ex, &fine, &coarse, &rv[fc.clone()]).unwrap();
                    let mut p = cv[cc.clone()].to_vec();
                    for w in grids.windows(2) {
                        p = slab_prolong(ex, &w[0], &w[1], &p).unwrap();
                    }
                    (cc, r, s, fc, p)
                });
                for (cc, r, s, fc, p) in got {
                    assert!(
                        r == flat(&restricted)[cc.clone()],
                        "{shape:?}, {ranks} ranks: restrict"
                    );
                    assert!(s == flat(&sampled)[cc], "{shape:?}, {ranks} ranks: sample");
                    assert!(p == flat(&prolonged)[fc], "{shape:?}, {ranks} ranks: prolong");
                }
            }
        }
        assert!(clamped >= 2, "the sample's clamp at 0 acts in {clamped} cases");
    }

    /// The last coordinate's index (z in 3D, y in 2D).
    fn d(x: &[f64]) -> usize {
        x.len() - 1
    }

    /// The grid between `coarse` and `fine` one doubling up from `coarse`.
    fn finer(coarse: &Grid, fine: &Grid) -> Grid {
        let axes = coarse
            .axes()
            .iter()
            .zip(fine.axes())
            .map(|(c, f)| crate::grid::Axis {
                cells: if c.cells < f.cells { 2 * c.cells } else { c.cells },
                ..c.clone()
            })
            .collect();
        Grid::new(axes).unwrap()
    }
}
