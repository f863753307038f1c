//! Why an intention read or write was refused. The texts are Consul's; the variant says which
//! HTTP status Consul answers with, so the HTTP layer can map them in one place.

/// An error from the intentions store, with Consul's text as its `Display`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum IntentionError {
    /// Rejected by Consul's HTTP handler before the RPC (partitions, namespaces): 400.
    #[error("{0}")]
    BadRequest(String),
    /// `Intention not found`: 404.
    #[error("Intention not found")]
    NotFound,
    /// `GET /v1/connect/intentions/:id` with an ID that is not a UUID: 400 (Consul answers 400
    /// whenever the text mentions "UUID").
    #[error("failed config entry lookup: {0}")]
    MalformedId(String),
    /// Refused by the server: validation, duplicates, missing intentions. Consul answers 500.
    #[error("{0}")]
    Invalid(String),
    /// Validation of a legacy (ID-based) write, listed the way go-multierror prints: 500.
    #[error("{}", multierror(.0))]
    InvalidLegacy(Vec<String>),
}

impl IntentionError {
    /// The status Consul's HTTP API answers this error with.
    pub fn http_status(&self) -> u16 {
        match self {
            IntentionError::BadRequest(_) | IntentionError::MalformedId(_) => 400,
            IntentionError::NotFound => 404,
            IntentionError::Invalid(_) | IntentionError::InvalidLegacy(_) => 500,
        }
    }
}

/// go-multierror's `ListFormatFunc`.
fn multierror(errors: &[String]) -> String {
    if errors.len() == 1 {
        return format!("1 error occurred:\n\t* {}\n\n", errors[0]);
    }
    let points: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
    format!(
        "{} errors occurred:\n\t{}\n\n",
        errors.len(),
        points.join("\n\t")
    )
}
