//! `tls ca create` and `tls cert create`: agent TLS material as Consul's commands make it
//! (command/tls/ca/create, command/tls/cert/create, tlsutil/generate.go), with `mesh` in place
//! of `consul` in names. Files only, in the current directory: an EC P-256 CA, and server,
//! client or CLI certificates it signs. Keys are written as Consul writes them, SEC 1
//! `EC PRIVATE KEY` PEM; either that or PKCS #8 is read back as the CA key.
//!
//! Names, SANs and certificate parameters are pure functions tested below; the commands only
//! add the clock, the random serials, the keys and the files.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use clap::Subcommand;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose, NameConstraints, SanType, SerialNumber,
    PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

use super::fail;

/// Consul's warning before a server certificate is made.
pub const SERVER_WARNING: &str = "==> WARNING: Server Certificates grants authority to become a
    server and access all state in the cluster including root keys
    and all ACL tokens. Do not distribute them to production hosts
    that are not server nodes. Store them as securely as CA keys.";

/// How many numbered file names `cert create` tries, as Consul does (0 to 10000).
const MAX_CERT_NUMBER: u32 = 10_000;

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Creates and manages the CA for agent TLS.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Creates and manages agent TLS certificates.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Creates a new CA: `<domain>-agent-ca.pem` and `<domain>-agent-ca-key.pem`.
    Create(CaCreateArgs),
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Creates a new certificate signed by the CA.
    Create(CertCreateArgs),
}

#[derive(Debug, clap::Args)]
pub struct CaCreateArgs {
    /// Number of days the CA is valid for.
    #[arg(long, default_value_t = 1825, allow_negative_numbers = true)]
    days: i64,
    /// The DNS domain of the cluster; names the files and, with -name-constraint, is permitted.
    #[arg(long, default_value = "mesh")]
    domain: String,
    /// Restricts the CA to localhost, -domain and -additional-name-constraint names.
    #[arg(long = "name-constraint")]
    name_constraint: bool,
    /// Another DNS name the CA may sign for (with -name-constraint); repeatable.
    #[arg(long = "additional-name-constraint", value_name = "NAME")]
    additional_name_constraints: Vec<String>,
    /// The CA's common name (default `Mesh Agent CA <serial>`).
    #[arg(long = "common-name", default_value = "")]
    common_name: String,
    /// The cluster's ID: gives the CA the URI `spiffe://<cluster-id>.<domain>`.
    #[arg(long = "cluster-id", default_value = "")]
    cluster_id: String,
}

#[derive(Debug, clap::Args)]
pub struct CertCreateArgs {
    /// The CA certificate (`#DOMAIN#` stands for -domain).
    #[arg(long, default_value = "#DOMAIN#-agent-ca.pem")]
    ca: String,
    /// The CA key (`#DOMAIN#` stands for -domain).
    #[arg(long, default_value = "#DOMAIN#-agent-ca-key.pem")]
    key: String,
    /// A server certificate.
    #[arg(long)]
    server: bool,
    /// A client certificate.
    #[arg(long)]
    client: bool,
    /// A CLI certificate.
    #[arg(long)]
    cli: bool,
    /// With -server, also the DNS name `<node>.server.<dc>.<domain>`.
    #[arg(long, default_value = "")]
    node: String,
    /// Number of days the certificate is valid for.
    #[arg(long, default_value_t = 365, allow_negative_numbers = true)]
    days: i64,
    /// The datacenter.
    #[arg(long, default_value = "dc1")]
    dc: String,
    /// The DNS domain.
    #[arg(long, default_value = "mesh")]
    domain: String,
    /// Another DNS name in the certificate; repeatable.
    #[arg(long = "additional-dnsname", value_name = "NAME")]
    additional_dnsnames: Vec<String>,
    /// Another IP address in the certificate; repeatable.
    #[arg(long = "additional-ipaddress", value_name = "IP")]
    additional_ipaddresses: Vec<String>,
}

pub fn run(command: TlsCommand) -> anyhow::Result<()> {
    match command {
        TlsCommand::Ca {
            command: CaCommand::Create(args),
        } => ca_create(&args),
        TlsCommand::Cert {
            command: CertCommand::Create(args),
        } => cert_create(&args),
    }
}

