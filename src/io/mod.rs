//! Results on disk: HDF5 files in the layout of `docs/file-format.md`, each with an XDMF
//! sidecar that ParaView opens directly.
//!
//! [`Output`] collects what a run produces — fields on one grid, an optional time series,
//! solver diagnostics and attributes — and [`Output::write`] stores it as `NAME.h5` plus
//! `NAME.xmf`, both written to temporary names and renamed only when complete.
//! [`Output::read`] loads such a file back, checking its format version.

mod atomic;
pub mod config;
#[cfg(feature = "hdf5")]
pub(crate) mod h5;
mod input;
pub mod points;
mod xdmf;

pub use atomic::{
    refuse_input_as_output, remove_temporaries_on_signal, resolve_output, AtomicFile,
};
/// Version of the file layout written by this build. Readers refuse newer versions.
pub const FORMAT_VERSION: u32 = 1;
pub use input::{Inputs, Quantity};
pub use xdmf::render as render_xdmf;

use crate::error::{Error, Result};
use crate::field::{ScalarField, VectorField};
use crate::grid::Grid;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A scalar or vector field stored in an output.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    Scalar(ScalarField),
    Vector(VectorField),
}

impl Field {
    /// The grid the field lives on.
    pub fn grid(&self) -> &Grid {
        match self {
            Field::Scalar(f) => f.grid(),
            Field::Vector(f) => f.grid(),
        }
    }

    /// The stored array (C order, vector components last).
    pub fn data(&self) -> &ndarray::ArrayD<f64> {
        match self {
            Field::Scalar(f) => f.data(),
            Field::Vector(f) => f.data(),
        }
    }

    /// `"scalar"` or `"vector"`, as stored in the `kind` attribute.
    pub fn kind(&self) -> &'static str {
        match self {
            Field::Scalar(_) => "scalar",
            Field::Vector(_) => "vector",
        }
    }
}

impl From<ScalarField> for Field {
    fn from(f: ScalarField) -> Self {
        Field::Scalar(f)
    }
}

impl From<VectorField> for Field {
    fn from(f: VectorField) -> Self {
        Field::Vector(f)
    }
}

/// One snapshot of a time series: fields at time `time`.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub time: f64,
    pub fields: BTreeMap<String, Field>,
}

/// A root attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Text(String),
    Number(f64),
    Integer(i64),
}

impl std::fmt::Display for AttrValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttrValue::Text(s) => f.write_str(s),
            AttrValue::Number(x) => write!(f, "{x}"),
            AttrValue::Integer(i) => write!(f, "{i}"),
        }
    }
}

/// Who wrote a file, when and how (root attributes, filled in by [`Output::write`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Provenance {
    pub format_version: u32,
    pub otgrid_version: String,
    pub command_line: String,
    pub created: String,
}

/// Everything one run writes: fields on one grid, a time series, diagnostics, attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    grid: Grid,
    /// Set for one rank's part of a distributed run's output ([`Output::slab`]).
    part: Option<Part>,
    fields: BTreeMap<String, Field>,
    steps: Vec<Step>,
    diagnostics: BTreeMap<String, Vec<f64>>,
    attributes: BTreeMap<String, AttrValue>,
    /// Set on files read back; on write, taken from the running process unless set.
    pub provenance: Option<Provenance>,
}

/// Paths of the two files written by [`Output::write`].
/// One rank's part of a distributed output: its fields hold the planes
/// `first_plane..first_plane + n` of the slowest storage axis of `global` (z in 3D, y in 2D)
/// and the rows `first_row..first_row + m` of the next (y in 3D; all of them but on
/// pencils), where `n`, `m` are the part's own grid's counts along those axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// The whole grid: the file's grid.
    pub global: Grid,
    /// The first plane this rank holds.
    pub first_plane: usize,
    /// The first row (y in 3D) this rank holds: 0 on slabs.
    pub first_row: usize,
}

#[derive(Clone, Debug)]
pub struct Written {
    pub hdf5: PathBuf,
    pub xdmf: PathBuf,
}

/// Root attribute names that otgrid itself writes.
pub const RESERVED_ATTRIBUTES: [&str; 5] =
    ["format", "format_version", "otgrid_version", "command_line", "created"];

fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what} name '{name}' must be non-empty ASCII letters, digits, '_' or '-'"
        )))
    }
}

impl Output {
    /// An empty output on `grid`.
    pub fn new(grid: Grid) -> Output {
        Output {
            grid,
            part: None,
            fields: BTreeMap::new(),
            steps: Vec::new(),
            diagnostics: BTreeMap::new(),
            attributes: BTreeMap::new(),
            provenance: None,
        }
    }

    /// The grid every field lives on.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// One rank's part of a distributed run's output on `global`: the rank's planes of
    /// `decomposition` (fields are added on [`SlabDecomposition::local_grid`]); written
    /// collectively by `distributed::write_collective` into one file with `global`'s layout.
    ///
    /// [`SlabDecomposition::local_grid`]: crate::grid::SlabDecomposition::local_grid
    pub fn slab(
        global: &Grid,
        decomposition: &crate::grid::SlabDecomposition,
        rank: usize,
    ) -> Result<Output> {
        let mut output = Output::new(decomposition.local_grid(rank)?);
        let first_plane = decomposition.planes(rank).start;
        output.part = Some(Part { global: global.clone(), first_plane, first_row: 0 });
        Ok(output)
    }

    /// One rank's part of a distributed output on `global`'s y–z pencils: the rank's block
    /// of `decomposition` (fields on [`PencilDecomposition::local_grid`]); written
    /// collectively as [`Output::slab`]'s parts are.
    ///
    /// [`PencilDecomposition::local_grid`]: crate::grid::PencilDecomposition::local_grid
    pub fn pencil(
        global: &Grid,
        decomposition: &crate::grid::PencilDecomposition,
        rank: usize,
    ) -> Result<Output> {
        let mut output = Output::new(decomposition.local_grid(rank)?);
        let (first_plane, first_row) =
            (decomposition.planes(rank).start, decomposition.rows(rank).start);
        output.part = Some(Part { global: global.clone(), first_plane, first_row });
        Ok(output)
    }

    /// The grid of the file: the whole grid of a distributed output, else [`Output::grid`].
    pub fn file_grid(&self) -> &Grid {
        self.part.as_ref().map_or(&self.grid, |p| &p.global)
    }

    /// This rank's part of a distributed output ([`Output::slab`]).
    pub fn part(&self) -> Option<&Part> {
        self.part.as_ref()
    }

    /// Static fields by name.
    pub fn fields(&self) -> &BTreeMap<String, Field> {
        &self.fields
    }

    /// Time series snapshots, in increasing time.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Diagnostic histories (residuals, mass, …) by name.
    pub fn diagnostics(&self) -> &BTreeMap<String, Vec<f64>> {
        &self.diagnostics
    }

    /// User attributes (method, parameters, summary numbers) by name.
    pub fn attributes(&self) -> &BTreeMap<String, AttrValue> {
        &self.attributes
    }

    fn check_field(&self, name: &str, field: &Field) -> Result<()> {
        check_name("field", name)?;
        if field.grid() != &self.grid {
            return Err(Error::invalid(format!(
                "field '{name}' lives on {} but the output grid is {}",
                field.grid(),
                self.grid
            )));
        }
        Ok(())
    }

    /// Adds (or replaces) a static field stored at `/fields/<name>`.
    pub fn add_field(&mut self, name: &str, field: impl Into<Field>) -> Result<()> {
        let field = field.into();
        self.check_field(name, &field)?;
        self.fields.insert(name.to_string(), field);
        Ok(())
    }

    /// Appends a snapshot at `time` (stored at `/steps/<k>/<name>`); times must increase.
    pub fn add_step(&mut self, time: f64, fields: Vec<(&str, Field)>) -> Result<()> {
        if !time.is_finite() {
            return Err(Error::invalid(format!("step time {time} is not finite")));
        }
        if let Some(last) = self.steps.last() {
            if time <= last.time {
                return Err(Error::invalid(format!(
                    "step times must increase: {time} after {}",
                    last.time
                )));
            }
        }
        let mut map = BTreeMap::new();
        for (name, field) in fields {
            self.check_field(name, &field)?;
            map.insert(name.to_string(), field);
        }
        self.steps.push(Step { time, fields: map });
        Ok(())
    }

