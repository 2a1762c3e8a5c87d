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

use super::nonlocal::{Kernel, Nonlocal};
use crate::error::{Error, Result};
use crate::field::{ordered_sum, ScalarField};
use rayon::prelude::*;

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
    /// An f-divergence `∫ ν f(ρ/ν)` to the energy's reference density ν
    /// ([`Energy::reference`]); this variant's functions are those of `f` (ν = 1), and
    /// [`Energy`] scales them per cell: `e*(s) = ν f*(s)`, `(e*)'(s) = ν (f*)'(s)`.
    Divergence(Divergence),
}

/// The f-divergences `∫ ν f(ρ/ν)` of probability densities, with their conjugates:
///
/// | kind | `f(r)` | `f*(s)` | `(f*)'(s)` | domain of s |
/// |---|---|---|---|---|
/// | χ² | `(r − 1)²` | `s + s²/4` (s ≥ −2), −1 | `(1 + s/2)₊` | all |
/// | squared Hellinger | `(√r − 1)²` | `s/(1 − s)` | `1/(1 − s)²` | s < 1 |
/// | reverse KL | `r − 1 − log r` | `−log(1 − s)` | `1/(1 − s)` | s < 1 |
/// | Jensen–Shannon | `½[r log r − (1 + r) log((1 + r)/2)]` | `−½ log(2 − e^{2s})` | `e^{2s}/(2 − e^{2s})` | s < ½ log 2 |
///
/// (KL itself is the entropy with the potential −log ν: `kl:SPEC`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Divergence {
    /// Pearson's χ².
    ChiSquared,
    /// The squared Hellinger distance.
    Hellinger,
    /// `KL(ν‖ρ)`.
    ReverseKl,
    /// Jensen–Shannon.
    JensenShannon,
}

