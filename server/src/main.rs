//! `orbit`: the server binary. See [`orbit_server::cli`].

fn main() -> std::process::ExitCode {
    orbit_server::cli::main()
}
