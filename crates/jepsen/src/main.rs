//! `mesh-jepsen`: records a history of KV operations against a real 3-server mesh cluster while
//! a nemesis kills and pauses servers (and, with `--partitions`, cuts them off the network),
//! then checks it for linearizability.
//!
//! Thin: parses the command line and hands over to the `jepsen` library. Exit status: 0 when
//! the history is linearizable, 1 on an anomaly, 2 when the checker ran out of budget, 3 when
//! the run itself failed, 4 when `--partitions` was asked for but network namespaces cannot be
//! used here (not root, no `ip`).

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = jepsen::RunArgs::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("mesh-jepsen: building the tokio runtime: {err}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(jepsen::run(args)) {
        Ok(jepsen::Finding::Linearizable) => ExitCode::SUCCESS,
        Ok(jepsen::Finding::Anomalies) => ExitCode::from(1),
        Ok(jepsen::Finding::Undecided) => ExitCode::from(2),
        Err(err) => {
            eprintln!("mesh-jepsen: {err:#}");
            if err
                .downcast_ref::<jepsen::NamespacesUnavailable>()
                .is_some()
            {
                ExitCode::from(4)
            } else {
                ExitCode::from(3)
            }
        }
    }
}
