//! Leaf certificate signing on a server, the way Consul's servers do it: any server signs,
//! each limits the CSRs it accepts per second (`CSRMaxPerSecond`), and the serial number and
//! validity come from the replicated CA state so they are unique across the datacenter.
//!
//! The flow: check the CSR against the local copy of the CA (a wrong identity never reaches
//! raft), replicate an [`Op::ReserveLeaf`], wait until this server has applied it, then sign
//! under the reservation with the intermediate from the replicated state. Only the signature
//! is computed outside raft; it is not replicated, since nothing needs the certificate later.
//!
//! Encryption at rest: with data keys ([`RaftNode::with_data_keys`]), a CA change is computed
//! on a copy whose keys are opened and sealed again before it is proposed, so no unsealed CA key
//! ever reaches the log; signing opens the intermediate's key from the replicated state.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::command::{CaBase, Op, Response};
use crate::node::{ConsensusError, RaftNode, HOLD_TIMEOUT};

/// Why a leaf was not signed. The texts are shown to API callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SignError {
    /// Consul's `ErrRateLimited`, served as 429.
    #[error("{}", ca::RetryAfter::MESSAGE)]
    RateLimited,
    /// The CA has not been created yet (no leader has bootstrapped it).
    #[error("CA is not initialized yet")]
    NoCa,
    /// The CSR was refused (identity, trust domain, datacenter, signature).
    #[error("{0}")]
    BadCsr(String),
    /// The CA could not sign (expired intermediate, corrupt state).
    #[error("{0}")]
    Ca(String),
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
}

/// The CSR rate limit of one server, shared by its clones of [`RaftNode`].
#[derive(Debug, Clone)]
pub(crate) struct Limiter(Arc<Mutex<ca::CsrLimiter>>);

impl Default for Limiter {
    fn default() -> Self {
        Limiter(Arc::new(Mutex::new(ca::CsrLimiter::with_rate(
            ca::DEFAULT_CSR_MAX_PER_SECOND,
        ))))
    }
}

impl Limiter {
    /// Takes a token for one CSR at the configured rate, waiting up to Consul's 500 ms.
    async fn admit(&self, rate_per_sec: f64) -> Result<(), SignError> {
        let wait = {
            let mut limiter = self.0.lock().expect("CSR limiter poisoned");
            let now = SystemTime::now();
            if limiter.rate_per_sec() != rate_per_sec {
                limiter.set_rate(rate_per_sec, now);
            }
            limiter
                .reserve(now, ca::CSR_LIMIT_WAIT)
                .map_err(|_| SignError::RateLimited)?
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}

/// How many times a CA change is recomputed when the CA moved under it.
const CA_ATTEMPTS: usize = 10;

/// Why [`RaftNode::update_ca`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CaUpdateError {
    /// The change itself refused (invalid configuration, key generation).
    #[error("{0}")]
    Ca(String),
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
}

impl RaftNode {
    /// Changes the Connect CA: `change` gets a copy of the current CA (`None` when there is
    /// none) and returns the CA to replicate, or `None` to leave it. The write is conditional
    /// on the CA it was computed from; when that moved (a leaf reservation, another change),
    /// `change` runs again on the new one. Returns whether a new CA was written.
    ///
    /// Non-deterministic work (keys, signatures) happens here, once, on the server that
    /// calls this; replicas only install the result.
    ///
    /// With data keys, `change` sees the CA with its keys opened, and what it returns is
    /// sealed with the active data key before it is proposed (so returning the CA unchanged
    /// re-seals it). Without, the keys are passed and proposed as they are.
    pub async fn update_ca<F>(&self, mut change: F) -> Result<bool, CaUpdateError>
    where
        F: FnMut(Option<ca::CaState>) -> Result<Option<ca::CaState>, String>,
    {
        for _ in 0..CA_ATTEMPTS {
            self.linearize().await?;
            let mut current = self.reader().state().ca.clone();
            let base = CaBase::of(current.as_ref());
            if let (Some(ca), Some(keys)) = (current.as_mut(), &self.data_keys) {
                ca.unseal_keys(keys)
                    .map_err(|e| CaUpdateError::Ca(e.to_string()))?;
            }
            let Some(mut next) = change(current).map_err(CaUpdateError::Ca)? else {
                return Ok(false);
            };
            if let Some(keys) = &self.data_keys {
                next.seal_keys(keys)
                    .map_err(|e| CaUpdateError::Ca(e.to_string()))?;
            }
            let op = Op::SetCa {
                ca: Box::new(next),
                base,
            };
            match self.write(op).await?.response {
                Response::Bool(true) => return Ok(true),
                Response::Bool(false) => continue,
                other => {
                    return Err(CaUpdateError::Ca(format!(
                        "unexpected CA write result: {other:?}"
                    )))
                }
            }
        }
        Err(CaUpdateError::Ca(format!(
            "the CA kept changing; gave up after {CA_ATTEMPTS} attempts"
        )))
    }

    /// Signs a leaf for `service` of this datacenter from an agent's CSR. Returns the leaf and
    /// the raft index of its reservation (the leaf's `CreateIndex`/`ModifyIndex`).
    pub async fn sign_leaf(
        &self,
        csr_pem: &str,
        service: &str,
    ) -> Result<(ca::Leaf, u64), SignError> {
        let datacenter = self.raft().config().cluster_name.clone();
        let (checked, rate) = {
            let state = self.reader().state();
            let ca = state.ca.as_ref().ok_or(SignError::NoCa)?;
            let checked = ca
                .check_csr(csr_pem, service, &datacenter)
                .map_err(|e| SignError::BadCsr(e.to_string()))?;
            (checked, ca.config.config.csr_max_per_second)
        };
        self.limiter.admit(rate).await?;
        let written = self.write(Op::ReserveLeaf { ttl: None }).await?;
        let reservation = match written.response {
            Response::Leaf(reservation) => reservation,
            Response::Rejected(text) => return Err(SignError::Ca(text)),
            other => {
                return Err(SignError::Ca(format!(
                    "unexpected reservation result: {other:?}"
                )))
            }
        };
        // A follower forwarded the reservation; sign once its own state has it.
        self.raft()
            .wait(Some(HOLD_TIMEOUT))
            .applied_index_at_least(Some(written.index), "leaf reservation applied")
            .await
            .map_err(|_| ConsensusError::Timeout(HOLD_TIMEOUT))?;
        let state = self.reader().state();
        let ca = state.ca.as_ref().ok_or(SignError::NoCa)?;
        let leaf = ca
            .issue_leaf(&checked, &reservation, self.data_keys.as_deref())
            .map_err(|e| SignError::Ca(e.to_string()))?;
        Ok((leaf, written.index))
    }
}
