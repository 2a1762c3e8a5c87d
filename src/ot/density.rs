//! Density specifications, as given on the command line (`--source SPEC`, `--target SPEC`):
//!
//! - `gaussian:MEAN:COV` — a Gaussian with mean `MEAN` (d comma-separated numbers) and full
//!   covariance `COV` (d² numbers, row-major; must be symmetric positive definite), e.g.
//!   `gaussian:0.4,0.45:0.0064,0,0,0.0064`;
//! - `uniform` — the constant density on the grid's box;
//! - `case:NAME` — the source (for `--source`) or target (for `--target`) density of a
//!   verification case with a closed-form map ([`Case`]: gaussian-2d, gaussian-3d,
//!   separable-2d, periodic-2d, periodic-3d);
//! - `FILE.h5:/DATASET` — a dataset on the same grid (for example `/fields/density` written by
//!   `otgrid fokker-planck --as-density`);
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
use std::path::Path;

/// A parsed density specification.
#[derive(Clone, Debug)]
pub enum DensitySpec {
    Gaussian(Gaussian),
    Uniform,
    Case(Case),
    Dataset { file: String, dataset: String },
    Expression(String),
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
        for ext in [".h5:", ".hdf5:"] {
            if let Some((file, dataset)) = text.split_once(ext) {
                return Ok(DensitySpec::Dataset {
                    file: format!("{file}{}", &ext[..ext.len() - 1]),
                    dataset: dataset.to_string(),
                });
            }
        }
        Expression::parse(text, what)?;
        Ok(DensitySpec::Expression(text.to_string()))
    }

    /// Samples the density on `grid` (datasets are read relative to `base`); a `case:`
    /// preset gives its target density when `what` is "target", else its source density.
    pub fn sample(&self, grid: &Grid, what: &str, base: &Path) -> Result<ScalarField> {
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
            DensitySpec::Dataset { file, dataset } => {
                crate::io::config::read_dataset(&base.join(file), dataset, grid, what)
            }
            DensitySpec::Expression(text) => Expression::parse(text, what)?.sample(grid, 0.0, what),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::BoundaryKind;

    #[test]
    fn specifications_parse_and_bad_ones_are_explained() {
        let g = Grid::unit(2, 8, BoundaryKind::Neumann).unwrap();
        let here = Path::new(".");
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
        let g3 = DensitySpec::parse("gaussian:0.5,0.5,0.5:1,0,0,0,1,0,0,0,1", "s").unwrap();
        assert!(g3.sample(&g, "s", here).unwrap_err().to_string().contains("3D Gaussian on a 2D"));
    }
}
