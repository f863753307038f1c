//! Agent TLS over real processes on 127.0.15.x: the HTTPS API beside plain HTTP, with client
//! certificates required; server RPC (raft, forwarding, client agents) over mutual TLS, and
//! a server with a certificate from another CA kept out.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use test_support::tls::{client_config, CertFiles, TestCerts};
use test_support::{free_port_on, wait_until, Http, ServerProcess};

const SOON: Duration = Duration::from_secs(30);

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 15, last)
}

/// Writes `text` as `<dir>/<name>.hcl` and returns the `-config-file` arguments for it.
fn config_file(dir: &Path, name: &str, text: &str) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let path: PathBuf = dir.join(format!("{name}.hcl"));
    std::fs::write(&path, text)?;
    Ok(vec!["-config-file".into(), path.display().to_string()])
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn https_api_with_client_certificates_beside_plain_http() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = TestCerts::new("dc1", "mesh")?;
    let server_cert = certs.server("server", &[IpAddr::V4(ip(1))])?;
    let client_cert = certs.client("cli")?;
    let https_port = free_port_on(ip(1))?;
    let mut args = vec!["-bootstrap".to_owned()];
    args.extend(config_file(
        dir.path(),
        "tls",
        &format!(
            r#"
            ports {{ https = {https_port} }}
            tls {{
              defaults {{
                ca_file   = "{ca}"
                cert_file = "{cert}"
                key_file  = "{key}"
              }}
              https {{ verify_incoming = true }}
            }}
            "#,
            ca = path(&certs.ca_file()),
            cert = path(&server_cert.cert),
            key = path(&server_cert.key),
        ),
    )?);
    let mut server = ServerProcess::new(ip(1), &dir.path().join("server"), args)?;
    server.spawn()?;
    server.wait_for_leader().await?;

    // A client with a certificate from the CA.
    let https = Http::https(
        &ip(1).to_string(),
        https_port,
        client_config(&certs.ca_file(), Some(&client_cert))?,
    );
    let reply = https.get("/v1/status/leader").await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, format!("\"{}\"", server.rpc_addr()));

    // No client certificate: the handshake fails (TLS 1.3 reports it on the first read).
    let anonymous = Http::https(
        &ip(1).to_string(),
        https_port,
        client_config(&certs.ca_file(), None)?,
    );
    assert!(anonymous.get("/v1/status/leader").await.is_err());

    // A client that does not trust the server's CA.
    let other = TestCerts::new("dc1", "mesh")?;
    let other_client = other.client("cli")?;
    let distrustful = Http::https(
        &ip(1).to_string(),
        https_port,
        client_config(&other.ca_file(), Some(&other_client))?,
    );
    assert!(distrustful.get("/v1/status/leader").await.is_err());

    // Plain HTTP still answers on its own port.
    let plain = server.http().get("/v1/status/leader").await?;
    assert_eq!(plain.status, 200);

    // The CLI over HTTPS, with Consul's flags.
    let out = tokio::process::Command::new(test_support::binary("mesh-client")?)
        .arg("members")
        .args(["-http-addr", &format!("https://{}:{https_port}", ip(1))])
        .args(["-ca-file", &path(&certs.ca_file())])
        .args(["-client-cert", &path(&client_cert.cert)])
        .args(["-client-key", &path(&client_cert.key)])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "members over HTTPS failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&server.node_name()), "{stdout}");

    // And with the environment instead of flags: CONSUL_HTTP_SSL turns a bare address into
    // HTTPS; without the client certificate the agent refuses.
    let run = |with_cert: bool| {
        let mut cli = tokio::process::Command::new(
            test_support::binary("mesh-client").expect("mesh-client is built"),
        );
        cli.arg("members")
            .env("CONSUL_HTTP_ADDR", format!("{}:{https_port}", ip(1)))
            .env("CONSUL_HTTP_SSL", "true")
            .env("CONSUL_CACERT", certs.ca_file())
            .env_remove("MESH_HTTP_ADDR")
            .env_remove("MESH_CACERT")
            .env_remove("MESH_CLIENT_CERT")
            .env_remove("MESH_CLIENT_KEY")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if with_cert {
            cli.env("CONSUL_CLIENT_CERT", &client_cert.cert)
                .env("CONSUL_CLIENT_KEY", &client_cert.key);
        } else {
            cli.env_remove("CONSUL_CLIENT_CERT")
                .env_remove("CONSUL_CLIENT_KEY");
        }
        cli.output()
    };
    let out = run(true).await?;
    assert!(
        out.status.success(),
        "members with CONSUL_ variables failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(false).await?;
    assert!(
        !out.status.success(),
        "a client without a certificate got in"
    );
    server.kill9()?;
    Ok(())
}

