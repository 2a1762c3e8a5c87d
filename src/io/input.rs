//! Arrays read onto the run's grid: a dataset of an otgrid file (which carries its grid:
//! domain, shape and boundary kinds are compared with the run's, and a mismatch is refused
//! unless resampling is asked for), a dataset of any other HDF5 file or a `.npy` array
//! (which carry none: the shape is checked and a warning says the run's domain is assumed).
//! A decomposed run reads its window alone from an HDF5 dataset or a `.npy` array already on
//! its grid ([`Inputs::read_window`]).

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
    /// other file of its shape) is read as that hyperslab alone, a float `.npy` array of
    /// `grid`'s shape in C order as the window's lines alone ([`read_npy_window`]); anything
    /// else (another `.npy`, a resampled dataset) is read whole, checked, and cut.
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
        if dataset.is_none() && !self.resample {
            let path = self.base.join(file);
            if let Some(values) = read_npy_window(&path, grid, window)? {
                tracing::warn!(
                    "{what}: {} carries no grid; assuming it covers the run's domain ({grid})",
                    path.display()
                );
                return Ok(values);
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

/// The lines of `window` of the `.npy` array at `path` when it is a little-endian float64 or
/// float32 array in C order of `grid`'s storage shape — read line run by line run from the
/// file, never the whole array; `None` otherwise (no such file, another header, dtype or
/// shape: then [`read_npy`] reads it whole, or says why not).
pub(super) fn read_npy_window(
    path: &Path,
    grid: &Grid,
    window: &crate::grid::Window,
) -> Result<Option<Vec<f64>>> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else { return Ok(None) };
    let Some((data_start, wide)) = npy_layout(&mut file, &grid.storage_shape()) else {
        return Ok(None);
    };
    let item = if wide { 8 } else { 4 };
    let (starts, width) = window.lines(grid);
    let mut values = Vec::with_capacity(starts.len() * width);
    let mut bytes = Vec::new();
    // Runs of consecutive lines (a slab's planes are one run) read at once.
    let mut k = 0;
    while k < starts.len() {
        let mut end = k + 1;
        while end < starts.len() && starts[end] == starts[end - 1] + width {
            end += 1;
        }
        let cells = (end - k) * width;
        bytes.resize(cells * item, 0);
        let offset = data_start + (starts[k] * item) as u64;
        file.seek(SeekFrom::Start(offset)).map_err(|e| Error::io(path, e))?;
        file.read_exact(&mut bytes).map_err(|e| Error::io(path, e))?;
        if wide {
            values.extend(bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())));
        } else {
            let narrow = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()));
            values.extend(narrow.map(f64::from));
        }
        k = end;
    }
    Ok(Some(values))
}

/// Where the data of a `.npy` file starts and whether it is float64 (else float32), when its
/// header says a little-endian float array in C order of `shape`; `None` for anything else.
fn npy_layout(file: &mut std::fs::File, shape: &[usize]) -> Option<(u64, bool)> {
    use std::io::Read;
    let mut start = [0u8; 12];
    file.read_exact(&mut start).ok()?;
    if &start[..6] != b"\x93NUMPY" {
        return None;
    }
    let (header_len, prefix) = match start[6] {
        1 => (usize::from(u16::from_le_bytes([start[8], start[9]])), 10),
        2 | 3 => (u32::from_le_bytes(start[8..12].try_into().ok()?) as usize, 12),
        _ => return None,
    };
    let mut header = vec![0u8; (prefix + header_len).checked_sub(12)?];
    file.read_exact(&mut header).ok()?;
    let text: String = start[prefix..].iter().chain(&header).map(|&b| char::from(b)).collect();
    let field = |key: &str| -> Option<&str> {
        let at = text.find(&format!("'{key}':"))? + key.len() + 3;
        Some(text[at..].trim_start())
    };
    let wide = match field("descr")? {
        d if d.starts_with("'<f8'") => true,
        d if d.starts_with("'<f4'") => false,
        _ => return None,
    };
    if !field("fortran_order")?.starts_with("False") {
        return None;
    }
    let dims = field("shape")?.strip_prefix('(')?;
    let dims = &dims[..dims.find(')')?];
    let found: Vec<usize> = dims
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().ok())
        .collect::<Option<_>>()?;
    (found == shape).then_some(((prefix + header_len) as u64, wide))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{BoundaryKind, Window};
    use ndarray_npy::WriteNpyExt;

    /// A window of a `.npy` array on the run's grid is read from the file alone and equals
    /// the whole array's cut — float64 and float32, 3D slabs and pencils, 2D slabs; another
    /// shape, a Fortran-order array or a file that is no `.npy` reads as `None`.
    #[test]
    fn npy_windows_equal_the_cut_of_the_whole_array() {
        let dir = std::env::temp_dir().join(format!("otgrid-npy-window-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, write: &dyn Fn(std::fs::File)| {
            let path = dir.join(name);
            write(std::fs::File::create(&path).unwrap());
            path
        };
        for (cells, windows) in [
            (
                vec![7usize, 6, 5],
                vec![
                    Window::planes(1..3),
                    Window { planes: 0..5, rows: Some(2..4) },
                    Window { planes: 3..4, rows: Some(0..1) },
                ],
            ),
            (vec![9, 4], vec![Window::planes(0..4), Window::planes(2..3)]),
        ] {
            let grid = Grid::uniform(
                &cells,
                &vec![0.0; cells.len()],
                &vec![1.0; cells.len()],
                BoundaryKind::Neumann,
            )
            .unwrap();
            let shape = grid.storage_shape();
            let n = grid.num_cells();
            let values: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() + 1.5).collect();
            let array = ndarray::ArrayD::from_shape_vec(shape.clone(), values.clone()).unwrap();
            let wide = write("wide.npy", &|f| array.write_npy(f).unwrap());
            let narrow = write("narrow.npy", &|f| array.mapv(|v| v as f32).write_npy(f).unwrap());
            let narrowed: Vec<f64> = values.iter().map(|&v| f64::from(v as f32)).collect();
            for window in &windows {
                let got = read_npy_window(&wide, &grid, window).unwrap().unwrap();
                assert_eq!(got, window.cut(&grid, &values), "{cells:?} {window:?}");
                let got = read_npy_window(&narrow, &grid, window).unwrap().unwrap();
                assert_eq!(got, window.cut(&grid, &narrowed), "{cells:?} {window:?} f32");
                let inputs = Inputs::new(&dir);
                let read = inputs.read_window("wide.npy", None, &grid, window, "source").unwrap();
                assert_eq!(read, window.cut(&grid, &values));
            }
            let mut other = shape.clone();
            other[0] += 1;
            let longer = ndarray::ArrayD::<f64>::zeros(other);
            let longer = write("longer.npy", &|f| longer.write_npy(f).unwrap());
            assert!(read_npy_window(&longer, &grid, &windows[0]).unwrap().is_none());
            let fortran = array.t().as_standard_layout().into_owned();
            let fortran = write("fortran.npy", &|f| fortran.t().write_npy(f).unwrap());
            assert!(read_npy_window(&fortran, &grid, &windows[0]).unwrap().is_none());
        }
        let text = write("text.npy", &|mut f| {
            use std::io::Write;
            f.write_all(b"\x93NUMPY\x01\x00\x01\x00{").unwrap()
        });
        let grid = Grid::uniform(&[4, 4], &[0.0; 2], &[1.0; 2], BoundaryKind::Neumann).unwrap();
        assert!(read_npy_window(&text, &grid, &Window::planes(0..2)).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
