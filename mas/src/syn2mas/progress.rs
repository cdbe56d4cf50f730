//! Progress of an import on standard error: a bar (spinner with counts and rate) on a
//! terminal, otherwise one plain line per phase and every few seconds, so logs stay readable.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

/// Told about each phase and each row read.
pub trait Progress: Send {
    /// A new phase starts (`users`, `emails`…).
    fn phase(&mut self, name: &'static str);
    /// One more row was read.
    fn advance(&mut self);
    /// The import is over (the last phase's line is written).
    fn finish(&mut self);
}

/// Reports nothing (tests, the benchmark).
#[derive(Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn phase(&mut self, _: &'static str) {}
    fn advance(&mut self) {}
    fn finish(&mut self) {}
}

/// The right reporter for standard error: a bar on a terminal, plain lines otherwise.
pub fn for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bar::default())
    } else {
        Box::new(Lines::new(Duration::from_secs(5)))
    }
}

/// An `indicatif` spinner per phase.
#[derive(Default)]
struct Bar {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress for Bar {
    fn phase(&mut self, name: &'static str) {
        self.finish();
        let bar = indicatif::ProgressBar::new_spinner();
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} {msg}: {human_pos} rows, {per_sec}, {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message(name);
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }

    fn advance(&mut self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

/// Plain lines: `syn2mas: users: 12000 rows (4000/s)`.
struct Lines {
    every: Duration,
    phase: Option<(&'static str, Instant, u64)>,
    last: Instant,
}

impl Lines {
    fn new(every: Duration) -> Self {
        Self {
            every,
            phase: None,
            last: Instant::now(),
        }
    }

    fn line(&self, done: bool) {
        if let Some((name, started, rows)) = self.phase {
            let seconds = started.elapsed().as_secs_f64().max(0.001);
            #[expect(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a rate for people to read"
            )]
            let rate = (rows as f64 / seconds) as u64;
            let state = if done { "done" } else { "so far" };
            let text = format!("syn2mas: {name}: {rows} rows {state} ({rate}/s)\n");
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }
}

impl Progress for Lines {
    fn phase(&mut self, name: &'static str) {
        self.finish();
        let _ = std::io::stderr().write_all(format!("syn2mas: {name}…\n").as_bytes());
        self.phase = Some((name, Instant::now(), 0));
        self.last = Instant::now();
    }

    fn advance(&mut self) {
        if let Some((_, _, rows)) = &mut self.phase {
            *rows += 1;
            // Looking at the time every row would cost more than the row.
            if *rows % 1024 == 0 && self.last.elapsed() >= self.every {
                self.last = Instant::now();
                self.line(false);
            }
        }
    }

    fn finish(&mut self) {
        self.line(true);
        self.phase = None;
    }
}