/// The TLS part of an agent's configuration: RPC over mutual TLS with the server name checked.
fn rpc_tls_config(certs_ca: &Path, cert: &CertFiles) -> String {
    format!(
        r#"
        tls {{
          defaults {{
            ca_file         = "{ca}"
            cert_file       = "{cert}"
            key_file        = "{key}"
            verify_incoming = true
            verify_outgoing = true
          }}
          internal_rpc {{ verify_server_hostname = true }}
        }}
        "#,
        ca = path(certs_ca),
        cert = path(&cert.cert),
        key = path(&cert.key),
    )
}

/// Runs `mesh-client tls <args>` in `dir`, as an operator makes agent certificates.
async fn tls_command(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new(test_support::binary("mesh-client")?)
        .arg("tls")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "mesh-client tls {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The files `mesh-client tls cert create` wrote in `dir` as `<prefix>-<n>`.
fn made(dir: &Path, prefix: &str, n: usize) -> CertFiles {
    CertFiles {
        cert: dir.join(format!("{prefix}-{n}.pem")),
        key: dir.join(format!("{prefix}-{n}-key.pem")),
    }
}

#[tokio::test]
async fn server_rpc_over_mutual_tls() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // The CA and certificates as `mesh-client tls` makes them: the server name that
    // verify_server_hostname checks is exactly theirs.
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki)?;
    tls_command(&pki, &["ca", "create"]).await?;
    for _ in 0..3 {
        tls_command(&pki, &["cert", "create", "-server"]).await?;
    }
    tls_command(&pki, &["cert", "create", "-client"]).await?;
    let ca_file = pki.join("mesh-agent-ca.pem");

    // Three servers forming a datacenter, every RPC connection TLS.
    let mut servers = Vec::new();
    for i in 0..3u8 {
        let addr = ip(11 + i);
        let cert = made(&pki, "dc1-server-mesh", usize::from(i));
        let args = config_file(
            dir.path(),
            &format!("server-{i}"),
            &rpc_tls_config(&ca_file, &cert),
        )?;
        servers.push(ServerProcess::new(
            addr,
            &dir.path().join(format!("server-{i}")),
            args,
        )?);
    }
    let gossip: Vec<String> = servers.iter().map(ServerProcess::gossip_addr).collect();
    for (i, server) in servers.iter_mut().enumerate() {
        server.push_args(["-bootstrap-expect", "3"]);
        for (j, addr) in gossip.iter().enumerate() {
            if i != j {
                server.push_args(["-retry-join", addr.as_str()]);
            }
        }
        server.spawn()?;
    }
    for server in &servers {
        server.wait_for_leader().await?;
    }
    // A write through one server (forwarded to the leader if it follows) reaches all three.
    let put = servers[0].http().put("/v1/kv/tls/hello", "world").await?;
    assert_eq!(put.status, 200, "{}", put.body);
    for server in &servers {
        let http = server.http();
        wait_until("the KV write to replicate", SOON, || {
            let http = http.clone();
            async move {
                matches!(http.get("/v1/kv/tls/hello?stale&raw").await,
                    Ok(r) if r.status == 200 && r.body == "world")
            }
        })
        .await?;
    }
    let (voters, _) = raft_servers(&servers[0].http()).await?;
    assert_eq!(voters, 3);

    // A server whose certificate comes from another CA cannot join, and says why.
    let rogue_ca = TestCerts::new("dc1", "mesh")?;
    let rogue_cert = rogue_ca.server("rogue", &[IpAddr::V4(ip(14))])?;
    let mut args = config_file(
        dir.path(),
        "rogue",
        &rpc_tls_config(&rogue_ca.ca_file(), &rogue_cert),
    )?;
    args.extend(["-bootstrap-expect".to_owned(), "3".to_owned()]);
    args.extend(["-retry-join".to_owned(), gossip[0].clone()]);
    let mut rogue = ServerProcess::new(ip(14), &dir.path().join("rogue"), args)?;
    rogue.spawn()?;
    wait_until("the rogue server to log a TLS failure", SOON, || {
        let text = rogue.log_text();
        async move { text.contains("TLS handshake failed") }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; rogue log:\n{}", rogue.log_text()))?;
    let (voters, total) = raft_servers(&servers[0].http()).await?;
    assert_eq!((voters, total), (3, 3), "the rogue server got into raft");
    rogue.kill9()?;

    // A client agent with a certificate from the CA works through server RPC: its catalog
    // sync and the requests it forwards.
    let client_cert = made(&pki, "dc1-client-mesh", 0);
    let mut args = config_file(
        dir.path(),
        "client",
        &format!(
            r#"
            tls {{
              defaults {{
                ca_file         = "{ca}"
                cert_file       = "{cert}"
                key_file        = "{key}"
                verify_outgoing = true
              }}
              internal_rpc {{ verify_server_hostname = true }}
            }}
            "#,
            ca = path(&ca_file),
            cert = path(&client_cert.cert),
            key = path(&client_cert.key),
        ),
    )?;
    args.extend(["-retry-join".to_owned(), gossip[1].clone()]);
    let mut client = ServerProcess::client(ip(15), &dir.path().join("client"), &[])?;
    client.push_args(args);
    client.spawn()?;
    client.wait_for_leader().await?;
    let reply = client.http().get("/v1/kv/tls/hello?raw").await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, "world"));
    let http = servers[2].http();
    let node = client.node_name();
    wait_until("the client agent's node in the catalog", SOON, || {
        let http = http.clone();
        let node = node.clone();
        async move {
            matches!(http.get(&format!("/v1/catalog/node/{node}")).await,
                Ok(r) if r.status == 200 && r.body.contains(&node))
        }
    })
    .await?;
    client.kill9()?;
    for server in &mut servers {
        server.kill9()?;
    }
    Ok(())
}