impl Divergence {
    /// The CLI's name: `chi2`, `hellinger`, `reverse-kl`, `js`.
    pub fn name(self) -> &'static str {
        match self {
            Divergence::ChiSquared => "chi2",
            Divergence::Hellinger => "hellinger",
            Divergence::ReverseKl => "reverse-kl",
            Divergence::JensenShannon => "js",
        }
    }

    /// Every kind.
    pub const ALL: [Divergence; 4] = [
        Divergence::ChiSquared,
        Divergence::Hellinger,
        Divergence::ReverseKl,
        Divergence::JensenShannon,
    ];

    /// `f(r)`.
    fn f(self, r: f64) -> f64 {
        let r = r.max(0.0);
        match self {
            Divergence::ChiSquared => (r - 1.0).powi(2),
            Divergence::Hellinger => (r.sqrt() - 1.0).powi(2),
            Divergence::ReverseKl => r - 1.0 - r.ln(),
            Divergence::JensenShannon => {
                let rlr = if r > 0.0 { r * r.ln() } else { 0.0 };
                0.5 * (rlr - (1.0 + r) * ((1.0 + r) / 2.0).ln())
            }
        }
    }

    /// `f'(r)` (r floored at the smallest positive double where f' is singular at 0).
    fn f_prime(self, r: f64) -> f64 {
        let tiny = r.max(f64::MIN_POSITIVE);
        match self {
            Divergence::ChiSquared => 2.0 * (r - 1.0),
            Divergence::Hellinger => 1.0 - 1.0 / tiny.sqrt(),
            Divergence::ReverseKl => 1.0 - 1.0 / tiny,
            Divergence::JensenShannon => 0.5 * (2.0 * tiny / (1.0 + tiny)).ln(),
        }
    }

    /// The supremum of the domain of f* (+∞ for χ²).
    fn max_dual(self) -> f64 {
        match self {
            Divergence::ChiSquared => f64::INFINITY,
            Divergence::Hellinger | Divergence::ReverseKl => 1.0,
            Divergence::JensenShannon => 0.5 * std::f64::consts::LN_2,
        }
    }

    /// `f*(s)`, +∞ outside the domain.
    fn conjugate(self, s: f64) -> f64 {
        if s >= self.max_dual() {
            return f64::INFINITY;
        }
        match self {
            Divergence::ChiSquared => {
                if s >= -2.0 {
                    s + 0.25 * s * s
                } else {
                    -1.0
                }
            }
            Divergence::Hellinger => s / (1.0 - s),
            Divergence::ReverseKl => -(1.0 - s).ln(),
            Divergence::JensenShannon => -0.5 * (2.0 - (2.0 * s).exp()).ln(),
        }
    }

    /// `(f*)'(s)`, +∞ outside the domain.
    fn density(self, s: f64) -> f64 {
        if s >= self.max_dual() {
            return f64::INFINITY;
        }
        match self {
            Divergence::ChiSquared => (1.0 + 0.5 * s).max(0.0),
            Divergence::Hellinger => 1.0 / (1.0 - s).powi(2),
            Divergence::ReverseKl => 1.0 / (1.0 - s),
            Divergence::JensenShannon => {
                let e = (2.0 * s).exp();
                e / (2.0 - e)
            }
        }
    }

    /// `(f*)''(s)`, +∞ outside the domain.
    fn curvature(self, s: f64) -> f64 {
        if s >= self.max_dual() {
            return f64::INFINITY;
        }
        match self {
            Divergence::ChiSquared => {
                if s > -2.0 {
                    0.5
                } else {
                    0.0
                }
            }
            Divergence::Hellinger => 2.0 / (1.0 - s).powi(3),
            Divergence::ReverseKl => 1.0 / (1.0 - s).powi(2),
            Divergence::JensenShannon => {
                let e = (2.0 * s).exp();
                4.0 * e / (2.0 - e).powi(2)
            }
        }
    }
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

    /// The supremum of the dual variables `s` where `e*` is finite (+∞ but for some
    /// divergences).
    pub fn max_dual(&self) -> f64 {
        match *self {
            Internal::Divergence(f) => f.max_dual(),
            _ => f64::INFINITY,
        }
    }

    /// Whether `e'(0)` is finite — the flows keep compact supports (porous medium, χ²).
    pub fn has_compact_support(&self) -> bool {
        match *self {
            Internal::Entropy { .. } => false,
            Internal::PorousMedium { .. } => true,
            Internal::Divergence(f) => f.f_prime(0.0).is_finite(),
        }
    }

    /// The internal energy that the unit-mass density `ρ/M` follows when ρ of mass M follows
    /// this one: the entropy's flow is the same, the porous medium's γ becomes `γ M^{m−1}`;
    /// a divergence compares the normalised densities (its flow is the unit-mass one).
    pub fn for_mass(&self, mass: f64) -> Internal {
        match *self {
            Internal::Entropy { .. } | Internal::Divergence(_) => *self,
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
            Internal::Divergence(f) => f.f(rho),
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
            Internal::Divergence(f) => f.f_prime(rho),
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
            Internal::Divergence(f) => f.density(s),
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
            Internal::Divergence(f) => f.curvature(s),
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
            Internal::Divergence(f) => f.conjugate(s),
        }
    }
}

/// An energy `F(ρ) = ∫ e(ρ) + V ρ + Σ N(ρ)`: an internal part (none for a purely
/// potential or non-local energy), an optional potential on the flow's grid and non-local
/// terms ([`Nonlocal`]: interaction, MMD).
#[derive(Clone, Debug)]
pub struct Energy {
    /// `∫ e(ρ)` (`None`: no internal energy; the flow then steps in Lagrangian form).
    pub internal: Option<Internal>,
    /// `V` (none: zero).
    pub potential: Option<ScalarField>,
    /// The reference density ν of a divergence (unit mass, positive), else `None`.
    pub reference: Option<ScalarField>,
    /// Non-local terms, summed.
    pub nonlocal: Vec<Nonlocal>,
}

impl Energy {
    /// An energy with an internal part and a potential, no reference, no non-local terms.
    pub fn new(internal: Internal, potential: Option<ScalarField>) -> Energy {
        Energy { internal: Some(internal), potential, reference: None, nonlocal: Vec::new() }
    }

    /// The internal energy; the dual JKO step is only taken for energies that have one
    /// (checked on entry of [`super::JkoParams::step`]).
    fn e(&self) -> &Internal {
        self.internal.as_ref().expect("a JKO dual step needs an internal energy (checked)")
    }

    /// The weight ν_i of cell i (1 without a reference).
    fn weight(&self, i: usize) -> f64 {
        self.reference.as_ref().map_or(1.0, |nu| nu.data().as_slice().expect("contiguous")[i])
    }

