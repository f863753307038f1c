//! The replicated CA state and its operations: bootstrap, leaf signing, root rotation with
//! cross-signing, intermediate renewal, configuration changes and pruning.
//!
//! Model (following Consul's `consul` provider and CA manager, agent/consul/leader_connect_ca.go):
//! each [`Root`] is a self-signed EC P-256 root plus the intermediate that signs its leaves. One
//! root is active. Rotation creates a new root and intermediate, has the old root's key
//! cross-sign the new root (that certificate is sent with new leaves, so peers that still only
//! trust the old root accept them), marks the old root inactive and keeps it in `roots` until the
//! leaves it signed have expired ([`CaState::prune`]). Serial numbers come from one counter and
//! are never reused, across leaves, intermediates, roots and cross-signed certificates.
//!
//! Mutations reset the raft indexes of what they touch to 0; [`CaState::stamp_index`] fills them
//! with the index of the log entry that replicated the change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::KeyPair;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::X509Certificate;

use crate::certs::{self, CaCertSpec, LeafSpec};
use crate::config::{CaConfig, PROVIDER_CONSUL};
use crate::error::CaError;
use crate::seal::{self, DataKeys};
use crate::spiffe::SpiffeId;
use crate::wire;

#[cfg(test)]
pub(crate) mod tests;

/// `Name` of every root, as Consul names the roots of its built-in provider.
pub const ROOT_NAME: &str = "Consul CA Primary Cert";

/// Certificates are valid from this long before "now", so that servers and proxies whose clocks
/// lag slightly accept them at once (Consul's `CertificateTimeDriftBuffer`).
pub const CERT_DRIFT_BUFFER: Duration = Duration::from_secs(60);

/// Validity of the certificate in which the old root cross-signs the new one (Consul: 7 days).
const CROSS_SIGN_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// The CA as stored in the replicated state. Private keys are kept as PKCS#8 PEM strings, or
/// sealed under a data key ([`crate::seal`]); see [`CaState::seal_keys`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaState {
    /// UUID generated when the CA was first bootstrapped.
    pub cluster_id: String,
    /// `<cluster_id>.mesh` (Consul uses `<cluster_id>.consul`).
    pub trust_domain: String,
    pub config: CaConfig,
    /// In creation order; use [`CaState::active_root`] for the active one.
    pub roots: Vec<Root>,
    pub active_root_id: String,
    /// The serial number the next certificate will get.
    pub next_serial: u64,
    /// Raft index of the last change to the set of roots (0 = changed, not yet stamped); the
    /// index for blocking queries on `/v1/connect/ca/roots`. Leaf signing never changes it.
    pub roots_modify_index: u64,
    /// The intermediates' keys and issuer certificates, parsed once instead of for every leaf.
    #[serde(skip)]
    signers: Signers,
}

/// What signs leaves under one intermediate, parsed from the state's PEMs.
struct Signer {
    key: KeyPair,
    issuer: rcgen::Certificate,
}

/// A cache of [`Signer`]s by intermediate certificate PEM. Not part of the state: clones share
/// it, and it never makes two states compare unequal.
#[derive(Clone, Default)]
struct Signers(Arc<Mutex<HashMap<String, Arc<Signer>>>>);

impl PartialEq for Signers {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Signers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signers")
    }
}

/// One trusted root with its signing intermediate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// Colon-hex SHA-1 of the root certificate's DER (Consul's `CalculateCertFingerprint`).
    pub id: String,
    pub name: String,
    /// The root certificate's serial number (the low 64 bits for an imported root).
    pub serial_number: u64,
    /// Colon-hex subject key ID of the certificate that signs leaves (the intermediate).
    pub signing_key_id: String,
    /// The cluster ID this root was created under (Consul's `ExternalTrustDomain`).
    pub external_trust_domain: String,
    /// Unix seconds.
    pub not_before: u64,
    pub not_after: u64,
    pub root_cert_pem: String,
    /// PEM, or sealed ([`crate::seal`]).
    pub root_key_pem: String,
    /// The intermediate that signs leaves, its key (PEM or sealed) and validity (unix seconds).
    pub signing_cert_pem: String,
    pub signing_key_pem: String,
    pub signing_not_before: u64,
    pub signing_not_after: u64,
    /// This root re-issued by the root it replaced, while that one is still trusted.
    pub cross_signed: Option<CrossSigned>,
    pub active: bool,
    /// Unix seconds when a newer root replaced this one.
    pub rotated_out_at: Option<u64>,
    /// The latest `not_after` of any leaf reserved under this root.
    pub leaves_valid_until: Option<u64>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A root certificate re-issued (same subject and key) by the root that preceded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrossSigned {
    pub by_root_id: String,
    pub cert_pem: String,
}

