//! `mas-cli`: the built-in Matrix Authentication Service's command line.

fn main() -> std::process::ExitCode {
    mas::cli::main()
}
