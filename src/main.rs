//! `cache-sync`: parse the command line, set up logging, run the command, exit with its code.

use clap::Parser;
use std::process::ExitCode;
use tickstock_cache_sync::cli::execute;
use tickstock_cache_sync::config::Config;
use tickstock_cache_sync::{memory, telemetry};

// The catalog builds and drops hundreds of thousands of small JSON nodes per run; mimalloc
// roughly halves the time the system allocator spends on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    memory::avoid_transparent_huge_pages();
    let config = Config::parse();
    telemetry::init(config.log_format);
    match execute(config).await {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(error) => {
            let mut message = format!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                let text = cause.to_string();
                if !message.contains(&text) {
                    message.push_str(&format!("\n  caused by: {text}"));
                }
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::from(error.exit() as u8)
        }
    }
}
