//! Non-local energies of a gradient flow, each applied by FFT convolution
//! ([`crate::spectral::Convolution`]: zero-padded on box axes, circular on periodic ones):
//!
//! | term | energy | first variation `δF/δρ` |
//! |---|---|---|
//! | interaction | `½ ∫∫ W(x − y) ρ(x) ρ(y)` | `W ∗ ρ` |
//! | squared MMD to ν | `MMD²(ρ, ν) = ∫∫ k(x − y) (ρ − ν)(x) (ρ − ν)(y)` | `2 k ∗ (ρ − ν)` |
//!
//! A JKO step treats them semi-implicitly: the first variation at a guess of the step's
//! result enters as a potential, and the step is repeated from the new result until the
//! guess is a fixed point ([`super::GradientFlow`]).

use crate::error::{Error, Result};
use crate::expr::Expression;
use crate::field::ScalarField;
use crate::grid::Grid;
use crate::spectral::Convolution;

/// A kernel: a function of the displacement `d = x − y`.
#[derive(Clone, Debug)]
pub enum Kernel {
    /// `exp(−|d|²/(2σ²))`: `gaussian(σ)`.
    Gaussian(f64),
    /// `exp(−|d|/σ)`: `laplace(σ)`.
    Laplace(f64),
    /// `−|d|`, the energy distance's kernel (conditionally positive definite): `distance`.
    Distance,
    /// The inverse multiquadric `(1 + |d|²/c²)^{−1/2}`: `imq(c)`.
    InverseMultiquadric(f64),
    /// Any expression in the displacement's components x, y, z.
    Expression(Box<Expression>),
}

impl Kernel {
    /// `k(d)`.
    pub fn eval(&self, d: &[f64]) -> f64 {
        let r2: f64 = d.iter().map(|v| v * v).sum();
        match self {
            Kernel::Gaussian(s) => (-0.5 * r2 / (s * s)).exp(),
            Kernel::Laplace(s) => (-r2.sqrt() / s).exp(),
            Kernel::Distance => -r2.sqrt(),
            Kernel::InverseMultiquadric(c) => 1.0 / (1.0 + r2 / (c * c)).sqrt(),
            Kernel::Expression(e) => e.eval(d, 0.0),
        }
    }

    /// As written: `gaussian(0.1)`, `distance`, the expression's text.
    pub fn text(&self) -> String {
        match self {
            Kernel::Gaussian(s) => format!("gaussian({s})"),
            Kernel::Laplace(s) => format!("laplace({s})"),
            Kernel::Distance => "distance".to_string(),
            Kernel::InverseMultiquadric(c) => format!("imq({c})"),
            Kernel::Expression(e) => e.text().to_string(),
        }
    }
}

impl std::str::FromStr for Kernel {
    type Err = Error;
    /// `gaussian(σ)`, `laplace(σ)`, `distance`, `imq(c)` (σ, c > 0), else an expression in
    /// the displacement x, y, z.
    fn from_str(text: &str) -> Result<Kernel> {
        let t = text.trim();
        if t == "distance" {
            return Ok(Kernel::Distance);
        }
        for (name, make) in [
            ("gaussian", Kernel::Gaussian as fn(f64) -> Kernel),
            ("laplace", Kernel::Laplace),
            ("imq", Kernel::InverseMultiquadric),
        ] {
            if let Some(arg) = t.strip_prefix(name).and_then(|r| r.trim().strip_prefix('(')) {
                let arg = arg.strip_suffix(')').ok_or_else(|| {
                    Error::invalid(format!("kernel '{t}': expected {name}(WIDTH)"))
                })?;
                let w: f64 = arg.trim().parse().map_err(|_| {
                    Error::invalid(format!("kernel '{t}': width '{arg}' is not a number"))
                })?;
                if !(w.is_finite() && w > 0.0) {
                    return Err(Error::invalid(format!(
                        "kernel '{t}': the width must be positive and finite"
                    )));
                }
                return Ok(make(w));
            }
        }
        let e = Expression::parse(t, "kernel")?;
        if e.depends_on_time() {
            return Err(Error::invalid(format!("kernel '{t}': may not depend on t")));
        }
        Ok(Kernel::Expression(Box::new(e)))
    }
}

