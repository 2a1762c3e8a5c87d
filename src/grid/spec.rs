//! Grid definitions from TOML files (`meshes/*.toml`) and from command-line flags.
//!
//! A grid file holds
//! ```toml
//! description = "unit square, 256 x 256 cells"   # optional
//! shape = [256, 256]            # cells per axis, x first (2 or 3 entries)
//! lower = [0.0, 0.0]            # optional, default 0 on every axis
//! upper = [1.0, 1.0]            # optional, default 1 on every axis
//! boundary = "neumann"          # one kind for all axes, or one per axis: ["periodic", "neumann"]
//! ```
//! Unknown keys are rejected. The meshes shipped in `meshes/` are also compiled into the
//! binary, so `--mesh unit_square_256` works from any directory.

use super::{Axis, BoundaryKind, Grid};
use crate::error::{Error, Result};
use std::path::Path;

/// The meshes shipped in `meshes/`, by name.
const BUILTIN_MESHES: &[(&str, &str)] = &[
    ("unit_square_128", include_str!("../../meshes/unit_square_128.toml")),
    ("unit_square_256", include_str!("../../meshes/unit_square_256.toml")),
    ("unit_square_512", include_str!("../../meshes/unit_square_512.toml")),
    ("unit_torus_256", include_str!("../../meshes/unit_torus_256.toml")),
    ("unit_cube_64", include_str!("../../meshes/unit_cube_64.toml")),
    ("unit_cube_128", include_str!("../../meshes/unit_cube_128.toml")),
];

/// Names of the built-in meshes (the files in `meshes/` without `.toml`).
pub fn builtin_mesh_names() -> Vec<&'static str> {
    BUILTIN_MESHES.iter().map(|(n, _)| *n).collect()
}

/// Either one boundary kind for every axis or one per axis.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
enum BoundarySpec {
    All(BoundaryKind),
    PerAxis(Vec<BoundaryKind>),
}

/// A grid definition as written in a mesh TOML file.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GridSpec {
    /// Free text shown by `otgrid info`.
    #[serde(default)]
    pub description: Option<String>,
    /// Cells per axis, x first.
    pub shape: Vec<usize>,
    /// Lower corner, x first (default: zeros).
    #[serde(default)]
    pub lower: Option<Vec<f64>>,
    /// Upper corner, x first (default: ones).
    #[serde(default)]
    pub upper: Option<Vec<f64>>,
    /// Boundary kinds (default: neumann on every axis).
    #[serde(default)]
    boundary: Option<BoundarySpec>,
}

impl GridSpec {
    /// Parses mesh TOML text; `origin` names the source in error messages.
    pub fn parse(text: &str, origin: &Path) -> Result<GridSpec> {
        crate::error::parse_toml(text, origin)
    }

