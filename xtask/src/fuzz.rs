//! `cargo xtask fuzz [--seconds N] [--target NAME]`: runs every fuzz target of `fuzz/` (or only
//! NAME) for N seconds each (default 30) and prints a table: target, seconds, executions,
//! corpus size, result. Exits non-zero when a target found a crash.
//!
//! Set-up on a fresh machine: a nightly toolchain must be installed (cargo-fuzz needs it; the
//! error says how to get one), and `cargo-fuzz` is installed with `cargo install --locked` when
//! `cargo fuzz` is missing. Builds go to `fuzz/target`, never to the shared target directory:
//! everything there is built with sanitizer flags that would invalidate the shared builds.
//!
//! Corpora: the seeds in `fuzz/corpus/<target>` are committed and only read; what libFuzzer
//! finds goes to `fuzz/corpus-run/<target>` (git-ignored, kept between runs), crash inputs to
//! `fuzz/artifacts/<target>` and each run's libFuzzer log to `fuzz/target/fuzz-logs/`.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

const DEFAULT_SECONDS: u64 = 30;

/// Time a run may take beyond its fuzzing time (start-up, loading the corpus, the final
/// report) before it is killed.
const GRACE: Duration = Duration::from_secs(120);

const USAGE: &str = "usage: cargo xtask fuzz [--seconds N] [--target NAME]";

#[derive(Debug, PartialEq, Eq)]
struct Options {
    seconds: u64,
    target: Option<String>,
}

fn parse_args(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        seconds: DEFAULT_SECONDS,
        target: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .with_context(|| format!("{flag} needs a value; {USAGE}"))
        };
        match flag {
            "--seconds" => {
                let text = value()?;
                options.seconds = text
                    .parse()
                    .ok()
                    .filter(|&s| s > 0)
                    .with_context(|| format!("--seconds {text:?}: a positive whole number"))?;
            }
            "--target" => options.target = Some(value()?),
            other => bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    Ok(options)
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if crate::is_help(args) {
        println!(
            "{USAGE}\n\nRuns each fuzz target of fuzz/ for N seconds (default {DEFAULT_SECONDS})."
        );
        return Ok(());
    }
    let options = parse_args(args)?;
    let fuzz_dir = crate::workspace_root().join("fuzz");
    ensure_tools()?;

    let all = list_targets(&fuzz_dir)?;
    let targets = match &options.target {
        None => all,
        Some(name) if all.contains(name) => vec![name.clone()],
        Some(name) => bail!("no fuzz target {name:?}; targets: {}", all.join(", ")),
    };

    // One build for every target, so that no target's time limit includes compiling.
    eprintln!(
        "building fuzz targets into {}",
        fuzz_dir.join("target").display()
    );
    crate::run(cargo_fuzz(&fuzz_dir).arg("build"))?;

    let logs = fuzz_dir.join("target/fuzz-logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let mut outcomes = Vec::new();
    for target in &targets {
        eprintln!("fuzzing {target} for {}s", options.seconds);
        let outcome = run_target(&fuzz_dir, &logs, target, options.seconds)?;
        eprintln!("{target}: {}", outcome.result);
        outcomes.push(outcome);
    }

    print!("{}", table(&outcomes));
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.clean)
        .map(|o| o.target.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("fuzzing found problems in: {}", failed.join(", "));
    }
    Ok(())
}

/// `cargo +nightly fuzz` in `fuzz/`, with the fuzz project's own target directory.
fn cargo_fuzz(fuzz_dir: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(fuzz_dir)
        .env_remove("CARGO_TARGET_DIR")
        .args(["+nightly", "fuzz"]);
    cmd
}

