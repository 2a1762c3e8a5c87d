//! Energies of a JKO step and their convex conjugates.
//!
//! An energy is `F(ρ) = ∫ e(ρ(x)) + V(x) ρ(x) dx` with `e` convex on ρ ≥ 0 (the internal
//! part) and `V` a potential. The JKO step's dual ([`super::jko`]) needs, per cell and for a
//! dual variable `s`, the conjugate `e*(s) = sup_{ρ≥0} ρ s − e(ρ)` and its derivative
//! `(e*)'(s)`, the density that the dual variable `s = p/τ − V` selects. Both are closed forms
//! for the internal energies here:
//!
//! | energy | `e(ρ)` | `(e*)'(s)` | `e*(s)` |
//! |---|---|---|---|
//! | entropy (× D) | `D ρ log ρ` | `exp(s/D − 1)` | `D exp(s/D − 1)` |
//! | porous medium (γ, m > 1) | `γ ρᵐ/(m − 1)` | `(k s)₊^{1/(m−1)}`, `k = (m−1)/(γ m)` | `(m−1)/m · s (e*)'(s)` |
//!
//! (entropy: Fokker–Planck `∂ₜρ = DΔρ + ∇·(ρ∇V)`; porous medium: `∂ₜρ = γΔρᵐ + ∇·(ρ∇V)`.)

use crate::error::{Error, Result};
use crate::field::ScalarField;

/// The internal part `∫ e(ρ)` of an energy.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Internal {
    /// `D ∫ ρ log ρ` (the heat flow; with a potential, Fokker–Planck).
    Entropy {
        /// The diffusion coefficient D > 0.
        diffusion: f64,
    },
    /// `γ ∫ ρᵐ/(m − 1)`, m > 1 (the porous-medium equation `∂ₜρ = γΔρᵐ`).
    PorousMedium {
        /// γ > 0.
        coefficient: f64,
        /// m > 1.
        exponent: f64,
    },
}

