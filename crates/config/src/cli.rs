//! What both agent binaries do with their command line and log output: Consul's single-dash
//! long flags (`-retry-join`) and logging at the configured level, to standard output and to
//! every `/v1/agent/monitor` reader through a [`LogStream`].
//!
//! A monitor may ask for a more verbose level than the agent logs at: the stream's layer has
//! its own filter, off while nobody reads and as verbose as the most verbose reader otherwise.
//! Lines go to readers through a bounded broadcast channel, so a slow reader misses lines
//! (and is told how many) instead of holding up the agent.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde_json::{Map, Value};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Rewrites Consul's single-dash long flags (`-data-dir`) to the double-dash form the
/// argument parser expects; the program name and short flags are left alone.
pub fn consul_style_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter()
        .enumerate()
        .map(|(i, arg)| {
            let single_dash_long = arg.len() > 2
                && arg.starts_with('-')
                && !arg.starts_with("--")
                && arg[1..].starts_with(|c: char| c.is_ascii_alphabetic());
            if i > 0 && single_dash_long {
                format!("-{arg}")
            } else {
                arg
            }
        })
        .collect()
}

/// Targets whose chatter stays at WARN and above unless `RUST_LOG` says otherwise: openraft's,
/// and hickory's line per DNS request.
const QUIET_TARGETS: [&str; 3] = ["openraft", "hickory_server", "hickory_proto"];

/// How many lines a monitor may fall behind before it misses some.
const MONITOR_BACKLOG: usize = 1024;

/// Serializes the interest rebuilds readers cause (see [`StreamShared::count_reader`]).
static REBUILDS: Mutex<()> = Mutex::new(());

/// The stream [`init_logging`] installed, for the agent's `/v1/agent/monitor`.
static LOG_STREAM: OnceLock<LogStream> = OnceLock::new();

/// Logs to standard output at `level` (or as `RUST_LOG` says), as text or JSON lines, and to
/// [`log_stream`] for `/v1/agent/monitor`.
pub fn init_logging(level: crate::LogLevel, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let quiet: String = QUIET_TARGETS.iter().map(|t| format!(",{t}=warn")).collect();
        tracing_subscriber::EnvFilter::new(format!("{}{quiet}", level.as_str()))
    });
    let stream = LogStream::new();
    let registry = tracing_subscriber::registry().with(stream.layer());
    let stdout = tracing_subscriber::fmt::layer().with_target(false);
    if json {
        registry.with(stdout.json().with_filter(filter)).init();
    } else {
        registry.with(stdout.with_filter(filter)).init();
    }
    // Set once: a second call panics in `init` above.
    let _ = LOG_STREAM.set(stream);
}

/// The log stream of this process, once [`init_logging`] ran (tests that do not log have
/// none).
pub fn log_stream() -> Option<LogStream> {
    LOG_STREAM.get().cloned()
}

/// Consul's monitor log levels (`?loglevel=`, any case): `trace`, `debug`, `info`, `warn`,
/// `err` or `error`.
pub fn parse_monitor_level(text: &str) -> Option<Level> {
    match text.to_ascii_lowercase().as_str() {
        "trace" => Some(Level::TRACE),
        "debug" => Some(Level::DEBUG),
        "info" => Some(Level::INFO),
        "warn" => Some(Level::WARN),
        "err" | "error" => Some(Level::ERROR),
        _ => None,
    }
}

/// 1 (ERROR) to 5 (TRACE); 0 is "nothing".
fn verbosity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// The agent's log lines as they happen, for any number of readers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LogStream {
    shared: Arc<StreamShared>,
}

#[derive(Debug)]
struct StreamShared {
    lines: broadcast::Sender<Arc<LogRecord>>,
    /// How many readers want each verbosity (index 1..=5).
    readers: Mutex<[usize; 6]>,
    /// The most verbose level a reader wants (see [`verbosity`]); 0 while nobody reads.
    most_verbose: AtomicU8,
}

impl StreamShared {
    /// Whether some reader wants this event (spans are not streamed).
    fn wants(&self, meta: &Metadata<'_>) -> bool {
        let level = verbosity(meta.level());
        let quiet = QUIET_TARGETS.iter().any(|t| meta.target().starts_with(t));
        meta.is_event()
            && level <= self.most_verbose.load(Ordering::Relaxed)
            && (!quiet || level <= verbosity(&Level::WARN))
    }

