//! Progress of a long step (a usage import, a settle): on a terminal, a bar with the position,
//! the total and the time left; otherwise (a log file, the journal, a pod's log), one INFO line
//! every [`LOG_EVERY`], so that a long step is never silent. It measures elapsed time with the
//! process's monotonic clock, for display only: no result depends on it.

use std::time::{Duration, Instant};

/// How often a step reports its progress when standard error is not a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(15);

pub struct Progress {
    bar: indicatif::ProgressBar,
    what: String,
    unit: &'static str,
    total: Option<u64>,
    position: u64,
    started: Instant,
    logged: Instant,
    /// Log lines instead of a bar, this often.
    log: Option<Duration>,
}

impl Progress {
    /// Progress of `what`, counted in `unit`s out of `total` (if known); drawn when `terminal`,
    /// logged otherwise.
    pub fn new(what: String, unit: &'static str, total: Option<u64>, terminal: bool) -> Progress {
        let bar = if terminal {
            let bar = match total {
                Some(total) => indicatif::ProgressBar::new(total),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let template = match total {
                Some(_) => "{msg}: {wide_bar} {human_pos}/{human_len} [{elapsed}, about {eta} left]",
                None => "{spinner} {msg}: {human_pos} [{elapsed}, {per_sec}]",
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_message(what.clone());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let now = Instant::now();
        Progress {
            bar,
            what,
            unit,
            total,
            position: 0,
            started: now,
            logged: now,
            log: (!terminal).then_some(LOG_EVERY),
        }
    }

    pub fn set(&mut self, position: u64) {
        self.position = position;
        self.bar.set_position(position);
        if self.log.is_some_and(|every| self.logged.elapsed() >= every) {
            self.logged = Instant::now();
            let elapsed = self.started.elapsed().as_secs();
            match self.total.filter(|t| *t > 0) {
                Some(total) => {
                    // Whole numbers: the share in percent, and the time left at the pace so far.
                    let done = u128::from(position.min(total));
                    let percent = done * 100 / u128::from(total);
                    let left = (done > 0).then(|| u128::from(elapsed) * (u128::from(total) - done) / done);
                    tracing::info!(
                        position,
                        total,
                        elapsed_s = elapsed,
                        left_s = left.map(|l| l as u64),
                        "{}: {position} of {total} {} ({percent}%)",
                        self.what,
                        self.unit,
                    );
                }
                None => tracing::info!(position, elapsed_s = elapsed, "{}: {position} {}", self.what, self.unit),
            }
        }
    }

    pub fn add(&mut self, n: u64) {
        self.set(self.position + n);
    }

    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Off a terminal, progress is logged with its position, total and share.
    #[test]
    fn off_a_terminal_progress_is_logged() {
        let lines = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = {
            let lines = lines.clone();
            move || Captured(lines.clone())
        };
        let subscriber = tracing_subscriber::fmt().with_writer(writer).with_ansi(false).finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut p = Progress::new("settling 2026-10".into(), "accounts", Some(200), false);
            p.log = Some(Duration::ZERO);
            p.add(50);
            p.add(50);
            p.finish();
        });
        let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
        assert!(text.contains("settling 2026-10: 50 of 200 accounts (25%)"), "{text}");
        assert!(text.contains("settling 2026-10: 100 of 200 accounts (50%)"), "{text}");
    }

    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
