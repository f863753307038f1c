//! The peer: two HAProxy processes (Debian's `haproxy`) in `mode tcp`. A listens in plain TCP
//! and connects with TLS 1.3 and a client certificate to B, which terminates TLS with
//! `verify required` and forwards in plain TCP to the backend; the same shape as a sidecar
//! pair.
//!
//! Tuned to match what the sidecars do: `nbthread` as many as the sidecar's runtime has worker
//! threads (one per core), no TLS session reuse on either side (the sidecars disable
//! resumption), `maxconn` and `ulimit-n` for the connection counts measured.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

use super::pair::{Pair, System, BACKEND, HAPROXY_CLIENT_SIDE, HAPROXY_SERVER_SIDE};
use super::pki::{self, Pki};
use crate::child::Proc;

/// The process-wide settings both proxies get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// `nbthread`.
    pub threads: usize,
    /// `maxconn`, global and per frontend.
    pub maxconn: usize,
    /// `ulimit-n`.
    pub nofile: u64,
}

/// The files a pair's configurations name, relative to nothing: absolute paths.
#[derive(Debug, Clone, Copy)]
pub struct Files<'a> {
    pub ca: &'a Path,
    /// Certificate then key.
    pub crt: &'a Path,
}

fn global(t: &Tuning) -> String {
    // No `daemon`: the process stays in the foreground as the bench's child. The session cache
    // is off, as the sidecars keep none.
    format!(
        "global\n    nbthread {}\n    maxconn {}\n    ulimit-n {}\n    tune.ssl.cachesize 0\n\n\
         defaults\n    mode tcp\n    maxconn {}\n    timeout connect 5s\n    \
         timeout client 1h\n    timeout server 1h\n\n",
        t.threads, t.maxconn, t.nofile, t.maxconn
    )
}

/// A: plain TCP from the application, TLS 1.3 with a client certificate to B, B's certificate
/// checked against the CA and its name; no session reuse.
pub fn client_side_config(t: &Tuning, listen: SocketAddr, b: SocketAddr, f: Files<'_>) -> String {
    format!(
        "{}frontend app\n    bind {listen}\n    default_backend pair\n\n\
         backend pair\n    server b {b} ssl ssl-min-ver TLSv1.3 verify required ca-file {} \
         verifyhost {name} sni str({name}) crt {} no-ssl-reuse\n",
        global(t),
        f.ca.display(),
        f.crt.display(),
        name = pki::SERVER_NAME,
    )
}

/// B: TLS 1.3 in, the client's certificate required and checked against the CA, no tickets;
/// plain TCP to the backend.
pub fn server_side_config(
    t: &Tuning,
    listen: SocketAddr,
    backend: SocketAddr,
    f: Files<'_>,
) -> String {
    format!(
        "{}frontend tls\n    bind {listen} ssl crt {} ca-file {} verify required \
         ssl-min-ver TLSv1.3 no-tls-tickets\n    default_backend app\n\n\
         backend app\n    server app {backend}\n",
        global(t),
        f.crt.display(),
        f.ca.display(),
    )
}

/// Writes the certificates and both configurations into a fresh directory and starts B, then
/// A (`haproxy -db -f <conf>`: in the foreground, logging to stderr).
pub fn start(bin: &Path, tuning: &Tuning, pki: &Pki) -> anyhow::Result<Pair> {
    let dir = tempfile::Builder::new()
        .prefix("mesh-bench-proxy-haproxy-")
        .tempdir()
        .context("creating a temporary directory")?;
    let path = |name: &str| dir.path().join(name);
    let write = |name: &str, text: &str| {
        let p = path(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };
    write("ca.pem", &pki.ca_pem)?;
    write("a.pem", &pki.client_pem)?;
    write("b.pem", &pki.server_pem)?;
    let (ca, a_crt, b_crt) = (path("ca.pem"), path("a.pem"), path("b.pem"));
    write(
        "b.cfg",
        &server_side_config(
            tuning,
            HAPROXY_SERVER_SIDE,
            BACKEND,
            Files {
                ca: &ca,
                crt: &b_crt,
            },
        ),
    )?;
    write(
        "a.cfg",
        &client_side_config(
            tuning,
            HAPROXY_CLIENT_SIDE,
            HAPROXY_SERVER_SIDE,
            Files {
                ca: &ca,
                crt: &a_crt,
            },
        ),
    )?;
    let spawn = |name: &'static str, cfg: &str, log: &str| {
        let mut cmd = Command::new(bin);
        cmd.arg("-db").arg("-f").arg(path(cfg));
        Proc::spawn(name, cmd, path(log))
    };
    let b = spawn("haproxy B", "b.cfg", "b.log")?;
    let a = spawn("haproxy A", "a.cfg", "a.log")?;
    Ok(Pair {
        system: System::Haproxy,
        entry: HAPROXY_CLIENT_SIDE,
        proxies: vec![a, b],
        agent_pid: None,
        _dir: Some(dir),
    })
}

/// The Debian package's version and the OpenSSL HAProxy runs on.
pub fn version(bin: &Path) -> String {
    let vv = Command::new(bin)
        .arg("-vv")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let reported = vv
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("HAProxy version "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("unknown");
    let openssl = vv
        .lines()
        .find_map(|l| l.strip_prefix("Running on OpenSSL version :"))
        .map_or("unknown OpenSSL", str::trim);
    match crate::machine::package_version(crate::machine::HAPROXY_PACKAGE) {
        Some(v) => format!("Debian package haproxy {v} (HAProxy {reported}, on {openssl})"),
        None => format!("HAProxy {reported}, on {openssl}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TUNING: Tuning = Tuning {
        threads: 2,
        maxconn: 9950,
        nofile: 20000,
    };

    fn files() -> Files<'static> {
        Files {
            ca: Path::new("/d/ca.pem"),
            crt: Path::new("/d/a.pem"),
        }
    }

    #[test]
    fn client_side_originates_tls_without_reuse() {
        let text = client_side_config(&TUNING, HAPROXY_CLIENT_SIDE, HAPROXY_SERVER_SIDE, files());
        assert!(text.contains("    nbthread 2\n"), "{text}");
        assert!(
            text.contains("    maxconn 9950\n    ulimit-n 20000\n"),
            "{text}"
        );
        assert!(text.contains("    mode tcp\n"), "{text}");
        assert!(text.contains("    bind 127.0.6.31:9191\n"), "{text}");
        assert!(
            text.contains(
                "    server b 127.0.6.32:21000 ssl ssl-min-ver TLSv1.3 verify required \
                 ca-file /d/ca.pem verifyhost echo.bench.internal sni str(echo.bench.internal) \
                 crt /d/a.pem no-ssl-reuse\n"
            ),
            "{text}"
        );
        assert!(!text.contains("daemon"), "{text}");
    }

    #[test]
    fn server_side_requires_the_client_certificate() {
        let text = server_side_config(&TUNING, HAPROXY_SERVER_SIDE, BACKEND, files());
        assert!(
            text.contains(
                "    bind 127.0.6.32:21000 ssl crt /d/a.pem ca-file /d/ca.pem verify required \
                 ssl-min-ver TLSv1.3 no-tls-tickets\n"
            ),
            "{text}"
        );
        assert!(text.contains("    server app 127.0.6.20:8080\n"), "{text}");
        assert!(text.contains("tune.ssl.cachesize 0"), "{text}");
    }
}