/// (voters, servers) in the raft configuration a server reports.
async fn raft_servers(http: &Http) -> anyhow::Result<(usize, usize)> {
    let config = http
        .get("/v1/operator/raft/configuration?stale")
        .await?
        .json()?;
    let servers = config["Servers"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("no Servers in {config}"))?;
    let voters = servers.iter().filter(|s| s["Voter"] == true).count();
    Ok((voters, servers.len()))
}

const MANAGEMENT: &str = "8d2a0c1e-3f4b-4c5d-9e6f-7a8b9c0d1e2f";

#[tokio::test]
async fn auto_encrypt_gives_client_agents_their_certificates() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki)?;
    // The CA key as `mesh-client tls ca create` writes it (SEC 1), which the server signs with.
    tls_command(&pki, &["ca", "create"]).await?;
    tls_command(&pki, &["cert", "create", "-server"]).await?;
    let ca_file = pki.join("mesh-agent-ca.pem");
    let ca_key = pki.join("mesh-agent-ca-key.pem");

    // A server requiring client certificates on RPC, signing them for client agents whose
    // token has node:write; ACLs deny by default.
    let mut args = vec!["-bootstrap".to_owned()];
    args.extend(config_file(
        dir.path(),
        "server",
        &format!(
            r#"
            {tls}
            auto_encrypt {{
              allow_tls   = true
              ca_key_file = "{key}"
            }}
            acl {{
              enabled        = true
              default_policy = "deny"
              tokens {{
                initial_management = "{MANAGEMENT}"
              }}
            }}
            "#,
            tls = rpc_tls_config(&ca_file, &made(&pki, "dc1-server-mesh", 0)),
            key = path(&ca_key),
        ),
    )?);
    let mut server = ServerProcess::new(ip(21), &dir.path().join("server"), args)?;
    server.spawn()?;
    server.wait_for_leader().await?;
    let put = server
        .http()
        .put(&format!("/v1/kv/auto/encrypt?token={MANAGEMENT}"), "yes")
        .await?;
    assert_eq!(put.status, 200, "{}", put.body);

    // A client agent with only the CA, asking with a token that may write its node.
    let client_config = |token: &str, https_port: u16| {
        format!(
            r#"
            ca_file = "{ca}"
            verify_outgoing = true
            verify_server_hostname = true
            auto_encrypt {{
              tls    = true
              ip_san = ["{ip}"]
            }}
            ports {{ https = {https_port} }}
            acl {{
              enabled        = true
              default_policy = "deny"
              tokens {{ default = "{token}" }}
            }}
            "#,
            ca = path(&ca_file),
            ip = ip(22),
        )
    };
    let https_port = free_port_on(ip(22))?;
    let mut client = ServerProcess::client(ip(22), &dir.path().join("client"), &[])?;
    client.push_args(config_file(
        dir.path(),
        "client",
        &client_config(MANAGEMENT, https_port),
    )?);
    client.push_args(["-retry-join".to_owned(), server.gossip_addr()]);
    client.spawn()?;
    client.wait_for_leader().await?;
    let reply = client
        .http()
        .get(&format!("/v1/kv/auto/encrypt?raw&token={MANAGEMENT}"))
        .await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, "yes"));
    // The signed certificate serves the client's HTTPS API too, for its ip_san.
    let https = Http::https(
        &ip(22).to_string(),
        https_port,
        test_support::tls::client_config(&ca_file, None)?,
    );
    assert_eq!(https.get("/v1/status/leader").await?.status, 200);
    assert!(dir.path().join("client/auto-encrypt/cert.pem").exists());

    // A TLS client without a certificate gets through the handshake (to ask for one) but is
    // refused anything else.
    let mut certless = ServerProcess::client(ip(24), &dir.path().join("certless"), &[])?;
    certless.push_args(config_file(
        dir.path(),
        "certless",
        &format!(
            r#"
            ca_file = "{ca}"
            verify_outgoing = true
            "#,
            ca = path(&ca_file),
        ),
    )?);
    certless.push_args(["-retry-join".to_owned(), server.gossip_addr()]);
    certless.spawn()?;
    let http = certless.http();
    let kv = format!("/v1/kv/auto/encrypt?raw&token={MANAGEMENT}");
    wait_until("the certless agent to know the server", SOON, || {
        let http = http.clone();
        let kv = kv.clone();
        async move {
            matches!(http.get(&kv).await,
                Ok(r) if r.status == 500 && !r.body.contains("No known Consul servers"))
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", certless.log_text()))?;
    // Connected (the handshake passed), then closed by the server at the first request.
    let reply = http.get(&kv).await?;
    assert!(
        reply.status == 500 && reply.body.contains("talking to"),
        "{} {}",
        reply.status,
        reply.body
    );
    certless.kill9()?;

    // A client whose token may not write its node gets no certificate, and the server says so.
    let mut refused = ServerProcess::client(ip(23), &dir.path().join("refused"), &[])?;
    refused.push_args(config_file(
        dir.path(),
        "refused",
        &client_config(
            "00000000-0000-0000-0000-000000000001",
            free_port_on(ip(23))?,
        ),
    )?);
    refused.push_args(["-retry-join".to_owned(), server.gossip_addr()]);
    refused.spawn()?;
    wait_until("the server to refuse a certificate", SOON, || {
        let text = server.log_text();
        async move { text.contains("refused a client agent's certificate") }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; server log:\n{}", server.log_text()))?;
    assert!(!dir.path().join("refused/auto-encrypt/cert.pem").exists());
    refused.kill9()?;
    client.kill9()?;
    server.kill9()?;
    Ok(())
}
