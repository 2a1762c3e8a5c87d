//! Problem files (TOML) for `otgrid elliptic`, `otgrid parabolic`, `otgrid fokker-planck`
//! and `otgrid flow`.
//! Every key is documented in `docs/problem-files.md`; unknown keys are errors.
//!
//! A *value* is a number, a math expression of x, y, z, t (see [`crate::expr`]), or a
//! dataset reference `"FILE.h5:/fields/NAME"` (path relative to the problem file) holding
//! cell values on the problem's grid.

use crate::error::{Error, Result};
use crate::expr::Expression;
use crate::field::{ScalarField, VectorField};
use crate::grid::{Grid, GridSpec, AXIS_NAMES};
use crate::io::{Inputs, Quantity};
use crate::pde::{
    EllipticProblem, FokkerPlanckProblem, LinearMethod, ParabolicProblem, Source, StepControl,
    TimeScheme, TimeSettings,
};
use crate::sparse::{
    AdvectionScheme, BoundaryConditions, BoundaryValue, Coefficient, FaceCondition, OperatorSpec,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A number, an expression, or a dataset reference.
#[derive(Clone, Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "expected a number, an expression in quotes (e.g. \"sin(pi*x)\") or a dataset \"FILE.h5:/fields/NAME\""
)]
pub enum Value {
    Number(f64),
    Text(String),
}

/// The grid: a mesh file path or built-in name, or the keys of a mesh file inline.
#[derive(Clone, Debug)]
pub enum GridChoice {
    Mesh(String),
    Inline(GridSpec),
}

impl<'de> Deserialize<'de> for GridChoice {
    /// A string is a mesh; a table is an inline mesh, whose own errors are reported.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match toml::Value::deserialize(d)? {
            toml::Value::String(name) => Ok(GridChoice::Mesh(name)),
            toml::Value::Table(t) => {
                // Parse the table as text so the error can quote the offending key.
                let text = toml::to_string(&t).map_err(D::Error::custom)?;
                toml::from_str::<GridSpec>(&text).map(GridChoice::Inline).map_err(|e| {
                    let key = e
                        .span()
                        .and_then(|s| text[..s.start.min(text.len())].lines().last())
                        .map(|l| format!(" {}", l.trim()))
                        .unwrap_or_default();
                    D::Error::custom(format!("[grid]{key}: {}", e.message()))
                })
            }
            other => Err(D::Error::custom(format!(
                "grid must be a mesh name or file (\"unit_square_256\") or a [grid] table with \
                 shape, lower, upper, boundary; got a {}",
                other.type_str()
            ))),
        }
    }
}

/// `[output]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Output HDF5 file (relative to the working directory).
    pub file: Option<PathBuf>,
    /// Snapshots written for time-dependent runs (besides t = 0).
    pub snapshots: Option<usize>,
}

/// One face in `[boundary]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceSpec {
    /// `dirichlet` (u = value), `neumann` (∂u/∂n = value), `robin` (alpha·u + ∂u/∂n = value).
    #[serde(rename = "type")]
    pub kind: String,
    /// Boundary data (number or expression of the face point and t); default 0.
    pub value: Option<Value>,
    /// Robin coefficient.
    pub alpha: Option<f64>,
}

/// `[equation]` of elliptic and parabolic problems: `−∇·(a∇u) + b·∇u + c u = s`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EquationSection {
    pub diffusion: Option<Value>,
    pub advection: Option<Vec<Value>>,
    pub advection_scheme: Option<String>,
    pub reaction: Option<Value>,
    pub source: Option<Value>,
    /// Initial condition (parabolic only).
    pub initial: Option<Value>,
}

/// `[time]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSection {
    pub t_end: f64,
    pub dt: f64,
    pub scheme: Option<TimeScheme>,
    pub adaptive: Option<bool>,
    pub tolerance: Option<f64>,
}

