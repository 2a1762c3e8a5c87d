//! A density sampled on slabs, checked and normalised as the serial run does: every rank
//! holds only its planes, and the checks and the mass are collectives, so every rank reaches
//! the same verdict with the same message and the normalised values equal
//! [`crate::field::ScalarField::to_density`]'s to the bit.

use super::exchange::Exchange;
use super::sum::{pencil_sum, slab_sum};
use crate::error::{Error, Result};
use crate::grid::{Grid, PencilDecomposition, SlabDecomposition};
use rayon::prelude::*;

/// The smallest of `value` over the ranks (`+∞` where every rank gives `+∞`). A collective.
fn min_over_ranks(exchange: &impl Exchange, value: f64) -> f64 {
    -exchange.max(-value)
}

/// This rank's planes `values` of the `what` density (`"source"`, `"target"`) normalised to
/// unit mass over every rank's planes, with the whole density's mass — the slab's part of
/// [`crate::field::ScalarField::to_density`], to the bit (the mass is added in the serial
/// order, [`slab_sum`]). A NaN or infinite value (the first in C order over the whole grid
/// is named), negative values beyond round-off (below −1e-10 max|ρ|) or zero mass fail on
/// every rank with the same message; round-off negatives become zero. A collective.
pub fn slab_density(
    exchange: &impl Exchange,
    slabs: &SlabDecomposition,
    values: Vec<f64>,
    what: &str,
) -> Result<(Vec<f64>, f64)> {
    let offset = slabs.cells(exchange.rank()).start;
    let total = |v: &[f64]| slab_sum(exchange, slabs, |i| v[i]);
    density_on(exchange, slabs.grid(), values, what, |i| offset + i, total)
}

/// [`slab_density`] on y–z pencils: `values` this rank's block of the 3D grid's
/// [`PencilDecomposition`]. The same checks and messages (the first bad value in C order
/// over the whole grid); the mass added in the serial order ([`pencil_sum`]), so the
/// normalised values equal the serial ones to the bit. A collective.
pub fn pencil_density(
    exchange: &impl Exchange,
    pencils: &PencilDecomposition,
    values: Vec<f64>,
    what: &str,
) -> Result<(Vec<f64>, f64)> {
    let rank = exchange.rank();
    let total = |v: &[f64]| pencil_sum(exchange, pencils, |i| v[i]);
    density_on(exchange, pencils.grid(), values, what, |i| pencils.to_global(rank, i), total)
}

