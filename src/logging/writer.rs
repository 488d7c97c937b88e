//! The log's writer thread: lines are appended to a shared buffer by whoever logs, and one
//! thread writes the buffer out in as few `write` calls as it can.
//!
//! Loggers never wait for the output, only for the buffer's lock, unless the buffer holds
//! [`MAX_BUFFERED`] bytes (a stalled terminal or pipe): then they wait for room, so no line
//! is ever dropped. The writer is woken only when a line lands in an empty buffer while it
//! sleeps; after each write it lets at least [`MIN_GAP`] pass before the next one, so a busy
//! node makes a few dozen writes and wake-ups a second however many lines it logs, and a
//! quiet one shows each line at once.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes the buffer may hold before loggers wait for the writer.
pub(crate) const MAX_BUFFERED: usize = 1 << 20;
/// The least time between two writes (lines logged meanwhile go out together).
pub(crate) const MIN_GAP: Duration = Duration::from_millis(20);

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    /// The writer is waiting for lines (and must be woken for the next one).
    idle: bool,
    /// No more lines will come: write what is left and stop.
    closed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled to the writer: lines arrived in an empty buffer, or the log closed.
    lines_arrived: Condvar,
    /// Signalled to loggers: the writer took the lines, there is room again.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The loggers' end: cheap to clone, one per event. Each `write` call lands whole (the
/// subscriber writes each formatted event with one call), so lines are never torn.
#[derive(Clone)]
pub(crate) struct LineSink(Arc<Shared>);

impl Write for LineSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shared = &self.0;
        let mut state = shared.lock();
        while state.lines.len() >= MAX_BUFFERED && !state.closed {
            state = shared.room.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.lines.extend_from_slice(buf);
        if state.idle {
            state.idle = false;
            shared.lines_arrived.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The writer thread; dropping it writes out every line still buffered and joins it.
pub(crate) struct WriterThread {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl WriterThread {
    /// Starts the thread writing to `out`; lines go in through the returned sink.
    pub(crate) fn start(out: Box<dyn Write + Send>) -> std::io::Result<(LineSink, WriterThread)> {
        let shared = Arc::new(Shared::default());
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_loop(&for_thread, out))?;
        let writer = WriterThread {
            shared: Arc::clone(&shared),
            thread: Some(thread),
        };
        Ok((LineSink(shared), writer))
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.closed = true;
            self.shared.lines_arrived.notify_one();
            self.shared.room.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_loop(shared: &Shared, mut out: Box<dyn Write + Send>) {
    let mut taken = Vec::new();
    loop {
        let closed = {
            let mut state = shared.lock();
            while state.lines.is_empty() && !state.closed {
                state.idle = true;
                state = shared
                    .lines_arrived
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.idle = false;
            std::mem::swap(&mut taken, &mut state.lines);
            shared.room.notify_all();
            state.closed && state.lines.is_empty()
        };
        // A broken standard output is not the node's problem: the lines are dropped.
        let _ = out.write_all(&taken).and_then(|()| out.flush());
        taken.clear();
        if taken.capacity() > MAX_BUFFERED {
            taken.shrink_to(MAX_BUFFERED);
        }
        if closed {
            return;
        }
        std::thread::sleep(MIN_GAP);
    }
}