impl Internal {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Internal::Entropy { diffusion } if !(diffusion.is_finite() && diffusion > 0.0) => Err(
                Error::invalid(format!("entropy: D must be positive and finite, got {diffusion}")),
            ),
            Internal::PorousMedium { coefficient, exponent }
                if !(coefficient.is_finite()
                    && coefficient > 0.0
                    && exponent.is_finite()
                    && exponent > 1.0) =>
            {
                Err(Error::invalid(format!(
                    "porous medium: needs γ > 0 and m > 1, got γ = {coefficient}, m = {exponent}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The internal energy that the unit-mass density `ρ/M` follows when ρ of mass M follows
    /// this one: the entropy's flow is the same, the porous medium's γ becomes `γ M^{m−1}`.
    pub fn for_mass(&self, mass: f64) -> Internal {
        match *self {
            Internal::Entropy { .. } => *self,
            Internal::PorousMedium { coefficient, exponent } => Internal::PorousMedium {
                coefficient: coefficient * mass.powf(exponent - 1.0),
                exponent,
            },
        }
    }

    /// `e(ρ)`.
    pub fn value(&self, rho: f64) -> f64 {
        match *self {
            Internal::Entropy { diffusion } => {
                if rho > 0.0 {
                    diffusion * rho * rho.ln()
                } else {
                    0.0
                }
            }
            Internal::PorousMedium { coefficient, exponent } => {
                coefficient * rho.max(0.0).powf(exponent) / (exponent - 1.0)
            }
        }
    }

    /// `e'(ρ)`, the dual variable that selects ρ (entropy: `D(log ρ + 1)`, with ρ floored at
    /// the smallest positive double; porous medium: `γ m ρ^{m−1}/(m − 1)`).
    pub fn derivative(&self, rho: f64) -> f64 {
        match *self {
            Internal::Entropy { diffusion } => diffusion * (rho.max(f64::MIN_POSITIVE).ln() + 1.0),
            Internal::PorousMedium { coefficient, exponent } => {
                coefficient * exponent * rho.max(0.0).powf(exponent - 1.0) / (exponent - 1.0)
            }
        }
    }

    /// `(e*)'(s)`: the density selected by the dual variable s.
    pub fn density(&self, s: f64) -> f64 {
        match *self {
            Internal::Entropy { diffusion } => (s / diffusion - 1.0).exp(),
            Internal::PorousMedium { coefficient, exponent } => {
                let k = (exponent - 1.0) / (coefficient * exponent);
                if s > 0.0 {
                    (k * s).powf(1.0 / (exponent - 1.0))
                } else {
                    0.0
                }
            }
        }
    }

    /// `(e*)''(s)`, the density's sensitivity to the dual variable (`1/e''(ρ)` at
    /// `ρ = (e*)'(s)`): entropy `ρ/D`; porous medium `ρ/((m − 1) s)` on the support, 0 off it.
    pub fn curvature(&self, s: f64) -> f64 {
        match *self {
            Internal::Entropy { diffusion } => self.density(s) / diffusion,
            Internal::PorousMedium { exponent, .. } => {
                if s > 0.0 {
                    self.density(s) / ((exponent - 1.0) * s)
                } else {
                    0.0
                }
            }
        }
    }

    /// `e*(s)`.
    pub fn conjugate(&self, s: f64) -> f64 {
        match *self {
            Internal::Entropy { diffusion } => diffusion * (s / diffusion - 1.0).exp(),
            Internal::PorousMedium { exponent, .. } => {
                if s > 0.0 {
                    (exponent - 1.0) / exponent * s * self.density(s)
                } else {
                    0.0
                }
            }
        }
    }

    /// `δ` with `Σ vol (e*)'(s_i + δ) = 1`: the shift of the dual variable that gives the
    /// selected density unit mass (the dual's maximisation over constants). Entropy: closed
    /// form, by a log-sum-exp; porous medium: safeguarded Newton on the increasing, convex
    /// mass function (bracketed, so it cannot leave the bracket).
    pub fn unit_mass_shift(&self, s: &[f64], vol: f64) -> Result<f64> {
        let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return Err(Error::invalid("JKO step: the dual variable is not finite"));
        }
        match *self {
            Internal::Entropy { diffusion } => {
                let sum: f64 = s.iter().map(|v| ((v - max) / diffusion).exp()).sum::<f64>() * vol;
                // Σ vol exp((s + δ)/D − 1) = 1 ⇔ δ = D (1 − max/D − log sum).
                Ok(diffusion * (1.0 - max / diffusion - sum.ln()))
            }
            Internal::PorousMedium { .. } => {
                let mass = |d: f64| s.iter().map(|v| self.density(v + d)).sum::<f64>() * vol;
                let slope = |d: f64| s.iter().map(|v| self.curvature(v + d)).sum::<f64>() * vol;
                // Newton from δ = 0 (p was normalised before the update that moved it, so the
                // root is near), safeguarded by the bracket [−max s, ∞): mass(−max s) = 0.
                let (mut lo, mut hi) = (-max, f64::INFINITY);
                let mut d = 0.0f64.max(lo);
                for _ in 0..200 {
                    let m = mass(d) - 1.0;
                    if m.abs() <= 1e-14 {
                        break;
                    }
                    if m > 0.0 {
                        hi = d;
                    } else {
                        lo = d;
                    }
                    let g = slope(d);
                    let newton = if g > 0.0 { d - m / g } else { f64::NAN };
                    d = if newton > lo && newton < hi {
                        newton
                    } else if hi.is_finite() {
                        0.5 * (lo + hi)
                    } else {
                        // No slope yet (empty support) and no upper end: step up.
                        lo + 2.0 * (lo - d).abs().max(1.0)
                    };
                    if hi.is_finite() && hi - lo <= 1e-15 * (1.0 + d.abs()) {
                        break;
                    }
                    if !d.is_finite() {
                        return Err(Error::invalid("JKO step: no shift gives unit mass"));
                    }
                }
                Ok(d)
            }
        }
    }
}

/// An energy `F(ρ) = ∫ e(ρ) + V ρ`: an internal part and an optional potential on the flow's
/// grid.
#[derive(Clone, Debug)]
pub struct Energy {
    /// `∫ e(ρ)`.
    pub internal: Internal,
    /// `V` (none: zero).
    pub potential: Option<ScalarField>,
}

impl Energy {
    /// `F(ρ)` on ρ's grid (cell sums).
    pub fn value(&self, rho: &ScalarField) -> f64 {
        let vol = rho.grid().cell_volume();
        let r = rho.data();
        let internal: f64 = r.iter().map(|&v| self.internal.value(v)).sum();
        let potential: f64 = match &self.potential {
            Some(v) => v.data().iter().zip(r.iter()).map(|(v, r)| v * r).sum(),
            None => 0.0,
        };
        (internal + potential) * vol
    }
}

/// One term of an energy as the CLI's `--energy` gives it: `entropy:D`, `porous:M[,GAMMA]`,
/// `potential:EXPR` (V an expression in x, y, z) or `kl:SPEC` (the relative entropy
/// `KL(ρ‖ν) = ∫ ρ log(ρ/ν)` to a density ν given as for `otgrid ot --target`: the entropy
/// with D = 1 plus the potential `−log ν`).
#[derive(Clone, Debug)]
pub enum Term {
    /// `D ∫ ρ log ρ`.
    Entropy(f64),
    /// `γ ∫ ρᵐ/(m − 1)`: (m, γ).
    PorousMedium(f64, f64),
    /// `∫ V ρ`.
    Potential(Box<crate::expr::Expression>),
    /// `KL(ρ‖ν)`.
    RelativeEntropy(Box<crate::ot::DensitySpec>),
}

impl std::str::FromStr for Term {
    type Err = Error;
    fn from_str(text: &str) -> Result<Term> {
        let (kind, rest) = text.split_once(':').ok_or_else(|| {
            Error::invalid(format!(
                "energy term '{text}': expected entropy:D, porous:M[,GAMMA], potential:EXPR or kl:SPEC"
            ))
        })?;
        let number = |v: &str, what: &str| -> Result<f64> {
            v.trim().parse::<f64>().map_err(|_| {
                Error::invalid(format!("energy term '{text}': {what} '{v}' is not a number"))
            })
        };
        match kind.trim() {
            "entropy" => Ok(Term::Entropy(number(rest, "D")?)),
            "porous" => {
                let (m, gamma) = match rest.split_once(',') {
                    Some((m, g)) => (number(m, "m")?, number(g, "γ")?),
                    None => (number(rest, "m")?, 1.0),
                };
                Ok(Term::PorousMedium(m, gamma))
            }
            "potential" => {
                Ok(Term::Potential(Box::new(crate::expr::Expression::parse(rest, "potential")?)))
            }
            "kl" => Ok(Term::RelativeEntropy(Box::new(crate::ot::DensitySpec::parse(
                rest,
                "kl target",
            )?))),
            other => Err(Error::invalid(format!(
                "energy term '{text}': unknown kind '{other}' (entropy, porous, potential or kl)"
            ))),
        }
    }
}

impl Energy {
    /// The energy `Σ terms` on `grid`: exactly one internal term (entropy, porous or kl) and
    /// any number of potentials (summed). A kl target must be positive everywhere (its
    /// `−log ν` is the potential).
    pub fn from_terms(
        terms: &[Term],
        grid: &crate::grid::Grid,
        inputs: &crate::io::Inputs,
    ) -> Result<Energy> {
        let mut internal = None;
        let mut potential: Option<ScalarField> = None;
        let mut add = |v: ScalarField| {
            potential = Some(match potential.take() {
                None => v,
                Some(mut p) => {
                    p.data_mut().zip_mut_with(v.data(), |a, b| *a += b);
                    p
                }
            });
        };
        for term in terms {
            let this = match term {
                Term::Entropy(d) => Some(Internal::Entropy { diffusion: *d }),
                Term::PorousMedium(m, g) => {
                    Some(Internal::PorousMedium { coefficient: *g, exponent: *m })
                }
                Term::RelativeEntropy(spec) => {
                    let nu = spec.sample(grid, "kl target", inputs)?;
                    let mass = nu.integral();
                    let min = nu.min();
                    let positive = min > 0.0 && mass > 0.0 && mass.is_finite();
                    if !positive {
                        return Err(Error::invalid(format!(
                            "kl target: must be positive everywhere (its −log is the potential), min {min:e}"
                        )));
                    }
                    let mut v = nu;
                    v.data_mut().mapv_inplace(|x| -(x / mass).ln());
                    add(v);
                    Some(Internal::Entropy { diffusion: 1.0 })
                }
                Term::Potential(e) => {
                    add(e.sample(grid, 0.0, "potential")?);
                    None
                }
            };
            if let Some(i) = this {
                if internal.is_some() {
                    return Err(Error::invalid(
                        "energy: more than one internal term (entropy, porous, kl); give one",
                    ));
                }
                i.validate()?;
                internal = Some(i);
            }
        }
        let internal = internal.ok_or_else(|| {
            Error::invalid("energy: needs one internal term (entropy:D, porous:M or kl:SPEC)")
        })?;
        if let Some(v) = &potential {
            if v.first_non_finite().is_some() {
                return Err(Error::invalid("energy: the potential has NaN or infinite values"));
            }
        }
        Ok(Energy { internal, potential })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(e*)'` is the derivative of `e*` (central differences) and inverts `e'`; the unit-mass
    /// shift gives unit mass to 1e-13.
    #[test]
    fn conjugates_and_unit_mass_shifts() {
        let energies = [
            Internal::Entropy { diffusion: 0.3 },
            Internal::PorousMedium { coefficient: 1.0, exponent: 2.0 },
            Internal::PorousMedium { coefficient: 0.5, exponent: 3.0 },
        ];
        for e in energies {
            for s in [0.1, 0.7, 2.5] {
                let h = 1e-6;
                let fd = (e.conjugate(s + h) - e.conjugate(s - h)) / (2.0 * h);
                assert!((fd - e.density(s)).abs() < 1e-7 * (1.0 + fd.abs()), "{e:?} at {s}");
                let fd2 = (e.density(s + h) - e.density(s - h)) / (2.0 * h);
                assert!((fd2 - e.curvature(s)).abs() < 1e-6 * (1.0 + fd2.abs()), "{e:?} at {s}");
                // Fenchel–Young equality at ρ = (e*)'(s): e(ρ) + e*(s) = ρ s.
                let rho = e.density(s);
                let gap = e.value(rho) + e.conjugate(s) - rho * s;
                assert!(gap.abs() < 1e-12 * (1.0 + rho * s), "{e:?} at {s}: {gap}");
                assert!((e.derivative(rho) - s).abs() < 1e-12 * (1.0 + s.abs()), "{e:?} at {s}");
            }
            let s: Vec<f64> = (0..100).map(|i| (i as f64 * 0.37).sin() - 0.2).collect();
            let vol = 0.01;
            let d = e.unit_mass_shift(&s, vol).unwrap();
            let mass: f64 = s.iter().map(|v| e.density(v + d)).sum::<f64>() * vol;
            assert!((mass - 1.0).abs() < 1e-13, "{e:?}: mass {mass}");
        }
        assert!(Internal::Entropy { diffusion: 0.0 }.validate().is_err());
        assert!(Internal::PorousMedium { coefficient: 1.0, exponent: 1.0 }.validate().is_err());
    }
}
