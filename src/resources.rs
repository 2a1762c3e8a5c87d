//! Resource guards: a run's peak memory, estimated from its grid and method before anything
//! is allocated, against the memory the machine has available; and the step count of a
//! time-dependent run.
//!
//! The estimates are per-cell models calibrated on measured peak resident sizes (GNU time,
//! 2 cores; one f64 field at 512² is 2 MiB): bfm 97 MB at 512² (≈ 38 fields), 103 MB at 64³;
//! Sinkhorn 33 MB at 256²; Newton 84 MB at 256² (sparse LU fill ≈ 120 fields). They are
//! deliberately generous: a refusal costs a flag, an allocator abort costs the run.

use crate::error::{Error, Result};
use crate::grid::Grid;

/// Memory every run needs besides its fields (binary, HDF5 library, thread stacks).
pub const BASE_BYTES: u64 = 48 << 20;

/// A peak-memory estimate and what it consists of.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryEstimate {
    /// Estimated peak bytes.
    pub bytes: u64,
    /// What was counted, e.g. "bfm on 2D 512x512: 48 fields of 2.0 MiB".
    pub detail: String,
}

impl MemoryEstimate {
    /// `fields` f64 fields on `grid` plus `extra` bytes; `what` names the run.
    pub fn fields(grid: &Grid, fields: f64, extra: u64, what: &str) -> MemoryEstimate {
        let field = grid.scalar_bytes() as f64;
        let bytes = (BASE_BYTES as f64 + fields * field + extra as f64).min(u64::MAX as f64) as u64;
        let shape: Vec<String> = grid.shape().iter().map(|n| n.to_string()).collect();
        MemoryEstimate {
            bytes,
            detail: format!(
                "{what} on {}D {}: about {fields:.0} fields of {}{}",
                grid.dim(),
                shape.join("x"),
                human_bytes(field as u64),
                if extra > 0 { format!(" + {}", human_bytes(extra)) } else { String::new() }
            ),
        }
    }

    /// An OT solve on `grid` by `method` (`None`: auto, which runs bfm), in the fields of
    /// the method's registry entry ([`crate::ot::MethodInfo::memory_fields`]).
    pub fn ot(grid: &Grid, method: Option<crate::ot::Method>, what: &str) -> MemoryEstimate {
        let fields = method.unwrap_or(crate::ot::Method::BFM).memory_fields(grid);
        MemoryEstimate::fields(grid, fields, 0, what)
    }

    /// Refuses the run when the estimate exceeds `limit` (bytes), or, without a limit, the
    /// machine's available memory (Linux `MemAvailable`; no check where it is unknown).
    pub fn check(&self, limit: Option<u64>) -> Result<()> {
        let (cap, source) = match limit {
            Some(l) => (l, "the memory limit"),
            None => match available_memory() {
                Some(a) => (a, "the available memory"),
                None => return Ok(()),
            },
        };
        tracing::info!(
            "memory estimate {} ({}); {source} is {}",
            human_bytes(self.bytes),
            self.detail,
            human_bytes(cap)
        );
        if self.bytes > cap {
            return Err(Error::Memory {
                needed: self.bytes,
                limit: cap,
                limit_source: source,
                detail: self.detail.clone(),
            });
        }
        Ok(())
    }
}

/// The memory available to a new process (`MemAvailable` of `/proc/meminfo`), if known.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Parses a size: bytes, or a number with K, M, G or T (binary units, optional `iB`/`B`),
/// e.g. `64G`, `512MiB`, `1.5T`.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let bad = || {
        Error::invalid(format!(
            "size '{text}': expected bytes or a number with K, M, G or T, e.g. 64G"
        ))
    };
    let upper = t.to_ascii_uppercase();
    let stripped = upper.trim_end_matches('B').trim_end_matches('I');
    let (number, scale) = match stripped.chars().last() {
        Some('K') => (&stripped[..stripped.len() - 1], 1u64 << 10),
        Some('M') => (&stripped[..stripped.len() - 1], 1 << 20),
        Some('G') => (&stripped[..stripped.len() - 1], 1 << 30),
        Some('T') => (&stripped[..stripped.len() - 1], 1 << 40),
        _ => (stripped, 1),
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    if !(value.is_finite() && value > 0.0) {
        return Err(bad());
    }
    let bytes = value * scale as f64;
    if bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// `1.5 GiB`-style rendering.
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// Most steps a fixed-step run takes without `--force`.
pub const MAX_STEPS: u64 = 1_000_000;

/// Refuses `ceil(t_end/dt)` steps above [`MAX_STEPS`] unless `force`.
pub fn check_steps(t_end: f64, dt: f64, force: bool) -> Result<u64> {
    let steps = (t_end / dt).ceil();
    if steps > MAX_STEPS as f64 && !force {
        return Err(Error::TooManySteps { t_end, dt, steps, limit: MAX_STEPS });
    }
    Ok(steps.min(u64::MAX as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::BoundaryKind;

    #[test]
    fn sizes_parse_and_huge_grids_are_refused() {
        assert_eq!(parse_size("64G").unwrap(), 64 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        for bad in ["", "G", "-1G", "abc", "1e400"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        let grid =
            Grid::uniform(&[50_000, 50_000], &[0.0, 0.0], &[1.0, 1.0], BoundaryKind::Neumann)
                .unwrap();
        let e = MemoryEstimate::fields(&grid, 48.0, 0, "bfm");
        let err = e.check(Some(64 << 30)).unwrap_err();
        assert!(matches!(err, Error::Memory { limit, .. } if limit == 64 << 30), "{err}");
        assert!(err.to_string().contains("GiB"), "{err}");
        assert!(MemoryEstimate::fields(&grid, 1.0, 0, "x").check(Some(u64::MAX)).is_ok());
        assert!(matches!(check_steps(0.05, 1e-12, false), Err(Error::TooManySteps { .. })));
        assert_eq!(check_steps(0.05, 1e-3, false).unwrap(), 50);
    }
}
