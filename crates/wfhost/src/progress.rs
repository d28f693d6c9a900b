//! What `wfhost` shows while the store opens: a progress bar on long
//! replays, and the store's notices as `wfhost:` lines.

use wf_host::config::{OpenProgress, OpenReport};

/// A progress bar for the load at open (drawn only on a terminal, and
/// only once the load takes a while); cleared when dropped.
pub struct OpenBar {
    bar: indicatif::ProgressBar,
}

impl OpenBar {
    pub fn new() -> Self {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} records ({per_sec}, {eta} left)",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Self { bar }
    }

    /// Notices on stderr as `wfhost: ...`, progress on the bar.
    pub fn report(&self) -> OpenReport {
        let (notices, progress) = (self.bar.clone(), self.bar.clone());
        OpenReport::default()
            .on_notice(move |message| notices.suspend(|| eprintln!("wfhost: {message}")))
            .on_progress(move |update: &OpenProgress| {
                progress.set_message(update.what.clone());
                progress.set_length(update.total);
                progress.set_position(update.done);
            })
    }
}

impl Drop for OpenBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
