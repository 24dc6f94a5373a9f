//! The client's one error type and its mapping to exit codes:
//! 0 ok, 1 not found or a failed condition, 2 usage or connection errors.

use std::process::ExitCode;

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments, or no way to find the admin API or its token.
    #[error("{0}")]
    Usage(String),
    /// The admin API cannot be reached (the message names the address).
    #[error("{0}")]
    Connect(String),
    /// The admin API answered with an error (`{"error": {"code", "message"}}`).
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// Something did not hold: an unexpected answer, a refused confirmation.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            // Not found, a failed check (409) or precondition (412), a failed operation (5xx).
            CliError::Api { status, .. } if matches!(status, 404 | 409 | 412) || *status >= 500 => {
                1
            }
            // 400, 401, 413...: the request as given cannot succeed.
            CliError::Api { .. } | CliError::Usage(_) | CliError::Connect(_) => 2,
            CliError::Failed(_) => 1,
        })
    }
}
