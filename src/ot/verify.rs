//! Errors of a computed map against a closed-form Brenier map, measured as in
//! `../shared/reference/analytic-maps.md`: over the bulk (cells where μ exceeds 1% of its
//! maximum, which excludes the truncated tails of box problems) and weighted by μ; and the
//! verification suite: named [`Case`]s with closed-form maps, solved at several resolutions
//! by [`verify_case`] (`otgrid verify`).

use super::problem::{Method, Options, Problem, Solution};
use crate::analytic::gaussian::{Gaussian, GaussianMap};
use crate::analytic::maps::{PeriodicManufactured, Separable};
use crate::error::{Error, Result};
use crate::field::ScalarField;
use crate::grid::{BoundaryKind, Grid};

/// Map errors over the bulk of μ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapError {
    /// `(∫_bulk |T − T_exact|² dμ / μ(bulk))^{1/2}`.
    pub l2: f64,
    /// `max_bulk |T − T_exact|`.
    pub max: f64,
    /// Fraction of μ's mass in the bulk.
    pub bulk_mass: f64,
}

/// Compares `solution.map()` with `exact` (writes T_exact(x) into its second argument).
pub fn map_error<F>(solution: &Solution, problem: &Problem, exact: F) -> MapError
where
    F: Fn(&[f64], &mut [f64]),
{
    let grid = problem.grid();
    let d = grid.dim();
    let map = solution.map();
    let t = map.data().as_slice().expect("contiguous");
    let mu = problem.source().data().as_slice().expect("contiguous");
    let peak = problem.source().max();
    let shape = grid.storage_shape();
    let (mut num, mut den, mut max, mut total) = (0.0, 0.0, 0.0f64, 0.0);
    let mut index = vec![0usize; d];
    let mut x = [0.0f64; 3];
    let mut y = [0.0f64; 3];
    for (flat, &m) in mu.iter().enumerate() {
        total += m;
        if m <= 0.01 * peak {
            continue;
        }
        let mut rest = flat;
        for k in (0..d).rev() {
            index[k] = rest % shape[k];
            rest /= shape[k];
        }
        grid.cell_center(&index, &mut x);
        exact(&x[..d], &mut y[..d]);
        let e2: f64 = (0..d).map(|a| (t[flat * d + a] - y[a]).powi(2)).sum();
        num += m * e2;
        den += m;
        max = max.max(e2.sqrt());
    }
    MapError { l2: (num / den).sqrt(), max, bulk_mass: den / total }
}

/// Which density of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Source,
    Target,
}

/// The named verification cases with closed-form Brenier maps
/// (`../shared/reference/analytic-maps.md`), used by `otgrid verify` and by the density
/// presets of `otgrid ot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// μ = N((0.4,0.45), 0.08²I) → ν = N((0.6,0.55), diag(0.06², 0.10²)) on the unit box.
    Gaussian2d,
    /// μ = N((0.4,0.45,0.5), 0.08²I) → ν = N((0.6,0.55,0.5), [[0.0036,0,0],[0,0.01,0.002],
    /// [0,0.002,0.0064]]) on the unit cube (full covariance).
    Gaussian3d,
    /// [`Separable::standard`] products on the unit box.
    Separable2d,
    /// [`PeriodicManufactured::standard`] on the unit torus, 2D.
    Periodic2d,
    /// The same in 3D.
    Periodic3d,
}

impl Case {
    /// Every case.
    pub const ALL: [Case; 5] =
        [Case::Gaussian2d, Case::Gaussian3d, Case::Separable2d, Case::Periodic2d, Case::Periodic3d];

