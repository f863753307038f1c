//! `POST /v1/agent/connect/authorize`: its request body, its checks in Consul's order, and
//! its response.
//!
//! The HTTP layer decodes with [`AuthorizeRequest::decode`], calls
//! [`AuthorizeRequest::client`] (target and certificate URI), checks `service:write` on the
//! target with the request's token, then [`Intentions::authorize_request`] and answers
//! [`AuthorizeResponse`]. Every error here is a 400 with the error's text.

use serde::{Deserialize, Serialize};

use crate::decision::{authorize_in, Decision, DefaultPolicy, MatchBy};
use crate::model::DEFAULT_NAMESPACE;
use crate::spiffe::{CertUri, SpiffeIdService};
use crate::store::Intentions;
use crate::validate::go_quote;
use crate::wire;

/// Consul's `structs.ConnectAuthorizeRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthorizeRequest {
    /// The destination service being connected to.
    #[serde(rename = "Target")]
    pub target: String,
    /// The URI SAN of the client's certificate, already verified against the CA by the caller.
    #[serde(rename = "ClientCertURI")]
    pub client_cert_uri: String,
    /// Not checked (Consul keeps no revocation list either).
    #[serde(rename = "ClientCertSerial")]
    pub client_cert_serial: String,
    #[serde(rename = "Namespace")]
    pub namespace: String,
    #[serde(rename = "Partition")]
    pub partition: String,
}

/// Why an authorize request was refused; every one is a 400 in Consul.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    #[error("Request decode failed: {0}")]
    Decode(String),
    #[error("Target service must be specified")]
    MissingTarget,
    #[error("ClientCertURI not a valid Connect identifier")]
    NotConnectIdentifier,
    #[error("ClientCertURI not a valid Service identifier")]
    NotServiceIdentifier,
    #[error("Mismatched partitions: {} != {}", go_quote(.uri), go_quote(.target))]
    MismatchedPartitions { uri: String, target: String },
}

impl AuthorizeRequest {
    /// Reads the body the way Consul's `decodeBody` does (field names case-insensitive).
    pub fn decode(body: &[u8]) -> Result<AuthorizeRequest, AuthorizeError> {
        wire::decode(body).map_err(|e| AuthorizeError::Decode(e.to_string()))
    }

    /// The target must be set and the certificate URI must name a service.
    pub fn client(&self) -> Result<SpiffeIdService, AuthorizeError> {
        if self.target.is_empty() {
            return Err(AuthorizeError::MissingTarget);
        }
        match CertUri::parse(&self.client_cert_uri) {
            Ok(CertUri::Service(svc)) => Ok(svc),
            Ok(_) => Err(AuthorizeError::NotServiceIdentifier),
            Err(_) => Err(AuthorizeError::NotConnectIdentifier),
        }
    }
}

/// Consul's `connectAuthorizeResp`: `{"Authorized": …, "Reason": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorizeResponse {
    #[serde(rename = "Authorized")]
    pub authorized: bool,
    #[serde(rename = "Reason")]
    pub reason: String,
}

impl From<&Decision> for AuthorizeResponse {
    fn from(d: &Decision) -> Self {
        AuthorizeResponse {
            authorized: d.allowed,
            reason: d.reason.clone(),
        }
    }
}

impl Intentions {
    /// The decision for an authorize request whose token may write the target. The client's
    /// namespace counts: a certificate from another namespace matches only wildcard-namespace
    /// intentions, which cannot exist here, so it gets the default.
    pub fn authorize_request(
        &self,
        request: &AuthorizeRequest,
        default: DefaultPolicy,
    ) -> Result<Decision, AuthorizeError> {
        let client = request.client()?;
        let target_partition = if request.partition.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            request.partition.as_str()
        };
        if client.partition != target_partition {
            return Err(AuthorizeError::MismatchedPartitions {
                uri: client.partition,
                target: target_partition.to_owned(),
            });
        }
        Ok(authorize_in(
            self.matching(MatchBy::Destination, &request.target),
            &client.namespace,
            &client.service,
            &request.target,
            None,
            default,
        ))
    }
}

#[cfg(test)]
mod tests;
