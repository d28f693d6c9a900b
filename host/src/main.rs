//! `wfhost`: the command-line host for wf workflow modules.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
