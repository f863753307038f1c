//! `connect ca get-config|set-config`: the Connect CA's configuration.

use std::path::PathBuf;

use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use super::text::go_json;
use super::{fail, HttpArgs};

#[derive(Debug, Subcommand)]
pub enum ConnectCommand {
    /// Shows or changes the Connect CA.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Displays the current Connect CA configuration.
    GetConfig(GetConfigArgs),
    /// Modifies the Connect CA configuration (a new root key rotates the root).
    SetConfig(SetConfigArgs),
}

#[derive(Debug, clap::Args)]
pub struct GetConfigArgs {
    #[command(flatten)]
    http: HttpArgs,
}

#[derive(Debug, clap::Args)]
pub struct SetConfigArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// The configuration: JSON as `get-config` prints it.
    #[arg(long = "config-file")]
    config_file: Option<PathBuf>,
    /// Rotate even if the current CA cannot cross-sign the new root.
    #[arg(long = "force-without-cross-signing")]
    force_without_cross_signing: bool,
}

pub async fn run(command: ConnectCommand) -> anyhow::Result<()> {
    let ConnectCommand::Ca { command } = command;
    match command {
        CaCommand::GetConfig(args) => get_config(args).await,
        CaCommand::SetConfig(args) => set_config(args).await,
    }
}

async fn get_config(args: GetConfigArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    let config = api
        .get_json("/v1/connect/ca/configuration")
        .await
        .map_err(|err| fail(format!("Error querying CA configuration: {err:#}")))?;
    println!("{}", go_json(&config, "\t"));
    Ok(())
}

async fn set_config(args: SetConfigArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    let Some(path) = args.config_file else {
        return Err(fail("The -config-file flag is required"));
    };
    let text =
        std::fs::read(&path).map_err(|err| fail(format!("Error reading config file: {err}")))?;
    let mut config: Value = serde_json::from_slice(&text)
        .map_err(|err| fail(format!("Error parsing config file: {err}")))?;
    let Some(fields) = config.as_object_mut() else {
        return Err(fail("Error parsing config file: expected a JSON object"));
    };
    fields.insert(
        "ForceWithoutCrossSigning".into(),
        json!(args.force_without_cross_signing),
    );
    api.put_json(Method::PUT, "/v1/connect/ca/configuration", &config)
        .await
        .map_err(|err| fail(format!("Error setting CA configuration: {err:#}")))?;
    println!("Configuration updated!");
    Ok(())
}