// ---- Pure parts --------------------------------------------------------------------------

/// The CA's certificate and key file names for `domain`.
pub fn ca_file_names(domain: &str) -> (String, String) {
    (
        format!("{domain}-agent-ca.pem"),
        format!("{domain}-agent-ca-key.pem"),
    )
}

/// Consul's refusal to overwrite: `<file> already exists.` for the first file that does.
pub fn refuse_existing<'a>(
    files: impl IntoIterator<Item = &'a str>,
    exists: impl Fn(&str) -> bool,
) -> Result<(), String> {
    match files.into_iter().find(|file| exists(file)) {
        Some(file) => Err(format!("{file} already exists.")),
        None => Ok(()),
    }
}

/// The CA's permitted DNS names: none unless asked, else the additional ones, the domain and
/// `localhost` (Consul's order).
pub fn name_constraints(enabled: bool, domain: &str, additional: &[String]) -> Vec<String> {
    if !enabled {
        return Vec::new();
    }
    let mut names = additional.to_vec();
    names.extend([domain.to_owned(), "localhost".to_owned()]);
    names
}

/// The CA's common name: the one given, else Consul's `... Agent CA <serial>`.
pub fn ca_common_name(given: &str, serial: u128) -> String {
    if given.is_empty() {
        format!("Mesh Agent CA {serial}")
    } else {
        given.to_owned()
    }
}

/// A CA's parameters (Consul's `tlsutil.GenerateCA`): basic constraints CA, key usage cert
/// sign, CRL sign and digital signature, name constraints if any, the SPIFFE signing URI if a
/// cluster ID is given.
pub fn ca_params(
    common_name: &str,
    serial: u128,
    now: OffsetDateTime,
    days: i64,
    constraints: &[String],
    cluster_uri: Option<&str>,
) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mesh");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(&serial.to_be_bytes()));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now;
    params.not_after = now + Duration::days(days);
    params.use_authority_key_identifier_extension = true;
    if !constraints.is_empty() {
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: constraints
                .iter()
                .map(|name| GeneralSubtree::DnsName(name.clone()))
                .collect(),
            excluded_subtrees: Vec::new(),
        });
    }
    if let Some(uri) = cluster_uri {
        params.subject_alt_names = vec![SanType::URI(uri.to_owned().try_into()?)];
    }
    Ok(params)
}

/// Which certificate `cert create` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertKind {
    Server,
    Client,
    Cli,
}

impl CertKind {
    /// Exactly one of `-server`, `-client`, `-cli`, or Consul's complaint.
    pub fn from_flags(server: bool, client: bool, cli: bool) -> Result<Self, String> {
        match (server, client, cli) {
            (true, false, false) => Ok(Self::Server),
            (false, true, false) => Ok(Self::Client),
            (false, false, true) => Ok(Self::Cli),
            _ => Err("Please provide either -server, -client, or -cli".to_owned()),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
            Self::Cli => "cli",
        }
    }
}

/// What a certificate names and may be used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpec {
    /// The common name, also the name the certificate is verified for.
    pub name: String,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub ext_key_usage: Vec<ExtendedKeyUsagePurpose>,
    /// The file name prefix: `<dc>-<kind>-<domain>`.
    pub prefix: String,
}