/// Which non-local energy.
#[derive(Clone, Debug)]
pub enum NonlocalKind {
    /// `½ ∫∫ W(x − y) ρ(x) ρ(y)`.
    Interaction,
    /// `MMD²(ρ/M, ν)` (M the mass of ρ: the normalised densities are compared, as the
    /// divergences do); ν of unit mass.
    Mmd {
        /// ν.
        target: ScalarField,
    },
}

/// A non-local energy with its planned convolution.
#[derive(Clone, Debug)]
pub struct Nonlocal {
    /// Which energy.
    pub kind: NonlocalKind,
    /// W or k.
    pub kernel: Kernel,
    convolution: Convolution,
}

impl Nonlocal {
    /// `½ ∫∫ W(x − y) ρ(x) ρ(y)` on `grid`.
    pub fn interaction(kernel: Kernel, grid: &Grid) -> Result<Nonlocal> {
        let convolution = Convolution::new(grid, |d| kernel.eval(d))?;
        Ok(Nonlocal { kind: NonlocalKind::Interaction, kernel, convolution })
    }

    /// `MMD²(ρ, ν)` with kernel k; ν non-negative with positive mass (normalised here).
    pub fn mmd(kernel: Kernel, target: &ScalarField) -> Result<Nonlocal> {
        let mass = target.integral();
        let positive = mass > 0.0;
        if target.first_non_finite().is_some() || target.min() < 0.0 || !positive {
            return Err(Error::invalid(
                "mmd target: must be finite, non-negative and of positive mass",
            ));
        }
        let mut nu = target.clone();
        nu.data_mut().mapv_inplace(|v| v / mass);
        let convolution = Convolution::new(target.grid(), |d| kernel.eval(d))?;
        Ok(Nonlocal { kind: NonlocalKind::Mmd { target: nu }, kernel, convolution })
    }

    /// The grid the energy lives on.
    pub fn grid(&self) -> &Grid {
        self.convolution.grid()
    }

    /// `k ∗ f`.
    fn convolve(&self, f: &[f64]) -> Result<Vec<f64>> {
        let mut out = vec![0.0; f.len()];
        self.convolution.apply(f, &mut out)?;
        Ok(out)
    }

    /// ρ − ν for the MMD (of the normalised ρ), ρ for the interaction.
    fn signed(&self, rho: &ScalarField) -> Vec<f64> {
        match &self.kind {
            NonlocalKind::Interaction => rho.data().iter().copied().collect(),
            NonlocalKind::Mmd { target } => {
                let mass = rho.integral();
                rho.data().iter().zip(target.data().iter()).map(|(r, n)| r / mass - n).collect()
            }
        }
    }

    /// The energy at ρ (cell sums).
    pub fn value(&self, rho: &ScalarField) -> Result<f64> {
        let f = self.signed(rho);
        let kf = self.convolve(&f)?;
        let sum: f64 =
            f.iter().zip(&kf).map(|(a, b)| a * b).sum::<f64>() * rho.grid().cell_volume();
        Ok(match self.kind {
            NonlocalKind::Interaction => 0.5 * sum,
            NonlocalKind::Mmd { .. } => sum,
        })
    }

    /// The potential that the unit-mass flow of a density of mass `mass` sees at the unit-mass
    /// density `unit`: the interaction's `M W ∗ ρ̂` (the energy of Mρ̂ is M² times that of ρ̂,
    /// the transport cost M times), the MMD's `2 k ∗ (ρ̂ − ν)`.
    pub fn unit_mass_potential(&self, unit: &ScalarField, mass: f64) -> Result<Vec<f64>> {
        let mut v = self.convolve(&self.signed(unit))?;
        let factor = match self.kind {
            NonlocalKind::Interaction => mass,
            NonlocalKind::Mmd { .. } => 2.0,
        };
        v.iter_mut().for_each(|x| *x *= factor);
        Ok(v)
    }

