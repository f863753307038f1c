//! What a history is made of: calls, their returns, and operations with real-time bounds.

use serde::{Deserialize, Serialize};

/// A register value. The harness writes every value at most once (see the crate docs).
pub type Value = u64;

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Call {
    /// `GET /v1/kv/<key>`.
    Read { key: String },
    /// `PUT /v1/kv/<key>` (unconditional).
    Write { key: String, value: Value },
    /// `PUT /v1/kv/<key>?cas=<index of expected>`; `expected: None` is `?cas=0` (only if absent).
    Cas {
        key: String,
        expected: Option<Value>,
        new: Value,
    },
}

impl Call {
    pub fn key(&self) -> &str {
        match self {
            Call::Read { key } | Call::Write { key, .. } | Call::Cas { key, .. } => key,
        }
    }
}

/// What the server answered, for a call whose answer is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Return {
    /// The value read; `None` is absent (404).
    Read(Option<Value>),
    Write,
    /// Whether the CAS was applied.
    Cas(bool),
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// The client got an answer at `time`.
    Returned { time: u64, ret: Return },
    /// Timed out, 5xx, connection lost: it may or may not take effect, at any time after its
    /// invocation.
    Unknown,
}

/// One client operation: who, what, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Operation {
    /// The client process (informational; the check uses only real-time order).
    pub process: u64,
    pub call: Call,
    pub invoke_time: u64,
    pub outcome: Outcome,
}

impl Operation {
    /// The completion time, if the outcome is known.
    pub fn complete_time(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Returned { time, .. } => Some(time),
            Outcome::Unknown => None,
        }
    }

    pub(crate) fn validate(&self, index: usize) -> Result<(), HistoryError> {
        let Outcome::Returned { time, ret } = self.outcome else {
            return Ok(());
        };
        if time < self.invoke_time {
            return Err(HistoryError::CompletesBeforeInvoke {
                index,
                invoke_time: self.invoke_time,
                complete_time: time,
            });
        }
        let matches = matches!(
            (&self.call, ret),
            (Call::Read { .. }, Return::Read(_))
                | (Call::Write { .. }, Return::Write)
                | (Call::Cas { .. }, Return::Cas(_))
        );
        if !matches {
            return Err(HistoryError::MismatchedReturn {
                index,
                call: self.call.clone(),
                ret,
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for Operation {
    /// `p3 cas k1 7->9 = true  [1200..1450]`, `p1 write k1 7 = ?  [1000..]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = |v: Option<Value>| v.map_or_else(|| "absent".to_owned(), |v| v.to_string());
        write!(f, "p{} ", self.process)?;
        match &self.call {
            Call::Read { key } => write!(f, "read {key}")?,
            Call::Write { key, value } => write!(f, "write {key} {value}")?,
            Call::Cas { key, expected, new } => write!(f, "cas {key} {}->{new}", value(*expected))?,
        }
        match self.outcome {
            Outcome::Returned { time, ret } => {
                match ret {
                    Return::Read(v) => write!(f, " = {}", value(v))?,
                    Return::Write => write!(f, " = ok")?,
                    Return::Cas(applied) => write!(f, " = {applied}")?,
                }
                write!(f, "  [{}..{}]", self.invoke_time, time)
            }
            Outcome::Unknown => write!(f, " = ?  [{}..]", self.invoke_time),
        }
    }
}

/// A malformed history (not a non-linearizable one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("operation {index}: {call:?} cannot return {ret:?}")]
    MismatchedReturn {
        index: usize,
        call: Call,
        ret: Return,
    },
    #[error(
        "operation {index}: completes at {complete_time}, before its invocation at {invoke_time}"
    )]
    CompletesBeforeInvoke {
        index: usize,
        invoke_time: u64,
        complete_time: u64,
    },
}