/// Consul's names for a certificate of `kind`: additional DNS names first, then (server) the
/// node's name, the kind's name and `localhost`; additional IPs, then `127.0.0.1` for servers
/// and clients. A CLI certificate has only its name and `localhost` as DNS names (Consul
/// drops the additional ones) and no extended key usage.
pub fn leaf_spec(
    kind: CertKind,
    dc: &str,
    domain: &str,
    node: &str,
    additional_dns: &[String],
    additional_ips: &[String],
) -> Result<LeafSpec, String> {
    let mut dns_names: Vec<String> = additional_dns
        .iter()
        .filter(|d| !d.is_empty())
        .map(|d| d.trim().to_owned())
        .collect();
    let mut ip_addresses = additional_ips
        .iter()
        .filter(|i| !i.is_empty())
        .map(|i| {
            i.trim()
                .parse::<IpAddr>()
                .map_err(|_| format!("Invalid IP address: {i}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let localhost_ip = IpAddr::from([127, 0, 0, 1]);
    let name = match kind {
        CertKind::Server => {
            let name = format!("server.{dc}.{domain}");
            if !node.is_empty() {
                dns_names.push(format!("{node}.server.{dc}.{domain}"));
            }
            dns_names.extend([name.clone(), "localhost".to_owned()]);
            ip_addresses.push(localhost_ip);
            name
        }
        CertKind::Client => {
            let name = format!("client.{dc}.{domain}");
            dns_names.extend([name.clone(), "localhost".to_owned()]);
            ip_addresses.push(localhost_ip);
            name
        }
        CertKind::Cli => {
            let name = format!("cli.{dc}.{domain}");
            dns_names = vec![name.clone(), "localhost".to_owned()];
            name
        }
    };
    let ext_key_usage = match kind {
        CertKind::Server => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        CertKind::Client => vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ],
        CertKind::Cli => Vec::new(),
    };
    Ok(LeafSpec {
        name,
        dns_names,
        ip_addresses,
        ext_key_usage,
        prefix: format!("{dc}-{}-{domain}", kind.label()),
    })
}

/// The first `<prefix>-<n>.pem` / `<prefix>-<n>-key.pem` pair of which neither file exists.
pub fn free_cert_file_names(
    prefix: &str,
    exists: impl Fn(&str) -> bool,
) -> Result<(String, String), String> {
    (0..=MAX_CERT_NUMBER)
        .map(|n| (format!("{prefix}-{n}.pem"), format!("{prefix}-{n}-key.pem")))
        .find(|(cert, key)| !exists(cert) && !exists(key))
        .ok_or_else(|| "Could not find a filename that doesn't already exist".to_owned())
}

/// `-ca` and `-key` with `#DOMAIN#` replaced (once, as Consul does).
pub fn with_domain(path: &str, domain: &str) -> String {
    path.replacen("#DOMAIN#", domain, 1)
}

/// A certificate's parameters (Consul's `tlsutil.GenerateCert`): the name as common name,
/// basic constraints not a CA, key usage digital signature and key encipherment.
pub fn leaf_params(
    spec: &LeafSpec,
    serial: u128,
    now: OffsetDateTime,
    days: i64,
) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, spec.name.as_str());
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(&serial.to_be_bytes()));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = spec.ext_key_usage.clone();
    params.not_before = now;
    params.not_after = now + Duration::days(days);
    params.use_authority_key_identifier_extension = true;
    let mut sans = Vec::with_capacity(spec.dns_names.len() + spec.ip_addresses.len());
    for name in &spec.dns_names {
        sans.push(SanType::DnsName(name.clone().try_into()?));
    }
    sans.extend(spec.ip_addresses.iter().copied().map(SanType::IpAddress));
    params.subject_alt_names = sans;
    Ok(params)
}

/// A random positive 127-bit serial, as Consul's 128-bit `rand.Int` (kept positive in DER).
fn random_serial() -> u128 {
    rand::random::<u128>() >> 1
}

// ---- Keys: SEC 1 as Consul writes them -----------------------------------------------------

/// `key` as Consul writes it: an `EC PRIVATE KEY` PEM block.
pub fn sec1_pem(key: &KeyPair) -> anyhow::Result<String> {
    let der = ca::keys::sec1_der(key)
        .ok_or_else(|| anyhow::anyhow!("unexpected PKCS #8 layout of a generated key"))?;
    Ok(pem_block("EC PRIVATE KEY", &der))
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The first PEM block of `text`: its label and DER.
fn first_pem_block(text: &str) -> Option<(String, Vec<u8>)> {
    use base64::Engine;
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let (label, rest) = rest.split_once("-----")?;
    let end = rest.find(&format!("-----END {label}-----"))?;
    let b64: String = rest[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some((label.to_owned(), der))
}

/// Consul's `ParseSigner`: the key in the first PEM block, SEC 1 or (here also) PKCS #8.
pub fn parse_signer(text: &str) -> Result<KeyPair, String> {
    let (label, der) =
        first_pem_block(text).ok_or_else(|| "no PEM-encoded data found".to_owned())?;
    let pkcs8 = match label.as_str() {
        "EC PRIVATE KEY" => ca::keys::pkcs8_from_sec1(&der),
        "PRIVATE KEY" => der,
        other => return Err(format!("unknown PEM block type for signing key: {other}")),
    };
    KeyPair::try_from(pkcs8.as_slice())
        .ok()
        .filter(|key| key.algorithm() == &PKCS_ECDSA_P256_SHA256)
        .ok_or_else(|| "error parsing signing key: not an EC P-256 key".to_owned())
}

// ---- Commands --------------------------------------------------------------------------------

fn exists(path: &str) -> bool {
    Path::new(path).symlink_metadata().is_ok()
}

/// An I/O error as Go's `os` package words it (`open <file>: no such file or directory`).
fn go_io_error(op: &str, path: &str, err: &std::io::Error) -> String {
    let why = match err.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => err.to_string(),
    };
    format!("{op} {path}: {why}")
}

/// Consul's `file.WriteAtomicWithPerms`: a temporary file with `mode`, renamed into place.
fn write_atomic(path: &str, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = format!("{path}.tmp");
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|err| {
        let _ = std::fs::remove_file(&tmp);
        fail(go_io_error("write", path, &err))
    })
}