/// `[solver]` of elliptic problems.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SolverSection {
    /// `direct` (default) or `iterative`.
    pub method: Option<String>,
    pub tolerance: Option<f64>,
    pub max_iterations: Option<usize>,
}

/// An elliptic or parabolic problem file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffusionProblemFile {
    pub grid: GridChoice,
    pub equation: EquationSection,
    pub boundary: Option<BTreeMap<String, FaceSpec>>,
    pub time: Option<TimeSection>,
    pub solver: Option<SolverSection>,
    pub output: Option<OutputSection>,
}

/// `[equation]` of Fokker–Planck problems: `∂ₜρ = ∇·(D∇ρ + ρ∇V − ρ b)`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FokkerPlanckEquation {
    pub diffusion: f64,
    pub potential: Value,
    pub drift: Option<Vec<Value>>,
    pub initial: Value,
}

/// A Fokker–Planck problem file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FokkerPlanckFile {
    pub grid: GridChoice,
    pub equation: FokkerPlanckEquation,
    pub time: TimeSection,
    pub output: Option<OutputSection>,
}

/// `[time]` of a gradient-flow problem: the step τ, the number of steps (or the end time,
/// rounded to a whole number of steps) and the time scheme (`"jko"`, the default, or
/// `"midpoint"`: [`crate::ot::flow::TimeScheme`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowTime {
    pub tau: f64,
    pub steps: Option<usize>,
    pub t_end: Option<f64>,
    pub scheme: Option<String>,
}

/// `[solver]` of a gradient-flow problem: each step's dual ascent.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSolver {
    /// Both H⁻¹ marginal errors (default `min(1e-3 τ, 0.05 h)`).
    pub tolerance: Option<f64>,
    /// Back-and-forth iterations per step (default 200).
    pub max_iterations: Option<usize>,
}

/// A gradient-flow problem file (`otgrid flow --problem FILE`): the JKO flow of the sum of
/// the `energy` terms (as `--energy`: `entropy:D`, `potential:EXPR`, `mmd:KERNEL:SPEC`, …)
/// from the `initial` density (a density specification, files relative to the problem file).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowProblemFile {
    pub grid: GridChoice,
    pub initial: String,
    pub energy: Vec<String>,
    pub time: FlowTime,
    pub solver: Option<FlowSolver>,
    pub output: Option<OutputSection>,
}

impl FlowTime {
    /// The number of steps: `steps`, else `t_end / τ` rounded (at least one).
    pub fn step_count(&self) -> Result<usize> {
        crate::ot::flow::step_count(self.tau, self.steps, self.t_end)
    }
}

impl FlowProblemFile {
    /// The flow the file describes on `grid`, its initial density and the energy's target
    /// ([`crate::ot::flow::Energy::with_target`]).
    pub fn flow(
        &self,
        grid: &Grid,
        inputs: &Inputs,
    ) -> Result<(crate::ot::flow::GradientFlow, ScalarField, Option<crate::ot::flow::Target>)> {
        use crate::ot::flow::{Energy, GradientFlow, JkoParams, Term, TimeScheme};
        if self.energy.is_empty() {
            return Err(Error::invalid("flow problem: energy = [] has no term"));
        }
        let terms: Vec<Term> = self.energy.iter().map(|t| t.parse()).collect::<Result<_>>()?;
        let (energy, target) = Energy::with_target(&terms, grid, inputs)?;
        let initial = crate::ot::DensitySpec::parse(&self.initial, "initial")?
            .sample(grid, "initial", inputs)?;
        let solver = self.solver.clone().unwrap_or_default();
        let defaults = JkoParams::default();
        let jko = JkoParams {
            tau: self.time.tau,
            tolerance: solver.tolerance,
            max_iterations: solver.max_iterations.unwrap_or(defaults.max_iterations),
            ..defaults
        };
        jko.validate()?;
        let scheme = match &self.time.scheme {
            Some(name) => name.parse::<TimeScheme>()?,
            None => TimeScheme::default(),
        };
        let flow = GradientFlow { energy, jko, steps: self.time.step_count()?, scheme };
        Ok((flow, initial, target))
    }
}