    /// `(e*)'(s)` at cell i: the density the dual value s selects there.
    pub fn density_at(&self, i: usize, s: f64) -> f64 {
        self.weight(i) * self.e().density(s)
    }

    /// `e*(s)` at cell i.
    pub fn conjugate_at(&self, i: usize, s: f64) -> f64 {
        self.weight(i) * self.e().conjugate(s)
    }

    /// `(e*)''(s)` at cell i.
    pub fn curvature_at(&self, i: usize, s: f64) -> f64 {
        self.weight(i) * self.e().curvature(s)
    }

    /// `e'(ρ)` at cell i.
    pub fn derivative_at(&self, i: usize, rho: f64) -> f64 {
        match &self.reference {
            Some(_) => self.e().derivative(rho / self.weight(i)),
            None => self.e().derivative(rho),
        }
    }

    /// `δ` with `Σ vol (e*)'(s_i + δ) = 1` (per-cell weights included): the shift of the
    /// dual variable that gives the selected density unit mass (the dual's maximisation over
    /// constants). Entropy: closed form, by a log-sum-exp; otherwise safeguarded Newton on
    /// the increasing mass function, from δ = 0 (p was normalised before the update that
    /// moved it, so the root is near), bracketed below the divergences' domain edge.
    pub fn unit_mass_shift(&self, s: &[f64], vol: f64) -> Result<f64> {
        // (max is exact in any order; the sums are chunk-ordered: the same in every run.)
        let max = s.par_iter().copied().reduce(|| f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return Err(Error::invalid("JKO step: the dual variable is not finite"));
        }
        if let Internal::Entropy { diffusion } = *self.e() {
            // Σ vol w exp((s + δ)/D − 1) = 1 with a = s/D − 1 + log w.
            let a: Vec<f64> = s
                .par_iter()
                .enumerate()
                .map(|(i, v)| v / diffusion - 1.0 + self.weight(i).ln())
                .collect();
            let top = a.par_iter().copied().reduce(|| f64::NEG_INFINITY, f64::max);
            let sum = ordered_sum(a.len(), |r| a[r].iter().map(|v| (v - top).exp()).sum()) * vol;
            return Ok(-diffusion * (top + sum.ln()));
        }
        let sum_over = |f: &(dyn Fn(usize, f64) -> f64 + Sync), d: f64| -> f64 {
            ordered_sum(s.len(), |r| s[r.clone()].iter().zip(r).map(|(v, i)| f(i, v + d)).sum())
                * vol
        };
        let mass = |d: f64| sum_over(&|i, v| self.density_at(i, v), d);
        let slope = |d: f64| sum_over(&|i, v| self.curvature_at(i, v), d);
        // Above `hi` some cell leaves the conjugate's domain (its density is infinite).
        let (mut lo, mut hi) = (f64::NEG_INFINITY, self.e().max_dual() - max);
        let mut d = if hi > 0.0 { 0.0 } else { hi - 1.0 };
        for _ in 0..400 {
            let m = mass(d) - 1.0;
            if m.is_finite() && m.abs() <= 1e-14 {
                return Ok(d);
            }
            if !m.is_finite() || m > 0.0 {
                hi = d;
            } else {
                lo = d;
            }
            let g = slope(d);
            let newton = if m.is_finite() && g > 0.0 { d - m / g } else { f64::NAN };
            d = if newton > lo && newton < hi {
                newton
            } else if lo.is_finite() && hi.is_finite() {
                0.5 * (lo + hi)
            } else if hi.is_finite() {
                hi - 2.0 * hi.abs().max(1.0)
            } else {
                lo + 2.0 * lo.abs().max(1.0)
            };
            if lo.is_finite() && hi.is_finite() && hi - lo <= 1e-15 * (1.0 + d.abs()) {
                break;
            }
            if !d.is_finite() {
                break;
            }
        }
        // Near a divergence's edge the mass moves by ~2/(edge − s) relative per unit of s:
        // the closest double may miss 1 by more than the loop's tolerance (the caller rescales
        // the density it returns), and by far more where no double comes close.
        [d, lo]
            .into_iter()
            .find(|d| d.is_finite() && (mass(*d) - 1.0).abs() <= MASS_REACH)
            .ok_or_else(|| {
                Error::invalid("JKO step: no shift of the dual variable gives unit mass")
            })
    }

