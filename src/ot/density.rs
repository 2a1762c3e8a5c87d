//! Density specifications, as given on the command line (`--source SPEC`, `--target SPEC`):
//!
//! - `gaussian:MEAN:COV` — a Gaussian with mean `MEAN` (d comma-separated numbers) and full
//!   covariance `COV` (d² numbers, row-major; must be symmetric positive definite), e.g.
//!   `gaussian:0.4,0.45:0.0064,0,0,0.0064`;
//! - `uniform` — the constant density on the grid's box;
//! - `case:NAME` — the source (for `--source`) or target (for `--target`) density of a
//!   verification case with a closed-form map ([`Case`]: gaussian-2d, gaussian-3d,
//!   separable-2d, periodic-2d, periodic-3d);
//! - `FILE.h5:/DATASET` — a dataset (for example `/fields/density` written by
//!   `otgrid fokker-planck --as-density`); an otgrid file's grid must match the run's, or be
//!   resampled (see [`crate::io::Inputs`]);
//! - `FILE.npy` — a NumPy array on the run's grid (shape `[z][y][x]`);
//! - `FILE.png` — a grayscale (or RGB, converted to luminance) PNG image whose width × height
//!   equals the 2D grid's cells; the top image row is the largest y (as displayed); values are
//!   the pixel intensities scaled to [0, 1];
//! - `samples:FILE[:cic|:kde|:kde=B]` — samples (a point file: `.npy` `[n][dim]`, CSV or HDF5
//!   `/points`, [`crate::io::points`]) deposited on the grid: a Gaussian KDE (the default,
//!   bandwidth B or Scott's rule) or cloud in cell ([`crate::sample::deposit`]);
//! - anything else is an expression in x, y, z (see docs/problem-files.md), e.g.
//!   `1 + 0.5*cos(2*pi*x)`.
//!
//! The result is sampled at cell centres and is not yet normalised ([`super::Problem::new`]
//! checks and normalises it).

use super::verify::{Case, Role};
use crate::analytic::gaussian::Gaussian;
use crate::error::{Error, Result};
use crate::expr::Expression;
use crate::field::ScalarField;
use crate::grid::Grid;
use crate::io::{Inputs, Quantity};
use std::path::Path;

/// A parsed density specification.
#[derive(Clone, Debug)]
pub enum DensitySpec {
    Gaussian(Gaussian),
    Uniform,
    Case(Case),
    /// A dataset of an HDF5 file, or a `.npy` array (`dataset` is `None`).
    Dataset {
        file: String,
        dataset: Option<String>,
    },
    Image(String),
    /// Samples (a point file, [`crate::io::points`]) deposited on the grid.
    Samples {
        file: String,
        deposit: SampleDeposit,
    },
    Expression(String),
}

/// How `samples:` specifications put their points on the grid ([`crate::sample::deposit`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SampleDeposit {
    /// Cloud in cell: zero far from the samples.
    CloudInCell,
    /// Gaussian KDE with this bandwidth (`None`: Scott's rule, at least a cell).
    Kde(Option<f64>),
}

fn numbers(text: &str, what: &str) -> Result<Vec<f64>> {
    text.split(',')
        .map(|t| {
            t.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| Error::invalid(format!("{what}: '{t}' is not a finite number")))
        })
        .collect()
}