    /// A reader of `level` came (`joined`) or went.
    fn count_reader(&self, level: u8, joined: bool) {
        // Rebuilds that overlap can leave the older answer in place (tracing computes the
        // maximum level before it asks the callsites): one at a time, each after its change.
        let _one_at_a_time = REBUILDS.lock().unwrap_or_else(PoisonError::into_inner);
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut readers[usize::from(level)];
        *slot = if joined {
            *slot + 1
        } else {
            slot.saturating_sub(1)
        };
        let most_verbose = (1..=5u8)
            .rev()
            .find(|&v| readers[usize::from(v)] > 0)
            .unwrap_or(0);
        if self.most_verbose.swap(most_verbose, Ordering::Relaxed) != most_verbose {
            // Callsites cache whether they are enabled: ask them again.
            tracing::callsite::rebuild_interest_cache();
        }
    }
}

impl Default for LogStream {
    fn default() -> Self {
        Self::new()
    }
}

impl LogStream {
    pub fn new() -> Self {
        LogStream {
            shared: Arc::new(StreamShared {
                lines: broadcast::channel(MONITOR_BACKLOG).0,
                readers: Mutex::new([0; 6]),
                most_verbose: AtomicU8::new(0),
            }),
        }
    }

    /// The layer that feeds this stream, with its own filter; add it to the process's
    /// subscriber.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        StreamLayer {
            shared: self.shared.clone(),
        }
        .with_filter(StreamFilter {
            shared: self.shared.clone(),
        })
    }

    /// How many readers there are now.
    pub fn readers(&self) -> usize {
        self.shared.lines.receiver_count()
    }

    /// A reader of the lines at `level` and above, from now on.
    pub fn subscribe(&self, level: Level) -> LogSubscription {
        let lines = self.shared.lines.subscribe();
        let verbosity = verbosity(&level);
        self.shared.count_reader(verbosity, true);
        LogSubscription {
            lines,
            verbosity,
            shared: self.shared.clone(),
        }
    }
}

/// What a reader gets next.
#[derive(Debug, Clone)]
pub enum Monitored {
    Line(Arc<LogRecord>),
    /// The reader fell behind and this many lines (of any level) went by unread.
    Missed(u64),
}

/// One reader of a [`LogStream`]; it stops counting as a reader when dropped.
#[derive(Debug)]
pub struct LogSubscription {
    lines: broadcast::Receiver<Arc<LogRecord>>,
    verbosity: u8,
    shared: Arc<StreamShared>,
}