fn ca_create(args: &CaCreateArgs) -> anyhow::Result<()> {
    let (cert_file, key_file) = ca_file_names(&args.domain);
    refuse_existing([cert_file.as_str(), key_file.as_str()], exists).map_err(fail)?;
    let constraints = name_constraints(
        args.name_constraint,
        &args.domain,
        &args.additional_name_constraints,
    );
    let serial = random_serial();
    let common_name = ca_common_name(&args.common_name, serial);
    let cluster_uri = (!args.cluster_id.is_empty())
        .then(|| format!("spiffe://{}.{}", args.cluster_id, args.domain));
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|err| fail(format!("error generating private key: {err}")))?;
    let params = ca_params(
        &common_name,
        serial,
        OffsetDateTime::now_utc(),
        args.days,
        &constraints,
        cluster_uri.as_deref(),
    )
    .map_err(|err| fail(format!("error generating CA certificate: {err}")))?;
    let cert = params
        .self_signed(&key)
        .map_err(|err| fail(format!("error generating CA certificate: {err}")))?;
    let key_pem = sec1_pem(&key)?;
    write_atomic(&cert_file, cert.pem().as_bytes(), 0o666)?;
    println!("==> Saved {cert_file}");
    write_atomic(&key_file, key_pem.as_bytes(), 0o600)?;
    println!("==> Saved {key_file}");
    Ok(())
}