impl DensitySpec {
    /// Parses a specification; `what` names it in errors ("source", "target").
    pub fn parse(text: &str, what: &str) -> Result<DensitySpec> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::invalid(format!("{what}: empty density specification")));
        }
        if text == "uniform" {
            return Ok(DensitySpec::Uniform);
        }
        if let Some(name) = text.strip_prefix("case:") {
            return Case::from_name(name)
                .map(DensitySpec::Case)
                .map_err(|e| Error::invalid(format!("{what}: {e}")));
        }
        if let Some(rest) = text.strip_prefix("gaussian:") {
            let (mean, cov) = rest.split_once(':').ok_or_else(|| {
                Error::invalid(format!(
                    "{what}: expected gaussian:MEAN:COV, e.g. gaussian:0.4,0.45:0.0064,0,0,0.0064"
                ))
            })?;
            let mean = numbers(mean, what)?;
            let cov = numbers(cov, what)?;
            let d = mean.len();
            if cov.len() != d * d {
                return Err(Error::invalid(format!(
                    "{what}: a {d}D mean needs {} covariance entries (row-major), got {}",
                    d * d,
                    cov.len()
                )));
            }
            let rows = cov.chunks(d).map(<[f64]>::to_vec).collect();
            let g =
                Gaussian::new(mean, rows).map_err(|e| Error::invalid(format!("{what}: {e}")))?;
            return Ok(DensitySpec::Gaussian(g));
        }
        if let Some(rest) = text.strip_prefix("samples:") {
            let (file, deposit) = match rest.rsplit_once(':') {
                Some((file, "cic")) => (file, SampleDeposit::CloudInCell),
                Some((file, "kde")) => (file, SampleDeposit::Kde(None)),
                Some((file, opt)) if opt.starts_with("kde=") => {
                    let b = numbers(&opt[4..], what)?[0];
                    if b <= 0.0 {
                        return Err(Error::invalid(format!(
                            "{what}: the KDE bandwidth must be positive, got {b}"
                        )));
                    }
                    (file, SampleDeposit::Kde(Some(b)))
                }
                _ => (rest, SampleDeposit::Kde(None)),
            };
            if file.is_empty() {
                return Err(Error::invalid(format!(
                    "{what}: expected samples:FILE[:cic|:kde|:kde=BANDWIDTH]"
                )));
            }
            return Ok(DensitySpec::Samples { file: file.to_string(), deposit });
        }
        if text.to_ascii_lowercase().ends_with(".png") {
            return Ok(DensitySpec::Image(text.to_string()));
        }
        if let Some((file, dataset)) = crate::io::config::dataset_parts(text) {
            return Ok(DensitySpec::Dataset {
                file: file.to_string(),
                dataset: dataset.map(str::to_string),
            });
        }
        Expression::parse(text, what)?;
        Ok(DensitySpec::Expression(text.to_string()))
    }

    /// Samples the density on `grid` (files are read as `inputs` says); a `case:`
    /// preset gives its target density when `what` is "target", else its source density.
    pub fn sample(&self, grid: &Grid, what: &str, inputs: &Inputs) -> Result<ScalarField> {
        match self {
            DensitySpec::Case(case) => {
                let role = if what == "target" { Role::Target } else { Role::Source };
                case.sample(grid, role).map_err(|e| Error::invalid(format!("{what}: {e}")))
            }
            DensitySpec::Uniform => Ok(ScalarField::from_fn(grid, |_| 1.0)),
            DensitySpec::Gaussian(g) => {
                if g.mean.len() != grid.dim() {
                    return Err(Error::invalid(format!(
                        "{what}: a {}D Gaussian on a {}D grid",
                        g.mean.len(),
                        grid.dim()
                    )));
                }
                Ok(ScalarField::from_fn(grid, |p| g.density(p)))
            }
            DensitySpec::Image(file) => {
                let path = inputs.base.join(file);
                if !path.is_file() {
                    return Err(Error::invalid(format!("{what}: no such file {}", path.display())));
                }
                read_png(&path, grid, what)
            }
            DensitySpec::Dataset { file, dataset } => {
                inputs.read(file, dataset.as_deref(), grid, what, Quantity::Density)
            }
            DensitySpec::Samples { file, deposit } => {
                let path = inputs.base.join(file);
                let points = crate::io::points::read_points(&path)
                    .map_err(|e| Error::invalid(format!("{what}: {e}")))?;
                let deposited = match deposit {
                    SampleDeposit::CloudInCell => crate::sample::cloud_in_cell(points.view(), grid),
                    SampleDeposit::Kde(b) => {
                        crate::sample::kde(points.view(), grid, *b).map(|(rho, b)| {
                            tracing::info!(
                                "{what}: {} samples, KDE bandwidth {b:.4e}",
                                points.nrows()
                            );
                            rho
                        })
                    }
                };
                deposited.map_err(|e| Error::invalid(format!("{what}: {}: {e}", path.display())))
            }
            DensitySpec::Expression(text) => Expression::parse(text, what)?.sample(grid, 0.0, what),
        }
    }

    /// The part `window` (one rank's slab or pencil block: planes of the outermost storage
    /// axis, and rows of the next) of what [`DensitySpec::sample`] gives, C order and to the
    /// bit, unchecked for finiteness. Formulas (Gaussians, uniform, expressions, cases given
    /// by closed forms) are evaluated on the window only and a dataset already on the grid is
    /// read as its hyperslab; the cases whose densities a PDE solve makes (2D), images,
    /// sample files and resampled datasets are sampled whole and cut.
    pub fn sample_window(
        &self,
        grid: &Grid,
        window: &crate::grid::Window,
        what: &str,
        inputs: &Inputs,
    ) -> Result<Vec<f64>> {
        match self {
            DensitySpec::Uniform => Ok(crate::field::sample_window(grid, window, |_| 1.0)),
            DensitySpec::Gaussian(g) if g.mean.len() == grid.dim() => {
                Ok(crate::field::sample_window(grid, window, |p| g.density(p)))
            }
            DensitySpec::Expression(text) => {
                Expression::parse(text, what)?.sample_window(grid, window, 0.0, what)
            }
            DensitySpec::Dataset { file, dataset } => {
                inputs.read_window(file, dataset.as_deref(), grid, window, what)
            }
            DensitySpec::Case(case) => {
                let role = if what == "target" { Role::Target } else { Role::Source };
                case.sample_window(grid, role, window)
                    .map_err(|e| Error::invalid(format!("{what}: {e}")))
            }
            _ => {
                let whole = self.sample(grid, what, inputs)?;
                Ok(window.cut(grid, whole.data().as_slice().expect("contiguous")))
            }
        }
    }

    /// The file this density is read from, if any (relative paths against `base`).
    pub fn input_file(&self, base: &Path) -> Option<std::path::PathBuf> {
        match self {
            DensitySpec::Dataset { file, .. }
            | DensitySpec::Image(file)
            | DensitySpec::Samples { file, .. } => Some(base.join(file)),
            _ => None,
        }
    }

    /// The Gaussian, if this is one (for comparisons with the closed-form map).
    pub fn gaussian(&self) -> Option<&Gaussian> {
        match self {
            DensitySpec::Gaussian(g) => Some(g),
            _ => None,
        }
    }
}

