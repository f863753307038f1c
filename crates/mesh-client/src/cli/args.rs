//! Consul's command lines as clap expects them. Consul's commands parse flags with Go's `flag`
//! package: long flags take one dash (`-http-addr`), and parsing stops at the first argument
//! that is not a flag, so what follows (a value starting with `-`, a child command's own flags
//! in `lock PREFIX ls -la`) is passed on as it is.

/// Rewrites `args` (program name first) for `command`: the subcommand path as given,
/// single-dash long flags as double-dash ones (with the value of a flag that takes one), and
/// everything from the first argument that is not a flag after a `--`.
pub fn go_style(command: &clap::Command, args: Vec<String>) -> Vec<String> {
    let mut args = args.into_iter();
    let mut out: Vec<String> = args.next().into_iter().collect();
    let mut rest: Vec<String> = args.collect();
    rest.reverse();
    let mut command = command;
    while let Some(sub) = rest.last().and_then(|name| command.find_subcommand(name)) {
        command = sub;
        out.extend(rest.pop());
    }
    while let Some(arg) = rest.pop() {
        let Some(name) = flag_name(&arg) else {
            // The first argument that is not a flag: it and the rest are positional.
            if arg != "--" {
                out.push("--".to_owned());
            }
            out.push(arg);
            break;
        };
        let consumes_next = !arg.contains('=') && takes_separate_value(command, name);
        out.push(if name.chars().count() > 1 && !arg.starts_with("--") {
            format!("-{arg}")
        } else {
            arg
        });
        if consumes_next {
            out.extend(rest.pop());
        }
    }
    rest.reverse();
    out.extend(rest);
    out
}

/// `http-addr` from `-http-addr`, `--http-addr` or `-http-addr=x`; `None` for what is no
/// flag (`-`, `--`, `-1`, `value`).
fn flag_name(arg: &str) -> Option<&str> {
    let name = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    let name = name.split_once('=').map_or(name, |(name, _)| name);
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        .then_some(name)
}

/// Whether flag `name` of `command` takes its value from the next argument.
fn takes_separate_value(command: &clap::Command, name: &str) -> bool {
    command
        .get_arguments()
        .find(|arg| {
            arg.get_long() == Some(name)
                || (name.chars().count() == 1 && arg.get_short() == name.chars().next())
        })
        .is_some_and(|arg| arg.get_action().takes_values() && !arg.is_require_equals_set())
}

#[cfg(test)]
mod tests {
    use clap::{Arg, ArgAction, Command};

    use super::*;

    fn check(args: &[&str], expected: &[&str]) {
        let command = Command::new("mesh-client")
            .subcommand(
                Command::new("kv").subcommand(
                    Command::new("put")
                        .arg(Arg::new("flags").long("flags"))
                        .arg(Arg::new("cas").long("cas").action(ArgAction::SetTrue))
                        .arg(Arg::new("args").num_args(0..)),
                ),
            )
            .subcommand(
                Command::new("lock")
                    .arg(Arg::new("n").short('n'))
                    .arg(
                        Arg::new("shell")
                            .long("shell")
                            .num_args(0..=1)
                            .require_equals(true),
                    )
                    .arg(Arg::new("args").num_args(0..)),
            );
        let args = args.iter().map(|s| s.to_string()).collect();
        assert_eq!(go_style(&command, args), expected);
    }

    #[test]
    fn flags_end_at_the_first_argument_that_is_not_one() {
        check(
            &["m", "kv", "put", "-flags", "42", "-cas", "key", "-value"],
            &[
                "m", "kv", "put", "--flags", "42", "--cas", "--", "key", "-value",
            ],
        );
        check(
            &["m", "kv", "put", "-flags=42", "key", "-"],
            &["m", "kv", "put", "--flags=42", "--", "key", "-"],
        );
        check(
            &["m", "lock", "-n", "2", "-shell", "app", "ls", "-la"],
            &["m", "lock", "-n", "2", "--shell", "--", "app", "ls", "-la"],
        );
        check(
            &["m", "lock", "-shell=false", "--", "app", "-x"],
            &["m", "lock", "--shell=false", "--", "app", "-x"],
        );
        // Unknown flags are left for clap to refuse.
        check(
            &["m", "kv", "put", "-bogus", "k"],
            &["m", "kv", "put", "--bogus", "--", "k"],
        );
        check(&["m", "-h"], &["m", "-h"]);
        check(&["m", "kv", "-help"], &["m", "kv", "--help"]);
    }
}
