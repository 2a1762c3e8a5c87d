//! Progress bars for long loops, drawn on stderr only when it is a terminal and not `--quiet`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Suppresses all progress bars (the CLI's `--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// A bar over `len` steps labelled `message`; hidden when stderr is not a TTY or when quiet.
pub fn bar(len: u64, message: &str) -> ProgressBar {
    let visible = !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal();
    let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
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

/// An OT solver's bar: [`bar`] when `options.progress` asks for one, hidden otherwise.
pub fn solver_bar(options: &crate::ot::Options, method: &str) -> ProgressBar {
    if options.progress {
        bar(options.max_iterations as u64, method)
    } else {
        ProgressBar::hidden()
    }
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
    steps: usize,
}

/// Seconds between progress log lines.
pub const LOG_EVERY: f64 = 5.0;

impl TimeProgress {
    /// Progress from `t_start` (non-zero when resumed) to `t_end`, labelled `label`.
    pub fn new(t_start: f64, t_end: f64, label: &str) -> TimeProgress {
        let now = std::time::Instant::now();
        TimeProgress {
            bar: bar(1000, label),
            t_start,
            t_end,
            started: now,
            last_log: now,
            steps: 0,
        }
    }

    /// Records a step ending at time `t`.
    pub fn step(&mut self, t: f64) {
        self.steps += 1;
        let fraction = ((t - self.t_start) / (self.t_end - self.t_start)).clamp(0.0, 1.0);
        self.bar.set_position((1000.0 * t / self.t_end).round() as u64);
        if self.last_log.elapsed().as_secs_f64() >= LOG_EVERY {
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