    /// Adds a diagnostic history stored at `/diagnostics/<name>`.
    pub fn add_diagnostic(&mut self, name: &str, values: Vec<f64>) -> Result<()> {
        check_name("diagnostic", name)?;
        self.diagnostics.insert(name.to_string(), values);
        Ok(())
    }

    /// Sets a root attribute (not one of [`RESERVED_ATTRIBUTES`]).
    pub fn set_attribute(&mut self, name: &str, value: AttrValue) -> Result<()> {
        check_name("attribute", name)?;
        if RESERVED_ATTRIBUTES.contains(&name) {
            return Err(Error::invalid(format!("attribute name '{name}' is reserved")));
        }
        self.attributes.insert(name.to_string(), value);
        Ok(())
    }

    /// Writes `path` (HDF5) and its XDMF sidecar (`path` with extension `.xmf`), each via a
    /// temporary file renamed on success; on error neither file is left behind.
    pub fn write(&self, path: &Path) -> Result<Written> {
        #[cfg(feature = "hdf5")]
        return self.write_hdf5(path);
        #[cfg(not(feature = "hdf5"))]
        Err(Error::unsupported("hdf5", format!("writing {}", path.display())))
    }

    #[cfg(feature = "hdf5")]
    fn write_hdf5(&self, path: &Path) -> Result<Written> {
        if self.part.is_some() {
            return Err(Error::invalid(
                "one rank's part of a distributed output is written collectively \
                 (distributed::write_collective), not by Output::write",
            ));
        }
        let xdmf_path = sidecar_path(path)?;
        let h5_name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            Error::invalid(format!("output path {} has no file name", path.display()))
        })?;
        let h5_tmp = AtomicFile::new(path)?;
        let xmf_tmp = AtomicFile::new(&xdmf_path)?;
        let provenance = self.provenance.clone().unwrap_or_else(Provenance::current);
        h5::write(self, &provenance, h5_tmp.path(), path)?;
        let xml = xdmf::render(self, h5_name);
        std::fs::write(xmf_tmp.path(), xml).map_err(|e| Error::io(&xdmf_path, e))?;
        h5_tmp.commit()?;
        xmf_tmp.commit()?;
        Ok(Written { hdf5: path.to_path_buf(), xdmf: xdmf_path })
    }

    /// Reads an otgrid HDF5 file back.
    pub fn read(path: &Path) -> Result<Output> {
        #[cfg(feature = "hdf5")]
        return h5::read(path);
        #[cfg(not(feature = "hdf5"))]
        Err(Error::unsupported("hdf5", format!("reading {}", path.display())))
    }
}

/// The XDMF sidecar's path for the HDF5 output `path` (same name, extension `.xmf`).
pub fn sidecar_path(path: &Path) -> Result<PathBuf> {
    let xdmf_path = path.with_extension("xmf");
    if xdmf_path == path {
        return Err(Error::invalid(format!(
            "output {} must not end in .xmf (that name is for the XDMF sidecar); use .h5",
            path.display()
        )));
    }
    Ok(xdmf_path)
}

/// Checks, before any long computation, that [`Output::write`] will be able to create `path`
/// and its sidecar: the directory exists or can be made and is writable, neither path is a
/// directory, device, FIFO or socket, and neither is (or links to) one of `inputs`
/// (`(what, path)` pairs such as `("source", "mu.h5")`), which the write would destroy.
pub fn check_output_path(path: &Path, inputs: &[(String, PathBuf)]) -> Result<()> {
    let xdmf = sidecar_path(path)?;
    for p in [path, xdmf.as_path()] {
        AtomicFile::new(p)?;
        atomic::refuse_input_as_output(p, inputs)?;
    }
    Ok(())
}

impl Provenance {
    /// This process: the current format and crate version, command line and UTC time.
    pub fn current() -> Provenance {
        Provenance {
            format_version: FORMAT_VERSION,
            otgrid_version: env!("CARGO_PKG_VERSION").to_string(),
            command_line: command_line(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

/// The process's arguments, shell-quoted where needed.
fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty()
                && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
