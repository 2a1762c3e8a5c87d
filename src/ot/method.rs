//! The OT method registry: every method's name, stopping measure, default tolerance, range
//! of problems and default solve, one [`MethodInfo`] per method, defined in the method's own
//! file and listed once in [`REGISTRY`]. Adding a method: a file with its `Solver` and its
//! `METHOD` entry, a [`Method`] variant, and one line in [`REGISTRY`].

use super::problem::{Options, Problem, Solution};
use crate::error::{Error, Result};
use crate::grid::Grid;

/// Smallest density contrast `min/max` that Newton and the parabolic flow solve as given;
/// below it they solve the lifted pair ([`super::GaussianLift`]).
pub const MIN_CONTRAST: f64 = 0.05;

/// What the registry knows about a method.
#[derive(Clone, Copy)]
pub struct MethodInfo {
    /// The registry name (the CLI's `--method`).
    pub name: &'static str,
    /// What the tolerance measures, in words.
    pub stopping_measure: &'static str,
    /// The default tolerance on a grid.
    pub default_tolerance: fn(&Grid) -> f64,
    /// Why the method does not solve a problem (checked before solving, in well under a
    /// second), or `None` when it does.
    pub unsuited: fn(&Problem) -> Option<String>,
    /// Solves with the method's default parameters.
    pub solve: fn(&Problem, &Options) -> Result<Solution>,
}

/// The registry, in the order of [`Method`]'s variants.
pub const REGISTRY: [&MethodInfo; 4] = [
    &super::bfm::METHOD,
    &super::newton::METHOD,
    &super::parabolic::METHOD,
    &super::sinkhorn::METHOD,
];

/// The OT methods by name (the CLI's `--method`); [`Method::info`] is the registry entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Back-and-forth dual ascent (Jacobs–Léger), the default.
    BackAndForth,
    /// Damped Newton for the Monge–Ampère equation (smooth, strictly positive densities).
    Newton,
    /// The parabolic Monge–Ampère flow (smooth, strictly positive densities).
    Parabolic,
    /// Entropic OT by log-domain Sinkhorn (ε = 1e-3 unless set otherwise).
    Sinkhorn,
}

impl Method {
    /// Every method, default first.
    pub const ALL: [Method; 4] =
        [Method::BackAndForth, Method::Newton, Method::Parabolic, Method::Sinkhorn];

    /// The method's registry entry.
    pub fn info(self) -> &'static MethodInfo {
        REGISTRY[self as usize]
    }

    /// The registry name.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The default tolerance of [`Options::tolerance`] for this method on `grid` (each
    /// method documents its rule with the measurements behind it).
    pub fn default_tolerance(self, grid: &Grid) -> f64 {
        (self.info().default_tolerance)(grid)
    }

    /// What the tolerance measures for this method, in words.
    pub fn stopping_measure(self) -> &'static str {
        self.info().stopping_measure
    }

    /// The method `auto` (the CLI's default) runs on `problem`, and why: the back-and-forth
    /// method, which solves every density pair of the verification zoo (zero regions,
    /// mixtures, torn maps, torus and box, 2D and 3D) at default settings and is the fastest
    /// there. Newton's map errors are 1.2–60× smaller on the smooth pairs it accepts, but it
    /// runs 5–100× slower (docs/ot.md), so `auto` names it as an option instead of picking it.
    pub fn auto(problem: &Problem) -> (Method, String) {
        let contrast = problem.contrast();
        let why = match Method::Newton.unsuited(problem) {
            None => format!(
                "bfm: any densities (min/max {contrast:.1e}; newton also solves this pair, \
                 slower and more accurately)"
            ),
            Some(reason) => format!("bfm: any densities (newton does not: {reason})"),
        };
        (Method::BackAndForth, why)
    }

    /// Why this method does not solve `problem` ([`MethodInfo::unsuited`]), or `None`.
    pub fn unsuited(self, problem: &Problem) -> Option<String> {
        (self.info().unsuited)(problem)
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

    /// Looks a method up by name.
    pub fn from_name(name: &str) -> Result<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| {
            let names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
            Error::invalid(format!("unknown OT method '{name}' (known: {})", names.join(", ")))
        })
    }

    /// Runs this method with its default settings.
    pub fn solve(self, problem: &Problem, options: &Options) -> Result<Solution> {
        (self.info().solve)(problem, options)
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

    /// The registry is in the order of the variants, and names are unique.
    #[test]
    fn registry_matches_the_variants() {
        for (k, m) in Method::ALL.into_iter().enumerate() {
            assert_eq!(m as usize, k);
            assert_eq!(m.info().name, m.name());
            assert_eq!(Method::from_name(m.name()).unwrap(), m);
        }
        let mut names: Vec<_> = REGISTRY.iter().map(|i| i.name).collect();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len());
    }
}
