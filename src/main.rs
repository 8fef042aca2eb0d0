//! The `redactd` binary: everything lives in the library; this is the edge
//! where errors become messages and exit codes.

fn main() {
    std::process::exit(redactd::cli::main());
}
