use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use p4p_server::config::{Cli, Command, TokenCommand};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("P4P_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let outcome = match &cli.command {
        None => p4p_server::serve(&cli.database_url, &cli.serve).await,
        Some(Command::Token(TokenCommand::Create { role, label })) => {
            p4p_server::staff_token::create(&cli.database_url, *role, label)
                .await
                .map(|token| println!("{token}"))
        }
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("p4p-server: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