    /// The registry name (`otgrid verify --case NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Case::Gaussian2d => "gaussian-2d",
            Case::Gaussian3d => "gaussian-3d",
            Case::Separable2d => "separable-2d",
            Case::Periodic2d => "periodic-2d",
            Case::Periodic3d => "periodic-3d",
        }
    }

    /// Looks a case up by name.
    pub fn from_name(name: &str) -> Result<Case> {
        Case::ALL.into_iter().find(|c| c.name() == name).ok_or_else(|| {
            let names: Vec<_> = Case::ALL.iter().map(|c| c.name()).collect();
            Error::invalid(format!("unknown case '{name}' (known: {})", names.join(", ")))
        })
    }

    /// Space dimension.
    pub fn dim(self) -> usize {
        match self {
            Case::Gaussian3d | Case::Periodic3d => 3,
            _ => 2,
        }
    }

    /// Periodic (torus) or box (second boundary condition).
    pub fn boundary(self) -> BoundaryKind {
        match self {
            Case::Periodic2d | Case::Periodic3d => BoundaryKind::Periodic,
            _ => BoundaryKind::Neumann,
        }
    }

    /// The unit grid with `n` cells per axis.
    pub fn grid(self, n: usize) -> Result<Grid> {
        Grid::unit(self.dim(), n, self.boundary())
    }

    /// Default resolutions of `otgrid verify`.
    pub fn sizes(self) -> &'static [usize] {
        match self {
            Case::Gaussian2d => &[64, 128, 256],
            Case::Separable2d | Case::Periodic2d => &[32, 64, 128],
            Case::Gaussian3d => &[32, 48, 64],
            Case::Periodic3d => &[24, 32, 48],
        }
    }

    /// Stopping tolerance of `method` at `n` cells per axis: the method's default, except
    /// bfm on the torus cases, whose marginal error reaches an O(h²) floor (measured 0.65 h²
    /// in 2D) far below the default; there `min(default, 2h²)`, so that the table measures
    /// the discretisation, not the stopping rule.
    pub fn tolerance(self, method: Method, grid: &Grid) -> f64 {
        let default = method.default_tolerance(grid);
        if method == Method::BackAndForth && self.boundary() == BoundaryKind::Periodic {
            let h = grid.axis(0).spacing();
            default.min(2.0 * h * h)
        } else {
            default
        }
    }

    /// Methods the case is meant for (Newton needs densities bounded away from zero).
    pub fn methods(self) -> &'static [Method] {
        match self {
            Case::Gaussian2d | Case::Gaussian3d => &[Method::BackAndForth],
            _ => &[Method::Newton, Method::Parabolic, Method::BackAndForth],
        }
    }

    fn gaussians(self) -> Option<GaussianMap> {
        let (s, t) = match self {
            Case::Gaussian2d => (
                Gaussian::new(vec![0.4, 0.45], vec![vec![0.0064, 0.0], vec![0.0, 0.0064]]),
                Gaussian::new(vec![0.6, 0.55], vec![vec![0.0036, 0.0], vec![0.0, 0.01]]),
            ),
            Case::Gaussian3d => (
                Gaussian::new(
                    vec![0.4, 0.45, 0.5],
                    vec![vec![0.0064, 0.0, 0.0], vec![0.0, 0.0064, 0.0], vec![0.0, 0.0, 0.0064]],
                ),
                Gaussian::new(
                    vec![0.6, 0.55, 0.5],
                    vec![vec![0.0036, 0.0, 0.0], vec![0.0, 0.01, 0.002], vec![0.0, 0.002, 0.0064]],
                ),
            ),
            _ => return None,
        };
        Some(GaussianMap::new(s.ok()?, t.ok()?).expect("valid Gaussian pair"))
    }

    /// The closed forms of this case.
    pub fn exact(self) -> Exact {
        match self {
            Case::Gaussian2d | Case::Gaussian3d => {
                Exact::Gaussian(self.gaussians().expect("a Gaussian case"))
            }
            Case::Separable2d => Exact::Separable(Separable::standard(2)),
            Case::Periodic2d => Exact::Periodic(PeriodicManufactured::standard(2)),
            Case::Periodic3d => Exact::Periodic(PeriodicManufactured::standard(3)),
        }
    }

    /// The case's OT problem on the unit grid with `n` cells per axis.
    pub fn problem(self, n: usize) -> Result<Problem> {
        let grid = self.grid(n)?;
        Problem::new(&self.sample(&grid, Role::Source)?, &self.sample(&grid, Role::Target)?)
    }

    /// The source or target density sampled on `grid` (which must match the case's dimension
    /// and boundary kind).
    pub fn sample(self, grid: &Grid, role: Role) -> Result<ScalarField> {
        if grid.dim() != self.dim() {
            return Err(Error::invalid(format!(
                "case {} is {}D but the grid is {}D",
                self.name(),
                self.dim(),
                grid.dim()
            )));
        }
        if grid.boundaries().iter().any(|&b| b != self.boundary()) {
            return Err(Error::invalid(format!(
                "case {} needs {} boundaries on every axis (--bc {})",
                self.name(),
                self.boundary().name(),
                self.boundary().name()
            )));
        }
        let exact = self.exact();
        Ok(ScalarField::from_fn(grid, |x| exact.density(role, x)))
    }
}