    /// Loads a grid from a mesh file path, or from a built-in mesh name
    /// (`unit_square_256`, also accepted as `meshes/unit_square_256.toml`).
    pub fn load(name_or_path: &str) -> Result<Grid> {
        let path = Path::new(name_or_path);
        if path.is_file() {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            return GridSpec::parse(&text, path)?.to_grid(path);
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or(name_or_path);
        let is_plain_name =
            path.parent().is_none_or(|p| p.as_os_str().is_empty() || p == Path::new("meshes"));
        if let Some((_, text)) = BUILTIN_MESHES.iter().find(|(n, _)| is_plain_name && *n == stem) {
            return GridSpec::parse(text, path)?.to_grid(path);
        }
        Err(Error::invalid(format!(
            "unknown grid file '{name_or_path}': no such file, and not a built-in mesh ({})",
            builtin_mesh_names().join(", ")
        )))
    }

    /// Validates the definition and builds the grid.
    pub fn to_grid(&self, origin: &Path) -> Result<Grid> {
        let d = self.shape.len();
        if !(2..=3).contains(&d) {
            return Err(Error::config(
                origin,
                format!("shape must have 2 or 3 entries, got {}", d),
            ));
        }
        let lower = self.lower.clone().unwrap_or_else(|| vec![0.0; d]);
        let upper = self.upper.clone().unwrap_or_else(|| vec![1.0; d]);
        for (key, v) in [("lower", &lower), ("upper", &upper)] {
            if v.len() != d {
                return Err(Error::config(
                    origin,
                    format!("{key} has {} entries but shape has {d}", v.len()),
                ));
            }
        }
        let boundary = match &self.boundary {
            None => vec![BoundaryKind::Neumann; d],
            Some(BoundarySpec::All(k)) => vec![*k; d],
            Some(BoundarySpec::PerAxis(v)) if v.len() == d => v.clone(),
            Some(BoundarySpec::PerAxis(v)) => {
                return Err(Error::config(
                    origin,
                    format!("boundary has {} entries but shape has {d}", v.len()),
                ))
            }
        };
        let axes = (0..d)
            .map(|a| Axis {
                cells: self.shape[a],
                lower: lower[a],
                upper: upper[a],
                boundary: boundary[a],
            })
            .collect();
        Grid::new(axes).map_err(|e| Error::config(origin, e.to_string()))
    }

    /// Builds a grid from command-line flags: `shape` as `256x256` or `64x64x64`,
    /// `domain` as `x0,x1,y0,y1[,z0,z1]` (default unit box), `boundary` as one kind or a
    /// comma-separated kind per axis (default neumann).
    pub fn from_flags(shape: &str, domain: Option<&str>, boundary: Option<&str>) -> Result<Grid> {
        let cells: Vec<usize> = shape
            .split(['x', 'X'])
            .map(|s| s.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| {
                Error::invalid(format!(
                    "--grid '{shape}' is not of the form NXxNY or NXxNYxNZ (e.g. 256x256)"
                ))
            })?;
        let d = cells.len();
        if !(2..=3).contains(&d) {
            return Err(Error::invalid(format!("--grid '{shape}' must have 2 or 3 sizes")));
        }
        let (lower, upper) = match domain {
            None => (vec![0.0; d], vec![1.0; d]),
            Some(text) => {
                let v: Vec<f64> = text
                    .split(',')
                    .map(|s| s.trim().parse::<f64>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| {
                        Error::invalid(format!("--domain '{text}' is not a list of numbers"))
                    })?;
                if v.len() != 2 * d {
                    return Err(Error::invalid(format!(
                        "--domain '{text}' has {} numbers; a {d}D grid needs {} (lower,upper per axis)",
                        v.len(),
                        2 * d
                    )));
                }
                ((0..d).map(|a| v[2 * a]).collect(), (0..d).map(|a| v[2 * a + 1]).collect())
            }
        };
        let kinds: Vec<BoundaryKind> = match boundary {
            None => vec![BoundaryKind::Neumann; d],
            Some(text) => {
                let v: Vec<BoundaryKind> =
                    text.split(',').map(str::parse).collect::<Result<_>>()?;
                match v.len() {
                    1 => vec![v[0]; d],
                    n if n == d => v,
                    n => {
                        return Err(Error::invalid(format!(
                            "--bc '{text}' has {n} kinds; give one or {d}"
                        )))
                    }
                }
            }
        };
        Grid::new(
            (0..d)
                .map(|a| Axis {
                    cells: cells[a],
                    lower: lower[a],
                    upper: upper[a],
                    boundary: kinds[a],
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_meshes_parse() {
        for name in builtin_mesh_names() {
            let g = GridSpec::load(name).unwrap();
            assert!(g.num_cells() >= 64 * 64);
            let g2 = GridSpec::load(&format!("meshes/{name}.toml")).unwrap();
            assert_eq!(g, g2);
        }
        let g = GridSpec::load("unit_square_256").unwrap();
        assert_eq!(g.shape(), vec![256, 256]);
    }

    #[test]
    fn per_axis_boundaries_and_defaults() {
        let s = GridSpec::parse(
            "shape = [8, 4]\nupper = [2.0, 1.0]\nboundary = [\"periodic\", \"dirichlet\"]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let g = s.to_grid(Path::new("t.toml")).unwrap();
        assert_eq!(g.boundaries(), vec![BoundaryKind::Periodic, BoundaryKind::Dirichlet]);
        assert_eq!(g.spacing(), vec![0.25, 0.25]);
    }

    #[test]
    fn malformed_toml_gives_one_line_error_with_line_number() {
        let p = Path::new("bad.toml");
        let e = GridSpec::parse("shape = [8, 8]\nlower = [0.0, 0.0\n", p).unwrap_err().to_string();
        assert!(e.starts_with("bad.toml: line"), "{e}");
        assert!(!e.contains('\n'));
        let e = GridSpec::parse("shape = [8, 8]\nspacing = 0.1\n", p).unwrap_err().to_string();
        assert!(e.contains("unknown field `spacing`"), "{e}");
        let e = GridSpec::parse("shape = [8, 8]\nboundary = \"robin\"\n", p).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = GridSpec::parse("shape = [8, 8]\nlower = [1.0, 0.0]\n", p)
            .unwrap()
            .to_grid(p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("zero or negative spacing"), "{e}");
    }

    #[test]
    fn flags() {
        let g = GridSpec::from_flags("32x16", Some("0,2,-1,1"), Some("periodic,neumann")).unwrap();
        assert_eq!(g.shape(), vec![32, 16]);
        assert_eq!(g.lower(), vec![0.0, -1.0]);
        assert_eq!(g.upper(), vec![2.0, 1.0]);
        assert_eq!(g.boundaries(), vec![BoundaryKind::Periodic, BoundaryKind::Neumann]);
        let g = GridSpec::from_flags("8x8x8", None, Some("dirichlet")).unwrap();
        assert_eq!(g.boundaries(), vec![BoundaryKind::Dirichlet; 3]);
        for (s, d, b) in [
            ("256", None, None),
            ("axb", None, None),
            ("8x8", Some("0,1,0"), None),
            ("8x8", Some("0,1,0,zero"), None),
            ("8x8", Some("0,0,0,1"), None),
            ("8x8", None, Some("periodic,neumann,dirichlet")),
        ] {
            assert!(GridSpec::from_flags(s, d, b).is_err(), "{s} {d:?} {b:?}");
        }
    }

    #[test]
    fn unknown_mesh_names_the_problem() {
        let e = GridSpec::load("no_such_mesh").unwrap_err().to_string();
        assert!(e.contains("unknown grid file 'no_such_mesh'") && e.contains("unit_square_256"));
    }
}
