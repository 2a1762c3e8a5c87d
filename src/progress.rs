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
