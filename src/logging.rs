//! Log set-up: `tracing` to stderr, human-readable or JSON (`--log-format json`).
//! The level comes from `RUST_LOG` (default `info`). Colours only when
//! stderr is a terminal: a log file or journal gets plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Calling it twice is harmless.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,symphonia=warn,symphonia_core=warn,symphonia_format_ogg=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if json {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.with_target(false).try_init()
    };
}
