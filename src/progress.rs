//! Progress bars on a terminal (indicatif): one per peer with the chunks it holds, its
//! rate and the time left. `swarmshare peer` and `swarmshare demo` show them when standard
//! error is a terminal; log lines then go through [`Bars::log_writer`], which prints them
//! above the bars instead of through them. Not on a terminal, there are no bars and the
//! log lines are all there is.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tokio::sync::watch;

use crate::peer::Progress;

/// The bars of one process, drawn on standard error.
#[derive(Debug, Clone)]
pub struct Bars {
    multi: MultiProgress,
}

impl Bars {
    /// Bars, if standard error is a terminal.
    pub fn for_terminal() -> Option<Bars> {
        io::stderr().is_terminal().then(|| Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
        })
    }

    /// A writer for the log: it buffers lines and, on flush, prints them with the bars
    /// cleared and then redrawn.
    pub fn log_writer(&self, out: Box<dyn Write + Send>) -> Box<dyn Write + Send> {
        Box::new(AboveBars {
            multi: self.multi.clone(),
            out,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Adds a bar named `name` that follows `progress` until the peer completes or stops.
    pub async fn track(&self, name: String, mut progress: watch::Receiver<Progress>) {
        let bar = self.multi.add(ProgressBar::new(0));
        let style = ProgressStyle::with_template(
            "{prefix:>14} [{bar:32.green/blue}] {pos:>6}/{len:6} chunks {rate:>12} eta {eta:>4} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0} chunks/s", state.per_sec());
        })
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(name);
        bar.enable_steady_tick(Duration::from_millis(250));
        loop {
            let done = match &*progress.borrow_and_update() {
                Progress::Joining => {
                    bar.set_message("joining");
                    false
                }
                Progress::Downloading { held, total } => {
                    bar.set_length(u64::from(*total));
                    bar.set_position(u64::from(*held));
                    bar.set_message("");
                    false
                }
                Progress::Complete(report) => {
                    bar.set_position(bar.length().unwrap_or(0));
                    bar.finish_with_message(format!("complete in {:.2} s", report.elapsed.as_secs_f64()));
                    true
                }
            };
            if done {
                return;
            }
            if progress.changed().await.is_err() {
                bar.abandon_with_message("stopped");
                return;
            }
        }
    }
}

struct AboveBars {
    multi: MultiProgress,
    out: Box<dyn Write + Send>,
    buf: Vec<u8>,
}

impl Write for AboveBars {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let (out, buf) = (&mut self.out, &self.buf);
        let result = self
            .multi
            .suspend(|| out.write_all(buf).and_then(|()| out.flush()));
        self.buf.clear();
        result
    }
}
