//! Point sets on disk: `[n][dim]` arrays of float64, one point per row.
//!
//! The format follows the extension:
//! * `.npy` — a 2D NumPy array (float64, or float32 widened), C order;
//! * `.csv` / `.txt` — one point per line, `dim` numbers separated by commas (or
//!   whitespace); `#` lines and a first line that is not numeric (a header) are skipped;
//! * `.h5` / `.hdf5` — the dataset `/points` `[n][dim]` (an otgrid points file also carries
//!   the root attribute `format = "otgrid-points"` and the writer's attributes).
//!
//! Writes go to a temporary file renamed on success ([`super::AtomicFile`]).

use super::AtomicFile;
use crate::error::{Error, Result};
use ndarray::Array2;
use std::path::Path;

/// The point-file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointFormat {
    Npy,
    Csv,
    Hdf5,
}

impl PointFormat {
    /// The format of `path`, from its extension.
    pub fn of(path: &Path) -> Result<PointFormat> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("npy") => Ok(PointFormat::Npy),
            Some("csv") | Some("txt") => Ok(PointFormat::Csv),
            Some("h5") | Some("hdf5") => Ok(PointFormat::Hdf5),
            _ => Err(Error::invalid(format!(
                "{}: unknown point-file extension (expected .npy, .csv, .txt, .h5 or .hdf5)",
                path.display()
            ))),
        }
    }
}

/// Reads a point set; every coordinate must be finite.
pub fn read_points(path: &Path) -> Result<Array2<f64>> {
    let format = PointFormat::of(path)?;
    if !path.exists() {
        return Err(Error::invalid(format!("{}: no such file", path.display())));
    }
    let points = match format {
        PointFormat::Npy => read_npy(path)?,
        PointFormat::Csv => read_csv(path)?,
        PointFormat::Hdf5 => read_hdf5(path)?,
    };
    if let Some((i, _)) =
        points.outer_iter().enumerate().find(|(_, r)| r.iter().any(|v| !v.is_finite()))
    {
        return Err(Error::format(path, format!("point {i} has a NaN or infinite coordinate")));
    }
    Ok(points)
}

/// Writes a point set (with `attributes` as root attributes of an HDF5 file; ignored by the
/// other formats).
pub fn write_points(path: &Path, points: &Array2<f64>, attributes: &[(&str, &str)]) -> Result<()> {
    let format = PointFormat::of(path)?;
    let tmp = AtomicFile::new(path)?;
    match format {
        PointFormat::Npy => {
            use ndarray_npy::WriteNpyExt;
            let file = std::fs::File::create(tmp.path()).map_err(|e| Error::io(path, e))?;
            let mut w = std::io::BufWriter::new(file);
            points
                .write_npy(&mut w)
                .map_err(|e| Error::format(path, format!("writing .npy: {e}")))?;
            use std::io::Write;
            w.flush().map_err(|e| Error::io(path, e))?;
        }
        PointFormat::Csv => {
            use std::io::Write;
            let file = std::fs::File::create(tmp.path()).map_err(|e| Error::io(path, e))?;
            let mut w = std::io::BufWriter::new(file);
            let names = ["x", "y", "z"];
            let header: Vec<&str> =
                (0..points.ncols()).map(|a| names.get(a).copied().unwrap_or("c")).collect();
            writeln!(w, "{}", header.join(",")).map_err(|e| Error::io(path, e))?;
            for row in points.outer_iter() {
                let line: Vec<String> = row.iter().map(|v| format!("{v:e}")).collect();
                writeln!(w, "{}", line.join(",")).map_err(|e| Error::io(path, e))?;
            }
            w.flush().map_err(|e| Error::io(path, e))?;
        }
        PointFormat::Hdf5 => write_hdf5(tmp.path(), path, points, attributes)?,
    }
    tmp.commit()?;
    Ok(())
}

fn read_npy(path: &Path) -> Result<Array2<f64>> {
    let a = super::input::read_npy(path, "points")?;
    let shape = a.shape().to_vec();
    if shape.len() != 2 {
        return Err(Error::format(
            path,
            format!("points must be a 2D array [n][dim], got shape {shape:?}"),
        ));
    }
    a.into_dimensionality::<ndarray::Ix2>().map_err(|e| Error::format(path, format!("points: {e}")))
}

