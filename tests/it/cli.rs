//! The operator CLI (`mesh-client kv ...`, `intention ...`, `snapshot ...`, `lock ...`) against
//! a real server: Consul's outputs and exit statuses, end to end.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use test_support::{wait_json, ServerProcess};
use tokio::io::AsyncWriteExt;

const SOON: Duration = Duration::from_secs(30);

/// What a `mesh-client` run printed, and how it ended.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A single bootstrapped server on `127.0.8.<octet>`, leading.
async fn server(dir: &Path, octet: u8) -> anyhow::Result<ServerProcess> {
    let mut server = ServerProcess::new(
        Ipv4Addr::new(127, 0, 8, octet),
        &dir.join("server"),
        vec!["-bootstrap".into()],
    )?;
    server.spawn()?;
    server.wait_for_leader().await?;
    Ok(server)
}

/// Runs `mesh-client <command> [-http-addr <http>] <args>`, feeding it `stdin`; killed if it
/// runs longer than `SOON`.
async fn run(
    command: &str,
    http: Option<&str>,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> anyhow::Result<Run> {
    let mut cli = tokio::process::Command::new(test_support::binary("mesh-client")?);
    cli.args(command.split_whitespace());
    if let Some(http) = http {
        cli.args(["-http-addr", http]);
    }
    cli.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cli.spawn()?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).await?;
    }
    let output = tokio::time::timeout(SOON, child.wait_with_output())
        .await
        .map_err(|_| anyhow::anyhow!("mesh-client {command} {args:?} ran over {SOON:?}"))??;
    Ok(Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// `command` against `server`.
async fn mesh(server: &ServerProcess, command: &str, args: &[&str]) -> anyhow::Result<Run> {
    run(command, Some(&server.http_addr()), args, None).await
}

/// `command` without an agent, expected to succeed; its stdout.
async fn ok_offline(command: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = run(command, None, args, None).await?;
    anyhow::ensure!(out.code == 0, "mesh-client {command} {args:?}: {out:?}");
    Ok(out.stdout)
}

/// `command` against `server`, expected to succeed; its stdout.
async fn ok(server: &ServerProcess, command: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = mesh(server, command, args).await?;
    anyhow::ensure!(out.code == 0, "mesh-client {command} {args:?}: {out:?}");
    Ok(out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_catalog_and_services_commands_read_like_consuls() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server(dir.path(), 1).await?;

    // put and get, from an argument, stdin and a file.
    assert_eq!(
        ok(&server, "kv put", &["app/name", "web"]).await?,
        "Success! Data written to: app/name\n"
    );
    let http = server.http_addr();
    let put = run(
        "kv put",
        Some(&http),
        &["app/stdin", "-"],
        Some(b"from stdin"),
    )
    .await?;
    assert_eq!(put.code, 0, "{put:?}");
    let file = dir.path().join("value.txt");
    std::fs::write(&file, "from a file")?;
    let at_file = format!("@{}", file.display());
    ok(&server, "kv put", &["-flags", "42", "app/file", &at_file]).await?;
    assert_eq!(ok(&server, "kv get", &["app/name"]).await?, "web\n");
    assert_eq!(ok(&server, "kv get", &["app/stdin"]).await?, "from stdin\n");
    assert_eq!(
        ok(&server, "kv get", &["-recurse", "app"]).await?,
        "app/file:from a file\napp/name:web\napp/stdin:from stdin\n"
    );
    assert_eq!(
        ok(&server, "kv get", &["-keys", "-separator", "/", ""]).await?,
        "app/\n"
    );
    let detailed = ok(&server, "kv get", &["-detailed", "app/file"]).await?;
    assert!(detailed.contains("Flags            42\n"), "{detailed}");
    assert!(
        detailed.ends_with("Value            from a file\n"),
        "{detailed}"
    );
    let missing = mesh(&server, "kv get", &["app/missing"]).await?;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert_eq!(missing.stderr, "Error! No key exists at: app/missing\n");

    // Check-and-set with a stale index fails; with the current one it writes.
    let index = detailed
        .lines()
        .find_map(|l| l.strip_prefix("ModifyIndex"))
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    let stale = mesh(
        &server,
        "kv put",
        &["-cas", "-modify-index", "1", "app/file", "x"],
    )
    .await?;
    assert_eq!(stale.code, 1, "{stale:?}");
    assert_eq!(
        stale.stderr,
        "Error! Did not write to app/file: CAS failed\n"
    );
    ok(
        &server,
        "kv put",
        &[
            "-cas",
            "-modify-index",
            &index,
            "-flags",
            "42",
            "app/file",
            "y",
        ],
    )
    .await?;

    // export, delete everything, import: the same tree comes back.
    let exported = ok(&server, "kv export", &["app/"]).await?;
    let entries: Value = serde_json::from_str(&exported)?;
    assert_eq!(
        entries[0],
        json!({"key": "app/file", "flags": 42, "value": "eQ=="}),
        "{exported}"
    );
    assert_eq!(
        ok(&server, "kv delete", &["-recurse", "app/"]).await?,
        "Success! Deleted keys with prefix: app/\n"
    );
    assert_eq!(ok(&server, "kv get", &["-recurse", "app"]).await?, "");
    let export_file = dir.path().join("export.json");
    std::fs::write(&export_file, &exported)?;
    let imported = ok(
        &server,
        "kv import",
        &[&format!("@{}", export_file.display())],
    )
    .await?;
    assert_eq!(
        imported,
        "Imported: app/file\nImported: app/name\nImported: app/stdin\n"
    );
    assert_eq!(ok(&server, "kv export", &["app/"]).await?, exported);
    assert_eq!(
        ok(&server, "kv delete", &["app/name"]).await?,
        "Success! Deleted key: app/name\n"
    );

    // A watch without a handler prints the view once.
    let watched = ok(&server, "watch", &["-type", "key", "-key", "app/stdin"]).await?;
    let pair: Value = serde_json::from_str(&watched)?;
    assert_eq!(pair["Key"], "app/stdin", "{watched}");
    assert!(
        watched.contains("\n    \"Key\": \"app/stdin\""),
        "four-space indent: {watched}"
    );

    // A service from a definition file reaches the catalog.
    let definition = dir.path().join("web.json");
    std::fs::write(
        &definition,
        r#"{"service": {"name": "web", "port": 8080, "tags": ["v2", "blue"]}}"#,
    )?;
    assert_eq!(
        ok(
            &server,
            "services register",
            &[&definition.display().to_string()]
        )
        .await?,
        "Registered service: web\n"
    );
    wait_json(
        &server.http(),
        "/v1/catalog/services",
        "web in the catalog",
        SOON,
        |services| services.get("web").is_some(),
    )
    .await?;
    assert_eq!(ok(&server, "catalog services", &[]).await?, "consul\nweb\n");
    let tagged = ok(&server, "catalog services", &["-tags"]).await?;
    assert!(tagged.ends_with("\nweb         blue,v2\n"), "{tagged}");
    let nodes = ok(&server, "catalog nodes", &["-service", "web"]).await?;
    assert!(nodes.starts_with("Node    ID"), "{nodes}");
    assert!(nodes.contains("127.0.8.1  dc1"), "{nodes}");
    assert_eq!(ok(&server, "catalog datacenters", &[]).await?, "dc1\n");

    let version = ok_offline("version", &[]).await?;
    assert!(version.starts_with("Mesh v"), "{version}");
    let bad = mesh(&server, "kv get", &["-no-such-flag", "k"]).await?;
    assert_eq!(bad.code, 1, "{bad:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intentions_raft_peers_and_snapshots() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server(dir.path(), 2).await?;

    // Intentions, and `check`'s exit statuses: 0 allowed, 1 denied (as Consul's).
    assert_eq!(
        ok(&server, "intention create", &["-deny", "web", "db"]).await?,
        "Created: web => db (deny)\n"
    );
    let denied = mesh(&server, "intention check", &["web", "db"]).await?;
    assert_eq!(
        (denied.code, denied.stdout.as_str()),
        (1, "Denied\n"),
        "{denied:?}"
    );
    let duplicate = mesh(&server, "intention create", &["web", "db"]).await?;
    assert_eq!(duplicate.code, 1, "{duplicate:?}");
    assert!(
        duplicate
            .stderr
            .starts_with("Error creating intention \"web => db (allow)\": "),
        "{duplicate:?}"
    );
    ok(
        &server,
        "intention create",
        &["-allow", "-replace", "web", "db"],
    )
    .await?;
    let allowed = mesh(&server, "intention check", &["web", "db"]).await?;
    assert_eq!(
        (allowed.code, allowed.stdout.as_str()),
        (0, "Allowed\n"),
        "{allowed:?}"
    );
    let listed = ok(&server, "intention list", &[]).await?;
    assert!(listed.starts_with("ID  "), "{listed}");
    assert!(
        listed.contains("  web     allow   db           "),
        "{listed}"
    );
    assert_eq!(
        ok(&server, "intention match", &["db"]).await?,
        "web => db (allow)\n"
    );
    let shown = ok(&server, "intention get", &["web", "db"]).await?;
    assert!(
        shown.starts_with("Source:       web\nDestination:  db\nAction:       allow\n"),
        "{shown}"
    );
    let usage = mesh(&server, "intention check", &["web"]).await?;
    assert_eq!(usage.code, 2, "{usage:?}");

    // The raft peers: this server leads.
    let peers = ok(&server, "operator raft list-peers", &[]).await?;
    let mut lines = peers.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("Node    ID  ")
            && header.contains("Address  ")
            && header.contains("  State  "),
        "{peers}"
    );
    assert!(
        header.contains("  Voter  RaftProtocol  Commit Index  Trails Leader By"),
        "{peers}"
    );
    let leader = lines.next().unwrap_or_default();
    assert!(leader.starts_with("node-2  "), "{peers}");
    assert!(leader.contains("  127.0.8.2:"), "{peers}");
    assert!(leader.contains("  leader  true   3  "), "{peers}");

    // A snapshot saved, inspected, and restored over later changes.
    ok(&server, "kv put", &["snap/key", "before"]).await?;
    let file = dir.path().join("backup.snap");
    let file_arg = file.display().to_string();
    let saved = mesh(&server, "snapshot save", &[&file_arg]).await?;
    assert_eq!(saved.code, 0, "{saved:?}");
    let index: u64 = saved
        .stdout
        .strip_prefix("Saved and verified snapshot to index ")
        .and_then(|rest| rest.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{saved:?}"))?;
    assert!(
        saved.stderr.starts_with("Downloading snapshot: "),
        "{saved:?}"
    );
    let inspected = ok_offline("snapshot inspect", &[&file_arg]).await?;
    assert!(
        inspected.contains(&format!("\n Index        {index}\n")),
        "{inspected}"
    );
    assert!(inspected.contains("\n Version      3\n"), "{inspected}");
    assert!(inspected.contains("\n KVS  "), "{inspected}");
    ok(&server, "kv put", &["snap/key", "after"]).await?;
    assert_eq!(
        ok(&server, "intention delete", &["web", "db"]).await?,
        "Intention deleted.\n"
    );
    assert_eq!(ok(&server, "intention match", &["db"]).await?, "");
    assert_eq!(
        ok(&server, "snapshot restore", &[&file_arg]).await?,
        "Restored snapshot\n"
    );
    assert_eq!(ok(&server, "kv get", &["snap/key"]).await?, "before\n");
    // The restore brought back the intention too.
    assert_eq!(
        ok(&server, "intention match", &["db"]).await?,
        "web => db (allow)\n"
    );

    let corrupt = dir.path().join("corrupt.snap");
    std::fs::write(&corrupt, b"not an archive")?;
    let refused = run(
        "snapshot inspect",
        None,
        &[&corrupt.display().to_string()],
        None,
    )
    .await?;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.starts_with("Error inspecting snapshot: "),
        "{refused:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_runs_the_child_while_holding_the_lock() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server(dir.path(), 3).await?;
    let client = test_support::binary("mesh-client")?;

    // The child sees the lock held (by a session) and its status becomes the command's.
    let script = format!(
        "test \"$CONSUL_LOCK_HELD\" = true || exit 9; \
         {} kv get -http-addr {} -detailed jobs/nightly/.lock | grep '^Session' | grep -qv ' -$' || exit 8; \
         echo child ran; exit 3",
        client.display(),
        server.http_addr()
    );
    let run = mesh(&server, "lock", &["jobs/nightly", &script]).await?;
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stdout, "child ran\n", "{run:?}");

    // Afterwards the key is gone and the session destroyed.
    let gone = mesh(&server, "kv get", &["jobs/nightly/.lock"]).await?;
    assert_eq!(gone.code, 1, "{gone:?}");
    let sessions = server.http().get("/v1/session/list").await?.json()?;
    assert_eq!(sessions, json!([]));

    // Without a shell, the child's own flags reach it untouched.
    let listed = ok(
        &server,
        "lock",
        &["-shell=false", "jobs/ls", "ls", "-a", "-d", "/"],
    )
    .await?;
    assert_eq!(listed, "/\n");

    // A held lock makes a second `lock` give up at its timeout.
    let holder = {
        let mut command = tokio::process::Command::new(&client);
        command
            .args([
                "lock",
                "-http-addr",
                &server.http_addr(),
                "jobs/busy",
                "sleep 20",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        command.spawn()?
    };
    wait_json(
        &server.http(),
        "/v1/kv/jobs/busy/.lock",
        "the first lock held",
        SOON,
        |pairs| pairs[0]["Session"].as_str().is_some_and(|s| !s.is_empty()),
    )
    .await?;
    let waited = mesh(
        &server,
        "lock",
        &["-timeout", "500ms", "jobs/busy", "echo never"],
    )
    .await?;
    assert_eq!(waited.code, 1, "{waited:?}");
    assert_eq!(
        waited.stderr,
        "Shutdown triggered or timeout during lock acquisition\n"
    );
    assert_eq!(waited.stdout, "");
    drop(holder);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_checks_files_and_directories_like_an_agent() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("good.hcl");
    std::fs::write(&good, "datacenter = \"dc1\"\nports { http = 8501 }\n")?;
    let good_arg = good.display().to_string();
    let valid = ok_offline("validate", &[&good_arg]).await?;
    assert_eq!(valid, "Configuration is valid!\n");
    assert_eq!(ok_offline("validate", &["-quiet", &good_arg]).await?, "");

    // A directory is loaded whole: one unknown key fails it, naming the file and the key.
    std::fs::write(dir.path().join("bad.json"), r#"{"colour": "red"}"#)?;
    let dir_arg = dir.path().display().to_string();
    let out = run("validate", None, &[&dir_arg], None).await?;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("Config validation failed: ") && out.stderr.contains("colour"),
        "{out:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_ca_and_server_certificate_chain_like_consuls() -> anyhow::Result<()> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::pem::parse_x509_pem;

    let dir = tempfile::tempdir()?;
    let tls = |args: &'static [&'static str]| {
        let mut cli = tokio::process::Command::new(test_support::binary("mesh-client")?);
        cli.arg("tls")
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        anyhow::Ok(cli)
    };
    let run_tls = |args: &'static [&'static str]| async move {
        let out = tokio::time::timeout(SOON, tls(args)?.output()).await??;
        anyhow::Ok(Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout)?,
            stderr: String::from_utf8(out.stderr)?,
        })
    };

    let ca = run_tls(&["ca", "create"]).await?;
    assert_eq!(ca.code, 0, "{ca:?}");
    assert_eq!(
        ca.stdout,
        "==> Saved mesh-agent-ca.pem\n==> Saved mesh-agent-ca-key.pem\n"
    );
    let cert = run_tls(&["cert", "create", "-server", "-node", "n1"]).await?;
    assert_eq!(cert.code, 0, "{cert:?}");
    assert!(
        cert.stdout
            .starts_with("==> WARNING: Server Certificates grants authority")
            && cert.stdout.ends_with(
                "==> Using mesh-agent-ca.pem and mesh-agent-ca-key.pem\n\
                 ==> Saved dc1-server-mesh-0.pem\n==> Saved dc1-server-mesh-0-key.pem\n"
            ),
        "{cert:?}"
    );
    // The next certificate takes the next number.
    let second = run_tls(&["cert", "create", "-server"]).await?;
    assert!(
        second.stdout.contains("==> Saved dc1-server-mesh-1.pem\n"),
        "{second:?}"
    );

    let ca_pem = std::fs::read(dir.path().join("mesh-agent-ca.pem"))?;
    let (_, ca_pem) = parse_x509_pem(&ca_pem)?;
    let ca_cert = ca_pem.parse_x509()?;
    assert!(ca_cert.is_ca());
    let server_pem = std::fs::read(dir.path().join("dc1-server-mesh-0.pem"))?;
    let (_, server_pem) = parse_x509_pem(&server_pem)?;
    let server_cert = server_pem.parse_x509()?;
    assert_eq!(server_cert.issuer(), ca_cert.subject());
    server_cert.verify_signature(Some(ca_cert.public_key()))?;
    assert!(!server_cert.is_ca());
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for name in &server_cert
        .subject_alternative_name()?
        .expect("a SAN extension")
        .value
        .general_names
    {
        match name {
            GeneralName::DNSName(name) => dns.push(name.to_string()),
            GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    assert_eq!(dns, ["n1.server.dc1.mesh", "server.dc1.mesh", "localhost"]);
    assert_eq!(ips, [vec![127, 0, 0, 1]]);
    let key = std::fs::read_to_string(dir.path().join("dc1-server-mesh-0-key.pem"))?;
    assert!(key.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));

    // A second CA is refused rather than overwriting the first.
    let again = run_tls(&["ca", "create"]).await?;
    assert_eq!(again.code, 1, "{again:?}");
    assert_eq!(again.stderr, "mesh-agent-ca.pem already exists.\n");
    assert_eq!(again.stdout, "");
    let unchanged = std::fs::read(dir.path().join("mesh-agent-ca.pem"))?;
    assert_eq!(parse_x509_pem(&unchanged)?.1.contents, ca_pem.contents);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_entries_write_read_list_and_delete_like_consuls() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server(dir.path(), 9).await?;

    // Written from an HCL file (Consul's lower-case keys too), and from JSON on stdin.
    let file = dir.path().join("web.hcl");
    std::fs::write(
        &file,
        "Kind = \"service-defaults\"\nName = \"web\"\nprotocol = \"http\"\n",
    )?;
    let file = file.display().to_string();
    assert_eq!(
        ok(&server, "config write", &[&file]).await?,
        "Config entry written: service-defaults/web\n"
    );
    let stdin = run(
        "config write",
        Some(&server.http_addr()),
        &["-"],
        Some(br#"{"Kind": "service-defaults", "Name": "api", "Protocol": "grpc"}"#),
    )
    .await?;
    assert_eq!(
        (stdin.code, stdin.stdout.as_str()),
        (0, "Config entry written: service-defaults/api\n"),
        "{stdin:?}"
    );

    // Read: the entry as indented JSON, 4 spaces.
    let read = ok(
        &server,
        "config read",
        &["-kind", "service-defaults", "-name", "web"],
    )
    .await?;
    assert!(
        read.starts_with(
            "{\n    \"Kind\": \"service-defaults\",\n    \"Name\": \"web\",\n    \"Protocol\": \"http\","
        ),
        "{read}"
    );
    let entry: Value = serde_json::from_str(&read)?;
    let index = entry["ModifyIndex"].as_u64().expect("a ModifyIndex");

    assert_eq!(
        ok(&server, "config list", &["-kind", "service-defaults"]).await?,
        "api\nweb\n"
    );

    // Check-and-set: a stale index is refused with status 1, the current one succeeds.
    let stale = (index + 100).to_string();
    let refused = mesh(
        &server,
        "config write",
        &["-cas", "-modify-index", &stale, &file],
    )
    .await?;
    assert_eq!(
        (refused.code, refused.stderr.as_str()),
        (1, "Config entry not updated: service-defaults/web\n"),
        "{refused:?}"
    );
    let current = index.to_string();
    ok(
        &server,
        "config write",
        &["-cas", "-modify-index", &current, &file],
    )
    .await?;
    let not_deleted = mesh(
        &server,
        "config delete",
        &[
            "-kind",
            "service-defaults",
            "-name",
            "web",
            "-cas",
            "-modify-index",
            &current,
        ],
    )
    .await?;
    assert_eq!(
        (not_deleted.code, not_deleted.stderr.as_str()),
        (1, "Config entry not deleted: service-defaults/web\n"),
        "{not_deleted:?}"
    );

    // Delete, then a read of the missing entry fails with the server's not-found text.
    assert_eq!(
        ok(
            &server,
            "config delete",
            &["-kind", "service-defaults", "-name", "web"],
        )
        .await?,
        "Config entry deleted: service-defaults/web\n"
    );
    let missing = mesh(
        &server,
        "config read",
        &["-kind", "service-defaults", "-name", "web"],
    )
    .await?;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("Config entry not found for \"service-defaults\" / \"web\""),
        "{missing:?}"
    );
    assert_eq!(
        ok(&server, "config list", &["-kind", "service-defaults"]).await?,
        "api\n"
    );
    let usage = mesh(&server, "config read", &["-kind", "service-defaults"]).await?;
    assert_eq!(
        (usage.code, usage.stderr.as_str()),
        (1, "Must specify the -name parameter\n"),
        "{usage:?}"
    );
    Ok(())
}

/// The `autopilot` block of a new datacenter's server configuration becomes its autopilot
/// settings; once the API changes them, a restart does not put the file's back. `operator
/// autopilot state` shows the servers as Consul's does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autopilot_starts_from_the_config_file_and_shows_its_state() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("autopilot.hcl");
    std::fs::write(
        &config,
        "autopilot {\n  max_trailing_logs = 99\n  last_contact_threshold = \"350ms\"\n}\n",
    )?;
    let mut server = ServerProcess::new(
        Ipv4Addr::new(127, 0, 8, 10),
        &dir.path().join("server"),
        vec![
            "-bootstrap".into(),
            "-config-file".into(),
            config.display().to_string(),
        ],
    )?;
    server.spawn()?;
    server.wait_for_leader().await?;
    let settings = wait_json(
        &server.http(),
        "/v1/operator/autopilot/configuration",
        "autopilot's settings to come from the config file",
        SOON,
        |v: &Value| v["MaxTrailingLogs"] == json!(99),
    )
    .await?;
    assert_eq!(settings["LastContactThreshold"], "350ms");
    assert_ne!(settings["CreateIndex"], json!(0), "{settings}");
    let listing = ok(&server, "operator autopilot get-config", &[]).await?;
    assert!(listing.contains("MaxTrailingLogs = 99\n"), "{listing}");

    ok(
        &server,
        "operator autopilot set-config",
        &["-max-trailing-logs", "7"],
    )
    .await?;
    server.terminate(SOON).await?;
    server.restart().await?;
    let settings = server
        .http()
        .get("/v1/operator/autopilot/configuration")
        .await?
        .json()?;
    assert_eq!(
        settings["MaxTrailingLogs"],
        json!(7),
        "the API's change survives the restart: {settings}"
    );

    let state: Value = serde_json::from_str(
        &ok(&server, "operator autopilot state", &["-format", "json"]).await?,
    )?;
    let leader = state["Leader"].as_str().unwrap_or_default().to_owned();
    assert!(!leader.is_empty(), "{state}");
    assert_eq!(state["Voters"], json!([leader]));
    let pretty = ok(&server, "operator autopilot state", &[]).await?;
    assert!(
        pretty.starts_with(&format!(
            "Healthy:                      true\nFailure Tolerance:            0\n\
             Optimistic Failure Tolerance: 0\nLeader:                       {leader}\n\
             Voters:\n   {leader}\nServers:\n   {leader}\n"
        )),
        "{pretty}"
    );
    assert!(
        pretty.contains("      Status:          leader\n"),
        "{pretty}"
    );
    let wrong = mesh(&server, "operator autopilot state", &["-format", "yaml"]).await?;
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(wrong.stderr.contains("Unknown format: yaml"), "{wrong:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_n_shares_a_semaphore_among_at_most_n_children() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server(dir.path(), 11).await?;
    let http = server.http();
    let marks = dir.path().join("marks");
    std::fs::create_dir(&marks)?;
    let d = marks.display();

    // Each child counts the holders (marker files) as it starts and before it ends. The first
    // two wait (at most 20s) for each other, so that both slots are seen in use at once.
    let script = format!(
        "echo start >> {d}/started; touch {d}/held.$$; \
         held() {{ ls {d} | grep -c '^held'; }}; i=0; \
         while [ $(held) -lt 2 ] && [ $(wc -l < {d}/started) -lt 3 ] && [ $i -lt 200 ]; \
         do sleep 0.1; i=$((i+1)); done; \
         held >> {d}/counts; sleep 1; held >> {d}/counts; rm {d}/held.$$; echo ran >> {d}/ran"
    );
    let args = ["-n", "2", "pool/jobs", &script];
    let (a, b, c) = tokio::join!(
        mesh(&server, "lock", &args),
        mesh(&server, "lock", &args),
        mesh(&server, "lock", &args)
    );
    for run in [a?, b?, c?] {
        assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    }
    let counts: Vec<u32> = std::fs::read_to_string(marks.join("counts"))?
        .lines()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    assert_eq!(counts.len(), 6, "{counts:?}");
    assert_eq!(counts.iter().max(), Some(&2), "{counts:?}");
    assert_eq!(
        std::fs::read_to_string(marks.join("ran"))?.lines().count(),
        3
    );

    // Afterwards no .lock, no contender key, no session.
    let lock = http.get("/v1/kv/pool/jobs/.lock").await?;
    assert_eq!(lock.status, 404, "{lock:?}");
    let keys = http.get("/v1/kv/pool/jobs?recurse").await?;
    assert_eq!(keys.status, 404, "{keys:?}");
    assert_eq!(http.get("/v1/session/list").await?.json()?, json!([]));

    // A live semaphore of 2 refuses a contender of 3, and a lock, and keeps its holder.
    let holder = {
        let go = marks.join("go");
        let script = format!(
            "i=0; while [ ! -e {} ] && [ $i -lt 250 ]; do sleep 0.1; i=$((i+1)); done",
            go.display()
        );
        let mut command = tokio::process::Command::new(test_support::binary("mesh-client")?);
        command
            .args(["lock", "-http-addr", &server.http_addr(), "-n", "2"])
            .args(["pool/busy", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.spawn()?
    };
    wait_json(
        &http,
        "/v1/kv/pool/busy/.lock?raw",
        "the semaphore held",
        SOON,
        |lock| lock["Limit"] == 2 && lock["Holders"].as_object().is_some_and(|h| h.len() == 1),
    )
    .await?;
    let sessions = http.get("/v1/session/list").await?.json()?;
    let name = sessions[0]["Name"].as_str().unwrap_or_default();
    assert!(
        name.starts_with("Consul lock for 'i=0;") && name.ends_with("' at 'pool/busy'"),
        "{sessions}"
    );
    assert_eq!(sessions[0]["Behavior"], "delete", "{sessions}");

    let more = mesh(&server, "lock", &["-n", "3", "pool/busy", "echo never"]).await?;
    assert_eq!(more.code, 1, "{more:?}");
    assert_eq!(
        more.stderr,
        "Lock acquisition failed: semaphore limit conflict (lock: 2, local: 3)\n"
    );
    assert_eq!(more.stdout, "");
    let single = mesh(&server, "lock", &["pool/busy", "echo never"]).await?;
    assert_eq!(single.code, 1, "{single:?}");
    assert_eq!(
        single.stderr,
        "Lock acquisition failed: Existing key does not match lock use\n"
    );
    // The refused contender's key went with its session.
    let keys = http.get("/v1/kv/pool/busy?keys").await?.json()?;
    assert_eq!(keys.as_array().map(Vec::len), Some(2), "{keys}");

    // The holder, once its child is done, leaves nothing behind.
    std::fs::write(marks.join("go"), "")?;
    let done = tokio::time::timeout(SOON, holder.wait_with_output()).await??;
    assert!(done.status.success(), "{done:?}");
    let lock = http.get("/v1/kv/pool/busy/.lock").await?;
    assert_eq!(lock.status, 404, "{lock:?}");
    let keys = http.get("/v1/kv/pool/busy?recurse").await?;
    assert_eq!(keys.status, 404, "{keys:?}");
    assert_eq!(http.get("/v1/session/list").await?.json()?, json!([]));
    Ok(())
}
