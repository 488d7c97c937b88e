//! The log writer thread: every line arrives, in order, however fast it is logged, and
//! nothing is left behind when the writer is dropped.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::logging::writer::{WriterThread, MAX_BUFFERED, MIN_GAP};

/// An output that records what it is given and how many writes it took.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<(Vec<u8>, usize)>>);

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut r = self.0.lock().unwrap();
        r.0.extend_from_slice(buf);
        r.1 += 1;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_line_arrives_in_order_in_few_writes_and_dropping_writes_the_rest() {
    let out = Recorder::default();
    let (sink, writer) = WriterThread::start(Box::new(out.clone())).unwrap();
    // Several loggers at once, more than the buffer holds in all.
    let loggers: Vec<_> = (0..4)
        .map(|t| {
            let mut sink = sink.clone();
            std::thread::spawn(move || {
                for i in 0..20_000 {
                    // As the subscriber does: one event, formatted, then one write.
                    let line = format!("thread {t} line {i:05} {}\n", "x".repeat(40));
                    sink.write_all(line.as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for l in loggers {
        l.join().unwrap();
    }
    drop(writer);
    let (bytes, writes) = out.0.lock().unwrap().clone();
    assert!(bytes.len() > MAX_BUFFERED, "more than the buffer went through");
    let text = String::from_utf8(bytes).unwrap();
    for t in 0..4 {
        let mine: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("thread {t} ")))
            .collect();
        assert_eq!(mine.len(), 20_000, "thread {t}: every line, none torn");
        for (i, line) in mine.iter().enumerate() {
            assert!(
                line.starts_with(&format!("thread {t} line {i:05} ")),
                "in order: {line}"
            );
        }
    }
    assert!(writes < 80_000 / 10, "{writes} writes for 80,000 lines");
}

#[test]
fn a_lone_line_is_written_at_once() {
    let out = Recorder::default();
    let (mut sink, _writer) = WriterThread::start(Box::new(out.clone())).unwrap();
    // Past the gap after the writer's start, a quiet log's line shows without waiting for more.
    std::thread::sleep(MIN_GAP * 2);
    sink.write_all(b"hello\n").unwrap();
    let t0 = Instant::now();
    while out.0.lock().unwrap().0 != b"hello\n" {
        assert!(t0.elapsed() < Duration::from_secs(5), "the line never came out");
        std::thread::sleep(Duration::from_millis(1));
    }
}