/// A file reference's (file, dataset) parts: `"FILE.h5:/NAME"` → `("FILE.h5", Some("/NAME"))`,
/// `"FILE.npy"` → `("FILE.npy", None)`.
pub(crate) fn dataset_parts(s: &str) -> Option<(&str, Option<&str>)> {
    let s = s.trim();
    if s.to_ascii_lowercase().ends_with(".npy") {
        return Some((s, None));
    }
    s.split_once(".h5:")
        .map(|(f, d)| (&s[..f.len() + 3], Some(d)))
        .or_else(|| s.split_once(".hdf5:").map(|(f, d)| (&s[..f.len() + 5], Some(d))))
}

/// The files a problem file reads, as `(what, path)`: the file itself, a mesh given by
/// path, and every dataset reference (paths relative to the problem file's directory).
pub fn input_files(path: &Path) -> Vec<(String, PathBuf)> {
    fn walk(key: &str, value: &toml::Value, base: &Path, out: &mut Vec<(String, PathBuf)>) {
        match value {
            toml::Value::String(s) => {
                if let Some((file, _)) = dataset_parts(s) {
                    out.push((format!("dataset of '{key}'"), base.join(file)));
                } else if key == "grid" && base.join(s).is_file() {
                    out.push(("mesh file".into(), base.join(s)));
                }
            }
            toml::Value::Array(items) => items.iter().for_each(|v| walk(key, v, base, out)),
            toml::Value::Table(t) => t.iter().for_each(|(k, v)| walk(k, v, base, out)),
            _ => {}
        }
    }
    let mut files = vec![("problem file".to_string(), path.to_path_buf())];
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Some(table) =
        std::fs::read_to_string(path).ok().and_then(|t| t.parse::<toml::Table>().ok())
    {
        table.iter().for_each(|(k, v)| walk(k, v, base, &mut files));
    }
    files
}

/// Parses problem-file text; `origin` names it in errors.
pub fn parse_problem<T: serde::de::DeserializeOwned>(text: &str, origin: &Path) -> Result<T> {
    crate::error::parse_toml(text, origin)
}

impl DiffusionProblemFile {
    /// The operator `−∇·(a∇u) + b·∇u + c u` of `[equation]` on `grid` (a and c must not
    /// depend on t).
    pub fn operator(&self, grid: &Grid, inputs: &Inputs) -> Result<OperatorSpec> {
        let eq = &self.equation;
        let mut op = OperatorSpec::default().with_diffusion(match &eq.diffusion {
            None => Coefficient::Constant(1.0),
            Some(v) => v.coefficient(grid, "diffusion", inputs)?,
        });
        if let Some(b) = &eq.advection {
            op = op.with_advection(
                vector_field(b, grid, "advection", inputs)?,
                advection_scheme(eq.advection_scheme.as_deref())?,
            );
        } else if eq.advection_scheme.is_some() {
            return Err(Error::invalid("advection_scheme given without advection"));
        }
        if let Some(c) = &eq.reaction {
            op = op.with_reaction(c.coefficient(grid, "reaction", inputs)?);
        }
        for (name, v) in [("diffusion", &eq.diffusion), ("reaction", &eq.reaction)] {
            if v.as_ref().is_some_and(Value::depends_on_time) {
                return Err(Error::invalid(format!(
                    "{name} must not depend on t (only source may)"
                )));
            }
        }
        Ok(op)
    }

    /// The linear method of `[solver]` (default direct).
    pub fn linear_method(&self) -> Result<LinearMethod> {
        let solver = self.solver.clone().unwrap_or_default();
        match solver.method.as_deref().unwrap_or("direct") {
            "direct" => Ok(LinearMethod::Direct),
            "iterative" => Ok(LinearMethod::Iterative {
                rel_tolerance: solver.tolerance.unwrap_or(1e-10),
                max_iterations: solver.max_iterations.unwrap_or(10_000),
            }),
            other => {
                Err(Error::invalid(format!("[solver] method '{other}' (direct or iterative)")))
            }
        }
    }

