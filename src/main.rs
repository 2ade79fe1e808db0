use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    herald::cli::main().await
}
