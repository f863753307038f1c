//! Errors of the CA (issuing, configuring) and of chain verification. The texts are meant to be
//! returned to API callers as they are, so they name the offending value and what was expected.

use std::time::Duration;

/// Why a CA operation (bootstrap, configuration, rotation, signing) failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The CA configuration is invalid; the text follows Consul's validation messages.
    #[error("{0}")]
    InvalidConfig(String),

    /// Only the built-in provider exists.
    #[error("CA provider {0:?} is not supported; the only supported provider is \"consul\"")]
    UnsupportedProvider(String),

    /// The cluster ID must be usable as a DNS label of the trust domain.
    #[error("invalid cluster ID {0:?}: expected a lowercase UUID")]
    InvalidClusterId(String),

    /// The CSR could not be decoded or is not acceptable.
    #[error("invalid CSR: {0}")]
    InvalidCsr(String),

    /// The CSR's self-signature does not verify against the key it carries.
    #[error("invalid CSR: its signature does not verify")]
    CsrSignature,

    /// The CSR asks for an identity other than the service the request is for.
    #[error("CSR SAN does not match the requested service: {reason} (expected {expected})")]
    CsrIdentity { expected: String, reason: String },

    /// Consul's text for a CSR whose SPIFFE ID is in another trust domain.
    #[error("SPIFFE ID in CSR from a different trust domain: {got}, we are {want}")]
    CsrTrustDomain { got: String, want: String },

    /// Consul's text for a CSR whose SPIFFE ID is for another datacenter.
    #[error("SPIFFE ID in CSR from a different datacenter: {got}, we are {want}")]
    CsrDatacenter { got: String, want: String },

    /// A service name or datacenter that cannot appear in a SPIFFE ID path segment.
    #[error("invalid {what} {value:?}: must be non-empty and must not contain '/'")]
    InvalidName { what: &'static str, value: String },

    /// The state has no active root (it was never bootstrapped or is corrupt).
    #[error("the CA has no active root")]
    NoActiveRoot,

    /// A reservation names a root that has since been pruned.
    #[error("root {0} is no longer in the CA state; reserve the leaf again")]
    UnknownRoot(String),

    /// The intermediate that signs leaves has expired; it must be renewed first.
    #[error("the signing intermediate of root {root_id} expired at {expired_at}; renew it")]
    IntermediateExpired { root_id: String, expired_at: String },

    /// The root has expired; the CA must be rotated.
    #[error("root {root_id} expired at {expired_at}; rotate the CA")]
    RootExpired { root_id: String, expired_at: String },

    /// A user-supplied `RootCert`/`PrivateKey` cannot be used.
    #[error("cannot use the supplied CA: {0}")]
    ExternalCa(String),

    /// Certificate or key generation failed inside rcgen/ring.
    #[error("certificate generation failed: {context}")]
    Crypto {
        context: &'static str,
        #[source]
        source: rcgen::Error,
    },

    /// A PEM document stored in the CA state could not be decoded (the state is corrupt).
    #[error("corrupt CA state: {0}")]
    CorruptState(String),

    /// A key in the state is sealed and this server was given no data key to open it.
    #[error("the CA keys are encrypted at rest and this server has no data key (data_key_file / MESH_DATA_KEY)")]
    NoDataKey,

    /// A sealed key did not open (a data key missing from the keyring, or a corrupt text), or
    /// a key could not be sealed.
    #[error("CA {what} key: {source}")]
    Sealed {
        what: &'static str,
        #[source]
        source: crate::seal::SealError,
    },
}

/// Why a certificate chain does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("cannot decode certificate chain: {0}")]
    Decode(String),

    #[error("certificate chain is empty")]
    EmptyChain,

    #[error("no trusted roots given")]
    NoTrustedRoots,

    #[error("certificate {subject} is not valid before {not_before}")]
    NotYetValid { subject: String, not_before: String },

    #[error("certificate {subject} expired at {not_after}")]
    Expired { subject: String, not_after: String },

    #[error("leaf certificate {0} is a CA certificate")]
    LeafIsCa(String),

    #[error("certificate {0} is used as an issuer but is not a CA certificate")]
    NotCa(String),

    #[error("certificate {0} allows fewer intermediate CAs below it (pathLenConstraint)")]
    PathLength(String),

    #[error("certificate {0} is used as an issuer but may not sign certificates (key usage)")]
    CannotSign(String),

    #[error("signature of certificate {subject} does not verify against issuer {issuer}")]
    BadSignature { subject: String, issuer: String },

    #[error("certificate {subject} was issued by {issuer}, which is neither in the chain nor a trusted root")]
    UntrustedIssuer { subject: String, issuer: String },

    #[error("certificate chain is longer than {0} certificates")]
    ChainTooLong(usize),

    #[error("leaf certificate has {0} URI SANs; expected exactly one SPIFFE ID")]
    SpiffeIdCount(usize),

    #[error("leaf certificate SPIFFE ID is invalid: {0}")]
    SpiffeId(String),
}

impl CaError {
    pub(crate) fn crypto(context: &'static str) -> impl FnOnce(rcgen::Error) -> CaError {
        move |source| CaError::Crypto { context, source }
    }
}

pub(crate) fn invalid_config(text: impl Into<String>) -> CaError {
    CaError::InvalidConfig(text.into())
}

/// Durations in errors are printed the way Go prints them, since the texts mirror Consul's.
pub(crate) fn go(d: Duration) -> String {
    crate::duration::format_go_duration_long(d)
}