    /// The elliptic problem the file describes on `grid` (it must have no `[time]` and no
    /// `initial`, and a source that does not depend on t).
    pub fn elliptic(&self, grid: &Grid, inputs: &Inputs) -> Result<EllipticProblem> {
        if self.time.is_some() || self.equation.initial.is_some() {
            return Err(Error::invalid(
                "[time] and initial are for parabolic problems (otgrid parabolic)",
            ));
        }
        let source = match &self.equation.source {
            None => ScalarField::zeros(grid),
            Some(v) if v.depends_on_time() => {
                return Err(Error::invalid("elliptic source must not depend on t"))
            }
            Some(v) => v.field(grid, 0.0, "source", inputs)?,
        };
        Ok(EllipticProblem {
            operator: self.operator(grid, inputs)?,
            bcs: boundary_conditions(grid, self.boundary.as_ref())?,
            source,
            grid: grid.clone(),
        })
    }

    /// The parabolic problem the file describes on `grid` (it needs `initial`; a source that
    /// depends on t is evaluated at each step).
    pub fn parabolic(&self, grid: &Grid, inputs: &Inputs) -> Result<ParabolicProblem> {
        if self.solver.is_some() {
            return Err(Error::invalid(
                "[solver] is for elliptic problems; parabolic steps use a direct factorisation",
            ));
        }
        let initial = self
            .equation
            .initial
            .as_ref()
            .ok_or_else(|| Error::invalid("parabolic problems need [equation] initial"))?
            .field(grid, 0.0, "initial", inputs)?;
        let source = match &self.equation.source {
            None => Source::None,
            Some(v) if v.depends_on_time() => {
                let (v, g, b) = (v.clone(), grid.clone(), inputs.clone());
                v.field(&g, 0.0, "source", &b)?; // report a bad expression before stepping
                Source::Function(std::sync::Arc::new(move |t| v.field(&g, t, "source", &b)))
            }
            Some(v) => Source::Field(v.field(grid, 0.0, "source", inputs)?),
        };
        Ok(ParabolicProblem {
            operator: self.operator(grid, inputs)?,
            bcs: boundary_conditions(grid, self.boundary.as_ref())?,
            source,
            initial,
            grid: grid.clone(),
        })
    }
}

impl FokkerPlanckFile {
    /// The Fokker–Planck problem the file describes on `grid` (validated: D > 0, ρ₀ ≥ 0 with
    /// positive mass, finite data); the initial density is resampled conservatively.
    pub fn problem(&self, grid: &Grid, inputs: &Inputs) -> Result<FokkerPlanckProblem> {
        let eq = &self.equation;
        let problem = FokkerPlanckProblem {
            diffusion: eq.diffusion,
            potential: eq.potential.field(grid, 0.0, "potential", inputs)?,
            drift: eq.drift.as_ref().map(|d| vector_field(d, grid, "drift", inputs)).transpose()?,
            initial: eq.initial.density(grid, "initial", inputs)?,
            grid: grid.clone(),
        };
        problem.validate()?;
        Ok(problem)
    }
}

/// Reads and parses a problem file; syntax errors, unknown keys and wrong types name the
/// key and line.
pub fn read_problem<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    crate::error::parse_toml(&text, path)
}

impl GridChoice {
    /// The grid (mesh paths are relative to the problem file, then the working directory).
    pub fn grid(&self, base: &Path) -> Result<Grid> {
        match self {
            GridChoice::Mesh(name) => {
                let local = base.join(name);
                if local.is_file() {
                    GridSpec::load(&local.to_string_lossy())
                } else {
                    GridSpec::load(name)
                }
            }
            GridChoice::Inline(spec) => spec.to_grid(Path::new("[grid]")),
        }
    }
}

