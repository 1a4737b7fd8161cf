//! The per-service ring of recent log lines: instances' stdout/stderr, the gateway's request lines, the runtime's
//! own lines. Bounded: the oldest line goes when a new one arrives at capacity.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::{LogLine, Stream};

/// At most this many bytes of one line are kept (a line without newlines must not eat the ring's memory twice).
pub(crate) const MAX_LINE_BYTES: usize = 16 * 1024;

pub(crate) fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}

pub(crate) struct LogRing {
    capacity: usize,
    lines: Mutex<VecDeque<LogLine>>,
}

impl LogRing {
    pub(crate) fn new(capacity: usize) -> LogRing {
        LogRing { capacity, lines: Mutex::new(VecDeque::with_capacity(capacity.min(1024))) }
    }

    pub(crate) fn push(&self, mut line: LogLine) {
        if self.capacity == 0 {
            return;
        }
        if line.text.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !line.text.is_char_boundary(cut) {
                cut -= 1;
            }
            line.text.truncate(cut);
        }
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        while lines.len() >= self.capacity {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The newest `limit` lines, newest last.
    pub(crate) fn tail(&self, limit: usize) -> Vec<LogLine> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let skip = lines.len().saturating_sub(limit);
        lines.iter().skip(skip).cloned().collect()
    }

    /// The text of the newest `limit` stdout/stderr lines of one instance, newest last.
    pub(crate) fn instance_output(&self, instance: &str, limit: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<String> = lines
            .iter()
            .rev()
            .filter(|l| l.instance == instance && matches!(l.stream, Stream::Stdout | Stream::Stderr))
            .take(limit)
            .map(|l| l.text.clone())
            .collect();
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_lines_in_order() {
        let ring = LogRing::new(3);
        for i in 0..5 {
            ring.push(LogLine::now("r", "i", Stream::Stdout, format!("line {i}")));
        }
        let texts: Vec<String> = ring.tail(10).into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["line 2", "line 3", "line 4"]);
        let texts: Vec<String> = ring.tail(2).into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["line 3", "line 4"]);
    }

    #[test]
    fn instance_output_filters_by_instance_and_stream() {
        let ring = LogRing::new(10);
        ring.push(LogLine::now("r", "a", Stream::Stdout, "a1"));
        ring.push(LogLine::now("r", "b", Stream::Stdout, "b1"));
        ring.push(LogLine::now("r", "a", Stream::System, "sys"));
        ring.push(LogLine::now("r", "a", Stream::Stderr, "a2"));
        assert_eq!(ring.instance_output("a", 10), ["a1", "a2"]);
        assert_eq!(ring.instance_output("a", 1), ["a2"]);
    }

    #[test]
    fn long_lines_are_truncated_on_a_char_boundary() {
        let ring = LogRing::new(1);
        ring.push(LogLine::now("r", "a", Stream::Stdout, "é".repeat(MAX_LINE_BYTES)));
        let line = &ring.tail(1)[0].text;
        assert!(line.len() <= MAX_LINE_BYTES && !line.is_empty());
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = rfc3339_now();
        assert!(time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).is_ok(), "{t}");
    }
}
