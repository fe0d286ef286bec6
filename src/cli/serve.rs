//! `tron-signer serve` and `tron-signer dev`: the commands that run the gRPC service.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::process::{init_logging, protect_key_memory, report, runtime};
use crate::config::{Config, Listen};
use crate::service::run;

/// Serves with the configuration at `config` until SIGTERM or Ctrl-C.
pub fn serve(config: &Path) -> ExitCode {
    init_logging();
    protect_key_memory();
    let result = (|| {
        let cfg = Config::load(config).map_err(|e| (e.code(), e.to_string()))?;
        let rt = runtime()?;
        rt.block_on(async {
            let tls = run::prepare_transport(&cfg)?;
            let core = run::build_core(&cfg).await?;
            run::run(&cfg, core, tls, run::termination()).await
        })
        .map_err(|e| (e.code(), e.to_string()))
    })();
    if let Err((code, message)) = &result {
        tracing::error!(code, "{message}");
    }
    report(result)
}

/// The quickstart on development defaults under `dir`.
pub fn dev(dir: PathBuf, listen: Listen, exit_after_demo: bool) -> ExitCode {
    init_logging();
    protect_key_memory();
    let result = runtime().and_then(|rt| {
        rt.block_on(crate::dev::run_dev(&dir, listen, exit_after_demo))
            .map_err(|e| ("dev_failed", e.to_string()))
    });
    report(result)
}
