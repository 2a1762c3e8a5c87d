//! Math expressions of `x`, `y`, `z`, `t` for coefficients, sources, potentials and initial
//! data (parsed once by exmex, evaluated per cell).
//!
//! Syntax: `+ - * / ^`, parentheses, `sin cos tan exp log sqrt abs …`, constants `PI` and
//! `E`; e.g. `"1 + 0.5*sin(2*PI*x)*cos(PI*y)"`, `"exp(-((x-0.5)^2+(y-0.5)^2)/0.02)"`.

use crate::error::{Error, Result};
use crate::field::ScalarField;
use crate::grid::Grid;
use exmex::prelude::*;

/// Variables an expression may use, in the order values are passed to [`Expression::eval`].
pub const VARIABLES: [&str; 4] = ["x", "y", "z", "t"];

/// A parsed expression.
#[derive(Clone, Debug)]
pub struct Expression {
    text: String,
    flat: FlatEx<f64>,
    /// For each of the expression's variables (alphabetical), its index in [`VARIABLES`].
    slots: Vec<usize>,
}

impl Expression {
    /// Parses `text`; `what` names the quantity in error messages (e.g. "source").
    pub fn parse(text: &str, what: &str) -> Result<Expression> {
        let flat = FlatEx::<f64>::parse(text).map_err(|e| {
            Error::invalid(format!("{what}: cannot parse expression '{text}': {}", e.msg()))
        })?;
        let mut slots = Vec::new();
        for name in flat.var_names() {
            match VARIABLES.iter().position(|v| v == name) {
                Some(k) => slots.push(k),
                None => {
                    return Err(Error::invalid(format!(
                        "{what}: expression '{text}' uses unknown variable '{name}' (allowed: x, y, z, t)"
                    )))
                }
            }
        }
        Ok(Expression { text: text.to_string(), flat, slots })
    }

    /// The source text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the expression depends on `t`.
    pub fn depends_on_time(&self) -> bool {
        self.slots.contains(&3)
    }

    /// Value at point `p` (x, y[, z]) and time `t`; NaN if evaluation fails.
    pub fn eval(&self, p: &[f64], t: f64) -> f64 {
        let mut all = [0.0; 4];
        all[..p.len()].copy_from_slice(p);
        all[3] = t;
        let mut vals = [0.0; 4];
        for (k, &s) in self.slots.iter().enumerate() {
            vals[k] = all[s];
        }
        self.flat.eval(&vals[..self.slots.len()]).unwrap_or(f64::NAN)
    }

    /// Samples the expression at every cell centre at time `t`; a NaN or infinite value is
    /// an error naming the first offending point.
    pub fn sample(&self, grid: &Grid, t: f64, what: &str) -> Result<ScalarField> {
        if grid.dim() < 3 && self.slots.contains(&2) {
            return Err(Error::invalid(format!(
                "{what}: expression '{}' uses z on a {}D grid",
                self.text,
                grid.dim()
            )));
        }
        let field = ScalarField::from_fn(grid, |p| self.eval(p, t));
        if let Some(index) = field.first_non_finite() {
            let mut p = [0.0; 3];
            grid.cell_center(&index, &mut p);
            let d = grid.dim();
            return Err(Error::invalid(format!(
                "{what}: expression '{}' is not finite at ({}) t = {t}",
                self.text,
                p[..d].iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(field)
    }
}

/// Evaluates `exprs` (one per component) into a vector field's storage at time `t`.
pub fn sample_vector(
    exprs: &[Expression],
    grid: &Grid,
    t: f64,
    what: &str,
) -> Result<crate::field::VectorField> {
    if exprs.len() != grid.dim() {
        return Err(Error::invalid(format!(
            "{what}: {} components given, the grid is {}D",
            exprs.len(),
            grid.dim()
        )));
    }
    let comps: Vec<ScalarField> =
        exprs.iter().map(|e| e.sample(grid, t, what)).collect::<Result<_>>()?;
    crate::field::VectorField::from_components(&comps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::BoundaryKind;

    #[test]
    fn parses_and_evaluates_with_named_variables() {
        let e = Expression::parse("2*PI*y + x^2 - t", "test").unwrap();
        let v = e.eval(&[3.0, 0.5], 1.0);
        assert!((v - (std::f64::consts::PI + 9.0 - 1.0)).abs() < 1e-12);
        assert!(e.depends_on_time());
        let c = Expression::parse("3.5", "c").unwrap();
        assert_eq!(c.eval(&[0.0, 0.0], 0.0), 3.5);
        assert!(!c.depends_on_time());
        let e = Expression::parse("exp(-z)", "z").unwrap();
        assert!((e.eval(&[0.0, 0.0, 1.0], 0.0) - (-1f64).exp()).abs() < 1e-15);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = Expression::parse("sin(x", "source").unwrap_err().to_string();
        assert!(e.starts_with("source: cannot parse expression 'sin(x'"), "{e}");
        let e = Expression::parse("x + w", "source").unwrap_err().to_string();
        assert!(e.contains("unknown variable 'w'"), "{e}");
        let g = Grid::unit(2, 4, BoundaryKind::Neumann).unwrap();
        let e =
            Expression::parse("log(x - 0.5)", "potential").unwrap().sample(&g, 0.0, "potential");
        assert!(e.unwrap_err().to_string().contains("not finite at (0.1250, 0.1250)"));
        let e = Expression::parse("z", "a").unwrap().sample(&g, 0.0, "a").unwrap_err();
        assert!(e.to_string().contains("uses z on a 2D grid"));
    }

    #[test]
    fn sampling_matches_closure_sampling() {
        let g = Grid::unit(3, 6, BoundaryKind::Periodic).unwrap();
        let e =
            Expression::parse("sin(x)*cos(2*y)+z^2", "f").unwrap().sample(&g, 0.0, "f").unwrap();
        let f = ScalarField::from_fn(&g, |p| p[0].sin() * (2.0 * p[1]).cos() + p[2] * p[2]);
        for (a, b) in e.data().iter().zip(f.data().iter()) {
            assert!((a - b).abs() < 1e-14);
        }
    }
}