#[cfg(not(feature = "png"))]
fn read_png(path: &Path, _: &Grid, what: &str) -> Result<ScalarField> {
    Err(Error::unsupported("png", format!("{what}: reading {}", path.display())))
}

/// Reads a PNG as intensities in [0, 1] on a 2D grid of the image's size (top row = top).
#[cfg(feature = "png")]
fn read_png(path: &Path, grid: &Grid, what: &str) -> Result<ScalarField> {
    let fail = |m: String| Error::invalid(format!("{what}: {}: {m}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string().to_lowercase()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader =
        decoder.read_info().map_err(|e| fail(format!("cannot read the image ({e})")))?;
    let size = reader.output_buffer_size().ok_or_else(|| fail("image too large".into()))?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(|e| fail(format!("cannot decode ({e})")))?;
    let (w, h) = (info.width as usize, info.height as usize);
    if grid.dim() != 2 || grid.shape() != [w, h] {
        return Err(fail(format!(
            "image is {w}x{h} pixels but the grid is {} (use a {w}x{h} grid)",
            grid.shape().iter().map(|n| n.to_string()).collect::<Vec<_>>().join("x")
        )));
    }
    let channels = info.color_type.samples();
    let wide = info.bit_depth == png::BitDepth::Sixteen;
    let bytes = if wide { 2 } else { 1 };
    let max = if wide { 65535.0 } else { 255.0 };
    let sample = |k: usize| -> f64 {
        if wide {
            u16::from_be_bytes([buf[2 * k], buf[2 * k + 1]]) as f64 / max
        } else {
            buf[k] as f64 / max
        }
    };
    let stride = info.line_size / bytes;
    let mut values = vec![0.0; w * h];
    for j in 0..h {
        let row = (h - 1 - j) * stride;
        for i in 0..w {
            let base = row + i * channels;
            // Luminance (Rec. 709) for colour images; alpha is ignored.
            values[j * w + i] = match channels {
                1 | 2 => sample(base),
                _ => 0.2126 * sample(base) + 0.7152 * sample(base + 1) + 0.0722 * sample(base + 2),
            };
        }
    }
    ScalarField::from_vec(grid, values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::BoundaryKind;

    #[test]
    fn specifications_parse_and_bad_ones_are_explained() {
        let g = Grid::unit(2, 8, BoundaryKind::Neumann).unwrap();
        let here = &Inputs::new(".");
        let gauss = DensitySpec::parse("gaussian:0.5,0.5:0.01,0.002,0.002,0.02", "source").unwrap();
        let f = gauss.sample(&g, "source", here).unwrap();
        assert!(f.min() > 0.0 && f.max() > 5.0);
        assert_eq!(
            DensitySpec::parse("uniform", "s").unwrap().sample(&g, "s", here).unwrap().max(),
            1.0
        );
        let e = DensitySpec::parse("1 + x", "s").unwrap().sample(&g, "s", here).unwrap();
        assert!((e.max() - (1.0 + 15.0 / 16.0)).abs() < 1e-12);
        for (bad, needle) in [
            ("gaussian:0.5,0.5", "expected gaussian:MEAN:COV"),
            ("gaussian:0.5,0.5:1,0,0", "needs 4 covariance entries"),
            ("gaussian:0.5,0.5:1,2,2,1", "positive definite"),
            ("gaussian:0.5,x:1,0,0,1", "not a finite number"),
            ("", "empty"),
        ] {
            let msg = DensitySpec::parse(bad, "source").unwrap_err().to_string();
            assert!(msg.contains(needle), "{bad}: {msg}");
        }
        let missing = DensitySpec::parse("nope.h5:/fields/density", "target").unwrap();
        let msg = missing.sample(&g, "target", here).unwrap_err().to_string();
        assert!(msg.contains("no such file"), "{msg}");
        let msg = DensitySpec::parse("nope.png", "source").unwrap().sample(&g, "source", here);
        assert!(msg.unwrap_err().to_string().contains("no such file"));
        let g3 = DensitySpec::parse("gaussian:0.5,0.5,0.5:1,0,0,0,1,0,0,0,1", "s").unwrap();
        assert!(g3.sample(&g, "s", here).unwrap_err().to_string().contains("3D Gaussian on a 2D"));
    }
}

#[cfg(all(test, feature = "hdf5"))]
mod plane_tests {
    use super::*;
    use crate::grid::{BoundaryKind, Window};

    /// Every kind of specification sampled window by window (uneven plane ranges, 2D and 3D;
    /// in 3D also pencil blocks of planes and rows) equals that part of the whole-grid sample
    /// to the bit: formulas, a case, an otgrid file on the grid and a plain HDF5 file
    /// (hyperslabs), a `.npy` array and a resampled file (read whole and cut).
    #[test]
    fn densities_sampled_by_planes_equal_the_whole_grid_sample() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = Inputs::new(dir.path());
        for grid in [
            Grid::uniform(&[9, 7, 11], &[0.0; 3], &[1.0, 0.8, 1.3], BoundaryKind::Neumann).unwrap(),
            Grid::uniform(&[13, 10], &[0.0; 2], &[1.0, 1.0], BoundaryKind::Neumann).unwrap(),
        ] {
            let d = grid.dim();
            let f = ScalarField::from_fn(&grid, |p| 1.0 + p.iter().sum::<f64>().sin());
            let mut out = crate::io::Output::new(grid.clone());
            out.add_field("rho", f.clone()).unwrap();
            out.write(&dir.path().join(format!("on{d}.h5"))).unwrap();
            let file = hdf5::File::create(dir.path().join(format!("plain{d}.h5"))).unwrap();
            file.new_dataset_builder().with_data(f.data()).create("rho").unwrap();
            drop(file);
            let coarse = Grid::unit(d, 5, grid.boundaries()[0]).unwrap();
            let mut other = crate::io::Output::new(coarse.clone());
            other.add_field("rho", ScalarField::from_fn(&coarse, |p| 2.0 + p[0])).unwrap();
            other.write(&dir.path().join(format!("coarse{d}.h5"))).unwrap();
            {
                use ndarray_npy::WriteNpyExt;
                let npy = std::fs::File::create(dir.path().join(format!("a{d}.npy"))).unwrap();
                f.data().write_npy(npy).unwrap();
            }
            let mean = vec!["0.4"; d].join(",");
            let cov = if d == 2 { "0.02,0.003,0.003,0.03" } else { "0.02,0,0,0,0.03,0,0,0,0.01" };
            let case = if d == 2 { "mixture-2d" } else { "mixture-3d" };
            let specs = [
                format!("gaussian:{mean}:{cov}"),
                "uniform".to_string(),
                "exp(0-(x-0.3)^2/0.05) + y".to_string(),
                format!("case:{case}"),
                format!("on{d}.h5:/fields/rho"),
                format!("plain{d}.h5:rho"),
                format!("a{d}.npy"),
            ];
            let resampled = Inputs { base: dir.path().to_path_buf(), resample: true };
            let with_inputs = specs
                .iter()
                .map(|s| (s.clone(), &inputs))
                .chain([(format!("coarse{d}.h5:/fields/rho"), &resampled)]);
            let n = grid.storage_shape()[0];
            for (text, reading) in with_inputs {
                let spec = DensitySpec::parse(&text, "source").unwrap();
                let whole = spec.sample(&grid, "source", reading).unwrap();
                let mut windows: Vec<Window> =
                    [0..n, 0..1, 2..5, n - 3..n].into_iter().map(Window::planes).collect();
                if d == 3 {
                    // Pencil blocks: some planes and some rows.
                    windows.push(Window { planes: 2..5, rows: Some(1..4) });
                    windows.push(Window { planes: n - 1..n, rows: Some(0..1) });
                }
                for window in windows {
                    let part = spec.sample_window(&grid, &window, "source", reading).unwrap();
                    let expected = window.cut(&grid, whole.data().as_slice().unwrap());
                    assert_eq!(part.len(), expected.len(), "{text} {window:?}");
                    assert!(
                        part.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{text} {window:?}"
                    );
                }
            }
        }
    }
}

#[cfg(all(test, feature = "png"))]
mod png_tests {
    use super::*;
    use crate::grid::BoundaryKind;

    /// A 4×3 grayscale PNG whose top-left pixel is bright: it lands at the largest y, smallest
    /// x; the wrong size and a non-image file are one-line errors.
    #[test]
    fn png_images_are_read_upright() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img.png");
        let (w, h) = (4u32, 3u32);
        let mut pixels = vec![10u8; (w * h) as usize];
        pixels[0] = 255; // top-left
        pixels[(w * h - 1) as usize] = 51; // bottom-right
        {
            let file = std::fs::File::create(&path).unwrap();
            let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header().unwrap().write_image_data(&pixels).unwrap();
        }
        let grid = Grid::uniform(&[4, 3], &[0.0, 0.0], &[1.0, 1.0], BoundaryKind::Neumann).unwrap();
        let spec = DensitySpec::parse("img.png", "source").unwrap();
        let f = spec.sample(&grid, "source", &Inputs::new(dir.path())).unwrap();
        let v = f.data().as_slice().unwrap().to_vec(); // x fastest, y upwards
        assert_eq!(v[2 * 4], 1.0, "top-left pixel at (x0, y_max)");
        assert!((v[3] - 0.2).abs() < 1e-12, "bottom-right pixel at (x_max, y0)");
        assert!((v[0] - 10.0 / 255.0).abs() < 1e-12);
        let wrong = Grid::unit(2, 8, BoundaryKind::Neumann).unwrap();
        let msg = spec.sample(&wrong, "source", &Inputs::new(dir.path())).unwrap_err().to_string();
        assert!(msg.contains("4x3 pixels") && !msg.contains('\n'), "{msg}");
        std::fs::write(dir.path().join("bad.png"), b"not a png").unwrap();
        let bad = DensitySpec::parse("bad.png", "target").unwrap();
        let msg = bad.sample(&grid, "target", &Inputs::new(dir.path())).unwrap_err().to_string();
        assert!(msg.contains("cannot read the image"), "{msg}");
    }
}
