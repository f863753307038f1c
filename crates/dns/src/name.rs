//! Question names: which zone a name falls in, and what a mesh name asks for.
//!
//! Pure: no IO. Mesh names are parsed right to left, as Consul does: the rightmost keyword label
//! (`service`, `connect`, `node`, `addr`, ...) splits the name into what is looked up (left)
//! and an optional datacenter (right).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::{Name, RecordType};

/// Where a question's name falls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Zone {
    /// Under one of the mesh domains: `domain` is the index of the one it is under.
    Mesh { domain: usize, name: MeshName },
    /// Under `in-addr.arpa.` or `ip6.arpa.`: the host address it names, if it names one.
    Reverse(Option<IpAddr>),
    /// Anywhere else: for the recursors.
    Outside,
}

/// What a name under a mesh domain asks for. Names are in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MeshName {
    /// The domain itself.
    Apex,
    /// `[tag.]<service>.service[.<dc>]`, `_<service>._<tag>.service[.<dc>]`, and for SRV
    /// questions `_<service>._<tag>[.<dc>]` (`_tcp` means no tag).
    Service {
        service: String,
        tag: Option<String>,
        dc: Option<String>,
    },
    /// `<service>.connect[.<dc>]`: the instances that accept mesh traffic for the service.
    Connect { service: String, dc: Option<String> },
    /// `<node>.node[.<dc>]` (node names may contain dots).
    Node { node: String, dc: Option<String> },
    /// `<hex>.addr[.<dc>]`: an address spelled in hex (8 digits for IPv4, 32 for IPv6).
    Addr { ip: IpAddr },
    /// A form Consul has that mesh does not answer: prepared queries (`query`), ingress
    /// gateways (`ingress`), virtual IPs (`virtual`).
    Unsupported(&'static str),
    /// Nothing a mesh name can mean.
    Invalid,
}

/// Finds the zone of `name` (lower case, fully qualified) among `domains` (the same).
pub(crate) fn classify(name: &Name, qtype: RecordType, domains: &[Name]) -> Zone {
    let best = domains
        .iter()
        .enumerate()
        .filter(|(_, d)| d.zone_of(name))
        .max_by_key(|(_, d)| d.num_labels());
    if let Some((index, domain)) = best {
        let relative = usize::from(name.num_labels() - domain.num_labels());
        let labels: Vec<String> = name
            .iter()
            .take(relative)
            .map(|l| String::from_utf8_lossy(l).to_lowercase())
            .collect();
        return Zone::Mesh {
            domain: index,
            name: parse(&labels, qtype),
        };
    }
    match reverse(name) {
        Some(addr) => Zone::Reverse(addr),
        None => Zone::Outside,
    }
}

/// Parses the labels of a mesh name, the domain removed.
pub(crate) fn parse(labels: &[String], qtype: RecordType) -> MeshName {
    if labels.is_empty() {
        return MeshName::Apex;
    }
    for i in (0..labels.len()).rev() {
        let label = labels[i].as_str();
        let (kind, parts, suffix) = match label {
            "service" | "connect" | "node" | "addr" | "query" | "ingress" | "virtual" => {
                (label, &labels[..i], &labels[i + 1..])
            }
            // For SRV questions the `service` label is optional (`_web._tcp.mesh`).
            _ if qtype == RecordType::SRV && label.starts_with('_') => {
                ("service", &labels[..=i], &labels[i + 1..])
            }
            _ => continue,
        };
        let Some(dc) = datacenter(suffix) else {
            return MeshName::Invalid;
        };
        return match kind {
            "service" => service(parts, dc),
            "connect" => match parts {
                [service] => MeshName::Connect {
                    service: service.clone(),
                    dc,
                },
                _ => MeshName::Invalid,
            },
            "node" if !parts.is_empty() => MeshName::Node {
                node: parts.join("."),
                dc,
            },
            "addr" => match parts {
                [hex] => addr(hex).map_or(MeshName::Invalid, |ip| MeshName::Addr { ip }),
                _ => MeshName::Invalid,
            },
            "query" => MeshName::Unsupported("query"),
            "ingress" => MeshName::Unsupported("ingress"),
            "virtual" => MeshName::Unsupported("virtual"),
            _ => MeshName::Invalid,
        };
    }
    MeshName::Invalid
}

/// The datacenter named by the labels right of the keyword: none, `<dc>` or `<dc>.dc`.
/// `None` when the labels are not one of these forms.
fn datacenter(suffix: &[String]) -> Option<Option<String>> {
    match suffix {
        [] => Some(None),
        [dc] => Some(Some(dc.clone())),
        [dc, keyword] if keyword == "dc" => Some(Some(dc.clone())),
        _ => None,
    }
}

fn service(parts: &[String], dc: Option<String>) -> MeshName {
    match parts {
        [] => MeshName::Invalid,
        // RFC 2782: `_<service>._<tag>`, where `_tcp` means any tag.
        [service, tag] if service.starts_with('_') && tag.starts_with('_') => {
            let tag = &tag[1..];
            MeshName::Service {
                service: service[1..].to_owned(),
                tag: (tag != "tcp" && !tag.is_empty()).then(|| tag.to_owned()),
                dc,
            }
        }
        [tag @ .., service] => MeshName::Service {
            service: service.clone(),
            tag: (!tag.is_empty()).then(|| tag.join(".")),
            dc,
        },
    }
}

/// Decodes the `<hex>` of `<hex>.addr`: 8 digits for IPv4, 32 for IPv6.
fn addr(hex: &str) -> Option<IpAddr> {
    let bytes = decode_hex(hex)?;
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        16 => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// Spells an address as the `<hex>` of `<hex>.addr`.
pub(crate) fn encode_addr(ip: IpAddr) -> String {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// For a name under `in-addr.arpa.` or `ip6.arpa.`: `Some(Some(ip))` when it names one host
/// address, `Some(None)` when it names anything else there. `None` outside those zones.
fn reverse(name: &Name) -> Option<Option<IpAddr>> {
    let labels: Vec<String> = name
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_lowercase())
        .collect();
    let (zone, rest) = match labels.as_slice() {
        [rest @ .., zone, arpa] if arpa == "arpa" => (zone.as_str(), rest),
        _ => return None,
    };
    match zone {
        "in-addr" => Some(reverse_v4(rest)),
        "ip6" => Some(reverse_v6(rest)),
        _ => None,
    }
}

fn reverse_v4(labels: &[String]) -> Option<IpAddr> {
    if labels.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (octet, label) in octets.iter_mut().zip(labels.iter().rev()) {
        if label.is_empty() || !label.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = label.parse().ok()?;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

fn reverse_v6(labels: &[String]) -> Option<IpAddr> {
    if labels.len() != 32 {
        return None;
    }
    let mut value: u128 = 0;
    for label in labels.iter().rev() {
        if label.len() != 1 {
            return None;
        }
        let nibble = u8::from_str_radix(label, 16).ok()?;
        value = (value << 4) | u128::from(nibble);
    }
    Some(IpAddr::V6(Ipv6Addr::from(value)))
}

#[cfg(test)]
mod tests;