    /// The fraction of ρ's mass in cells where the reference ν is below [`FAR_RATIO`] ρ, for
    /// a divergence whose dual has an edge (Hellinger, Jensen–Shannon, reverse KL; 0 for
    /// other energies): the part of ρ that such a step can move onto ν only by a jump (its
    /// `e′ = f′(ρ/ν)` is flat there and steep only near ν), which the dual ascent does not
    /// represent (docs/flows.md, the flow zoo's known issue).
    pub fn far_mass(&self, rho: &ScalarField) -> f64 {
        let (Some(e), Some(nu)) = (&self.internal, &self.reference) else {
            return 0.0;
        };
        if !e.max_dual().is_finite() {
            return 0.0;
        }
        let (far, total) =
            rho.data().iter().zip(nu.data().iter()).fold((0.0, 0.0), |(f, t), (&r, &w)| {
                (f + if w < FAR_RATIO * r { r } else { 0.0 }, t + r)
            });
        if total > 0.0 {
            far / total
        } else {
            0.0
        }
    }

    /// `F(ρ)` on ρ's grid (cell sums).
    pub fn value(&self, rho: &ScalarField) -> Result<f64> {
        let vol = rho.grid().cell_volume();
        let r = rho.data();
        let internal: f64 = match (&self.internal, &self.reference) {
            (None, _) => 0.0,
            (Some(e), Some(nu)) => {
                r.iter().zip(nu.data().iter()).map(|(&v, &w)| w * e.value(v / w)).sum()
            }
            (Some(e), None) => r.iter().map(|&v| e.value(v)).sum(),
        };
        let potential: f64 = match &self.potential {
            Some(v) => v.data().iter().zip(r.iter()).map(|(v, r)| v * r).sum(),
            None => 0.0,
        };
        let mut nonlocal = 0.0;
        for n in &self.nonlocal {
            nonlocal += n.value(rho)?;
        }
        Ok((internal + potential) * vol + nonlocal)
    }

    /// `Σ |contribution|` of the internal and potential parts' cell terms in
    /// [`Self::value`]: the scale of its round-off (a difference of two values below about
    /// 1e-12 of it is noise).
    pub fn magnitude(&self, rho: &ScalarField) -> f64 {
        let r = rho.data();
        let internal: f64 = match (&self.internal, &self.reference) {
            (None, _) => 0.0,
            (Some(e), Some(nu)) => {
                r.iter().zip(nu.data().iter()).map(|(&v, &w)| (w * e.value(v / w)).abs()).sum()
            }
            (Some(e), None) => r.iter().map(|&v| e.value(v).abs()).sum(),
        };
        let potential: f64 = match &self.potential {
            Some(v) => v.data().iter().zip(r.iter()).map(|(v, r)| (v * r).abs()).sum(),
            None => 0.0,
        };
        (internal + potential) * rho.grid().cell_volume()
    }
}

/// See [`Energy::far_mass`]: where ν is below this fraction of the density, a divergence
/// whose dual has an edge holds the density only with its dual variable within
/// `(ν/ρ)^{1/2}` ≈ 3 % of that edge (Hellinger). Measured on the flow zoo's `hellinger-far`
/// first step (32², τ = 0.01) with ν floored at a fraction of its peak: floors 1e-1, 1e-2,
/// 1e-3 (ν/μ ≥ 2e-3 over μ's bulk) reached the grid's floor; 3e-4 and below stalled.
pub const FAR_RATIO: f64 = 1e-3;

/// The largest relative mass error [`Energy::unit_mass_shift`] accepts when no double gives
/// unit mass more closely (a divergence's dual variable within ~1e-8 of its edge).
const MASS_REACH: f64 = 1e-8;

