//! The OT method registry: every method's name, stopping measure, default tolerance, range
//! of problems, settings, memory and configured solver, one [`MethodInfo`] per method,
//! defined in the method's own file and listed once in [`REGISTRY`]. Adding a method: a file
//! with its `Solver` and its `METHOD` entry, and one line in [`REGISTRY`]; the CLI's
//! `--method NAME` and `--set KEY=VALUE` reach it with no other change.

use super::problem::{Options, Problem, Solution, Solver};
use crate::error::{Error, Result};
use crate::grid::Grid;

/// Smallest density contrast `min/max` that Newton and the parabolic flow solve as given;
/// below it they solve the lifted pair ([`super::GaussianLift`]).
pub const MIN_CONTRAST: f64 = 0.05;

/// One setting a method takes by name (the CLI's `--set NAME=VALUE`).
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The name, e.g. `metric`.
    pub name: &'static str,
    /// What it sets and the values it takes.
    pub help: &'static str,
}

/// The settings every method takes besides its own ([`MethodInfo::settings`]): its
/// tolerance and iteration budget, each in the method's own measure.
pub const STOPPING_SETTINGS: [Setting; 2] = [
    Setting {
        name: "tolerance",
        help: "stopping threshold of the method's measure (default: the method's, on the grid)",
    },
    Setting {
        name: "max-iterations",
        help: "iteration budget, all levels together (default: the method's)",
    },
];

/// Settings by name, as text (the CLI's method flags and `--set NAME=VALUE`); each method
/// parses the ones it lists in [`MethodInfo::settings`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings(Vec<(String, String)>);

impl Settings {
    /// Sets `name` to `value` (replacing an earlier value).
    pub fn set(&mut self, name: &str, value: &str) -> &mut Settings {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.to_string(), value.to_string()));
        self
    }

    /// Parses `NAME=VALUE` and sets it.
    pub fn set_pair(&mut self, pair: &str) -> Result<&mut Settings> {
        match pair.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                Ok(self.set(name.trim(), value.trim()))
            }
            _ => Err(Error::invalid(format!("setting '{pair}' is not of the form NAME=VALUE"))),
        }
    }

    /// The value of `name` as given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The value of `name` parsed, if set.
    pub fn parse<T>(&self, name: &str) -> Result<Option<T>>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|v| v.parse::<T>().map_err(|e| Error::invalid(format!("setting {name}={v}: {e}"))))
            .transpose()
    }

    /// The tolerance and the iteration budget set ([`STOPPING_SETTINGS`]), `None` where
    /// unset.
    pub fn stopping(&self) -> Result<(Option<f64>, Option<usize>)> {
        Ok((self.parse("tolerance")?, self.parse("max-iterations")?))
    }

    /// The names set, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }
}

/// A solver configured from [`Settings`]: any [`Solver`] that can report its parameters.
pub trait ConfiguredSolver: Solver + Send + Sync {
    /// Every parameter, as recorded in output files and JSON reports.
    fn parameters(&self) -> serde_json::Value;

    /// The parabolic flow, the one method with checkpoints and a map-error record (`None`
    /// for the others).
    fn as_flow_mut(&mut self) -> Option<&mut super::Parabolic> {
        None
    }
}

/// What the registry knows about a method.
#[derive(Clone, Copy)]
pub struct MethodInfo {
    /// The registry name (the CLI's `--method`).
    pub name: &'static str,
    /// What the tolerance measures, in words.
    pub stopping_measure: &'static str,
    /// The default tolerance on a grid.
    pub default_tolerance: fn(&Grid) -> f64,
    /// The default iteration budget (all levels together).
    pub max_iterations: usize,
    /// Why the method does not solve a problem (checked before solving, in well under a
    /// second), or `None` when it does.
    pub unsuited: fn(&Problem) -> Option<String>,
    /// The method's own settings [`MethodInfo::configure`] reads (besides
    /// [`STOPPING_SETTINGS`], which every method takes).
    pub settings: &'static [Setting],
    /// The solver with its default parameters changed by `settings` (only names listed in
    /// [`MethodInfo::settings`] reach it).
    pub configure: fn(&Settings) -> Result<Box<dyn ConfiguredSolver>>,
    /// Peak memory of a solve on a grid, in f64 fields of that grid (calibrated in
    /// [`crate::resources`]).
    pub memory_fields: fn(&Grid) -> f64,
}

/// The registry, default first.
pub const REGISTRY: [&MethodInfo; 4] = [
    &super::bfm::METHOD,
    &super::newton::METHOD,
    &super::parabolic::METHOD,
    &super::sinkhorn::METHOD,
];

/// An OT method: a registry entry ([`MethodInfo`]), found by name ([`Method::from_name`]).
#[derive(Clone, Copy)]
pub struct Method(&'static MethodInfo);

impl PartialEq for Method {
    fn eq(&self, other: &Method) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Method {}

impl std::fmt::Debug for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Method({})", self.0.name)
    }
}

impl Method {
    /// Back-and-forth dual ascent (Jacobs–Léger), the default.
    pub const BFM: Method = Method(&super::bfm::METHOD);
    /// Damped Newton for the Monge–Ampère equation (smooth, strictly positive densities).
    pub const NEWTON: Method = Method(&super::newton::METHOD);
    /// The parabolic Monge–Ampère flow (smooth, strictly positive densities).
    pub const PARABOLIC: Method = Method(&super::parabolic::METHOD);
    /// Entropic OT by log-domain Sinkhorn (ε = 1e-3 L² unless set otherwise).
    pub const SINKHORN: Method = Method(&super::sinkhorn::METHOD);