    /// The term as the CLI writes it: `interaction:KERNEL` or `mmd:KERNEL:…`.
    pub fn describe(&self) -> String {
        match self.kind {
            NonlocalKind::Interaction => format!("interaction with W = {}", self.kernel.text()),
            NonlocalKind::Mmd { .. } => format!("squared MMD with k = {}", self.kernel.text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::BoundaryKind;

    /// The kernels parse and evaluate as documented; bad widths and time-dependent
    /// expressions are refused.
    #[test]
    fn kernels_parse_and_evaluate() {
        let d = [0.3, 0.4];
        let k = |t: &str| t.parse::<Kernel>().unwrap().eval(&d);
        assert!((k("gaussian(0.5)") - (-0.5f64 * 0.25 / 0.25).exp()).abs() < 1e-15);
        assert!((k("laplace(0.25)") - (-2.0f64).exp()).abs() < 1e-15);
        assert!((k("distance") + 0.5).abs() < 1e-15);
        assert!((k("imq(0.5)") - 1.0 / 2f64.sqrt()).abs() < 1e-15);
        assert!((k("x*y") - 0.12).abs() < 1e-15);
        for bad in ["gaussian(0)", "gaussian(-1)", "imq(x)", "laplace(1", "x*t"] {
            assert!(bad.parse::<Kernel>().is_err(), "{bad}");
        }
    }

    /// For each kernel, on a box and a torus: the first variation is the derivative of the
    /// energy, `d/dε F(ρ + εη)|₀ = ∫ δF/δρ η` for a mass-free η (central differences), the
    /// MMD vanishes at ρ = ν and is positive elsewhere (the positive definite kernels), and
    /// the interaction energy is `½ ∫ ρ (W ∗ ρ)`.
    #[test]
    fn first_variations_are_the_energies_derivatives() {
        for kind in [BoundaryKind::Neumann, BoundaryKind::Periodic] {
            let grid = Grid::unit(2, 24, kind).unwrap();
            let rho = ScalarField::from_fn(&grid, |x| 1.0 + 0.5 * (6.0 * x[0]).sin() * x[1]);
            let rho = {
                let m = rho.integral();
                let mut r = rho;
                r.data_mut().mapv_inplace(|v| v / m);
                r
            };
            let nu = ScalarField::from_fn(&grid, |x| 1.0 + 0.8 * (x[0] - 0.5) * (x[1] - 0.3));
            let eta = ScalarField::from_fn(&grid, |x| (4.0 * x[0]).cos() * (3.0 * x[1]).sin());
            let mean = eta.integral() / grid.volume();
            let eta_data: Vec<f64> = eta.data().iter().map(|v| v - mean).collect();
            for kernel in ["gaussian(0.2)", "laplace(0.3)", "distance", "imq(0.4)"] {
                let k: Kernel = kernel.parse().unwrap();
                for term in [
                    Nonlocal::interaction(k.clone(), &grid).unwrap(),
                    Nonlocal::mmd(k.clone(), &nu).unwrap(),
                ] {
                    let at = |e: f64| {
                        let mut r = rho.clone();
                        r.as_mut_slice().iter_mut().zip(&eta_data).for_each(|(v, d)| *v += e * d);
                        term.value(&r).unwrap()
                    };
                    let h = 1e-4;
                    let fd = (at(h) - at(-h)) / (2.0 * h);
                    let v = term.unit_mass_potential(&rho, 1.0).unwrap();
                    let exact: f64 = v.iter().zip(&eta_data).map(|(a, b)| a * b).sum::<f64>()
                        * grid.cell_volume();
                    assert!(
                        (fd - exact).abs() < 1e-7 * (1.0 + exact.abs()),
                        "{kind:?} {}: {fd} vs {exact}",
                        term.describe()
                    );
                }
                let mmd = Nonlocal::mmd(k, &nu).unwrap();
                let at_target = mmd.value(&nu).unwrap();
                assert!(at_target.abs() < 1e-14, "{kernel}: MMD(ν, ν) = {at_target}");
                assert!(mmd.value(&rho).unwrap() > 1e-8, "{kernel}: MMD(ρ, ν) not positive");
            }
        }
    }
}