fn read_csv(path: &Path) -> Result<Array2<f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> =
            line.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).collect();
        let parsed: std::result::Result<Vec<f64>, _> =
            fields.iter().map(|s| s.parse::<f64>()).collect();
        match parsed {
            Ok(row) => rows.push(row),
            Err(_) if rows.is_empty() => continue, // a header
            Err(_) => {
                return Err(Error::format(path, format!("line {}: not a row of numbers", k + 1)))
            }
        }
    }
    let dim = rows.first().map_or(0, Vec::len);
    if dim == 0 {
        return Err(Error::format(path, "no points"));
    }
    if let Some(i) = rows.iter().position(|r| r.len() != dim) {
        return Err(Error::format(
            path,
            format!("point {i} has {} coordinates, the first has {dim}", rows[i].len()),
        ));
    }
    let n = rows.len();
    Array2::from_shape_vec((n, dim), rows.into_iter().flatten().collect())
        .map_err(|e| Error::format(path, e.to_string()))
}

#[cfg(feature = "hdf5")]
fn read_hdf5(path: &Path) -> Result<Array2<f64>> {
    let file = super::h5::open(path)?;
    let ds = file
        .dataset("points")
        .map_err(|_| Error::format(path, "no dataset /points (expected [n][dim] float64)"))?;
    let shape = ds.shape();
    if shape.len() != 2 {
        return Err(Error::format(path, format!("/points must be [n][dim], got shape {shape:?}")));
    }
    ds.read_2d::<f64>().map_err(|e| Error::hdf5(path, e))
}

#[cfg(not(feature = "hdf5"))]
fn read_hdf5(path: &Path) -> Result<Array2<f64>> {
    Err(Error::unsupported("hdf5", format!("reading {}", path.display())))
}

#[cfg(feature = "hdf5")]
fn write_hdf5(
    tmp: &Path,
    shown: &Path,
    points: &Array2<f64>,
    attributes: &[(&str, &str)],
) -> Result<()> {
    let inner = || -> hdf5::Result<()> {
        let file = hdf5::File::with_options().with_fapl(|p| p.libver_v18()).create(tmp)?;
        super::h5::put_text(&file, "format", "otgrid-points")?;
        for (k, v) in attributes {
            super::h5::put_text(&file, k, v)?;
        }
        file.new_dataset_builder().with_data(points).create("points")?;
        Ok(())
    };
    inner().map_err(|e| Error::hdf5(shown, e))
}

#[cfg(not(feature = "hdf5"))]
fn write_hdf5(
    _tmp: &Path,
    shown: &Path,
    _points: &Array2<f64>,
    _attributes: &[(&str, &str)],
) -> Result<()> {
    Err(Error::unsupported("hdf5", format!("writing {}", shown.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every format round-trips a point set exactly; CSV skips a header and comments; bad
    /// files get one-line errors.
    #[test]
    fn point_files_round_trip_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = ndarray::array![[0.1, 0.2, 0.3], [1.0 / 3.0, -2.5e-17, 7.0]];
        for name in ["a.npy", "a.csv", "a.txt", "a.h5"] {
            if name.ends_with(".h5") && !cfg!(feature = "hdf5") {
                continue;
            }
            let path = dir.path().join(name);
            write_points(&path, &p, &[("source", "test")]).unwrap();
            assert_eq!(read_points(&path).unwrap(), p, "{name}");
        }
        let csv = dir.path().join("b.csv");
        std::fs::write(&csv, "# comment\nx y\n0.5 0.25\n\n1,2\n").unwrap();
        assert_eq!(read_points(&csv).unwrap(), ndarray::array![[0.5, 0.25], [1.0, 2.0]]);
        std::fs::write(&csv, "1,2\n3\n").unwrap();
        assert!(read_points(&csv).unwrap_err().to_string().contains("point 1 has 1"));
        std::fs::write(&csv, "1,2\n3,x\n").unwrap();
        assert!(read_points(&csv).unwrap_err().to_string().contains("line 2"));
        std::fs::write(&csv, "1,2\n3,nan\n").unwrap();
        assert!(read_points(&csv).unwrap_err().to_string().contains("point 1"));
        std::fs::write(&csv, "x,y\n").unwrap();
        assert!(read_points(&csv).unwrap_err().to_string().contains("no points"));
        assert!(read_points(&dir.path().join("missing.csv"))
            .unwrap_err()
            .to_string()
            .contains("no such file"));
        assert!(read_points(&dir.path().join("a.dat")).is_err());
        let npy = dir.path().join("c.npy");
        use ndarray_npy::WriteNpyExt;
        ndarray::Array1::<f64>::zeros(3).write_npy(std::fs::File::create(&npy).unwrap()).unwrap();
        assert!(read_points(&npy).unwrap_err().to_string().contains("2D array"));
    }
}
