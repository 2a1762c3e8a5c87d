//! Math expressions of `x`, `y`, `z`, `t` for coefficients, sources, potentials and initial
//! data (parsed once by exmex, evaluated per cell).
//!
//! Syntax: `+ - * / ^`, parentheses, `sin cos tan exp log sqrt abs …`, constants `PI` and
//! `E`; e.g. `"1 + 0.5*sin(2*PI*x)*cos(PI*y)"`, `"exp(-((x-0.5)^2+(y-0.5)^2)/0.02)"`.
//!
//! One rule differs from school algebra in the parser (exmex): a leading minus binds tighter
//! than `^`, so `-x^2` would mean `(-x)^2`. Such expressions are rejected with a message
//! asking for `-(x^2)` or `0 - x^2` instead of being evaluated the surprising way.

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
        let expanded = expand_scientific(text);
        if let Some(at) = minus_before_power(&expanded) {
            return Err(Error::invalid(format!(
                "{what}: in '{text}' the minus at character {} applies before ^ in this parser \
                 ((-x)^2, not -(x^2)); write -(x^2) or 0 - x^2",
                at + 1
            )));
        }
        let flat = FlatEx::<f64>::parse(&expanded).map_err(|e| {
            Error::invalid(format!("{what}: cannot parse expression '{text}': {}", e.msg()))
        })?;
        let mut slots = Vec::new();
        for name in flat.var_names() {
            match VARIABLES.iter().position(|v| v == name) {
                Some(k) => slots.push(k),
                None => {
                    return Err(Error::invalid(format!(
                        "{what}: expression '{text}' uses unknown variable '{name}' (allowed: x, y, z, t; constants PI and E)"
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
        self.check_dimension(grid, what)?;
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

    /// The expression at time `t` on `window` (one rank's slab or pencil block,
    /// [`crate::field::sample_window`]), unchecked for finiteness: that part of
    /// [`Expression::sample`], whose check needs every rank's part.
    pub fn sample_window(
        &self,
        grid: &Grid,
        window: &crate::grid::Window,
        t: f64,
        what: &str,
    ) -> Result<Vec<f64>> {
        self.check_dimension(grid, what)?;
        Ok(crate::field::sample_window(grid, window, |p| self.eval(p, t)))
    }

    fn check_dimension(&self, grid: &Grid, what: &str) -> Result<()> {
        if grid.dim() < 3 && self.slots.contains(&2) {
            return Err(Error::invalid(format!(
                "{what}: expression '{}' uses z on a {}D grid",
                self.text,
                grid.dim()
            )));
        }
        Ok(())
    }
}

/// Rewrites number literals in scientific notation (`1e-3`, `2.5E+4`), which the parser does
/// not read, as plain decimals; names such as `x1` are left alone.
fn expand_scientific(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        let starts_number = (c[i].is_ascii_digit() || c[i] == '.')
            && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_'));
        if !starts_number {
            out.push(c[i]);
            i += 1;
            continue;
        }
        let mut j = i;
        while j < c.len() && (c[j].is_ascii_digit() || c[j] == '.') {
            j += 1;
        }
        let mut k = j;
        if k < c.len() && (c[k] == 'e' || c[k] == 'E') {
            k += 1;
            if k < c.len() && (c[k] == '+' || c[k] == '-') {
                k += 1;
            }
            let digits = k;
            while k < c.len() && c[k].is_ascii_digit() {
                k += 1;
            }
            let literal: String = c[i..k].iter().collect();
            if k > digits {
                if let Ok(v) = literal.parse::<f64>() {
                    out.push_str(&format!("{v}"));
                    i = k;
                    continue;
                }
            }
        }
        out.extend(&c[i..j]);
        i = j;
    }
    out
}

/// Index of the closing parenthesis matching the one at `open` (or the end).
fn matching_paren(c: &[char], open: usize) -> usize {
    let mut depth = 0;
    for (k, ch) in c.iter().enumerate().skip(open) {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    c.len().saturating_sub(1)
}

/// Position of a unary minus whose operand (number, name, call or parenthesised group) is
/// raised to a power, e.g. the `-` of `-x^2` or `exp(-x^2)`.
fn minus_before_power(text: &str) -> Option<usize> {
    let c: Vec<char> = text.chars().collect();
    let skip_ws = |mut j: usize| {
        while j < c.len() && c[j].is_whitespace() {
            j += 1;
        }
        j
    };
    let mut prev: Option<char> = None;
    for i in 0..c.len() {
        if c[i].is_whitespace() {
            continue;
        }
        let unary = c[i] == '-' && prev.is_none_or(|p| "(,*/+-".contains(p));
        if unary {
            let mut j = skip_ws(i + 1);
            if j < c.len() && (c[j].is_ascii_digit() || c[j] == '.') {
                while j < c.len() && (c[j].is_ascii_digit() || c[j] == '.') {
                    j += 1;
                }
                if j < c.len() && (c[j] == 'e' || c[j] == 'E') {
                    j += 1;
                    if j < c.len() && (c[j] == '+' || c[j] == '-') {
                        j += 1;
                    }
                    while j < c.len() && c[j].is_ascii_digit() {
                        j += 1;
                    }
                }
            } else if j < c.len() && (c[j].is_alphabetic() || c[j] == '_') {
                while j < c.len() && (c[j].is_alphanumeric() || c[j] == '_') {
                    j += 1;
                }
                let k = skip_ws(j);
                if k < c.len() && c[k] == '(' {
                    j = matching_paren(&c, k) + 1;
                }
            } else if j < c.len() && c[j] == '(' {
                j = matching_paren(&c, j) + 1;
            }
            let k = skip_ws(j);
            if k < c.len() && c[k] == '^' {
                return Some(i);
            }
        }
        prev = Some(c[i]);
    }
    None
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

    /// exmex reads `-x^2` as `(-x)^2`; such expressions are refused, the unambiguous
    /// spellings work, and a binary minus or an exponent's minus is fine.
    #[test]
    fn minus_before_power_is_refused() {
        assert_eq!(expand_scientific("x1 + 1e-3*y2 - 2E2"), "x1 + 0.001*y2 - 200");
        for bad in
            ["-x^2", "exp(-x^2)", "2*-x^2", "-(x-1)^2", "-sin(x)^2", "-2^2", "exp(- (x-0.5)^2/0.1)"]
        {
            let e = Expression::parse(bad, "v").unwrap_err().to_string();
            assert!(e.contains("write -(x^2)"), "{bad}: {e}");
        }
        let p = [0.3, 0.7];
        let v = |t: &str| Expression::parse(t, "v").unwrap().eval(&p, 0.0);
        assert!((v("-(x^2)") + 0.09).abs() < 1e-15);
        assert!((v("0 - x^2") + 0.09).abs() < 1e-15);
        assert!((v("exp(-(x^2))") - (-0.09f64).exp()).abs() < 1e-15);
        assert!((v("y - x^2") - 0.61).abs() < 1e-15);
        assert!((v("x^-2") - 1.0 / 0.09).abs() < 1e-9);
        assert!((v("1e-3*x") - 3e-4).abs() < 1e-18);
        assert!((v("2.5E+2 + x") - 250.3).abs() < 1e-12);
        assert!((v("-x*2") + 0.6).abs() < 1e-15);
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