/// One term of an energy as the CLI's `--energy` gives it: `entropy:D`, `porous:M[,GAMMA]`,
/// `potential:EXPR` (V an expression in x, y, z, or a dataset `FILE.h5:/DATASET` or
/// `FILE.npy` on the run's grid) or `kl:SPEC` (the relative entropy
/// `KL(ρ‖ν) = ∫ ρ log(ρ/ν)` to a density ν given as for `otgrid ot --target`: the entropy
/// with D = 1 plus the potential `−log ν`), a divergence `chi2:SPEC` (`hellinger`,
/// `reverse-kl`, `js`), `interaction:KERNEL` (`½∫∫W(x − y)ρρ`) or `mmd:KERNEL:SPEC` (the
/// squared MMD to ν); KERNEL is `gaussian(σ)`, `laplace(σ)`, `distance`, `imq(c)` or an
/// expression in the displacement x, y, z ([`Kernel`]).
#[derive(Clone, Debug)]
pub enum Term {
    /// `D ∫ ρ log ρ`.
    Entropy(f64),
    /// `γ ∫ ρᵐ/(m − 1)`: (m, γ).
    PorousMedium(f64, f64),
    /// `∫ V ρ`, V an expression in x, y, z or a dataset (`FILE.h5:/DATASET`, `FILE.npy`).
    Potential(Box<crate::io::config::Value>),
    /// `KL(ρ‖ν)`.
    RelativeEntropy(Box<crate::ot::DensitySpec>),
    /// An f-divergence `∫ ν f(ρ/ν)` to ν.
    Divergence(Divergence, Box<crate::ot::DensitySpec>),
    /// `½ ∫∫ W(x − y) ρρ`.
    Interaction(Kernel),
    /// `MMD²(ρ, ν)` with a kernel.
    Mmd(Kernel, Box<crate::ot::DensitySpec>),
}

impl Term {
    /// The file this term reads (a dataset potential, or the target density's dataset,
    /// image or samples), relative to `base`.
    pub fn input_file(&self, base: &std::path::Path) -> Option<std::path::PathBuf> {
        match self {
            Term::Potential(v) => match v.as_ref() {
                crate::io::config::Value::Text(text) => {
                    crate::io::config::dataset_parts(text).map(|(file, _)| base.join(file))
                }
                crate::io::config::Value::Number(_) => None,
            },
            Term::RelativeEntropy(spec) | Term::Divergence(_, spec) | Term::Mmd(_, spec) => {
                spec.input_file(base)
            }
            _ => None,
        }
    }
}