/// What a root rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationNote {
    pub old_root_id: String,
    pub new_root_id: String,
    /// False when `ForceWithoutCrossSigning` skipped cross-signing.
    pub cross_signed: bool,
}

/// A serial number and validity set aside for one leaf. Reserving touches only plain fields and
/// uses no randomness, so it can be applied on every replica; signing it is done once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafReservation {
    pub serial: u64,
    pub root_id: String,
    pub not_before: u64,
    pub not_after: u64,
}

/// A CSR that was decoded, whose signature verified and whose identity matched the request.
#[derive(Debug)]
pub struct CheckedCsr {
    csr: certs::Csr,
    id: SpiffeId,
}

impl CheckedCsr {
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.id
    }
}

/// A signed leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaf {
    pub serial: u64,
    /// Colon-hex serial, as Consul's `SerialNumber`.
    pub serial_number: String,
    /// The leaf followed by the intermediate that signed it and, during a rotation, the new root
    /// cross-signed by the old one: the chain a proxy presents.
    pub cert_pem: String,
    pub service: String,
    pub service_uri: String,
    /// Unix seconds.
    pub valid_after: u64,
    pub valid_before: u64,
    pub root_id: String,
}

impl Leaf {
    /// The reservation this leaf was signed under, for [`CaState::note_issued`] on replicas.
    pub fn reservation(&self) -> LeafReservation {
        LeafReservation {
            serial: self.serial,
            root_id: self.root_id.clone(),
            not_before: self.valid_after,
            not_after: self.valid_before,
        }
    }

    /// The agent endpoint's JSON (`/v1/agent/connect/ca/leaf/:service`); the agent adds the
    /// private key it generated, and the raft index it answers with.
    pub fn to_issued_cert(&self, private_key_pem: &str, index: u64) -> wire::IssuedCert {
        wire::IssuedCert {
            serial_number: self.serial_number.clone(),
            cert_pem: self.cert_pem.clone(),
            private_key_pem: private_key_pem.to_owned(),
            service: self.service.clone(),
            service_uri: self.service_uri.clone(),
            valid_after: certs::rfc3339(self.valid_after),
            valid_before: certs::rfc3339(self.valid_before),
            create_index: index,
            modify_index: index,
        }
    }
}

/// `<cluster_id>.mesh`.
pub fn trust_domain_for(cluster_id: &str) -> String {
    format!("{cluster_id}.mesh")
}

pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Where the key material of a new root comes from.
enum RootSource {
    Generate,
    Key(String),
    Import { cert_pem: String, key_pem: String },
}

impl CaState {
    /// Creates the CA: an EC P-256 root valid for `RootCertTTL` and an intermediate valid for
    /// `IntermediateCertTTL` that signs leaves. With `PrivateKey` (and `RootCert`) set in the
    /// configuration, the root is built from (or is) that material instead.
    pub fn bootstrap(
        cluster_id: &str,
        config: CaConfig,
        now: SystemTime,
    ) -> Result<CaState, CaError> {
        let valid_id = !cluster_id.is_empty()
            && cluster_id.len() <= 63
            && cluster_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_id {
            return Err(CaError::InvalidClusterId(cluster_id.to_owned()));
        }
        config.validate()?;
        let mut state = CaState {
            cluster_id: cluster_id.to_owned(),
            trust_domain: trust_domain_for(cluster_id),
            config: CaConfig {
                provider: PROVIDER_CONSUL.to_owned(),
                create_index: 0,
                modify_index: 0,
                ..config
            },
            roots: Vec::new(),
            active_root_id: String::new(),
            next_serial: 1,
            roots_modify_index: 0,
            signers: Signers::default(),
        };
        let mut root = state.new_root(state.configured_source(), unix(now))?;
        root.active = true;
        state.active_root_id = root.id.clone();
        state.roots.push(root);
        Ok(state)
    }

    pub fn active_root(&self) -> Option<&Root> {
        self.roots.iter().find(|r| r.id == self.active_root_id)
    }

    /// The PEM of every trusted root certificate, e.g. for [`crate::verify_leaf`].
    pub fn trusted_roots(&self) -> Vec<String> {
        self.roots.iter().map(|r| r.root_cert_pem.clone()).collect()
    }

    /// The SPIFFE ID a leaf for `service` in `datacenter` must carry.
    pub fn service_id(&self, datacenter: &str, service: &str) -> SpiffeId {
        SpiffeId::service(&self.trust_domain, datacenter, service)
    }

