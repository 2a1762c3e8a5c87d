//! Arrays read onto the run's grid: a dataset of an otgrid file (which carries its grid:
//! domain, shape and boundary kinds are compared with the run's, and a mismatch is refused
//! unless resampling is asked for), a dataset of any other HDF5 file or a `.npy` array
//! (which carry none: the shape is checked and a warning says the run's domain is assumed).

use crate::error::{Error, Result};
use crate::field::ScalarField;
use crate::grid::Grid;
use std::path::{Path, PathBuf};

/// How an input array is mapped onto another grid when resampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// A density: conservative (cell-overlap) resampling keeps its mass.
    Density,
    /// A coefficient or initial value: multilinear interpolation.
    Field,
}

/// Where input files are found and whether arrays on another grid are resampled.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// Directory that relative file names are resolved against.
    pub base: PathBuf,
    /// Map arrays from their own grid onto the run's (`--resample`) instead of refusing.
    pub resample: bool,
}

impl Inputs {
    /// Relative paths against `base`, no resampling.
    pub fn new(base: impl Into<PathBuf>) -> Inputs {
        Inputs { base: base.into(), resample: false }
    }

    /// Reads `file` (relative to `base`) — dataset `dataset` of an HDF5 file, or a `.npy`
    /// array when `dataset` is `None` — as a field on `grid`; `what` names it in errors.
    pub fn read(
        &self,
        file: &str,
        dataset: Option<&str>,
        grid: &Grid,
        what: &str,
        quantity: Quantity,
    ) -> Result<ScalarField> {
        let path = self.base.join(file);
        if !path.is_file() {
            return Err(Error::invalid(format!("{what}: no such file {}", path.display())));
        }
        let field = match dataset {
            Some(name) => self.read_hdf5(&path, name, grid, what, quantity)?,
            None => {
                let data = read_npy(&path, what)?;
                self.without_grid(&path, data, grid, what)?
            }
        };
        if let Some(index) = field.first_non_finite() {
            return Err(Error::format(
                &path,
                format!("{what}: NaN or infinite value at storage index {index:?}"),
            ));
        }
        Ok(field)
    }

    /// The part `window` (one rank's slab or pencil block) of what [`Inputs::read`] reads, C
    /// order, unchecked for finiteness (on decomposed grids that check needs every rank's
    /// part). A dataset of an HDF5 file already on `grid` (an otgrid file on it, or any
    /// other file of its shape) is read as that hyperslab alone; anything else (a `.npy`
    /// array, a resampled dataset) is read whole, checked, and cut.
    pub fn read_window(
        &self,
        file: &str,
        dataset: Option<&str>,
        grid: &Grid,
        window: &crate::grid::Window,
        what: &str,
    ) -> Result<Vec<f64>> {
        #[cfg(feature = "hdf5")]
        if let Some(name) = dataset {
            let path = self.base.join(file);
            if path.is_file() {
                if let Some(values) = self.read_hdf5_window(&path, name, grid, window, what)? {
                    return Ok(values);
                }
            }
        }
        let whole = self.read(file, dataset, grid, what, Quantity::Density)?;
        Ok(window.cut(grid, whole.data().as_slice().expect("contiguous")))
    }

    /// The hyperslab of `window` when dataset `name` of `path` lies on `grid` as it is (no
    /// resampling); `None` when it does not (then [`Inputs::read`] reads it, or says why not).
    #[cfg(feature = "hdf5")]
    fn read_hdf5_window(
        &self,
        path: &Path,
        name: &str,
        grid: &Grid,
        window: &crate::grid::Window,
        what: &str,
    ) -> Result<Option<Vec<f64>>> {
        use hdf5::{Hyperslab, Selection, SliceOrIndex};
        let file = super::h5::open(path)?;
        let Ok(ds) = file.dataset(name.trim_start_matches('/')) else { return Ok(None) };
        let shape = grid.storage_shape();
        if ds.shape() != shape {
            return Ok(None);
        }
        if super::h5::is_otgrid(&file) {
            super::h5::checked_version(&file, path)?;
            if &super::h5::read_grid(&file, path)? != grid {
                return Ok(None);
            }
        } else if self.resample {
            return Ok(None);
        } else {
            tracing::warn!(
                "{what}: {} carries no grid; assuming it covers the run's domain ({grid})",
                path.display()
            );
        }
        let mut slices = vec![SliceOrIndex::from(window.planes.clone())];
        slices.extend(shape[1..].iter().enumerate().map(|(k, &n)| match (k, &window.rows) {
            (0, Some(rows)) if shape.len() == 3 => SliceOrIndex::from(rows.clone()),
            _ => SliceOrIndex::from(0..n),
        }));
        let selection = Selection::from(Hyperslab::from(slices));
        let data: ndarray::ArrayD<f64> =
            ds.read_slice(selection).map_err(|e| Error::hdf5(path, e))?;
        Ok(Some(data.as_standard_layout().iter().copied().collect()))
    }