fn cert_create(args: &CertCreateArgs) -> anyhow::Result<()> {
    if args.ca.is_empty() {
        return Err(fail("Please provide the ca"));
    }
    if args.key.is_empty() {
        return Err(fail("Please provide the key"));
    }
    let kind = CertKind::from_flags(args.server, args.client, args.cli).map_err(fail)?;
    if !args.node.is_empty() && kind != CertKind::Server {
        return Err(fail("-node requires -server"));
    }
    let spec = leaf_spec(
        kind,
        &args.dc,
        &args.domain,
        &args.node,
        &args.additional_dnsnames,
        &args.additional_ipaddresses,
    )
    .map_err(fail)?;
    let (cert_file, key_file) = free_cert_file_names(&spec.prefix, exists).map_err(fail)?;
    let ca_file = with_domain(&args.ca, &args.domain);
    let ca_key_file = with_domain(&args.key, &args.domain);
    let ca_pem = std::fs::read_to_string(&ca_file).map_err(|err| {
        fail(format!(
            "Error reading CA: {}",
            go_io_error("open", &ca_file, &err)
        ))
    })?;
    let ca_key_pem = std::fs::read_to_string(&ca_key_file).map_err(|err| {
        fail(format!(
            "Error reading CA key: {}",
            go_io_error("open", &ca_key_file, &err)
        ))
    })?;
    if kind == CertKind::Server {
        println!("{SERVER_WARNING}");
    }
    println!("==> Using {ca_file} and {ca_key_file}");

    let ca_key = parse_signer(&ca_key_pem).map_err(fail)?;
    let issuer = CertificateParams::from_ca_cert_pem(&ca_pem)
        .and_then(|params| params.self_signed(&ca_key))
        .map_err(|err| fail(format!("error reading the CA certificate: {err}")))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|err| fail(format!("error generating private key: {err}")))?;
    let cert = leaf_params(&spec, random_serial(), OffsetDateTime::now_utc(), args.days)
        .map_err(|err| fail(format!("{err:#}")))?
        .signed_by(&key, &issuer, &ca_key)
        .map_err(|err| fail(err.to_string()))?;
    let key_pem = sec1_pem(&key)?;
    write_atomic(&cert_file, cert.pem().as_bytes(), 0o666)?;
    println!("==> Saved {cert_file}");
    write_atomic(&key_file, key_pem.as_bytes(), 0o600)?;
    println!("==> Saved {key_file}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn ca_files_are_named_after_the_domain() {
        assert_eq!(
            ca_file_names("mesh"),
            (
                "mesh-agent-ca.pem".to_owned(),
                "mesh-agent-ca-key.pem".to_owned()
            )
        );
        assert_eq!(ca_file_names("corp").1, "corp-agent-ca-key.pem");
    }

    #[test]
    fn existing_files_are_refused_with_consuls_text() {
        let present: HashSet<&str> = ["mesh-agent-ca-key.pem"].into();
        let (cert, key) = ca_file_names("mesh");
        assert_eq!(
            refuse_existing([cert.as_str(), key.as_str()], |f| present.contains(f)),
            Err("mesh-agent-ca-key.pem already exists.".to_owned())
        );
        assert_eq!(
            refuse_existing([cert.as_str(), key.as_str()], |_| false),
            Ok(())
        );
        assert_eq!(
            refuse_existing([cert.as_str(), key.as_str()], |_| true),
            Err("mesh-agent-ca.pem already exists.".to_owned())
        );
    }

    #[test]
    fn name_constraints_only_when_asked() {
        assert!(name_constraints(false, "mesh", &strings(&["ui.example"])).is_empty());
        assert_eq!(
            name_constraints(true, "mesh", &strings(&["ui.example"])),
            strings(&["ui.example", "mesh", "localhost"])
        );
    }

    #[test]
    fn ca_common_name_defaults_to_the_serial() {
        assert_eq!(ca_common_name("", 42), "Mesh Agent CA 42");
        assert_eq!(ca_common_name("Ops CA", 42), "Ops CA");
    }

    #[test]
    fn exactly_one_kind_is_required() {
        assert_eq!(
            CertKind::from_flags(true, false, false),
            Ok(CertKind::Server)
        );
        assert_eq!(
            CertKind::from_flags(false, true, false),
            Ok(CertKind::Client)
        );
        assert_eq!(CertKind::from_flags(false, false, true), Ok(CertKind::Cli));
        for (s, c, l) in [
            (false, false, false),
            (true, true, false),
            (true, false, true),
            (false, true, true),
            (true, true, true),
        ] {
            assert_eq!(
                CertKind::from_flags(s, c, l),
                Err("Please provide either -server, -client, or -cli".to_owned())
            );
        }
    }

    #[test]
    fn server_names_follow_consul() {
        let spec = leaf_spec(CertKind::Server, "dc1", "mesh", "", &[], &[]).unwrap();
        assert_eq!(spec.name, "server.dc1.mesh");
        assert_eq!(spec.dns_names, strings(&["server.dc1.mesh", "localhost"]));
        assert_eq!(spec.ip_addresses, vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(spec.prefix, "dc1-server-mesh");
        assert_eq!(
            spec.ext_key_usage,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth
            ]
        );

        let spec = leaf_spec(
            CertKind::Server,
            "dc2",
            "corp",
            "mysrv",
            &strings(&[" extra.example ", ""]),
            &strings(&["10.0.0.1", ""]),
        )
        .unwrap();
        assert_eq!(
            spec.dns_names,
            strings(&[
                "extra.example",
                "mysrv.server.dc2.corp",
                "server.dc2.corp",
                "localhost"
            ])
        );
        assert_eq!(
            spec.ip_addresses,
            vec![IpAddr::from([10, 0, 0, 1]), IpAddr::from([127, 0, 0, 1])]
        );
        assert_eq!(spec.prefix, "dc2-server-corp");
    }

    #[test]
    fn client_and_cli_names_follow_consul() {
        let client = leaf_spec(CertKind::Client, "dc1", "mesh", "", &[], &[]).unwrap();
        assert_eq!(client.name, "client.dc1.mesh");
        assert_eq!(client.dns_names, strings(&["client.dc1.mesh", "localhost"]));
        assert_eq!(client.ip_addresses, vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(client.prefix, "dc1-client-mesh");
        assert_eq!(
            client.ext_key_usage,
            vec![
                ExtendedKeyUsagePurpose::ClientAuth,
                ExtendedKeyUsagePurpose::ServerAuth
            ]
        );

        // Consul replaces the additional DNS names of a CLI certificate, keeps its IPs.
        let cli = leaf_spec(
            CertKind::Cli,
            "dc1",
            "mesh",
            "",
            &strings(&["extra.example"]),
            &strings(&["10.0.0.2"]),
        )
        .unwrap();
        assert_eq!(cli.name, "cli.dc1.mesh");
        assert_eq!(cli.dns_names, strings(&["cli.dc1.mesh", "localhost"]));
        assert_eq!(cli.ip_addresses, vec![IpAddr::from([10, 0, 0, 2])]);
        assert!(cli.ext_key_usage.is_empty());
        assert_eq!(cli.prefix, "dc1-cli-mesh");
    }

    #[test]
    fn bad_additional_ips_are_refused() {
        assert_eq!(
            leaf_spec(
                CertKind::Client,
                "dc1",
                "mesh",
                "",
                &[],
                &strings(&["nope"])
            ),
            Err("Invalid IP address: nope".to_owned())
        );
    }

    #[test]
    fn cert_files_take_the_first_free_number() {
        assert_eq!(
            free_cert_file_names("dc1-server-mesh", |_| false),
            Ok((
                "dc1-server-mesh-0.pem".to_owned(),
                "dc1-server-mesh-0-key.pem".to_owned()
            ))
        );
        // A number is taken when either of its files exists.
        let present: HashSet<&str> = ["dc1-server-mesh-0.pem", "dc1-server-mesh-1-key.pem"].into();
        assert_eq!(
            free_cert_file_names("dc1-server-mesh", |f| present.contains(f)),
            Ok((
                "dc1-server-mesh-2.pem".to_owned(),
                "dc1-server-mesh-2-key.pem".to_owned()
            ))
        );
        assert_eq!(
            free_cert_file_names("p", |_| true),
            Err("Could not find a filename that doesn't already exist".to_owned())
        );
    }

    #[test]
    fn domain_placeholder_is_replaced() {
        assert_eq!(
            with_domain("#DOMAIN#-agent-ca.pem", "corp"),
            "corp-agent-ca.pem"
        );
        assert_eq!(with_domain("/etc/ca.pem", "corp"), "/etc/ca.pem");
    }

    #[test]
    fn sec1_keys_round_trip_and_sign() {
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let pem = sec1_pem(&ca_key).unwrap();
        assert!(pem.starts_with("-----BEGIN EC PRIVATE KEY-----\n"), "{pem}");
        let parsed = parse_signer(&pem).unwrap();
        assert_eq!(parsed.public_key_raw(), ca_key.public_key_raw());
        // PKCS #8 is read too.
        let parsed = parse_signer(&ca_key.serialize_pem()).unwrap();
        assert_eq!(parsed.public_key_raw(), ca_key.public_key_raw());
        assert_eq!(
            parse_signer("nothing").err(),
            Some("no PEM-encoded data found".to_owned())
        );

        let now = OffsetDateTime::now_utc();
        let ca = ca_params(
            "Test CA",
            7,
            now,
            10,
            &strings(&["mesh", "localhost"]),
            None,
        )
        .unwrap()
        .self_signed(&ca_key)
        .unwrap();
        let issuer = CertificateParams::from_ca_cert_pem(&ca.pem())
            .unwrap()
            .self_signed(&parsed)
            .unwrap();
        let spec = leaf_spec(CertKind::Server, "dc1", "mesh", "", &[], &[]).unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = leaf_params(&spec, 8, now, 1)
            .unwrap()
            .signed_by(&key, &issuer, &parsed)
            .unwrap();
        assert!(leaf.pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