impl Value {
    /// A dataset reference's (file, dataset) parts, if this is one.
    fn dataset(&self) -> Option<(&str, Option<&str>)> {
        match self {
            Value::Text(s) => dataset_parts(s),
            Value::Number(_) => None,
        }
    }

    /// The expression, if this value is an expression (not a number or dataset).
    pub fn expression(&self, what: &str) -> Result<Option<Expression>> {
        match self {
            Value::Text(s) if self.dataset().is_none() => Expression::parse(s, what).map(Some),
            _ => Ok(None),
        }
    }

    /// The value sampled on the grid at time t (files are interpolated if resampled).
    pub fn field(&self, grid: &Grid, t: f64, what: &str, inputs: &Inputs) -> Result<ScalarField> {
        self.sample(grid, t, what, inputs, Quantity::Field)
    }

    /// The value as a density (files are resampled conservatively).
    pub fn density(&self, grid: &Grid, what: &str, inputs: &Inputs) -> Result<ScalarField> {
        self.sample(grid, 0.0, what, inputs, Quantity::Density)
    }

    fn sample(
        &self,
        grid: &Grid,
        t: f64,
        what: &str,
        inputs: &Inputs,
        quantity: Quantity,
    ) -> Result<ScalarField> {
        if let Some((file, dataset)) = self.dataset() {
            return inputs.read(file, dataset, grid, what, quantity);
        }
        match (self, self.expression(what)?) {
            (Value::Number(x), _) if x.is_finite() => Ok(ScalarField::from_fn(grid, |_| *x)),
            (Value::Number(x), _) => {
                Err(Error::invalid(format!("{what}: value {x} is not finite")))
            }
            (_, Some(expr)) => expr.sample(grid, t, what),
            (_, None) => unreachable!("text values are expressions or datasets"),
        }
    }

    /// As a sparse-assembly coefficient (constants stay constants).
    pub fn coefficient(&self, grid: &Grid, what: &str, inputs: &Inputs) -> Result<Coefficient> {
        match self {
            Value::Number(x) => Ok(Coefficient::Constant(*x)),
            _ => Ok(Coefficient::Field(self.field(grid, 0.0, what, inputs)?)),
        }
    }

    /// Whether the value depends on t.
    pub fn depends_on_time(&self) -> bool {
        matches!(self.expression("value"), Ok(Some(e)) if e.depends_on_time())
    }
}

/// A vector of values sampled on the grid.
pub fn vector_field(
    values: &[Value],
    grid: &Grid,
    what: &str,
    inputs: &Inputs,
) -> Result<VectorField> {
    if values.len() != grid.dim() {
        return Err(Error::invalid(format!(
            "{what} has {} components, the grid is {}D",
            values.len(),
            grid.dim()
        )));
    }
    let comps: Vec<ScalarField> = values
        .iter()
        .enumerate()
        .map(|(a, v)| v.field(grid, 0.0, &format!("{what}[{}]", AXIS_NAMES[a]), inputs))
        .collect::<Result<_>>()?;
    VectorField::from_components(&comps)
}