    #[cfg(not(feature = "hdf5"))]
    fn read_hdf5(
        &self,
        path: &Path,
        _: &str,
        _: &Grid,
        what: &str,
        _: Quantity,
    ) -> Result<ScalarField> {
        Err(Error::unsupported("hdf5", format!("{what}: reading {}", path.display())))
    }

    #[cfg(feature = "hdf5")]
    fn read_hdf5(
        &self,
        path: &Path,
        name: &str,
        grid: &Grid,
        what: &str,
        quantity: Quantity,
    ) -> Result<ScalarField> {
        let file = super::h5::open(path)?;
        let ds = file
            .dataset(name.trim_start_matches('/'))
            .map_err(|_| Error::format(path, format!("{what}: missing dataset {name}")))?;
        let data: ndarray::ArrayD<f64> = ds.read_dyn().map_err(|e| Error::hdf5(path, e))?;
        if !super::h5::is_otgrid(&file) {
            return self.without_grid(path, data, grid, what);
        }
        super::h5::checked_version(&file, path)?;
        let own = super::h5::read_grid(&file, path)?;
        let field = ScalarField::new(own.clone(), data)
            .map_err(|e| Error::format(path, format!("{what}: dataset {name}: {e}")))?;
        if &own == grid {
            return Ok(field);
        }
        if !self.resample {
            return Err(Error::GridMismatch {
                what: what.to_string(),
                input: format!("{}:{name}", path.display()),
                found: own.to_string(),
                expected: grid.to_string(),
            });
        }
        let moved = match quantity {
            Quantity::Density => crate::field::resample::conservative(&field, grid)?,
            Quantity::Field => crate::field::resample::multilinear(&field, grid)?,
        };
        if quantity == Quantity::Density {
            let (before, after) = (field.integral(), moved.integral());
            if (before - after).abs() > 1e-9 * before.abs() {
                tracing::warn!(
                    "{what}: {:.3}% of the mass lies outside the run's box and was dropped by resampling",
                    100.0 * (before - after) / before
                );
            }
        }
        tracing::info!("{what}: resampled ({quantity:?}) from {own} onto {grid}");
        Ok(moved)
    }

    /// An array without a grid: the shape must match; the domain is assumed.
    fn without_grid(
        &self,
        path: &Path,
        data: ndarray::ArrayD<f64>,
        grid: &Grid,
        what: &str,
    ) -> Result<ScalarField> {
        if self.resample {
            return Err(Error::invalid(format!(
                "{what}: {} carries no grid, so it cannot be resampled; give an array of shape {:?} ([z][y][x]) on the run's grid",
                path.display(),
                grid.storage_shape()
            )));
        }
        let field = ScalarField::new(grid.clone(), data)
            .map_err(|e| Error::format(path, format!("{what}: {e}")))?;
        tracing::warn!(
            "{what}: {} carries no grid; assuming it covers the run's domain ({grid})",
            path.display()
        );
        Ok(field)
    }
}

/// Reads a `.npy` array of f64 (or f32, widened) in C order.
pub(super) fn read_npy(path: &Path, what: &str) -> Result<ndarray::ArrayD<f64>> {
    use ndarray_npy::ReadNpyExt;
    let open = || std::fs::File::open(path).map_err(|e| Error::io(path, e));
    match ndarray::ArrayD::<f64>::read_npy(open()?) {
        Ok(a) => Ok(a),
        Err(first) => {
            ndarray::ArrayD::<f32>::read_npy(open()?).map(|a| a.mapv(f64::from)).map_err(|_| {
                Error::format(
                    path,
                    format!(
                        "{what}: not a readable .npy array of float64/float32 ({})",
                        crate::error::one_line(&first.to_string())
                    ),
                )
            })
        }
    }
}
