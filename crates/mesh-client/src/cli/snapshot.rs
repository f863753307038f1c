//! `snapshot save|restore|inspect`: archives of the servers' replicated state, as
//! `/v1/snapshot` makes them (a gzipped tar of `meta.json`, `state.bin` and `SHA256SUMS`).
//! Saving verifies the archive before it takes the file's name; inspecting reads it locally.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use hyper::body::Bytes;
use hyper::Method;

use super::text::{byte_size, tabwriter};
use super::{fail, HttpArgs, Progress};

/// How often a download not shown on a terminal reports its progress.
const PROGRESS_STEP: u64 = 16 << 20;

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Saves a snapshot of the servers' state to a file.
    Save(FileArgs),
    /// Restores a snapshot file onto the servers.
    Restore(FileArgs),
    /// Displays what a snapshot file holds.
    Inspect(InspectArgs),
}

#[derive(Debug, clap::Args)]
pub struct FileArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// FILE
    #[arg(num_args = 0..)]
    args: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// FILE
    #[arg(num_args = 0..)]
    args: Vec<PathBuf>,
}

pub async fn run(command: SnapshotCommand) -> anyhow::Result<()> {
    match command {
        SnapshotCommand::Save(args) => save(args).await,
        SnapshotCommand::Restore(args) => restore(args).await,
        SnapshotCommand::Inspect(args) => inspect(args),
    }
}

fn one_file(args: &[PathBuf]) -> anyhow::Result<&Path> {
    match args {
        [] => Err(fail("Missing FILE argument")),
        [file] => Ok(file),
        more => Err(fail(format!(
            "Too many arguments (expected 1, got {})",
            more.len()
        ))),
    }
}

async fn save(args: FileArgs) -> anyhow::Result<()> {
    let file = one_file(&args.args)?;
    let api = args.http.api()?;
    let mut unverified_name = file.as_os_str().to_owned();
    unverified_name.push(".unverified");
    let unverified = PathBuf::from(unverified_name);
    let mut out = create_private(&unverified)
        .map_err(|err| fail(format!("Error writing unverified snapshot file: {err}")))?;
    let mut progress = Progress::new("Downloading snapshot", None, PROGRESS_STEP, byte_size);
    let mut size = 0;
    let downloaded = api
        .download("/v1/snapshot", |chunk, total| {
            out.write_all(chunk)?;
            progress.update(total);
            size = total;
            Ok(())
        })
        .await;
    let saved = downloaded
        .map_err(|err| fail(format!("Error saving snapshot: {err:#}")))
        .and_then(|index| {
            out.sync_all()
                .map_err(|err| fail(format!("Error writing unverified snapshot file: {err}")))?;
            progress.finish(size);
            let archive = std::fs::read(&unverified)
                .map_err(|err| fail(format!("Error opening snapshot file for verify: {err}")))?;
            let (meta, _) = consensus::unpack(&archive)
                .map_err(|err| fail(format!("Error verifying snapshot file: {err}")))?;
            std::fs::rename(&unverified, file).map_err(|err| {
                fail(format!(
                    "Error renaming {:?} to {:?}: {err}",
                    unverified.display().to_string(),
                    file.display().to_string()
                ))
            })?;
            Ok(index.unwrap_or(meta.index))
        });
    match saved {
        Ok(index) => {
            println!("Saved and verified snapshot to index {index}");
            Ok(())
        }
        Err(err) => {
            let _ = std::fs::remove_file(&unverified);
            Err(err)
        }
    }
}

/// A new file only its owner can read: a snapshot holds every secret in the state.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

async fn restore(args: FileArgs) -> anyhow::Result<()> {
    let file = one_file(&args.args)?;
    let api = args.http.api()?;
    let archive =
        std::fs::read(file).map_err(|err| fail(format!("Error opening snapshot file: {err}")))?;
    api.call(Method::PUT, "/v1/snapshot", Bytes::from(archive))
        .await
        .map_err(|err| fail(format!("Error restoring snapshot: {err:#}")))?;
    println!("Restored snapshot");
    Ok(())
}

fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let file = one_file(&args.args)?;
    let archive =
        std::fs::read(file).map_err(|err| fail(format!("Error opening snapshot file: {err}")))?;
    let (meta, state) = consensus::unpack(&archive)
        .map_err(|err| fail(format!("Error inspecting snapshot: {err}")))?;
    let sized = |bytes: Result<Vec<u8>, String>| bytes.map(|b| b.len() as u64).unwrap_or_default();
    let postcard = |value: &dyn erased::Encode| sized(value.encode());
    let types = vec![
        ("KVS", state.kv.len() as u64, postcard(&state.kv)),
        (
            "Register",
            state.catalog.nodes().count() as u64,
            postcard(&state.catalog),
        ),
        (
            "Intention",
            state.intentions.len() as u64,
            postcard(&state.intentions),
        ),
        (
            "ConnectCA",
            u64::from(state.ca.is_some()),
            sized(serde_json::to_vec(&state.ca).map_err(|e| e.to_string())),
        ),
        (
            "ConfigEntry",
            state.config_entries.len() as u64,
            postcard(&state.config_entries),
        ),
        ("Autopilot", 1, postcard(&state.autopilot)),
        (
            "ACLToken",
            state.acl.tokens().count() as u64,
            postcard(&state.acl.tokens().collect::<Vec<_>>()),
        ),
        (
            "ACLPolicy",
            state.acl.policies().count() as u64,
            postcard(&state.acl.policies().collect::<Vec<_>>()),
        ),
        (
            "ACLRole",
            state.acl.roles().count() as u64,
            postcard(&state.acl.roles().collect::<Vec<_>>()),
        ),
    ];
    let summary = Summary {
        id: format!("{}-{}", meta.term, meta.index),
        size: postcard(&state),
        index: meta.index,
        term: meta.term,
        version: meta.version,
        types,
    };
    println!("{}", summary.render());
    Ok(())
}

/// Object-safe postcard encoding, so the sizes of differently typed tables fit one list.
mod erased {
    pub trait Encode {
        fn encode(&self) -> Result<Vec<u8>, String>;
    }

    impl<T: serde::Serialize> Encode for T {
        fn encode(&self) -> Result<Vec<u8>, String> {
            postcard::to_stdvec(self).map_err(|e| e.to_string())
        }
    }
}

/// What `snapshot inspect` shows of an archive.
#[derive(Debug)]
struct Summary {
    id: String,
    /// Bytes of the encoded state.
    size: u64,
    index: u64,
    term: u64,
    version: u32,
    /// Per table: name, entries, encoded bytes.
    types: Vec<(&'static str, u64, u64)>,
}

impl Summary {
    /// Consul's layout: the archive's metadata, then a table of what it holds, largest first.
    fn render(&self) -> String {
        let mut types: Vec<_> = self
            .types
            .iter()
            .filter(|(_, count, _)| *count > 0)
            .collect();
        types.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
        let mut text = format!(
            " ID\t{}\n Size\t{}\n Index\t{}\n Term\t{}\n Version\t{}\n\n Type\tCount\tSize\t\n ----\t----\t----\t",
            self.id, self.size, self.index, self.term, self.version
        );
        for (name, count, size) in &types {
            text.push_str(&format!("\n {name}\t{count}\t{}\t", byte_size(*size)));
        }
        let total: u64 = types.iter().map(|(_, _, size)| size).sum();
        text.push_str(&format!(
            "\n ----\t----\t----\t\n Total\t\t{}\t",
            byte_size(total)
        ));
        tabwriter(&text, 8, 6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_print_like_consuls() {
        let summary = Summary {
            id: "2-11".into(),
            size: 4863,
            index: 11,
            term: 2,
            version: 1,
            types: vec![
                ("KVS", 3, 313),
                ("Register", 2, 1638),
                ("Intention", 0, 8),
                ("Autopilot", 1, 40),
            ],
        };
        assert_eq!(
            summary.render(),
            " ID           2-11\n \
             Size         4863\n \
             Index        11\n \
             Term         2\n \
             Version      1\n\
             \n \
             Type           Count      Size       \n \
             ----           ----       ----       \n \
             Register       2          1.6KB      \n \
             KVS            3          313B       \n \
             Autopilot      1          40B        \n \
             ----           ----       ----       \n \
             Total                     1.9KB      "
        );
    }
}
