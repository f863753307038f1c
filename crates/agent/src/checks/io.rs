//! Small helpers shared by the probes: bounded output capture, Go-style error texts and a
//! task guard.

use tokio::task::JoinHandle;

/// Keeps the last `max` bytes written to it and counts all of them (Consul captures output in
/// a circular buffer, so the tail wins).
#[derive(Debug)]
pub(crate) struct Tail {
    max: usize,
    buf: Vec<u8>,
    total: u64,
}

impl Tail {
    pub(crate) fn new(max: usize) -> Tail {
        Tail {
            max,
            buf: Vec::new(),
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if bytes.len() >= self.max {
            self.buf.clear();
            self.buf.extend_from_slice(&bytes[bytes.len() - self.max..]);
            return;
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > self.max {
            let excess = self.buf.len() - self.max;
            self.buf.drain(..excess);
        }
    }

    /// The kept bytes as text (invalid UTF-8 replaced).
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// The kept bytes, prefixed with `Captured <max> of <total> bytes` when some were dropped
    /// (how Consul reports script output).
    pub(crate) fn text_with_summary(&self) -> String {
        let text = self.text();
        if self.total > self.max as u64 {
            format!("Captured {} of {} bytes\n...\n{text}", self.max, self.total)
        } else {
            text
        }
    }
}

/// An I/O error as Go prints it: `connection refused` rather than
/// `Connection refused (os error 111)`.
pub(crate) fn error_text(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::TimedOut && e.raw_os_error().is_none() {
        return "i/o timeout".to_owned();
    }
    let text = e.to_string();
    let text = match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(at)) => text[..at].to_owned(),
        _ => text,
    };
    lower_first(&text)
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// An error and its sources, joined with `: ` (skipping sources whose text the outer
/// message already shows).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let part = match inner.downcast_ref::<std::io::Error>() {
            Some(io) => error_text(io),
            None => inner.to_string(),
        };
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

/// Aborts a background task (e.g. an HTTP connection driver) when dropped, so a probe that
/// finishes or is cancelled leaves nothing running.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_everything_below_the_limit() {
        let mut t = Tail::new(8);
        t.push(b"abc");
        t.push(b"def");
        assert_eq!(t.text(), "abcdef");
        assert_eq!(t.text_with_summary(), "abcdef");
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut t = Tail::new(4);
        t.push(b"abc");
        t.push(b"defg");
        assert_eq!(t.text(), "defg");
        t.push(b"0123456789");
        assert_eq!(t.text(), "6789");
        assert_eq!(t.text_with_summary(), "Captured 4 of 17 bytes\n...\n6789");
    }

    #[test]
    fn tail_exactly_full_has_no_summary() {
        let mut t = Tail::new(4);
        t.push(b"ab");
        t.push(b"cd");
        assert_eq!(t.text_with_summary(), "abcd");
    }

    #[test]
    fn os_errors_read_like_go() {
        let e = std::io::Error::from_raw_os_error(nix::errno::Errno::ECONNREFUSED as i32);
        assert_eq!(error_text(&e), "connection refused");
        let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "x");
        assert_eq!(error_text(&e), "i/o timeout");
        let e = std::io::Error::other("Broken thing");
        assert_eq!(error_text(&e), "broken thing");
    }
}