/// The closed forms of a [`Case`].
#[derive(Clone, Debug)]
pub enum Exact {
    Gaussian(GaussianMap),
    Separable(Separable),
    Periodic(PeriodicManufactured),
}

impl Exact {
    /// μ's or ν's density at `x`.
    pub fn density(&self, role: Role, x: &[f64]) -> f64 {
        match (self, role) {
            (Exact::Gaussian(m), Role::Source) => m.source.density(x),
            (Exact::Gaussian(m), Role::Target) => m.target.density(x),
            (Exact::Separable(s), Role::Source) => s.source_density(x),
            (Exact::Separable(s), Role::Target) => s.target_density(x),
            (Exact::Periodic(p), Role::Source) => p.source_density(x),
            (Exact::Periodic(p), Role::Target) => p.target_density(x),
        }
    }

    /// The exact map `T(x)` into `out`.
    pub fn map(&self, x: &[f64], out: &mut [f64]) {
        match self {
            Exact::Gaussian(m) => m.apply(x, out),
            Exact::Separable(s) => s.map(x, out),
            Exact::Periodic(p) => p.map(x, out),
        }
    }

    /// The exact W₂² (for Gaussians that of the untruncated pair).
    pub fn w2_squared(&self) -> f64 {
        match self {
            Exact::Gaussian(m) => m.w2_squared(),
            Exact::Separable(s) => s.w2_squared(),
            Exact::Periodic(p) => p.w2_squared(),
        }
    }
}

/// One row of the verification table.
#[derive(Clone, Debug)]
pub struct VerifyRow {
    pub case: Case,
    pub method: Method,
    pub cells: usize,
    pub converged: bool,
    pub iterations: usize,
    pub seconds: f64,
    pub error: MapError,
    /// `|W₂²_h − W₂²| / W₂²`.
    pub w2_relative_error: f64,
    /// Observed order of the L2 map error against the previous (coarser) row, if any.
    pub order: Option<f64>,
}

/// Solves `case` with `method` (its default settings, tolerance [`Case::tolerance`]) at
/// each of `sizes` cells per axis.
pub fn verify_case(case: Case, method: Method, sizes: &[usize]) -> Result<Vec<VerifyRow>> {
    let exact = case.exact();
    let w2 = exact.w2_squared();
    let mut rows: Vec<VerifyRow> = Vec::new();
    for &n in sizes {
        let problem = case.problem(n)?;
        let grid = problem.grid().clone();
        let options = Options { tolerance: case.tolerance(method, &grid), ..Default::default() };
        let solution = method.solve(&problem, &options)?;
        let error = map_error(&solution, &problem, |x, y| exact.map(x, y));
        let order = rows
            .last()
            .map(|prev| (prev.error.l2 / error.l2).ln() / (n as f64 / prev.cells as f64).ln());
        rows.push(VerifyRow {
            case,
            method,
            cells: n,
            converged: solution.converged,
            iterations: solution.iterations,
            seconds: solution.seconds,
            error,
            w2_relative_error: (solution.w2_squared() - w2).abs() / w2,
            order,
        });
    }
    Ok(rows)
}