    // ----- leaf signing -----

    /// Signs a leaf for `service` in `datacenter` from the agent's CSR, valid for the configured
    /// `LeafCertTTL`: check the CSR, reserve a serial, sign.
    pub fn sign_leaf(
        &mut self,
        csr_pem: &str,
        service: &str,
        datacenter: &str,
        now: SystemTime,
    ) -> Result<Leaf, CaError> {
        let ttl = self.config.config.leaf_cert_ttl;
        self.sign_leaf_with_ttl(csr_pem, service, datacenter, now, ttl)
    }

    /// [`CaState::sign_leaf`] with an explicit TTL (clamped to the intermediate's expiry).
    pub fn sign_leaf_with_ttl(
        &mut self,
        csr_pem: &str,
        service: &str,
        datacenter: &str,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<Leaf, CaError> {
        let checked = self.check_csr(csr_pem, service, datacenter)?;
        let reservation = self.reserve_leaf(now, Some(ttl))?;
        self.issue_leaf(&checked, &reservation, None)
    }

    /// Decodes the CSR, verifies its self-signature and checks that it asks for exactly
    /// `spiffe://<trust-domain>/ns/default/dc/<datacenter>/svc/<service>` (plus any DNS/IP SANs).
    pub fn check_csr(
        &self,
        csr_pem: &str,
        service: &str,
        datacenter: &str,
    ) -> Result<CheckedCsr, CaError> {
        check_name("service name", service)?;
        check_name("datacenter", datacenter)?;
        let expected = self.service_id(datacenter, service);
        let csr = certs::parse_csr(csr_pem)?;
        let mismatch = |reason: String| CaError::CsrIdentity {
            expected: expected.uri(),
            reason,
        };
        let uri = match csr.uris.as_slice() {
            [] => return Err(mismatch("the CSR has no URI SAN".to_owned())),
            [uri] => uri,
            uris => {
                return Err(mismatch(format!(
                    "the CSR has {} URI SANs, expected exactly one",
                    uris.len()
                )))
            }
        };
        let id = SpiffeId::parse(uri).map_err(|e| mismatch(e.to_string()))?;
        if id.trust_domain != self.trust_domain {
            return Err(CaError::CsrTrustDomain {
                got: id.trust_domain,
                want: self.trust_domain.clone(),
            });
        }
        if id.datacenter != datacenter {
            return Err(CaError::CsrDatacenter {
                got: id.datacenter,
                want: datacenter.to_owned(),
            });
        }
        if id != expected {
            return Err(mismatch(format!("the CSR asks for {uri}")));
        }
        Ok(CheckedCsr { csr, id })
    }

    /// Sets aside the next serial number and the validity of a leaf signed by the active root:
    /// from `now - 1m` to `now + ttl` (default `LeafCertTTL`), but not past the intermediate.
    /// Deterministic; apply it on every replica if `now` travels with the command.
    pub fn reserve_leaf(
        &mut self,
        now: SystemTime,
        ttl: Option<Duration>,
    ) -> Result<LeafReservation, CaError> {
        let now = unix(now);
        let ttl = ttl.unwrap_or(self.config.config.leaf_cert_ttl);
        let root = self.active_root().ok_or(CaError::NoActiveRoot)?;
        if now > root.not_after {
            return Err(CaError::RootExpired {
                root_id: root.id.clone(),
                expired_at: certs::rfc3339(root.not_after),
            });
        }
        if now > root.signing_not_after {
            return Err(CaError::IntermediateExpired {
                root_id: root.id.clone(),
                expired_at: certs::rfc3339(root.signing_not_after),
            });
        }
        let not_after = now
            .saturating_add(ttl.as_secs())
            .min(root.signing_not_after);
        let reservation = LeafReservation {
            serial: self.next_serial,
            root_id: root.id.clone(),
            not_before: now.saturating_sub(CERT_DRIFT_BUFFER.as_secs()),
            not_after,
        };
        self.note_issued(&reservation);
        Ok(reservation)
    }

    /// Records a leaf signed elsewhere (e.g. on the leader): the serial counter moves past it and
    /// its root stays trusted until it expires. Idempotent and deterministic.
    pub fn note_issued(&mut self, reservation: &LeafReservation) {
        self.next_serial = self.next_serial.max(reservation.serial.saturating_add(1));
        if let Some(root) = self.roots.iter_mut().find(|r| r.id == reservation.root_id) {
            root.leaves_valid_until = Some(
                root.leaves_valid_until
                    .map_or(reservation.not_after, |t| t.max(reservation.not_after)),
            );
        }
    }

    /// The raft index of the last change to the roots or the configuration: what a writer that
    /// computed a new state from this one expects to still find (leaf reservations do not move
    /// it).
    pub fn index(&self) -> u64 {
        self.roots_modify_index.max(self.config.modify_index)
    }

    /// Signs a checked CSR under a reservation. Does not change the state. `keys` opens the
    /// intermediate's key when it is sealed.
    pub fn issue_leaf(
        &self,
        checked: &CheckedCsr,
        reservation: &LeafReservation,
        keys: Option<&DataKeys>,
    ) -> Result<Leaf, CaError> {
        let root = self
            .roots
            .iter()
            .find(|r| r.id == reservation.root_id)
            .ok_or_else(|| CaError::UnknownRoot(reservation.root_id.clone()))?;
        let signer = self.signer(root, keys)?;
        let (issuer, key) = (&signer.issuer, &signer.key);
        let der = certs::leaf(
            &LeafSpec {
                id: &checked.id,
                serial: reservation.serial,
                not_before: reservation.not_before,
                not_after: reservation.not_after,
            },
            &checked.csr,
            issuer,
            key,
        )?;
        let mut cert_pem = certs::pem_certificate(&der);
        push_pem(&mut cert_pem, &root.signing_cert_pem);
        if let Some(cross) = &root.cross_signed {
            push_pem(&mut cert_pem, &cross.cert_pem);
        }
        Ok(Leaf {
            serial: reservation.serial,
            serial_number: certs::hex_string(&certs::serial_bytes(reservation.serial)),
            cert_pem,
            service: checked.id.service.clone(),
            service_uri: checked.id.uri(),
            valid_after: reservation.not_before,
            valid_before: reservation.not_after,
            root_id: root.id.clone(),
        })
    }

    /// The parsed signing material of `root`'s intermediate, from the cache or parsed now.
    fn signer(&self, root: &Root, keys: Option<&DataKeys>) -> Result<Arc<Signer>, CaError> {
        let mut cache = self.signers.0.lock().expect("signer cache poisoned");
        if let Some(signer) = cache.get(&root.signing_cert_pem) {
            return Ok(signer.clone());
        }
        let key = stored_key(&root.signing_key_pem, "intermediate", keys)?;
        let issuer = certs::issuer(&root.signing_cert_pem, &key)?;
        let signer = Arc::new(Signer { key, issuer });
        // Forget intermediates that are no longer in the state.
        cache.retain(|pem, _| self.roots.iter().any(|r| &r.signing_cert_pem == pem));
        cache.insert(root.signing_cert_pem.clone(), signer.clone());
        Ok(signer)
    }

    // ----- rotation and configuration -----

    /// Replaces the active root with a freshly generated one, cross-signed by the old root
    /// (unless `ForceWithoutCrossSigning`). Any imported `RootCert`/`PrivateKey` is dropped from
    /// the configuration, since it no longer describes the active root.
    pub fn rotate(&mut self, now: SystemTime) -> Result<RotationNote, CaError> {
        let note = self.rotate_to(RootSource::Generate, unix(now))?;
        let provider = &mut self.config.config;
        if !provider.private_key.is_empty() || !provider.root_cert.is_empty() {
            provider.private_key.clear();
            provider.root_cert.clear();
            self.config.modify_index = 0;
        }
        Ok(note)
    }

    /// Applies a new configuration (`PUT /v1/connect/ca/configuration`). TTL and rate changes
    /// take effect for the next certificates; a new `PrivateKey`/`RootCert` (or key type) rotates
    /// the root as Consul does, returning what the rotation did. On error nothing changes.
    pub fn set_config(
        &mut self,
        new: CaConfig,
        now: SystemTime,
    ) -> Result<Option<RotationNote>, CaError> {
        new.validate()?;
        let new = CaConfig {
            provider: PROVIDER_CONSUL.to_owned(),
            create_index: self.config.create_index,
            modify_index: 0,
            ..new
        };
        let rotates = self.config.config.root_changes(&new.config);
        let old = std::mem::replace(&mut self.config, new);
        if !rotates {
            return Ok(None);
        }
        match self.rotate_to(self.configured_source(), unix(now)) {
            Ok(note) => Ok(Some(note)),
            Err(e) => {
                self.config = old;
                Err(e)
            }
        }
    }

    /// Replaces the active root's intermediate when more than half of its lifetime has passed
    /// (Consul renews intermediates on that rule). Returns whether it did.
    pub fn renew_intermediate(&mut self, now: SystemTime) -> Result<bool, CaError> {
        let now = unix(now);
        let root = self.active_root().ok_or(CaError::NoActiveRoot)?;
        let half = root.signing_not_before
            + root
                .signing_not_after
                .saturating_sub(root.signing_not_before)
                / 2;
        if now < half {
            return Ok(false);
        }
        let root = root.clone();
        let root_key = stored_key(&root.root_key_pem, "root", None)?;
        let (cert_pem, key_pem, not_before, not_after) =
            self.new_intermediate(&root.root_cert_pem, &root_key, root.not_after, now)?;
        let key_id = signing_key_id(&cert_pem)?;
        let active = self
            .roots
            .iter_mut()
            .find(|r| r.id == root.id)
            .expect("the active root was just found");
        active.signing_cert_pem = cert_pem;
        active.signing_key_pem = key_pem;
        active.signing_not_before = not_before;
        active.signing_not_after = not_after;
        active.signing_key_id = key_id;
        active.modify_index = 0;
        self.roots_modify_index = 0;
        Ok(true)
    }

    /// Removes inactive roots once every leaf they signed has expired: when `now` is past both
    /// the last leaf reserved under them and `rotated_out_at + LeafCertTTL`. Certificates they
    /// cross-signed are dropped with them. Returns the IDs removed.
    pub fn prune(&mut self, now: SystemTime) -> Vec<String> {
        let now = unix(now);
        let leaf_ttl = self.config.config.leaf_cert_ttl.as_secs();
        let (gone, kept): (Vec<Root>, Vec<Root>) =
            std::mem::take(&mut self.roots).into_iter().partition(|r| {
                let Some(rotated_out_at) = r.rotated_out_at.filter(|_| !r.active) else {
                    return false;
                };
                let until = rotated_out_at
                    .saturating_add(leaf_ttl)
                    .max(r.leaves_valid_until.unwrap_or(0));
                now > until
            });
        self.roots = kept;
        let gone: Vec<String> = gone.into_iter().map(|r| r.id).collect();
        if gone.is_empty() {
            return gone;
        }
        for root in &mut self.roots {
            if root
                .cross_signed
                .as_ref()
                .is_some_and(|c| gone.contains(&c.by_root_id))
            {
                root.cross_signed = None;
                root.modify_index = 0;
            }
        }
        self.roots_modify_index = 0;
        gone
    }

    /// Fills every raft index a mutation reset to 0 with `index`, the log index that carried it.
    pub fn stamp_index(&mut self, index: u64) {
        for root in &mut self.roots {
            if root.create_index == 0 {
                root.create_index = index;
            }
            if root.modify_index == 0 {
                root.modify_index = index;
            }
        }
        if self.roots_modify_index == 0 {
            self.roots_modify_index = index;
        }
        if self.config.create_index == 0 {
            self.config.create_index = index;
        }
        if self.config.modify_index == 0 {
            self.config.modify_index = index;
        }
    }

    // ----- encryption at rest -----

    /// Seals every key that is plaintext and reseals every key sealed by a data key other
    /// than `keys`' active one, so that the state holds no key `keys` did not just seal or
    /// has not sealed before. Returns whether anything changed. Indexes are not touched: the
    /// CA is the same CA, only stored differently.
    pub fn seal_keys(&mut self, keys: &DataKeys) -> Result<bool, CaError> {
        let mut changed = false;
        for (what, stored) in self.key_fields_mut() {
            if seal::sealed_with(stored) == Some(keys.active_id()) {
                continue;
            }
            let pem = opened(stored, what, Some(keys))?;
            let sealed =
                seal::seal(keys, &pem).map_err(|source| CaError::Sealed { what, source })?;
            *stored = sealed;
            changed = true;
        }
        Ok(changed)
    }

    /// Opens every sealed key, for computing a change (rotation, renewal, configuration) on a
    /// copy that is sealed again with [`CaState::seal_keys`] before it is stored. Returns
    /// whether anything was sealed.
    pub fn unseal_keys(&mut self, keys: &DataKeys) -> Result<bool, CaError> {
        let mut changed = false;
        for (what, stored) in self.key_fields_mut() {
            if seal::is_sealed(stored) {
                *stored = opened(stored, what, Some(keys))?.into_owned();
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Whether [`CaState::seal_keys`] would change anything: a key is plaintext or sealed by a
    /// data key other than the active one.
    pub fn needs_sealing(&self, keys: &DataKeys) -> bool {
        self.key_fields()
            .any(|(_, stored)| seal::sealed_with(stored) != Some(keys.active_id()))
    }

    /// Every private key field that holds a key, with what it is for error texts.
    fn key_fields(&self) -> impl Iterator<Item = (&'static str, &String)> {
        let roots = self.roots.iter().flat_map(|r| {
            [
                ("root", &r.root_key_pem),
                ("intermediate", &r.signing_key_pem),
            ]
        });
        roots
            .chain([("configured", &self.config.config.private_key)])
            .filter(|(_, stored)| !stored.is_empty())
    }

    fn key_fields_mut(&mut self) -> impl Iterator<Item = (&'static str, &mut String)> {
        let roots = self.roots.iter_mut().flat_map(|r| {
            [
                ("root", &mut r.root_key_pem),
                ("intermediate", &mut r.signing_key_pem),
            ]
        });
        roots
            .chain([("configured", &mut self.config.config.private_key)])
            .filter(|(_, stored)| !stored.is_empty())
    }

    // ----- JSON -----

    /// `GET /v1/connect/ca/roots`.
    pub fn roots_response(&self) -> wire::IndexedCaRoots {
        wire::IndexedCaRoots {
            active_root_id: self.active_root_id.clone(),
            trust_domain: self.trust_domain.clone(),
            roots: self.roots.iter().map(Root::to_wire).collect(),
        }
    }

    pub fn roots_json(&self) -> serde_json::Value {
        serde_json::to_value(self.roots_response()).expect("roots serialize to JSON")
    }

    /// `GET /v1/connect/ca/roots?pem=true`: each root followed by its intermediates, as Consul
    /// writes them (`application/pem-certificate-chain`).
    pub fn roots_pem(&self) -> String {
        let mut out = String::new();
        for root in &self.roots {
            push_pem(&mut out, &root.root_cert_pem);
            for intermediate in root.intermediate_certs() {
                push_pem(&mut out, &intermediate);
            }
        }
        out
    }

    // ----- internals -----

    fn take_serial(&mut self) -> u64 {
        let serial = self.next_serial;
        self.next_serial += 1;
        serial
    }

    fn configured_source(&self) -> RootSource {
        let provider = &self.config.config;
        match (
            provider.root_cert.is_empty(),
            provider.private_key.is_empty(),
        ) {
            (false, false) => RootSource::Import {
                cert_pem: provider.root_cert.clone(),
                key_pem: provider.private_key.clone(),
            },
            (true, false) => RootSource::Key(provider.private_key.clone()),
            _ => RootSource::Generate,
        }
    }

    fn rotate_to(&mut self, source: RootSource, now: u64) -> Result<RotationNote, CaError> {
        let old = self.active_root().ok_or(CaError::NoActiveRoot)?.clone();
        // Work on a copy so that a failure half-way leaves the state (and serials) untouched.
        let mut next = self.clone();
        let mut new = next.new_root(source, now)?;
        if new.id == old.id {
            return Err(CaError::ExternalCa(
                "the supplied root is already the active root".to_owned(),
            ));
        }
        let cross_sign = !next.config.force_without_cross_signing;
        if cross_sign {
            let old_key = stored_key(&old.root_key_pem, "root", None)?;
            let new_key = stored_key(&new.root_key_pem, "root", None)?;
            let not_after = now
                .saturating_add(CROSS_SIGN_VALIDITY.as_secs())
                .min(old.not_after);
            let serial = next.take_serial();
            let cert_pem = certs::cross_sign(
                &new.root_cert_pem,
                &new_key,
                serial,
                now.saturating_sub(CERT_DRIFT_BUFFER.as_secs()),
                not_after,
                &old.root_cert_pem,
                &old_key,
            )?;
            new.cross_signed = Some(CrossSigned {
                by_root_id: old.id.clone(),
                cert_pem,
            });
        }
        new.active = true;
        // Re-importing a root that is still kept as an inactive one replaces that entry.
        next.roots.retain(|r| r.id != new.id);
        for root in &mut next.roots {
            if root.active {
                root.active = false;
                root.rotated_out_at = Some(now);
                root.modify_index = 0;
            }
        }
        next.active_root_id = new.id.clone();
        next.roots.push(new);
        next.roots_modify_index = 0;
        *self = next;
        Ok(RotationNote {
            old_root_id: old.id,
            new_root_id: self.active_root_id.clone(),
            cross_signed: cross_sign,
        })
    }

    fn new_root(&mut self, source: RootSource, now: u64) -> Result<Root, CaError> {
        let not_before = now.saturating_sub(CERT_DRIFT_BUFFER.as_secs());
        let (root_cert_pem, root_key) = match source {
            RootSource::Generate | RootSource::Key(_) => {
                let key = match &source {
                    RootSource::Key(pem) => certs::load_key(&opened(pem, "configured", None)?)
                        .map_err(CaError::ExternalCa)?,
                    _ => certs::generate_key()?,
                };
                let spec = CaCertSpec {
                    common_name: self.ca_common_name("pri", &key),
                    trust_domain: &self.trust_domain.clone(),
                    serial: self.take_serial(),
                    not_before,
                    not_after: now.saturating_add(self.config.config.root_cert_ttl.as_secs()),
                    path_len: None,
                };
                (certs::self_signed_root(&spec, &key)?, key)
            }
            RootSource::Import { cert_pem, key_pem } => {
                let key = certs::load_key(&opened(&key_pem, "configured", None)?)
                    .map_err(CaError::ExternalCa)?;
                check_imported_root(&cert_pem, &key, now)?;
                (ensure_newline(&cert_pem), key)
            }
        };
        let root_der = single_certificate(&root_cert_pem)?;
        let root_cert = parse(&root_der)?;
        let root_not_after = timestamp(root_cert.validity().not_after);
        let (signing_cert_pem, signing_key_pem, signing_not_before, signing_not_after) =
            self.new_intermediate(&root_cert_pem, &root_key, root_not_after, now)?;
        Ok(Root {
            id: certs::fingerprint(&root_der),
            name: ROOT_NAME.to_owned(),
            serial_number: low_u64(root_cert.raw_serial()),
            signing_key_id: signing_key_id(&signing_cert_pem)?,
            external_trust_domain: self.cluster_id.clone(),
            not_before: timestamp(root_cert.validity().not_before),
            not_after: root_not_after,
            root_key_pem: root_key.serialize_pem(),
            root_cert_pem,
            signing_cert_pem,
            signing_key_pem,
            signing_not_before,
            signing_not_after,
            cross_signed: None,
            active: false,
            rotated_out_at: None,
            leaves_valid_until: None,
            create_index: 0,
            modify_index: 0,
        })
    }

    /// A new leaf-signing intermediate under the given root: valid from `now - 1m` for
    /// `IntermediateCertTTL`, but not past the root. Returns (cert, key, not_before, not_after).
    fn new_intermediate(
        &mut self,
        root_cert_pem: &str,
        root_key: &KeyPair,
        root_not_after: u64,
        now: u64,
    ) -> Result<(String, String, u64, u64), CaError> {
        let key = certs::generate_key()?;
        let not_before = now.saturating_sub(CERT_DRIFT_BUFFER.as_secs());
        let not_after = now
            .saturating_add(self.config.config.intermediate_cert_ttl.as_secs())
            .min(root_not_after);
        let spec = CaCertSpec {
            common_name: self.ca_common_name("int", &key),
            trust_domain: &self.trust_domain.clone(),
            serial: self.take_serial(),
            not_before,
            not_after,
            path_len: Some(0),
        };
        let cert_pem = certs::intermediate(&spec, &key, root_cert_pem, root_key)?;
        // rcgen re-encodes the issuer's name; chains only build if it is byte-identical.
        let root_der = single_certificate(root_cert_pem)?;
        let int_der = single_certificate(&cert_pem)?;
        if parse(&int_der)?.issuer().as_raw() != parse(&root_der)?.subject().as_raw() {
            return Err(CaError::ExternalCa(
                "the root certificate's subject name cannot be reproduced exactly by the \
                 certificate encoder, so certificates it issues would not chain to it"
                    .to_owned(),
            ));
        }
        Ok((cert_pem, key.serialize_pem(), not_before, not_after))
    }

    /// Consul's `CACN` shape: `pri-<uid>.ca.<first 8 of cluster id>.mesh` (`int-` for
    /// intermediates), the uid derived from the key so that successive CAs never share a name.
    fn ca_common_name(&self, kind: &str, key: &KeyPair) -> String {
        let cluster8: String = self.cluster_id.chars().take(8).collect();
        format!(
            "{kind}-{}.ca.{cluster8}.mesh",
            certs::compact_uid(&key.public_key_der())
        )
    }
}

impl Root {
    /// Consul's `IntermediateCerts`: the cross-signed root first, the leaf-signing intermediate
    /// last.
    pub fn intermediate_certs(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(2);
        if let Some(cross) = &self.cross_signed {
            out.push(ensure_newline(&cross.cert_pem));
        }
        out.push(ensure_newline(&self.signing_cert_pem));
        out
    }

    fn to_wire(&self) -> wire::CaRoot {
        wire::CaRoot {
            id: self.id.clone(),
            name: self.name.clone(),
            serial_number: self.serial_number,
            signing_key_id: self.signing_key_id.clone(),
            external_trust_domain: self.external_trust_domain.clone(),
            not_before: certs::rfc3339(self.not_before),
            not_after: certs::rfc3339(self.not_after),
            root_cert: ensure_newline(&self.root_cert_pem),
            intermediate_certs: self.intermediate_certs(),
            active: self.active,
            private_key_type: "ec".to_owned(),
            private_key_bits: 256,
            create_index: self.create_index,
            modify_index: self.modify_index,
        }
    }
}

fn check_name(what: &'static str, value: &str) -> Result<(), CaError> {
    let bad = value.is_empty()
        || value.contains(['/', '?', '#'])
        || value.chars().any(char::is_whitespace);
    if bad {
        return Err(CaError::InvalidName {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// A key as stored: PEM, or sealed and opened with `keys`.
fn stored_key(
    stored: &str,
    what: &'static str,
    keys: Option<&DataKeys>,
) -> Result<KeyPair, CaError> {
    certs::load_key(&opened(stored, what, keys)?)
        .map_err(|e| CaError::CorruptState(format!("{what} key: {e}")))
}

/// The PEM of a stored key, opening it with `keys` when it is sealed.
fn opened<'a>(
    stored: &'a str,
    what: &'static str,
    keys: Option<&DataKeys>,
) -> Result<std::borrow::Cow<'a, str>, CaError> {
    if !seal::is_sealed(stored) {
        return Ok(stored.into());
    }
    let keys = keys.ok_or(CaError::NoDataKey)?;
    seal::unseal(keys, stored)
        .map(Into::into)
        .map_err(|source| CaError::Sealed { what, source })
}

fn single_certificate(pem: &str) -> Result<Vec<u8>, CaError> {
    let mut ders = certs::decode_certificates(pem).map_err(CaError::CorruptState)?;
    match ders.len() {
        1 => Ok(ders.remove(0)),
        n => Err(CaError::CorruptState(format!(
            "expected one certificate, found {n}"
        ))),
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CaError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| CaError::CorruptState(format!("cannot decode certificate: {e}")))
}

fn signing_key_id(cert_pem: &str) -> Result<String, CaError> {
    let der = single_certificate(cert_pem)?;
    Ok(certs::hex_string(&certs::key_id(
        parse(&der)?.public_key().raw,
    )))
}

fn timestamp(t: x509_parser::time::ASN1Time) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

fn low_u64(serial: &[u8]) -> u64 {
    let start = serial.len().saturating_sub(8);
    serial[start..]
        .iter()
        .fold(0, |acc, b| (acc << 8) | u64::from(*b))
}

/// Checks a user-supplied root: one EC P-256 CA certificate, valid now, whose key is `key`.
fn check_imported_root(cert_pem: &str, key: &KeyPair, now: u64) -> Result<(), CaError> {
    let ders = certs::decode_certificates(cert_pem)
        .map_err(|e| CaError::ExternalCa(format!("RootCert is not PEM: {e}")))?;
    let [der] = ders.as_slice() else {
        return Err(CaError::ExternalCa(format!(
            "RootCert must hold exactly one certificate, found {}",
            ders.len()
        )));
    };
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CaError::ExternalCa(format!("RootCert cannot be decoded: {e}")))?;
    if cert.public_key().raw != key.public_key_der().as_slice() {
        return Err(CaError::ExternalCa(
            "PrivateKey does not match the public key of RootCert".to_owned(),
        ));
    }
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(CaError::ExternalCa(
            "RootCert is not a CA certificate (basicConstraints CA:true)".to_owned(),
        ));
    }
    let (nb, na) = (
        timestamp(cert.validity().not_before),
        timestamp(cert.validity().not_after),
    );
    if now < nb || now > na {
        return Err(CaError::ExternalCa(format!(
            "RootCert is only valid from {} to {}",
            certs::rfc3339(nb),
            certs::rfc3339(na)
        )));
    }
    Ok(())
}

fn ensure_newline(pem: &str) -> String {
    if pem.ends_with('\n') {
        pem.to_owned()
    } else {
        format!("{pem}\n")
    }
}

fn push_pem(out: &mut String, pem: &str) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(pem);
    if !out.ends_with('\n') {
        out.push('\n');
    }
}
