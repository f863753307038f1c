//! The records both systems serve, in the forms each is given them: catalog registrations for
//! mesh, a zone file for Knot, and the dnsperf query files. Pure: no IO, the shuffle is seeded.
//!
//! Service `s` (0-based) is `svc-<s>` on port `20000 + s`, with [`INSTANCES`] instances, each on
//! its own node `node-<s>-<i>` with address `10.a.b.c`, where `a.b.c` spells `3s + i + 1` in
//! base 256. mesh answers `svc-<s>.service.mesh` with three A records and
//! `_svc-<s>._tcp.service.mesh` with three SRV records targeting `node-<s>-<i>.node.dc1.mesh`,
//! their A records in the additional section; the zone holds exactly those records.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::SeedableRng as _;
use serde_json::json;

/// Instances per service, each on its own node.
pub const INSTANCES: usize = 3;
/// The most services: node addresses stay inside 10.0.0.0/8 and ports below 65536.
pub const MAX_SERVICES: usize = 40_000;
/// mesh's default domain and datacenter.
pub const DOMAIN: &str = "mesh";
pub const DATACENTER: &str = "dc1";
/// The question types measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum QType {
    A,
    #[serde(rename = "SRV")]
    Srv,
}

impl QType {
    pub const ALL: [QType; 2] = [QType::A, QType::Srv];

    pub fn as_str(self) -> &'static str {
        match self {
            QType::A => "A",
            QType::Srv => "SRV",
        }
    }

    /// The question's name for service `s` (without the trailing dot).
    pub fn qname(self, s: usize) -> String {
        match self {
            QType::A => format!("svc-{s}.service.{DOMAIN}"),
            QType::Srv => format!("_svc-{s}._tcp.service.{DOMAIN}"),
        }
    }
}

impl std::fmt::Display for QType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn service_name(s: usize) -> String {
    format!("svc-{s}")
}

pub fn service_port(s: usize) -> u16 {
    u16::try_from(20_000 + s).expect("services are fewer than MAX_SERVICES")
}

pub fn node_name(s: usize, i: usize) -> String {
    format!("node-{s}-{i}")
}

/// `10.a.b.c` with `a.b.c` = `3s + i + 1` in base 256: distinct, never `10.0.0.0`.
pub fn node_address(s: usize, i: usize) -> Ipv4Addr {
    let k = u32::try_from(s * INSTANCES + i + 1).expect("services are fewer than MAX_SERVICES");
    let [_, a, b, c] = k.to_be_bytes();
    Ipv4Addr::new(10, a, b, c)
}

/// The body of `PUT /v1/catalog/register` for instance `i` of service `s`: the node, the
/// service, and a passing service check.
pub fn registration(s: usize, i: usize) -> serde_json::Value {
    let service = service_name(s);
    json!({
        "Node": node_name(s, i),
        "Address": node_address(s, i).to_string(),
        "Service": { "Service": service, "Port": service_port(s) },
        "Check": {
            "CheckID": format!("service:{service}"),
            "Name": format!("{service} alive"),
            "Status": "passing",
            "ServiceID": service,
        },
    })
}

/// A zone file for `mesh.` serving the same names as mesh does for `services` services, TTL 0
/// (mesh's default service and node TTL); `ns` is the address of the name server record.
pub fn zone_file(services: usize, ns: Ipv4Addr) -> String {
    let mut z = String::with_capacity(services * INSTANCES * 150);
    let _ = writeln!(z, "$ORIGIN {DOMAIN}.\n$TTL 0");
    let _ = writeln!(
        z,
        "@ SOA ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 0\n@ NS ns.{DOMAIN}.\nns A {ns}"
    );
    for s in 0..services {
        for i in 0..INSTANCES {
            let _ = writeln!(z, "svc-{s}.service A {}", node_address(s, i));
        }
        for i in 0..INSTANCES {
            let _ = writeln!(
                z,
                "_svc-{s}._tcp.service SRV 1 1 {} {}.node.{DATACENTER}.{DOMAIN}.",
                service_port(s),
                node_name(s, i)
            );
        }
        for i in 0..INSTANCES {
            let _ = writeln!(
                z,
                "{}.node.{DATACENTER} A {}",
                node_name(s, i),
                node_address(s, i)
            );
        }
    }
    z
}

