//! How a flow advances by τ: the time schemes built on the JKO step.
//!
//! - [`TimeScheme::Jko`]: `ρ_{k+1} = argmin_ρ F(ρ) + W₂²(ρ, ρ_k)/(2τ)`, backward Euler in
//!   the Wasserstein space — first order in τ, and `F(ρ_{k+1}) ≤ F(ρ_k)` at every step.
//! - [`TimeScheme::Bdf2`]: the second-order backward differentiation formula through geodesic
//!   extrapolation (Gallouët, Natale & Todeschi 2022). In R^d BDF2 is `x_{k+1} = x̃ −
//!   (2τ/3)∇F(x_{k+1})` with `x̃ = x_k + (x_k − x_{k−1})/3`; here each particle's last
//!   displacement `d_k = x_k − x_{k−1}` is carried as a field on ρ_k's cells, `ρ̃ = (id +
//!   d_k/3)#ρ_k`, and `ρ_{k+1}` is the JKO step of 2τ/3 from ρ̃, warm-started from the
//!   last potential scaled to 2τ/3. The first step (and the step after an entropic one,
//!   which has no map) is a JKO step of τ. Second order in τ (L-stable, as BDF2 is:
//!   grid-scale errors are damped); the energy need not fall at every step.

use crate::error::{Error, Result};

/// A flow's time scheme (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeScheme {
    /// One JKO step of τ per step (backward Euler): first order.
    #[default]
    Jko,
    /// BDF2: a JKO step of 2τ/3 from ρ_k pushed a third of its last displacement further:
    /// second order.
    Bdf2,
}

impl TimeScheme {
    /// Every scheme, in the order the CLI lists them.
    pub const ALL: [TimeScheme; 2] = [TimeScheme::Jko, TimeScheme::Bdf2];

    /// The name the CLI and problem files use.
    pub fn name(self) -> &'static str {
        match self {
            TimeScheme::Jko => "jko",
            TimeScheme::Bdf2 => "bdf2",
        }
    }
}

impl std::fmt::Display for TimeScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TimeScheme {
    type Err = Error;
    fn from_str(s: &str) -> Result<TimeScheme> {
        TimeScheme::ALL.into_iter().find(|t| t.name() == s.trim().to_ascii_lowercase()).ok_or_else(
            || {
                let names: Vec<&str> = TimeScheme::ALL.iter().map(|t| t.name()).collect();
                Error::invalid(format!(
                    "unknown time scheme '{s}' (expected one of: {})",
                    names.join(", ")
                ))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for t in TimeScheme::ALL {
            assert_eq!(t.name().parse::<TimeScheme>().unwrap(), t);
        }
        let e = "midpoint".parse::<TimeScheme>().unwrap_err().to_string();
        assert!(e.contains("jko, bdf2"), "{e}");
    }
}
