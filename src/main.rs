//! The `geofuse` executable: the command line lives in the library (`geofuse::cli`).

fn main() -> std::process::ExitCode {
    geofuse::cli::main()
}