    /// A method from its registry entry (also one that is not in [`REGISTRY`]).
    pub const fn new(info: &'static MethodInfo) -> Method {
        Method(info)
    }

    /// Every registered method, default first.
    pub fn all() -> impl Iterator<Item = Method> {
        REGISTRY.into_iter().map(Method)
    }

    /// The method's registry entry.
    pub fn info(self) -> &'static MethodInfo {
        self.0
    }

    /// The registry name.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The default tolerance for this method on `grid` (each
    /// method documents its rule with the measurements behind it).
    pub fn default_tolerance(self, grid: &Grid) -> f64 {
        (self.0.default_tolerance)(grid)
    }

    /// What the tolerance measures for this method, in words.
    pub fn stopping_measure(self) -> &'static str {
        self.0.stopping_measure
    }

    /// Peak memory of a solve on `grid`, in f64 fields of the grid.
    pub fn memory_fields(self, grid: &Grid) -> f64 {
        (self.0.memory_fields)(grid)
    }

    /// The method `auto` (the CLI's default) runs on `problem`, and why: the back-and-forth
    /// method, which solves every density pair of the verification zoo (zero regions,
    /// mixtures, torn maps, torus and box, 2D and 3D) at default settings and is the fastest
    /// there. Newton's map errors are 1.2–60× smaller on the smooth pairs it accepts, but it
    /// runs 5–100× slower (docs/ot.md), so `auto` names it as an option instead of picking it.
    pub fn auto(problem: &Problem) -> (Method, String) {
        let contrast = problem.contrast();
        let why = match Method::NEWTON.unsuited(problem) {
            None => format!(
                "bfm: any densities (min/max {contrast:.1e}; newton also solves this pair, \
                 slower and more accurately)"
            ),
            Some(reason) => format!("bfm: any densities (newton does not: {reason})"),
        };
        (Method::BFM, why)
    }

    /// Why this method does not solve `problem` ([`MethodInfo::unsuited`]), or `None`.
    pub fn unsuited(self, problem: &Problem) -> Option<String> {
        (self.0.unsuited)(problem)
    }

    /// Refuses, at once and with the method to use instead, a problem this method does not
    /// solve ([`MethodInfo::unsuited`]).
    pub fn check(self, problem: &Problem) -> Result<()> {
        match self.unsuited(problem) {
            None => Ok(()),
            Some(reason) => Err(Error::UnsuitedMethod {
                method: self.name(),
                reason,
                suggestion: "the method bfm (or auto)",
            }),
        }
    }

    /// Looks a registered method up by name.
    pub fn from_name(name: &str) -> Result<Method> {
        Method::all().find(|m| m.name() == name).ok_or_else(|| {
            let names: Vec<_> = Method::all().map(|m| m.name()).collect();
            Error::invalid(format!("unknown OT method '{name}' (known: {})", names.join(", ")))
        })
    }

    /// Whether this method takes the setting `name` (its own or a [`STOPPING_SETTINGS`] one).
    pub fn takes(self, name: &str) -> bool {
        self.0.settings.iter().chain(&STOPPING_SETTINGS).any(|s| s.name == name)
    }

    /// The registered methods that take the setting `name`.
    pub fn taking(name: &str) -> Vec<Method> {
        Method::all().filter(|m| m.takes(name)).collect()
    }

    /// The method's solver with `settings` applied; a setting the method does not take is
    /// refused, naming the methods that take it.
    pub fn configure(self, settings: &Settings) -> Result<Box<dyn ConfiguredSolver>> {
        for name in settings.names() {
            if !self.takes(name) {
                let own: Vec<_> =
                    self.0.settings.iter().chain(&STOPPING_SETTINGS).map(|s| s.name).collect();
                let others: Vec<_> = Method::taking(name).iter().map(|m| m.name()).collect();
                let elsewhere = if others.is_empty() {
                    "no method takes it".to_string()
                } else {
                    format!("it applies to {}", others.join(", "))
                };
                return Err(Error::invalid(format!(
                    "{} takes no setting '{name}' ({elsewhere}; its settings: {})",
                    self.name(),
                    own.join(", ")
                )));
            }
        }
        (self.0.configure)(settings)
    }

    /// Runs this method with its default settings.
    pub fn solve(self, problem: &Problem, options: &Options) -> Result<Solution> {
        self.configure(&Settings::default())?.solve(problem, options)
    }
}

impl std::str::FromStr for Method {
    type Err = Error;
    /// Same as [`Method::from_name`].
    fn from_str(s: &str) -> Result<Method> {
        Method::from_name(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are unique and parse back; every method configures with no settings, and a
    /// setting it does not take is refused, naming the method that takes it.
    #[test]
    fn registry_names_settings_and_configuration() {
        let mut names: Vec<_> = REGISTRY.iter().map(|i| i.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len());
        for m in Method::all() {
            assert_eq!(Method::from_name(m.name()).unwrap(), m);
            let solver = m.configure(&Settings::default()).unwrap();
            assert!(solver.parameters().is_object(), "{}", m.name());
        }
        let mut epsilon = Settings::default();
        epsilon.set_pair("epsilon=2e-3").unwrap();
        let e = Method::BFM.configure(&epsilon).err().expect("refused").to_string();
        assert!(e.contains("bfm takes no setting 'epsilon'") && e.contains("sinkhorn"), "{e}");
        let sinkhorn = Method::SINKHORN.configure(&epsilon).unwrap();
        assert_eq!(sinkhorn.parameters()["epsilon"], serde_json::json!(2e-3));
        assert!(Settings::default().set_pair("epsilon").is_err());
    }
}