/// The checks and normalisation of a density held in blocks: `global(i)` the global flat
/// index of this rank's i-th value, `total` the sum over every rank's values.
fn density_on(
    exchange: &impl Exchange,
    grid: &Grid,
    mut values: Vec<f64>,
    what: &str,
    global: impl Fn(usize) -> usize,
    total: impl Fn(&[f64]) -> f64,
) -> Result<(Vec<f64>, f64)> {
    // The first bad value in global C order: the smallest global index of a bad value.
    let first_bad =
        values.iter().enumerate().filter(|(_, v)| !v.is_finite()).map(|(i, _)| global(i)).min();
    let first_bad = min_over_ranks(exchange, first_bad.map_or(f64::INFINITY, |i| i as f64));
    if first_bad.is_finite() {
        let shape = grid.storage_shape();
        let mut index = vec![0; shape.len()];
        crate::grid::unflatten(first_bad as usize, &shape, &mut index, 0);
        return Err(Error::invalid(format!(
            "{what} density: NaN or infinite value at storage index {index:?}"
        )));
    }
    let scale = exchange
        .max(values.par_iter().fold(|| 0.0f64, |m, v| m.max(v.abs())).reduce(|| 0.0, f64::max));
    let min =
        min_over_ranks(exchange, values.par_iter().copied().reduce(|| f64::INFINITY, f64::min));
    if min < -1e-10 * scale {
        return Err(Error::invalid(format!(
            "{what} density: cannot be a density: it has negative values (min {min:.3e}, max |u| {scale:.3e})"
        )));
    }
    values.par_iter_mut().for_each(|v| *v = v.max(0.0));
    let mass = total(&values) * grid.cell_volume();
    if mass.is_nan() || mass <= 0.0 {
        return Err(Error::invalid(format!(
            "{what} density: cannot be a density: its mass is zero"
        )));
    }
    values.par_iter_mut().for_each(|v| *v /= mass);
    Ok((values, mass))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::{test_grid, LocalWorld};
    use crate::field::ScalarField;
    use crate::grid::BoundaryKind::{Neumann, Periodic};

    /// On 1–5 ranks, uneven slabs, 2D and 3D: every rank's normalised planes and the mass
    /// equal the serial `to_density`'s to the bit.
    #[test]
    fn slab_densities_equal_the_serial_ones_to_the_bit() {
        for (shape, kinds) in [
            (vec![37usize, 29, 23], vec![Neumann, Neumann, Periodic]),
            (vec![64, 64, 9], vec![Neumann; 3]),
            (vec![130, 61], vec![Periodic, Neumann]),
        ] {
            let grid = test_grid(&shape, &kinds);
            let f = ScalarField::from_fn(&grid, |p| {
                (-40.0 * p.iter().map(|x| (x - 0.4).powi(2)).sum::<f64>()).exp() - 1e-13
            });
            let (serial, mass) = f.to_density().unwrap();
            let serial = serial.data().as_slice().unwrap().to_vec();
            for ranks in 1..=5 {
                let slabs = SlabDecomposition::new(&grid, ranks).unwrap();
                let results = LocalWorld::run(ranks, |ex| {
                    let planes = slabs.planes(ex.rank());
                    slab_density(ex, &slabs, f.planes(planes).to_vec(), "source").unwrap()
                });
                for (r, (values, m)) in results.iter().enumerate() {
                    assert_eq!(m.to_bits(), mass.to_bits(), "{shape:?}, {ranks} ranks");
                    let mine = &serial[slabs.cells(r)];
                    assert!(
                        values.iter().zip(mine).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{shape:?}, rank {r} of {ranks}"
                    );
                }
            }
        }
    }

    /// A NaN on one rank's planes, a negative value, zero mass: every rank fails with the
    /// same one-line message, naming the whole grid's first bad index.
    #[test]
    fn bad_densities_fail_alike_on_every_rank() {
        let grid = test_grid(&[6, 5, 8], &[Neumann; 3]);
        let plane = 30;
        type Value = Box<dyn Fn(usize) -> f64 + Sync>;
        let cases: [(&str, Value, &str); 3] = [
            (
                "nan",
                Box::new(
                    move |i| if i == 6 * plane + 7 || i == 7 * plane { f64::NAN } else { 1.0 },
                ),
                "NaN or infinite value at storage index [6, 1, 1]",
            ),
            (
                "negative",
                Box::new(|i| if i == 3 { -0.5 } else { 1.0 }),
                "negative values (min -5.000e-1",
            ),
            ("zero", Box::new(|_| 0.0), "its mass is zero"),
        ];
        for (name, value, expected) in cases {
            for ranks in [1, 3, 4] {
                let slabs = SlabDecomposition::new(&grid, ranks).unwrap();
                let messages = LocalWorld::run(ranks, |ex| {
                    let cells = slabs.cells(ex.rank());
                    let values = cells.map(&value).collect();
                    slab_density(ex, &slabs, values, "target").unwrap_err().to_string()
                });
                for m in &messages {
                    assert_eq!(m, &messages[0], "{name}, {ranks} ranks");
                    assert!(m.contains(expected) && m.starts_with("target density"), "{name}: {m}");
                }
            }
        }
    }

    /// On y–z pencils (6 and 8 ranks on 3 planes): the normalised blocks and the mass equal
    /// the serial `to_density`'s to the bit; a NaN in two ranks' blocks names the whole
    /// grid's first bad index on every rank.
    #[test]
    fn pencil_densities_equal_the_serial_ones() {
        let grid = test_grid(&[9, 8, 3], &[Neumann, Periodic, Neumann]);
        let f = ScalarField::from_fn(&grid, |p| {
            (-40.0 * p.iter().map(|x| (x - 0.4).powi(2)).sum::<f64>()).exp()
        });
        let (serial, mass) = f.to_density().unwrap();
        let serial: Vec<f64> = serial.data().iter().copied().collect();
        let values: Vec<f64> = f.data().iter().copied().collect();
        for ranks in [6, 8] {
            let pencils = PencilDecomposition::new(&grid, ranks).unwrap();
            let results = LocalWorld::run(ranks, |ex| {
                let block = pencils.block(ex.rank(), &values);
                let mut bad = block.clone();
                // Global cells 2·72 + 9 + 4 (first) and 2·72 + 5·9 + 1.
                for g in [2 * 72 + 9 + 4, 2 * 72 + 5 * 9 + 1] {
                    let (r, l) = pencils.to_local(g);
                    if r == ex.rank() {
                        bad[l] = f64::NAN;
                    }
                }
                let nan = pencil_density(ex, &pencils, bad, "source").unwrap_err().to_string();
                (pencil_density(ex, &pencils, block, "source").unwrap(), nan)
            });
            for (r, ((values, m), nan)) in results.iter().enumerate() {
                assert_eq!(m.to_bits(), mass.to_bits(), "{ranks} ranks: mass {m} vs {mass}");
                assert!(*values == pencils.block(r, &serial), "{ranks} ranks: rank {r}");
                assert!(nan.contains("storage index [2, 1, 4]"), "{nan}");
            }
        }
    }
}
