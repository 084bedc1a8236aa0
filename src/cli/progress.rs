//! Progress bars for the command line: drawn on a terminal only, so pipes, log collectors and
//! `--format json` readers never see them.

use crate::config::{Format, LogFormat};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Whether bars are drawn: stderr is a terminal and every output is for people.
pub fn wanted(format: Format, log_format: LogFormat) -> bool {
    format == Format::Text && log_format == LogFormat::Text && std::io::stderr().is_terminal()
}

/// A percent bar with the current step's name, cleared when the work ends.
pub struct StepBar(Option<ProgressBar>);

impl StepBar {
    /// A bar titled `title`, or a silent stand-in when `enabled` is false.
    pub fn start(enabled: bool, title: &str) -> Self {
        if !enabled {
            return Self(None);
        }
        let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:30}] {pos:>3}% {msg} ({elapsed})",
        )
        .expect("a valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(title.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(Some(bar))
    }

    /// Moves to `percent`, showing `step`.
    pub fn step(&self, percent: u8, step: &str) {
        if let Some(bar) = &self.0 {
            bar.set_position(u64::from(percent.min(100)));
            bar.set_message(step.to_owned());
        }
    }
}

impl Drop for StepBar {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