impl LogSubscription {
    /// The next line at this reader's level, or how many went by unread. `None` once the
    /// stream is gone.
    pub async fn next(&mut self) -> Option<Monitored> {
        loop {
            match self.lines.recv().await {
                Ok(line) if verbosity(&line.level) <= self.verbosity => {
                    return Some(Monitored::Line(line))
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    return Some(Monitored::Missed(missed))
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for LogSubscription {
    fn drop(&mut self) {
        self.shared.count_reader(self.verbosity, false);
    }
}

/// Enables, for the stream's layer alone, what some reader wants.
struct StreamFilter {
    shared: Arc<StreamShared>,
}

impl<S> Filter<S> for StreamFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        self.shared.wants(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.shared.wants(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(match self.shared.most_verbose.load(Ordering::Relaxed) {
            0 => LevelFilter::OFF,
            1 => LevelFilter::ERROR,
            2 => LevelFilter::WARN,
            3 => LevelFilter::INFO,
            4 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        })
    }
}

/// Turns events into [`LogRecord`]s for the stream's readers.
struct StreamLayer {
    shared: Arc<StreamShared>,
}

impl<S: Subscriber> Layer<S> for StreamLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if self.shared.lines.receiver_count() == 0 {
            return;
        }
        // Nobody may be reading any more; that is fine.
        let _ = self.shared.lines.send(Arc::new(LogRecord::of(event)));
    }
}

/// One log line, kept structured until a reader renders it as text or JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub level: Level,
    /// The module that logged it.
    pub target: &'static str,
    pub message: String,
    pub fields: Vec<(&'static str, Value)>,
}

impl LogRecord {
    fn of(event: &Event<'_>) -> LogRecord {
        let mut timestamp = String::new();
        // Formatting into a String cannot fail.
        let _ =
            tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut timestamp));
        let meta = event.metadata();
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        LogRecord {
            timestamp,
            level: *meta.level(),
            target: meta.target(),
            message: visitor.message,
            fields: visitor.fields,
        }
    }

    /// The line as Consul's monitor shows it (hclog's format):
    /// `2024-05-01T12:00:00.123456Z [INFO]  agent::runtime: synced: node=n1`.
    pub fn text(&self) -> String {
        let label = match self.level {
            Level::ERROR => "[ERROR]",
            Level::WARN => "[WARN] ",
            Level::INFO => "[INFO] ",
            Level::DEBUG => "[DEBUG]",
            Level::TRACE => "[TRACE]",
        };
        let mut line = format!(
            "{} {label} {}: {}",
            self.timestamp, self.target, self.message
        );
        for (i, (name, value)) in self.fields.iter().enumerate() {
            line.push_str(if i == 0 { ": " } else { " " });
            line.push_str(name);
            line.push('=');
            match value {
                Value::String(text)
                    if text.is_empty()
                        || text.contains(|c: char| c.is_whitespace() || c == '"') =>
                {
                    line.push_str(&format!("{text:?}"));
                }
                Value::String(text) => line.push_str(text),
                other => line.push_str(&other.to_string()),
            }
        }
        line
    }

    /// The line as Consul's monitor shows it with `?logjson` (hclog's JSON format).
    pub fn json(&self) -> String {
        let mut object = Map::new();
        object.insert(
            "@level".into(),
            Value::String(self.level.as_str().to_ascii_lowercase()),
        );
        object.insert("@message".into(), Value::String(self.message.clone()));
        object.insert("@module".into(), Value::String(self.target.to_owned()));
        object.insert("@timestamp".into(), Value::String(self.timestamp.clone()));
        for (name, value) in &self.fields {
            object.insert((*name).to_owned(), value.clone());
        }
        Value::Object(object).to_string()
    }
}

/// An event's message and fields.
#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(&'static str, Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
        } else {
            self.fields.push((field.name(), value));
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// Held by every test that logs. tracing rebuilds interest with the calling thread's
    /// dispatcher while only one is registered; a reader that comes or goes in a test with none
    /// would switch another test's logging off. (A process has one global dispatcher.)
    static LOGGING_TESTS: Mutex<()> = Mutex::new(());

    fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
        LOGGING_TESTS.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with a subscriber that feeds `stream` only.
    fn with_stream(stream: &LogStream, f: impl FnOnce()) {
        let subscriber = tracing_subscriber::registry().with(stream.layer());
        tracing::subscriber::with_default(subscriber, f);
    }

    /// Every line waiting for `reader`, rendered as text.
    fn drain(reader: &mut LogSubscription) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match reader.lines.try_recv() {
                Ok(line) if verbosity(&line.level) <= reader.verbosity => {
                    out.push(format!("{} {}", line.level, line.message))
                }
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Lagged(n)) => out.push(format!("missed {n}")),
                Err(_) => return out,
            }
        }
    }

    #[test]
    fn readers_get_lines_at_their_level_and_above() {
        let _serial = one_at_a_time();
        let stream = LogStream::new();
        let mut info = stream.subscribe(Level::INFO);
        let mut debug = stream.subscribe(Level::DEBUG);
        with_stream(&stream, || {
            tracing::debug!("details");
            tracing::info!("state change");
            tracing::info!(target: "openraft::engine", "raft chatter");
            tracing::warn!(target: "openraft::engine", "raft trouble");
        });
        assert_eq!(drain(&mut info), ["INFO state change", "WARN raft trouble"]);
        assert_eq!(
            drain(&mut debug),
            ["DEBUG details", "INFO state change", "WARN raft trouble"]
        );
    }

    #[test]
    fn the_layer_is_off_while_nobody_reads() {
        let _serial = one_at_a_time();
        let stream = LogStream::new();
        assert_eq!(stream.shared.most_verbose.load(Ordering::Relaxed), 0);
        let debug = stream.subscribe(Level::DEBUG);
        let warn = stream.subscribe(Level::WARN);
        assert_eq!(stream.shared.most_verbose.load(Ordering::Relaxed), 4);
        drop(debug);
        assert_eq!(stream.shared.most_verbose.load(Ordering::Relaxed), 2);
        drop(warn);
        assert_eq!(stream.shared.most_verbose.load(Ordering::Relaxed), 0);
        // With nobody reading, nothing is recorded (and nothing is formatted).
        with_stream(&stream, || tracing::error!("unread"));
        let mut late = stream.subscribe(Level::TRACE);
        assert!(drain(&mut late).is_empty());
    }

    #[test]
    fn a_slow_reader_misses_lines_and_is_told_how_many() {
        let _serial = one_at_a_time();
        let stream = LogStream::new();
        let mut slow = stream.subscribe(Level::INFO);
        with_stream(&stream, || {
            for i in 0..MONITOR_BACKLOG + 10 {
                tracing::info!("line {i}");
            }
        });
        let lines = drain(&mut slow);
        assert_eq!(lines[0], "missed 10");
        assert_eq!(lines[1], "INFO line 10");
        assert_eq!(lines.len(), MONITOR_BACKLOG + 1);
    }

    #[test]
    fn lines_render_as_hclog_text_and_json() {
        let record = |level, fields: Vec<(&'static str, Value)>| LogRecord {
            timestamp: "2024-05-01T12:00:00.123456Z".into(),
            level,
            target: "agent::runtime",
            message: "synced".into(),
            fields,
        };
        let fields = vec![
            ("node", Value::from("n1")),
            ("err", Value::from("connection refused")),
            ("services", Value::from(3)),
            ("ok", Value::Bool(true)),
        ];
        let cases = [
            (
                record(Level::INFO, Vec::new()),
                "2024-05-01T12:00:00.123456Z [INFO]  agent::runtime: synced",
                r#"{"@level":"info","@message":"synced","@module":"agent::runtime","@timestamp":"2024-05-01T12:00:00.123456Z"}"#,
            ),
            (
                record(Level::ERROR, fields),
                r#"2024-05-01T12:00:00.123456Z [ERROR] agent::runtime: synced: node=n1 err="connection refused" services=3 ok=true"#,
                r#"{"@level":"error","@message":"synced","@module":"agent::runtime","@timestamp":"2024-05-01T12:00:00.123456Z","node":"n1","err":"connection refused","services":3,"ok":true}"#,
            ),
        ];
        for (record, text, json) in cases {
            assert_eq!(record.text(), text);
            assert_eq!(record.json(), json);
        }
    }

    #[test]
    fn events_keep_their_message_and_typed_fields() {
        let _serial = one_at_a_time();
        let stream = LogStream::new();
        let mut reader = stream.subscribe(Level::INFO);
        let err = std::io::Error::other("boom");
        with_stream(&stream, || {
            tracing::warn!(node = "n1", port = 8301u64, %err, "join failed");
        });
        let line = reader.lines.try_recv().expect("a line");
        assert_eq!(
            (line.level, line.message.as_str(), line.fields.clone()),
            (
                Level::WARN,
                "join failed",
                vec![
                    ("node", Value::from("n1")),
                    ("port", Value::from(8301)),
                    ("err", Value::from("boom")),
                ]
            )
        );
        assert!(line.timestamp.ends_with('Z'), "{}", line.timestamp);
    }

    #[test]
    fn monitor_levels_are_consuls() {
        for (text, level) in [
            ("trace", Some(Level::TRACE)),
            ("DEBUG", Some(Level::DEBUG)),
            ("Info", Some(Level::INFO)),
            ("warn", Some(Level::WARN)),
            ("ERR", Some(Level::ERROR)),
            ("error", Some(Level::ERROR)),
            ("verbose", None),
            ("", None),
        ] {
            assert_eq!(parse_monitor_level(text), level, "{text:?}");
        }
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        let args = ["mesh", "-data-dir", "/x", "--dev", "-h", "-1"].map(String::from);
        assert_eq!(
            consul_style_args(args),
            ["mesh", "--data-dir", "/x", "--dev", "-h", "-1"]
        );
    }
}
