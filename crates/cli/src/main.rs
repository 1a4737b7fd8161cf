//! `gatehouse`: `up` runs the platform; every other command is a client of the platform's Google-shaped REST APIs,
//! speaking gcloud's grammar so commands copied from Google's docs run as they are (also through a link named `gcloud`).

#![forbid(unsafe_code)]

/// `println!` for a command's output: a reader that has gone (`gatehouse … | head -1`) ends the command quietly, as
/// gcloud does, instead of a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            crate::stdout_failed(&e);
        }
    }};
}

/// `print!` for a command's output (see [`outln`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            crate::stdout_failed(&e);
        }
    }};
}

mod args;
mod client;
mod commands;
mod format;
mod home;
mod platform;
mod up;

use clap::Parser;
use std::process::ExitCode;

/// Exit status of a command that failed.
const FAILURE: u8 = 1;

fn main() -> ExitCode {
    // An instance's init step (`instance-init[-pid1] -- PROGRAM ARGS…`): the workload's own arguments follow, as given.
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if raw.get(2).is_some_and(|a| a == "--") {
        let step = match raw.get(1).and_then(|a| a.to_str()) {
            Some(runtime::init::SUBCOMMAND) => Some(runtime::init::instance_init as fn(&[_]) -> _),
            Some(runtime::init::SUBCOMMAND_PID1) => Some(runtime::init::instance_init_pid1 as fn(&[_]) -> _),
            _ => None,
        };
        if let Some(step) = step {
            return match step(&raw[3..]) {
                Ok(code) => ExitCode::from(code),
                Err(why) => {
                    eprintln!("{why}");
                    ExitCode::from(127)
                }
            };
        }
    }
    let mut argv: Vec<String> = std::env::args().collect();
    // `gcloud beta run …` / `gcloud alpha …`, as Google's docs often write them: the same commands here. (Finding
    // the first word builds clap's command tree, so only when one of the words is there at all.)
    let release = |a: &String| a == "beta" || a == "alpha";
    if argv.iter().any(release) {
        if let Some(i) = args::first_word(&argv[1..]).map(|i| i + 1).filter(|i| release(&argv[*i])) {
            argv.remove(i);
        }
    }
    let program = program_name(&argv);
    if let Err(msg) = args::check_dashes(&argv[1..]) {
        eprintln!("ERROR: ({program}) {msg}");
        return ExitCode::from(2);
    }
    let cli = match args::Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", args::usage_error(program, &argv[1..], &e));
            return ExitCode::from(2);
        }
    };
    let command_path = format!("{program}.{}", cli.command.path());
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ERROR: ({command_path}) {}", client::describe_error(&e));
            ExitCode::from(FAILURE)
        }
    }
}

/// Writing the command's output failed: when the reader is gone, the command is over (exit 0, as `yes | head`'s writer
/// ends unseen); any other failure is reported.
fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("ERROR: cannot write the output: {e}");
    std::process::exit(i32::from(FAILURE));
}

/// `gcloud` when invoked through a link of that name, else `gatehouse`, as error prefixes show.
fn program_name(argv: &[String]) -> &'static str {
    let invoked = argv.first().map(std::path::Path::new).and_then(|p| p.file_name()).and_then(|f| f.to_str());
    if invoked == Some("gcloud") {
        "gcloud"
    } else {
        "gatehouse"
    }
}