impl std::str::FromStr for Term {
    type Err = Error;
    fn from_str(text: &str) -> Result<Term> {
        let (kind, rest) = text.split_once(':').ok_or_else(|| {
            Error::invalid(format!(
                "energy term '{text}': expected entropy:D, porous:M[,GAMMA], potential:EXPR \
                 (or FILE.h5:/DATASET, FILE.npy), \
                 kl:SPEC, a divergence (chi2, hellinger, reverse-kl, js):SPEC, \
                 interaction:KERNEL or mmd:KERNEL:SPEC"
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
                if crate::io::config::dataset_parts(rest).is_none() {
                    crate::expr::Expression::parse(rest, "potential")?;
                }
                Ok(Term::Potential(Box::new(crate::io::config::Value::Text(rest.trim().into()))))
            }
            "kl" => Ok(Term::RelativeEntropy(Box::new(crate::ot::DensitySpec::parse(
                rest,
                "kl target",
            )?))),
            name if Divergence::ALL.iter().any(|f| f.name() == name) => {
                let f = *Divergence::ALL.iter().find(|f| f.name() == name).expect("found");
                let spec = crate::ot::DensitySpec::parse(rest, &format!("{name} target"))?;
                Ok(Term::Divergence(f, Box::new(spec)))
            }
            "interaction" => Ok(Term::Interaction(rest.parse()?)),
            "mmd" => {
                let (kernel, spec) = rest.split_once(':').ok_or_else(|| {
                    Error::invalid(format!("energy term '{text}': expected mmd:KERNEL:SPEC"))
                })?;
                let spec = crate::ot::DensitySpec::parse(spec, "mmd target")?;
                Ok(Term::Mmd(kernel.parse()?, Box::new(spec)))
            }
            other => Err(Error::invalid(format!(
                "energy term '{text}': unknown kind '{other}' (entropy, porous, potential, kl, \
                 chi2, hellinger, reverse-kl, js, interaction or mmd)"
            ))),
        }
    }
}

/// The density ν that an energy's first term with one compares ρ with (`kl`, a divergence,
/// `mmd`), and that term alone.
#[derive(Clone, Debug)]
pub struct Target {
    /// ν on the energy's grid, unit mass.
    pub density: ScalarField,
    /// The term alone as an energy: `KL(ρ‖ν)` for `kl`, `∫ ν f(ρ/ν)` for an f-divergence,
    /// `MMD²(ρ, ν)` for `mmd`. Its value at a unit-mass ρ is the divergence between
    /// probability densities.
    pub divergence: Energy,
}

impl Energy {
    /// The energy `Σ terms` on `grid`: at most one internal term (entropy, porous, kl or a
    /// divergence), any number of potentials (summed) and non-local terms. A kl target must
    /// be positive everywhere (its `−log ν` is the potential).
    pub fn from_terms(
        terms: &[Term],
        grid: &crate::grid::Grid,
        inputs: &crate::io::Inputs,
    ) -> Result<Energy> {
        Ok(Energy::with_target(terms, grid, inputs)?.0)
    }

    /// [`Energy::from_terms`] and its [`Target`] (`None` without a kl, divergence or mmd
    /// term), each target density sampled once.
    pub fn with_target(
        terms: &[Term],
        grid: &crate::grid::Grid,
        inputs: &crate::io::Inputs,
    ) -> Result<(Energy, Option<Target>)> {
        let mut target: Option<Target> = None;
        let mut internal = None;
        let mut reference = None;
        let mut potential: Option<ScalarField> = None;
        let mut nonlocal = Vec::new();
        let positive = |spec: &crate::ot::DensitySpec, what: &str| -> Result<ScalarField> {
            let mut nu = spec.sample(grid, what, inputs)?;
            let (mass, min) = (nu.integral(), nu.min());
            let positive = min > 0.0 && mass > 0.0 && mass.is_finite();
            if !positive {
                return Err(Error::invalid(format!(
                    "{what}: must be positive everywhere, min {min:e}"
                )));
            }
            nu.data_mut().mapv_inplace(|x| x / mass);
            Ok(nu)
        };
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
                    let nu = positive(spec, "kl target")?;
                    let mut v = nu.clone();
                    v.data_mut().mapv_inplace(|x| -x.ln());
                    let entropy = Internal::Entropy { diffusion: 1.0 };
                    target.get_or_insert_with(|| Target {
                        density: nu,
                        divergence: Energy::new(entropy, Some(v.clone())),
                    });
                    add(v);
                    Some(entropy)
                }
                Term::Divergence(f, spec) => {
                    let nu = positive(spec, &format!("{} target", f.name()))?;
                    target.get_or_insert_with(|| Target {
                        density: nu.clone(),
                        divergence: Energy {
                            internal: Some(Internal::Divergence(*f)),
                            potential: None,
                            reference: Some(nu.clone()),
                            nonlocal: Vec::new(),
                        },
                    });
                    reference = Some(nu);
                    Some(Internal::Divergence(*f))
                }
                Term::Potential(v) => {
                    add(v.field(grid, 0.0, "potential", inputs)?);
                    None
                }
                Term::Interaction(w) => {
                    nonlocal.push(Nonlocal::interaction(w.clone(), grid)?);
                    None
                }
                Term::Mmd(k, spec) => {
                    let nu = spec.sample(grid, "mmd target", inputs)?;
                    let term = Nonlocal::mmd(k.clone(), &nu)?;
                    if target.is_none() {
                        target = Some(Target {
                            density: nu.to_density()?.0,
                            divergence: Energy {
                                internal: None,
                                potential: None,
                                reference: None,
                                nonlocal: vec![term.clone()],
                            },
                        });
                    }
                    nonlocal.push(term);
                    None
                }
            };
            if let Some(i) = this {
                if internal.is_some() {
                    return Err(Error::invalid(
                        "energy: more than one internal term (entropy, porous, kl, a divergence); give one",
                    ));
                }
                i.validate()?;
                internal = Some(i);
            }
        }
        if terms.is_empty() {
            return Err(Error::invalid("energy: needs at least one term"));
        }
        if let Some(v) = &potential {
            if v.first_non_finite().is_some() {
                return Err(Error::invalid("energy: the potential has NaN or infinite values"));
            }
        }
        Ok((Energy { internal, potential, reference, nonlocal }, target))
    }
}