/// Per-face boundary conditions from `[boundary]` (faces not listed keep the homogeneous
/// condition of the grid's kind).
pub fn boundary_conditions(
    grid: &Grid,
    faces: Option<&BTreeMap<String, FaceSpec>>,
) -> Result<BoundaryConditions> {
    let mut bcs = BoundaryConditions::homogeneous(grid);
    let Some(faces) = faces else { return Ok(bcs) };
    let names: Vec<String> = (0..grid.dim())
        .flat_map(|a| ["lower", "upper"].map(|s| format!("{}_{s}", AXIS_NAMES[a])))
        .collect();
    for (name, spec) in faces {
        let Some(k) = names.iter().position(|n| n == name) else {
            return Err(Error::invalid(format!(
                "[boundary]: unknown face '{name}' (expected one of {})",
                names.join(", ")
            )));
        };
        let (axis, side) = (k / 2, k % 2);
        let what = format!("boundary {name}");
        let value = match &spec.value {
            None => BoundaryValue::Constant(0.0),
            Some(Value::Number(x)) => BoundaryValue::Constant(*x),
            Some(v) => {
                let e = v.expression(&what)?.ok_or_else(|| {
                    Error::invalid(format!("{what}: dataset values are not supported on faces"))
                })?;
                if e.depends_on_time() {
                    return Err(Error::invalid(format!(
                        "{what}: boundary values must not depend on t"
                    )));
                }
                check_face_values(grid, axis, side, &what, v, &e)?;
                BoundaryValue::function(move |p| e.eval(p, 0.0))
            }
        };
        let cond = match (spec.kind.as_str(), spec.alpha) {
            ("dirichlet", None) => FaceCondition::Dirichlet(value),
            ("neumann", None) => FaceCondition::Neumann(value),
            ("robin", Some(alpha)) => FaceCondition::Robin { alpha, value },
            ("robin", None) => return Err(Error::invalid(format!("{what}: robin needs alpha"))),
            ("dirichlet" | "neumann", Some(_)) => {
                return Err(Error::invalid(format!("{what}: alpha is only for robin faces")))
            }
            (other, _) => {
                return Err(Error::invalid(format!(
                    "{what}: unknown type '{other}' (dirichlet, neumann or robin)"
                )))
            }
        };
        bcs = bcs.set(axis, side, cond);
    }
    bcs.validate(grid)?;
    Ok(bcs)
}

/// Refuses a boundary expression that is NaN or infinite somewhere on its face.
fn check_face_values(
    grid: &Grid,
    axis: usize,
    side: usize,
    what: &str,
    value: &Value,
    e: &Expression,
) -> Result<()> {
    let face = if side == 0 { grid.axis(axis).lower } else { grid.axis(axis).upper };
    let at_face = |p: &[f64]| {
        let mut q = p.to_vec();
        q[axis] = face;
        q
    };
    let sampled = ScalarField::from_fn(grid, |p| e.eval(&at_face(p), 0.0));
    if let Some(index) = sampled.first_non_finite() {
        let mut p = vec![0.0; grid.dim()];
        grid.cell_center(&index, &mut p);
        let q = at_face(&p);
        let text = match value {
            Value::Text(t) => t.clone(),
            Value::Number(x) => x.to_string(),
        };
        return Err(Error::invalid(format!(
            "{what}: value '{text}' is {} at {:?}",
            e.eval(&q, 0.0),
            q
        )));
    }
    Ok(())
}

/// The advection scheme from its name (default upwind).
pub fn advection_scheme(name: Option<&str>) -> Result<AdvectionScheme> {
    match name.unwrap_or("upwind") {
        "upwind" => Ok(AdvectionScheme::Upwind),
        "centred" | "centered" => Ok(AdvectionScheme::Centred),
        other => Err(Error::invalid(format!("advection_scheme '{other}' (upwind or centred)"))),
    }
}

impl TimeSection {
    /// Time settings with `snapshots` snapshots.
    pub fn settings(&self, snapshots: usize) -> Result<TimeSettings> {
        let scheme = self.scheme.unwrap_or(TimeScheme::CrankNicolson);
        let control = if self.adaptive.unwrap_or(false) {
            StepControl::Adaptive { dt_initial: self.dt, tolerance: self.tolerance.unwrap_or(1e-5) }
        } else {
            if self.tolerance.is_some() {
                return Err(Error::invalid("[time] tolerance is only used with adaptive = true"));
            }
            StepControl::Fixed { dt: self.dt }
        };
        let settings = TimeSettings { t_end: self.t_end, scheme, control, snapshots };
        crate::pde::parabolic::check_time(&settings)?;
        Ok(settings)
    }
}
