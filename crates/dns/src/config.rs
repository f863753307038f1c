//! The DNS interface's settings (Consul's `dns_config`, `domain`, `alt_domain`, `recursors`),
//! and their checked form that the answer builder reads.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::Name;

/// How the DNS interface answers. `Default` is Consul's defaults with the mesh domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Where to listen, on UDP and TCP (the agent passes `client_addr:ports.dns`).
    pub bind: SocketAddr,
    /// The local datacenter: answers for names without one, and in PTR targets.
    pub datacenter: String,
    /// The mesh domain, `mesh.` by default (a trailing dot is optional).
    pub domain: String,
    /// A second domain answered like the first; answers use the domain of the question.
    pub alt_domain: Option<String>,
    /// TTL of node, address, NS and PTR records (`dns_config.node_ttl`, default 0).
    pub node_ttl: Duration,
    /// TTLs of service records by service name (`dns_config.service_ttl`): a key ending in `*`
    /// is a prefix (`*` alone matches every service); an exact key beats the longest prefix.
    pub service_ttl: BTreeMap<String, Duration>,
    /// Answer only with instances whose checks all pass (by default warning ones are included).
    pub only_passing: bool,
    /// The most answers in a UDP response to a client without EDNS (default 3, at most 8, as
    /// Consul). 0 leaves only the 512-byte limit.
    pub udp_answer_limit: usize,
    /// The most A/AAAA answers for a service, on every transport (0 = no limit).
    pub a_record_limit: usize,
    /// Set the TC bit whenever answers were cut to fit, so stub resolvers retry over TCP.
    /// Always on unless explicitly disabled: unlike Consul, whose default is off.
    pub enable_truncate: bool,
    /// Add the node's metadata as TXT records to the additional section of node and SRV
    /// answers (`dns_config.enable_additional_node_meta_txt`, default true).
    pub node_meta_txt: bool,
    /// Upstream resolvers for names outside the mesh domains, tried in order.
    pub recursors: Vec<SocketAddr>,
    /// How long to wait for each recursor (default 2 s).
    pub recursor_timeout: Duration,
    /// Ask the recursors in a random order per question rather than as listed
    /// (`dns_config.recursor_strategy = "random"`).
    pub recursor_random: bool,
    /// The values of the SOA record.
    pub soa: SoaConfig,
    /// UDP sockets sharing the address, each served by a thread of its own (0: one per two
    /// cores, from 1 to 4).
    pub udp_workers: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8600)),
            datacenter: "dc1".to_owned(),
            domain: "mesh.".to_owned(),
            alt_domain: None,
            node_ttl: Duration::ZERO,
            service_ttl: BTreeMap::new(),
            only_passing: false,
            udp_answer_limit: 3,
            a_record_limit: 0,
            enable_truncate: true,
            node_meta_txt: true,
            recursors: Vec::new(),
            recursor_timeout: Duration::from_secs(2),
            recursor_random: false,
            soa: SoaConfig::default(),
            udp_workers: 0,
        }
    }
}

/// The timers of the SOA record (`dns_config.soa`), in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoaConfig {
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// Also the TTL of the SOA record itself, and so of negative answers.
    pub min_ttl: u32,
}

impl Default for SoaConfig {
    fn default() -> Self {
        SoaConfig {
            refresh: 3600,
            retry: 600,
            expire: 86400,
            min_ttl: 0,
        }
    }
}

/// Why a [`DnsConfig`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid DNS domain {domain:?}: {reason}")]
    Domain { domain: String, reason: String },
    #[error("invalid recursor address {0:?}: expected an IP address with an optional port")]
    Recursor(String),
}

/// Parses a recursor as Consul accepts it: an IP address, with an optional port (default 53).
pub fn parse_recursor(s: &str) -> Result<SocketAddr, ConfigError> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let ip = s.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| ConfigError::Recursor(s.to_owned()))
}

/// A checked [`DnsConfig`], with names parsed and TTLs in seconds.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub datacenter: String,
    /// The primary domain, then the alternate one; lower case, fully qualified.
    pub domains: Vec<Name>,
    pub node_ttl: u32,
    ttl_exact: BTreeMap<String, u32>,
    /// Prefix rules, longest prefix first.
    ttl_prefixes: Vec<(String, u32)>,
    pub only_passing: bool,
    pub udp_answer_limit: usize,
    pub a_record_limit: usize,
    pub enable_truncate: bool,
    pub node_meta_txt: bool,
    pub recursors: Vec<SocketAddr>,
    pub recursor_timeout: Duration,
    pub recursor_random: bool,
    pub soa: SoaConfig,
}

impl Settings {
    pub fn new(config: &DnsConfig) -> Result<Settings, ConfigError> {
        let mut domains = vec![domain(&config.domain)?];
        if let Some(alt) = config.alt_domain.as_deref().filter(|d| !d.is_empty()) {
            domains.push(domain(alt)?);
        }
        let mut ttl_exact = BTreeMap::new();
        let mut ttl_prefixes = Vec::new();
        for (key, ttl) in &config.service_ttl {
            let key = key.to_lowercase();
            let ttl = seconds(*ttl);
            match key.strip_suffix('*') {
                Some(prefix) => ttl_prefixes.push((prefix.to_owned(), ttl)),
                None => {
                    ttl_exact.insert(key, ttl);
                }
            }
        }
        ttl_prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(Settings {
            datacenter: config.datacenter.to_lowercase(),
            domains,
            node_ttl: seconds(config.node_ttl),
            ttl_exact,
            ttl_prefixes,
            only_passing: config.only_passing,
            udp_answer_limit: config.udp_answer_limit,
            a_record_limit: config.a_record_limit,
            enable_truncate: config.enable_truncate,
            node_meta_txt: config.node_meta_txt,
            recursors: config.recursors.clone(),
            recursor_timeout: config.recursor_timeout,
            recursor_random: config.recursor_random,
            soa: config.soa,
        })
    }

    /// The TTL of a service's records: an exact rule, else the longest matching prefix rule,
    /// else 0. `service` is in lower case.
    pub fn service_ttl(&self, service: &str) -> u32 {
        if let Some(ttl) = self.ttl_exact.get(service) {
            return *ttl;
        }
        self.ttl_prefixes
            .iter()
            .find(|(prefix, _)| service.starts_with(prefix.as_str()))
            .map_or(0, |(_, ttl)| *ttl)
    }

    /// The primary domain: used in PTR targets, which have no question domain to follow.
    pub fn primary_domain(&self) -> &Name {
        &self.domains[0]
    }
}

fn domain(s: &str) -> Result<Name, ConfigError> {
    let err = |reason: String| ConfigError::Domain {
        domain: s.to_owned(),
        reason,
    };
    let trimmed = s.trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(err("empty".into()));
    }
    let name = Name::from_ascii(format!("{trimmed}.")).map_err(|e| err(e.to_string()))?;
    Ok(name.to_lowercase())
}

fn seconds(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
