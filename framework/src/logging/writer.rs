//! Where log lines go: appended to one shared buffer, which a background thread writes
//! out in batches.
//!
//! A request's log line costs a lock and a copy, never a write to stdout, an allocation
//! or a wake-up of another thread. The writer writes a batch every [`BATCH_DELAY`] while
//! lines keep coming, and parks only after a delay that brought none; only the first line
//! after that wakes it. Under load it therefore wakes once per batch, on its own timer,
//! rather than being woken by a request and then sleeping again. No line is dropped: past
//! [`MAX_BUFFERED`] bytes, the thread that logs writes the batch out itself. Memory
//! stays bounded and comes back after a burst, because the buffer keeps at most
//! [`KEPT_CAPACITY`] between batches.
//!
//! Order holds across threads: whoever writes a batch out first takes `output`, then
//! swaps the buffer, so batches leave in the order they were filled.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer lets a batch gather before writing it out.
const BATCH_DELAY: Duration = Duration::from_millis(5);

/// Bytes waiting past which the logging thread writes them out itself.
const MAX_BUFFERED: usize = 4 << 20;

/// Capacity the buffers keep between batches; more is given back. It holds a busy
/// batch (5 ms of 100,000 lines a second is about 85 KiB) many times over: a buffer that
/// grew and shrank every batch cost a reallocation, and past glibc's mmap threshold an
/// mmap, page faults and a munmap, about a twentieth of a trivial request's time.
const KEPT_CAPACITY: usize = 1 << 20;

/// The handle the subscriber writes through; cheap to clone.
#[derive(Clone)]
pub(crate) struct BatchWriter {
    shared: Arc<Shared>,
}

/// Stops the writer thread when dropped, after it wrote every line.
pub(crate) struct BatchWriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    /// Lines not yet handed to the output.
    pending: Mutex<Pending>,
    /// Signalled when a line arrives for a parked writer, and when closing.
    filled: Condvar,
    /// The destination, and a spare buffer to swap with `pending`.
    output: Mutex<Output>,
}

struct Pending {
    lines: Vec<u8>,
    closed: bool,
    /// Whether the writer thread waits on `filled` for a first line.
    parked: bool,
}

struct Output {
    sink: Box<dyn Write + Send>,
    spare: Vec<u8>,
}

impl BatchWriter {
    /// Starts the writer thread for `sink`.
    pub(crate) fn start(sink: impl Write + Send + 'static) -> (BatchWriter, BatchWriterGuard) {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                lines: Vec::new(),
                closed: false,
                parked: false,
            }),
            filled: Condvar::new(),
            output: Mutex::new(Output {
                sink: Box::new(sink),
                spare: Vec::new(),
            }),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("kneedeep-log".to_owned())
            .spawn(move || worker.run())
            .ok();
        let guard = BatchWriterGuard {
            shared: shared.clone(),
            thread,
        };
        (BatchWriter { shared }, guard)
    }

    /// Queues whole lines.
    pub(super) fn append(&self, line: &[u8]) {
        let mut pending = self.shared.pending();
        pending.lines.extend_from_slice(line);
        let full = pending.lines.len() >= MAX_BUFFERED;
        let wake = std::mem::take(&mut pending.parked);
        drop(pending);

        if full {
            self.shared.write_out();
        } else if wake {
            self.shared.filled.notify_one();
        }
    }
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves whole lines behind it; keep going.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer thread: parks until a first line, then writes a batch every
    /// [`BATCH_DELAY`] until a delay passes without one.
    fn run(&self) {
        loop {
            let mut closed = self.wait_for_a_line();
            loop {
                if !closed {
                    std::thread::sleep(BATCH_DELAY);
                    closed = self.pending().closed;
                }
                let wrote = self.write_out();
                if closed {
                    return;
                }
                if !wrote {
                    break;
                }
            }
        }
    }

    /// Parks the writer until there is a line to write or the writer is closed; whether
    /// it is closed.
    fn wait_for_a_line(&self) -> bool {
        let mut pending = self.pending();
        while pending.lines.is_empty() && !pending.closed {
            pending.parked = true;
            pending = self
                .filled
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        pending.parked = false;
        pending.closed
    }

    /// Writes every pending line out, in order with any other batch; whether there were
    /// any.
    fn write_out(&self) -> bool {
        let mut output = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        let output = &mut *output;
        {
            let mut pending = self.pending();
            std::mem::swap(&mut pending.lines, &mut output.spare);
        }
        if output.spare.is_empty() {
            return false;
        }

        // Nowhere to report a failed write of the log itself; the lines are dropped.
        let _ = output.sink.write_all(&output.spare);
        let _ = output.sink.flush();
        output.spare.clear();
        output.spare.shrink_to(KEPT_CAPACITY);
        true
    }
}

impl Drop for BatchWriterGuard {
    fn drop(&mut self) {
        self.shared.pending().closed = true;
        self.shared.filled.notify_one();
        match self.thread.take() {
            Some(thread) => {
                let _ = thread.join();
            }
            // The thread could not start; what is pending is written here.
            None => {
                self.shared.write_out();
            }
        }
    }
}

impl Write for BatchWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<u8>>>);

    impl Write for Collected {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_whole_and_in_each_threads_order() {
        let sink = Collected::default();
        let (writer, guard) = BatchWriter::start(sink.clone());
        // Lines of 1 KiB from four threads: about 20 MiB, so the cap is crossed too.
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let mut writer = writer.clone();
                std::thread::spawn(move || {
                    for index in 0..5_000 {
                        let line = format!("{thread} {index:05} {}\n", "x".repeat(1000));
                        writer.write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);

        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut next = [0; 4];
        for line in text.lines() {
            let mut words = line.split(' ');
            let thread: usize = words.next().unwrap().parse().unwrap();
            let index: usize = words.next().unwrap().parse().unwrap();
            assert_eq!(index, next[thread], "thread {thread} out of order");
            assert_eq!(words.next().unwrap().len(), 1000);
            next[thread] += 1;
        }
        assert_eq!(next, [5_000; 4]);
    }

    #[test]
    fn a_line_is_written_soon_without_more_lines() {
        let sink = Collected::default();
        let (mut writer, _guard) = BatchWriter::start(sink.clone());
        writer.write_all(b"alone\n").unwrap();

        // Bounded by a generous deadline, not timed: the batch goes out after 5 ms.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the line never came");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(*sink.0.lock().unwrap(), b"alone\n");
    }

    #[test]
    fn a_parked_writer_wakes_for_the_next_line() {
        let sink = Collected::default();
        let (mut writer, _guard) = BatchWriter::start(sink.clone());
        let arrived = |expected: &[u8]| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while *sink.0.lock().unwrap() != expected {
                assert!(std::time::Instant::now() < deadline, "the line never came");
                std::thread::sleep(Duration::from_millis(1));
            }
        };

        writer.write_all(b"first\n").unwrap();
        arrived(b"first\n");
        // A delay with no line parks the writer; wait until it has.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !writer.shared.pending().parked {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never parked"
            );
            std::thread::sleep(Duration::from_millis(1));
        }

        writer.write_all(b"second\n").unwrap();
        arrived(b"first\nsecond\n");
    }
}
