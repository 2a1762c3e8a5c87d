//! Progress of long loops, for the CLI: a bar on stderr when it is a terminal, else (at
//! `-v`) a log line every few seconds; nothing with `--quiet`. The library reports progress
//! through observers (`otgrid::ot::Observer`, the PDE steppers' step callbacks); these are
//! the CLI's observers.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Suppresses all progress bars (the CLI's `--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// A "terminal" that turns the bar's redraws into `-v` log lines, at most one per
/// [`LOG_EVERY`] seconds: progress of long loops when stderr is not a terminal.
#[derive(Debug)]
struct LogLines {
    last: std::sync::Mutex<Option<std::time::Instant>>,
    every: f64,
}

impl indicatif::TermLike for LogLines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        // The first redraw starts the clock; log once every `every` seconds after it.
        match *last {
            None => *last = Some(now),
            Some(t)
                if now.duration_since(t).as_secs_f64() >= self.every && !s.trim().is_empty() =>
            {
                *last = Some(now);
                tracing::info!("{}", s.trim());
            }
            Some(_) => {}
        }
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A bar over `len` steps labelled `message`: drawn on stderr when it is a terminal; else,
/// when info logging is on (`-v`), logged as a line every [`LOG_EVERY`] seconds; hidden when
/// quiet.
pub fn bar(len: u64, message: &str) -> ProgressBar {
    let quiet = QUIET.load(Ordering::Relaxed);
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else if tracing::enabled!(tracing::Level::INFO) {
        let every = log_every();
        ProgressDrawTarget::term_like_with_hz(
            Box::new(LogLines { last: std::sync::Mutex::new(None), every }),
            1,
        )
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {pos}/{len} {elapsed_precise} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// An observer step that drives a bar over an OT solver's iteration limit (its ETA is to
/// that limit, an upper bound); the bar is returned so the caller can clear it.
pub fn ot_progress(
    method: &str,
    max_iterations: usize,
) -> (impl FnMut(&otgrid::ot::Progress) + Send + 'static, ProgressBar) {
    let b = bar(max_iterations as u64, method);
    b.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] iteration {pos} (limit {len}) {elapsed_precise}, at most {eta} to the limit",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    b.set_message(method.to_string());
    let shown = b.clone();
    let update = move |p: &otgrid::ot::Progress| {
        shown.set_position(p.iteration as u64);
        shown.set_message(format!(
            "{} {}: {:.2e}",
            p.method,
            p.grid.shape().iter().map(|n| n.to_string()).collect::<Vec<_>>().join("x"),
            p.record.marginal_error
        ));
    };
    (update, b)
}

/// Progress of a time-dependent run towards `t_end`: a bar on a terminal, and at `-v` a log
/// line every [`LOG_EVERY`] seconds with the time reached, the steps taken and an ETA from
/// the elapsed wall time per unit of simulated time (exact for fixed steps).
pub struct TimeProgress {
    bar: ProgressBar,
    t_start: f64,
    t_end: f64,
    started: std::time::Instant,
    last_log: std::time::Instant,
    log_every: f64,
    steps: usize,
}

/// Seconds between progress log lines (the environment variable `OTGRID_PROGRESS_SECONDS`
/// overrides it).
pub const LOG_EVERY: f64 = 5.0;

fn log_every() -> f64 {
    std::env::var("OTGRID_PROGRESS_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .unwrap_or(LOG_EVERY)
}

impl TimeProgress {
    /// Progress from `t_start` (non-zero when resumed) to `t_end`, labelled `label`.
    pub fn new(t_start: f64, t_end: f64, label: &str) -> TimeProgress {
        let now = std::time::Instant::now();
        let terminal = !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal();
        TimeProgress {
            // The bar only on a terminal: the log lines below carry the time and the ETA.
            bar: if terminal { bar(1000, label) } else { ProgressBar::hidden() },
            t_start,
            t_end,
            started: now,
            last_log: now,
            log_every: log_every(),
            steps: 0,
        }
    }

    /// The time stepper's observer: records the step, never stops the run.
    pub fn observe(&mut self, r: &otgrid::pde::StepRecord) -> std::ops::ControlFlow<()> {
        self.step(r.t);
        std::ops::ControlFlow::Continue(())
    }

    /// Records a step ending at time `t` (for runs whose steps are not the PDE steppers').
    pub fn at(&mut self, t: f64) {
        self.step(t);
    }

    /// Records a step ending at time `t`.
    fn step(&mut self, t: f64) {
        self.steps += 1;
        let fraction = ((t - self.t_start) / (self.t_end - self.t_start)).clamp(0.0, 1.0);
        self.bar.set_position((1000.0 * t / self.t_end).round() as u64);
        if self.last_log.elapsed().as_secs_f64() >= self.log_every {
            self.last_log = std::time::Instant::now();
            let elapsed = self.started.elapsed().as_secs_f64();
            let eta = if fraction > 0.0 { elapsed * (1.0 - fraction) / fraction } else { f64::NAN };
            tracing::info!(
                "t = {t:.6e} of {:.6e} ({:.1}%), {} steps, {elapsed:.0} s elapsed, eta {eta:.0} s",
                self.t_end,
                100.0 * t / self.t_end,
                self.steps
            );
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