/// A dnsperf data file: one `<name> <type>` line per service, in a random order fixed by
/// `seed`.
pub fn query_file(services: usize, qtype: QType, seed: u64) -> String {
    let mut order: Vec<usize> = (0..services).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut text = String::with_capacity(services * 40);
    for s in order {
        let _ = writeln!(text, "{} {}", qtype.qname(s), qtype.as_str());
    }
    text
}

/// A Knot configuration: one `knotd` listening on `listen`@`port`, every file under `dir`, the
/// zone read from `zone` and never written back.
pub fn knot_conf(dir: &str, listen: Ipv4Addr, port: u16, zone: &str) -> String {
    format!(
        "server:\n    rundir: \"{dir}\"\n    listen: {listen}@{port}\n\
         database:\n    storage: \"{dir}/db\"\n\
         log:\n  - target: stderr\n    any: info\n\
         template:\n  - id: default\n    storage: \"{dir}\"\n    zonefile-sync: -1\n    \
         zonefile-load: whole\n    journal-content: none\n\
         zone:\n  - domain: {DOMAIN}.\n    file: \"{zone}\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_distinct_and_spell_the_index() {
        assert_eq!(node_address(0, 0), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(node_address(0, 2), Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(node_address(85, 0), Ipv4Addr::new(10, 0, 1, 0));
        let mut all: Vec<Ipv4Addr> = (0..1000)
            .flat_map(|s| (0..INSTANCES).map(move |i| node_address(s, i)))
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 3000);
        let last = node_address(MAX_SERVICES - 1, INSTANCES - 1);
        assert_eq!(last.octets()[0], 10);
        assert_eq!(service_port(MAX_SERVICES - 1), 59_999);
    }

    #[test]
    fn registration_has_node_service_and_passing_check() {
        let r = registration(7, 1);
        assert_eq!(r["Node"], "node-7-1");
        assert_eq!(r["Address"], "10.0.0.23");
        assert_eq!(r["Service"]["Service"], "svc-7");
        assert_eq!(r["Service"]["Port"], 20_007);
        assert_eq!(r["Check"]["Status"], "passing");
        assert_eq!(r["Check"]["ServiceID"], "svc-7");
    }

    #[test]
    fn zone_has_three_a_three_srv_and_target_addresses_per_service() {
        let z = zone_file(2, Ipv4Addr::new(127, 0, 3, 3));
        assert!(z.starts_with("$ORIGIN mesh.\n$TTL 0\n@ SOA ns.mesh. hostmaster.mesh. "));
        assert!(z.contains("@ NS ns.mesh.\nns A 127.0.3.3\n"));
        assert_eq!(z.matches(" SRV ").count(), 6);
        assert_eq!(z.matches("svc-1.service A ").count(), 3);
        assert!(z.contains("svc-1.service A 10.0.0.6\n"));
        assert!(z.contains("_svc-1._tcp.service SRV 1 1 20001 node-1-2.node.dc1.mesh.\n"));
        assert!(z.contains("node-1-2.node.dc1 A 10.0.0.6\n"));
        // 3 header lines + SOA, NS, ns A + 9 per service.
        assert_eq!(z.lines().count(), 2 + 3 + 2 * 9);
    }

    #[test]
    fn query_files_ask_every_service_once_in_a_seeded_order() {
        let a = query_file(100, QType::A, 1);
        let lines: Vec<&str> = a.lines().collect();
        assert_eq!(lines.len(), 100);
        assert!(lines.iter().all(|l| l.ends_with(".service.mesh A")));
        let mut sorted = lines.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 100);
        assert_ne!(
            lines[..10],
            (0..10)
                .map(|s| format!("svc-{s}.service.mesh A"))
                .collect::<Vec<_>>()[..]
        );
        assert_eq!(a, query_file(100, QType::A, 1));
        assert_ne!(a, query_file(100, QType::A, 2));
        let srv = query_file(3, QType::Srv, 1);
        assert!(srv
            .lines()
            .all(|l| l.starts_with("_svc-") && l.ends_with("._tcp.service.mesh SRV")));
    }

    #[test]
    fn knot_conf_listens_where_asked_and_never_writes_the_zone() {
        let c = knot_conf(
            "/tmp/x",
            Ipv4Addr::new(127, 0, 3, 3),
            8600,
            "/tmp/x/mesh.zone",
        );
        assert!(c.contains("    listen: 127.0.3.3@8600\n"));
        assert!(c.contains("zonefile-sync: -1"));
        assert!(c.contains("  - domain: mesh.\n    file: \"/tmp/x/mesh.zone\"\n"));
        assert!(c.contains("rundir: \"/tmp/x\""));
    }
}
