//! Installing the tracing subscriber that prints the activity log.
//!
//! Human-readable lines by default (time, level, node span, message, fields), or one JSON
//! object per line with the event's fields at the top level (`--log-format json`).
//! `RUST_LOG` overrides the level filter. Logs go to standard output; the binary prints
//! fatal errors to standard error.
//!
//! Lines are written by a writer thread ([`writer`]): never lossy, a busy node makes a few
//! dozen writes a second however many lines it logs, and a quiet one shows each line at
//! once.

pub(crate) mod writer;

use std::io::{BufWriter, IsTerminal};
use std::os::fd::AsFd;

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::EnvFilter;

/// How log lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Keeps the log writer thread; dropping it writes out every line still queued.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(#[allow(dead_code)] Option<writer::WriterThread>);

/// Installs the global subscriber, showing `level` and above (`RUST_LOG` overrides it),
/// writing to standard output, through progress `bars` if given. Call once, before
/// anything logs, and keep the guard until the process ends.
pub fn init(format: LogFormat, level: &str, bars: Option<&crate::progress::Bars>) -> LogGuard {
    // The DHT crate's own lines stay out: `crate::dht` says what matters, once.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{level},mainline=off")));
    // Standard output is line-buffered; a duplicate of its descriptor is not.
    let out: Box<dyn std::io::Write + Send> = match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(BufWriter::with_capacity(64 * 1024, std::fs::File::from(fd))),
        Err(_) => Box::new(std::io::stdout()),
    };
    let out = match bars {
        Some(bars) => bars.log_writer(out),
        None => out,
    };
    let (writer, guard) = match writer::WriterThread::start(out) {
        Ok((sink, thread)) => (BoxMakeWriter::new(move || sink.clone()), Some(thread)),
        Err(e) => {
            eprintln!("warning: cannot start the log writer thread ({e}); logging without it");
            (BoxMakeWriter::new(std::io::stdout), None)
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stdout().is_terminal())
            .fmt_fields(HumanFields)
            .try_init(),
    };
    // A second call (tests) keeps the first subscriber.
    drop(installed);
    LogGuard(guard)
}

/// Prints `message` bare and other fields as `name=value`, space-separated; `event` is
/// left to JSON, since the message already says it.
struct HumanFields;

impl<'w> FormatFields<'w> for HumanFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = HumanVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct HumanVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visit for HumanVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() || field.name() == "event" {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = match field.name() {
            "message" => write!(self.writer, "{sep}{value:?}"),
            name => write!(self.writer, "{sep}{name}={value:?}"),
        };
    }
}
