use std::process::ExitCode;

use clap::Parser;
use node_drain::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    node_drain::telemetry::init(cli.global.log_format);
    // actix actors need its System; run it on a multi-thread tokio runtime.
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime")
    });
    let code = system.block_on(node_drain::commands::run(cli));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