/// `W₂(ρ/M, ν)` by otgrid's back-and-forth solver with its default settings (ρ of mass M,
/// ν of unit mass, on one grid).
pub fn w2_distance(rho: &ScalarField, nu: &ScalarField) -> Result<f64> {
    use crate::ot::{Method, Options, Problem};
    let (rho, _) = rho.to_density()?;
    let solution = Method::BFM.solve(&Problem::new(&rho, nu)?, &Options::default())?;
    Ok(solution.w2_squared().max(0.0).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{BoundaryKind, Grid};

    /// For every internal energy: `(e*)'` and `(e*)''` are the derivatives of `e*` and
    /// `(e*)'` (central differences), Fenchel–Young holds with equality at `ρ = (e*)'(s)`,
    /// `e'` inverts `(e*)'`; the unit-mass shift gives unit mass to 1e-13, also with a
    /// reference density's weights.
    #[test]
    fn conjugates_and_unit_mass_shifts() {
        let mut energies = vec![
            Internal::Entropy { diffusion: 0.3 },
            Internal::PorousMedium { coefficient: 1.0, exponent: 2.0 },
            Internal::PorousMedium { coefficient: 0.5, exponent: 3.0 },
        ];
        energies.extend(Divergence::ALL.map(Internal::Divergence));
        let grid = Grid::unit(2, 10, BoundaryKind::Neumann).unwrap();
        let mut nu = ScalarField::from_fn(&grid, |x| 1.0 + 0.5 * (3.0 * x[0]).sin() * x[1]);
        let m = nu.integral();
        nu.data_mut().mapv_inplace(|v| v / m);
        for e in energies {
            for s in [-0.7, 0.1, 0.3] {
                // (On the porous medium's support.)
                let s = if matches!(e, Internal::PorousMedium { .. }) { s + 1.0 } else { s };
                let h = 1e-6;
                let fd = (e.conjugate(s + h) - e.conjugate(s - h)) / (2.0 * h);
                assert!((fd - e.density(s)).abs() < 1e-7 * (1.0 + fd.abs()), "{e:?} at {s}");
                let fd2 = (e.density(s + h) - e.density(s - h)) / (2.0 * h);
                assert!((fd2 - e.curvature(s)).abs() < 1e-6 * (1.0 + fd2.abs()), "{e:?} at {s}");
                let rho = e.density(s);
                let gap = e.value(rho) + e.conjugate(s) - rho * s;
                assert!(gap.abs() < 1e-12 * (1.0 + (rho * s).abs()), "{e:?} at {s}: {gap}");
                assert!((e.derivative(rho) - s).abs() < 1e-9 * (1.0 + s.abs()), "{e:?} at {s}");
            }
            // Unit mass, without and (divergences) with the reference's weights.
            let s: Vec<f64> = (0..100).map(|i| 0.3 * (i as f64 * 0.37).sin() - 0.2).collect();
            let reference = matches!(e, Internal::Divergence(_)).then(|| nu.clone());
            let energy =
                Energy { internal: Some(e), potential: None, reference, nonlocal: Vec::new() };
            let vol = grid.cell_volume();
            let d = energy.unit_mass_shift(&s, vol).unwrap();
            let mass: f64 =
                s.iter().enumerate().map(|(i, v)| energy.density_at(i, v + d)).sum::<f64>() * vol;
            assert!((mass - 1.0).abs() < 1e-13, "{e:?}: mass {mass}");
        }
        assert!(Internal::Entropy { diffusion: 0.0 }.validate().is_err());
        assert!(Internal::PorousMedium { coefficient: 1.0, exponent: 1.0 }.validate().is_err());
    }

    /// A shift that double precision cannot give unit mass is an error, not a density of
    /// another mass: squared Hellinger with one cell one ulp below the edge s = 1, whose
    /// mass there is 1e-3 (the next double up is the edge itself).
    #[test]
    fn a_unit_mass_beyond_double_precision_is_an_error() {
        let grid = Grid::unit(2, 2, BoundaryKind::Neumann).unwrap();
        let vol = grid.cell_volume();
        // Cell 0 at 1 − gap with density 1e-3 there; cell 1 negligible.
        let shift = |gap: f64| {
            let nu =
                ScalarField::from_vec(&grid, vec![4e-3 * gap * gap, 1e-30, 1e-30, 1e-30]).unwrap();
            let energy = Energy {
                internal: Some(Internal::Divergence(Divergence::Hellinger)),
                potential: None,
                reference: Some(nu),
                nonlocal: Vec::new(),
            };
            let s = [1.0 - gap, 0.0, 0.0, 0.0];
            energy.unit_mass_shift(&s, vol).map(|d| {
                s.iter().enumerate().map(|(i, v)| energy.density_at(i, v + d)).sum::<f64>() * vol
            })
        };
        let ulp = 1.0 - (1.0 - f64::EPSILON / 2.0);
        assert!(shift(ulp).is_err());
        // Within reach, the same cell is normalised.
        let mass = shift(1e-4).unwrap();
        assert!((mass - 1.0).abs() < 1e-10, "{mass}");
    }

    /// The far mass: the share of ρ's mass where ν < 1e-3 ρ, for the divergences whose dual
    /// has an edge only — ρ = ν: none; ρ on the left half and ν on the right: all of it,
    /// but one cell at the boundary (ν = 2e-3 ρ there); for KL and χ² always 0.
    #[test]
    fn far_mass_is_the_share_of_the_density_where_the_target_is_negligible() {
        let grid = Grid::unit(2, 8, BoundaryKind::Neumann).unwrap();
        let half = |right: bool| {
            ScalarField::from_fn(&grid, |x| if (x[0] > 0.5) == right { 1.0 } else { 1e-9 })
        };
        let (mut rho, mut nu) = (half(false), half(true));
        // One cell of ρ's half where ν is 2e-3 ρ: not far. ρ's share there: 1/32.
        rho.as_mut_slice()[0] = 1.0;
        nu.as_mut_slice()[0] = 2e-3;
        let with = |internal: Internal, nu: &ScalarField| Energy {
            internal: Some(internal),
            potential: None,
            reference: Some(nu.clone()),
            nonlocal: Vec::new(),
        };
        for f in Divergence::ALL {
            let far = with(Internal::Divergence(f), &nu).far_mass(&rho);
            let expect = 31.0 / (32.0 + 32.0 * 1e-9);
            let edge = f.max_dual().is_finite();
            if edge {
                assert!((far - expect).abs() < 1e-12, "{f:?}: {far}");
            } else {
                assert_eq!(far, 0.0, "{f:?}");
            }
            assert_eq!(with(Internal::Divergence(f), &rho).far_mass(&rho), 0.0, "{f:?}");
        }
        assert_eq!(Energy::new(Internal::Entropy { diffusion: 1.0 }, None).far_mass(&rho), 0.0);
    }

    /// The target of an energy is its first kl, divergence or mmd term's ν, unit mass, and
    /// that term alone is a divergence: zero at ν, positive at another density; without such
    /// a term there is none.
    #[test]
    fn an_energys_target_is_its_first_divergence_terms_density() {
        let grid = Grid::unit(2, 24, BoundaryKind::Neumann).unwrap();
        let reading = crate::io::Inputs { base: ".".into(), resample: false };
        let nu_spec = "0.1 + exp(-((x-0.3)^2+(y-0.6)^2)/0.02)";
        let nu = crate::ot::DensitySpec::parse(nu_spec, "nu")
            .and_then(|s| s.sample(&grid, "nu", &reading))
            .unwrap()
            .to_density()
            .unwrap()
            .0;
        let other = ScalarField::from_fn(&grid, |x| 1.0 + x[0]).to_density().unwrap().0;
        for (first, second) in [
            ("kl", "mmd:gaussian(0.1):uniform"),
            ("hellinger", "potential:x"),
            ("mmd:distance", "entropy:0.1"),
        ] {
            let terms: Vec<Term> = [format!("{first}:{nu_spec}"), second.to_string()]
                .iter()
                .map(|t| t.parse().unwrap())
                .collect();
            let (energy, target) = Energy::with_target(&terms, &grid, &reading).unwrap();
            let target = target.unwrap();
            let gap = (target.density.data() - nu.data()).mapv(f64::abs).sum();
            assert!(gap < 1e-12, "{first}: {gap:e}");
            let at_nu = target.divergence.value(&nu).unwrap();
            assert!(at_nu.abs() < 1e-12, "{first}: {at_nu:e}");
            assert!(target.divergence.value(&other).unwrap() > 1e-3, "{first}");
            let mmd = terms.iter().filter(|t| matches!(t, Term::Mmd(..))).count();
            assert_eq!(energy.nonlocal.len(), mmd, "{first}");
        }
        let terms: Vec<Term> = ["entropy:0.1", "potential:x"].map(|t| t.parse().unwrap()).to_vec();
        assert!(Energy::with_target(&terms, &grid, &reading).unwrap().1.is_none());
    }
}
