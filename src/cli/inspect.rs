//! `tron-signer inspect`: the decoder's view of one raw_data as JSON on standard output.

use std::io::Read;
use std::process::ExitCode;

/// Prints the view of `arg` (hex, or `-` for standard input); exits 1 on a refusal, with
/// the refusal as JSON.
pub fn run(arg: &str) -> ExitCode {
    let input = if arg == "-" {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            let err = serde_json::json!({
                "error": { "code": "stdin_unreadable", "message": e.to_string() }
            });
            println!("{err}");
            return ExitCode::FAILURE;
        }
        s
    } else {
        arg.to_owned()
    };
    match crate::inspect::inspect_hex(&input) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", e.to_json());
            ExitCode::FAILURE
        }
    }
}