/// Checks for a nightly toolchain and installs cargo-fuzz when it is missing.
fn ensure_tools() -> anyhow::Result<()> {
    let nightly = Command::new("cargo")
        .args(["+nightly", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !nightly.is_ok_and(|s| s.success()) {
        bail!(
            "cargo-fuzz needs a nightly toolchain, and `cargo +nightly --version` fails; \
             install one with `rustup toolchain install nightly`"
        );
    }
    let fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !fuzz.is_ok_and(|s| s.success()) {
        eprintln!("installing cargo-fuzz");
        crate::run(Command::new("cargo").env_remove("CARGO_TARGET_DIR").args([
            "install",
            "cargo-fuzz",
            "--locked",
        ]))?;
    }
    Ok(())
}

fn list_targets(fuzz_dir: &Path) -> anyhow::Result<Vec<String>> {
    let output = cargo_fuzz(fuzz_dir)
        .arg("list")
        .output()
        .context("running cargo fuzz list")?;
    if !output.status.success() {
        bail!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let targets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        bail!("cargo fuzz list names no targets in {}", fuzz_dir.display());
    }
    Ok(targets)
}

#[derive(Debug)]
struct Outcome {
    target: String,
    seconds: u64,
    executions: Option<u64>,
    corpus: Option<u64>,
    clean: bool,
    result: String,
}

fn run_target(fuzz_dir: &Path, logs: &Path, target: &str, seconds: u64) -> anyhow::Result<Outcome> {
    let seeds = fuzz_dir.join("corpus").join(target);
    let working = fuzz_dir.join("corpus-run").join(target);
    std::fs::create_dir_all(&working).with_context(|| format!("creating {}", working.display()))?;
    let log_path = logs.join(format!("{target}.log"));
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let log_err = log.try_clone().context("duplicating the log file")?;

    // libFuzzer adds what it finds to the first corpus directory only: the seeds stay as they are.
    let mut cmd = cargo_fuzz(fuzz_dir);
    cmd.args(["run", target])
        .arg(&working)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(["-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1"])
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("running {cmd:?}"))?;
    let limit = Duration::from_secs(seconds) + GRACE;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for cargo fuzz")? {
            break Some(status);
        }
        if started.elapsed() > limit {
            // Best effort: the run is reported as timed out whether or not the kill lands.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&log_path)
        .with_context(|| format!("reading {}", log_path.display()))?;
    let stats = Stats::parse(&text);
    let corpus = stats.corpus.or_else(|| count_files(&working));
    let (clean, result) = match status {
        Some(status) if status.success() => (true, "clean".to_owned()),
        Some(status) => {
            // `cargo fuzz run` builds again first: a crate that stopped compiling is no crash.
            let what = match &stats.artifact {
                Some(path) => format!("crash: {path}"),
                None if text.contains("failed to build fuzz script") => "build failed".to_owned(),
                None => format!("failed ({status})"),
            };
            (false, format!("{what} (log: {})", log_path.display()))
        }
        None => (
            false,
            format!("killed after {limit:?} (log: {})", log_path.display()),
        ),
    };
    Ok(Outcome {
        target: target.to_owned(),
        seconds,
        executions: stats.executions,
        corpus,
        clean,
        result,
    })
}

fn count_files(dir: &Path) -> Option<u64> {
    let entries = std::fs::read_dir(dir).ok()?;
    Some(entries.flatten().count() as u64)
}

/// What a libFuzzer log says about its run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stats {
    executions: Option<u64>,
    /// Units in the corpus at the last status line.
    corpus: Option<u64>,
    /// Where the crashing input was written.
    artifact: Option<String>,
}

impl Stats {
    fn parse(log: &str) -> Stats {
        let mut stats = Stats::default();
        for line in log.lines() {
            if let Some(rest) = line.strip_prefix("stat::number_of_executed_units:") {
                stats.executions = rest.trim().parse().ok().or(stats.executions);
            } else if let Some(rest) = line.strip_prefix('#') {
                // `#12345\tDONE   cov: 1 ft: 2 corp: 34/567b ...`, and the same shape while running.
                let mut words = rest.split_whitespace();
                let count = words.next().and_then(|n| n.parse::<u64>().ok());
                let corp = line
                    .split_whitespace()
                    .skip_while(|w| *w != "corp:")
                    .nth(1)
                    .and_then(|c| c.split('/').next())
                    .and_then(|c| c.parse().ok());
                if corp.is_some() {
                    stats.corpus = corp;
                }
                if stats.executions.is_none() || line.contains("DONE") {
                    stats.executions = count.or(stats.executions);
                }
            }
            if let Some((_, path)) = line.split_once("Test unit written to ") {
                stats.artifact = Some(path.trim().to_owned());
            }
        }
        stats
    }
}

fn table(outcomes: &[Outcome]) -> String {
    let number = |n: Option<u64>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
    let rows: Vec<[String; 5]> = outcomes
        .iter()
        .map(|o| {
            [
                o.target.clone(),
                o.seconds.to_string(),
                number(o.executions),
                number(o.corpus),
                o.result.clone(),
            ]
        })
        .collect();
    let header = ["target", "seconds", "executions", "corpus", "result"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header);
    for row in &rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{parse_args, Options, Stats, DEFAULT_SECONDS};

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_flags() {
        assert_eq!(
            parse_args(&args("")).unwrap(),
            Options {
                seconds: DEFAULT_SECONDS,
                target: None
            }
        );
        assert_eq!(
            parse_args(&args("--seconds 5 --target=csr")).unwrap(),
            Options {
                seconds: 5,
                target: Some("csr".into())
            }
        );
        assert!(parse_args(&args("--seconds 0")).is_err());
        assert!(parse_args(&args("--seconds")).is_err());
        assert!(parse_args(&args("--jobs 2")).is_err());
    }

    #[test]
    fn reads_libfuzzer_logs() {
        let log = "INFO: Seed: 1\n\
            #2\tINITED cov: 10 ft: 11 corp: 5/120b exec/s: 0 rss: 40Mb\n\
            #4096\tpulse  cov: 50 ft: 60 corp: 20/1024b lim: 40 exec/s: 2048 rss: 41Mb\n\
            #61234\tDONE   cov: 80 ft: 99 corp: 31/2Kb lim: 100 exec/s: 3061 rss: 45Mb\n\
            Done 61234 runs in 21 second(s)\n\
            stat::number_of_executed_units: 61235\n";
        assert_eq!(
            Stats::parse(log),
            Stats {
                executions: Some(61235),
                corpus: Some(31),
                artifact: None
            }
        );
        let crash = "#300\tNEW    cov: 5 ft: 5 corp: 3/30b\n\
            ==1== ERROR: libFuzzer: deadly signal\n\
            artifact_prefix='/w/fuzz/artifacts/csr/'; Test unit written to /w/fuzz/artifacts/csr/crash-ab12\n";
        let stats = Stats::parse(crash);
        assert_eq!(
            stats.artifact.as_deref(),
            Some("/w/fuzz/artifacts/csr/crash-ab12")
        );
        assert_eq!(stats.executions, Some(300));
    }
}
