//! The management API's bearer token: the configured one, or one generated at first
//! start into an owner-only file of the data folder. Every management request is
//! checked against it in constant time, whatever address it comes from; forwarding
//! headers are never read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::server::error_response;

/// The file, in the data folder, that holds a generated token.
const TOKEN_FILE: &str = "manage-token";

/// Where the token came from, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenOrigin {
    /// `[manage] token` (or `KNEEDEEP_MANAGE__TOKEN`).
    Config,
    /// The file generated at the first start without a configured token; `created`
    /// when this start generated it.
    File { path: PathBuf, created: bool },
}

/// The token of this process and where it came from.
pub(crate) fn resolve_token(config: &Config) -> Result<(String, TokenOrigin), String> {
    if let Some(token) = config.manage.token.as_deref().map(str::trim) {
        if token.is_empty() {
            return Err(
                "manage.token is empty: set a token, or remove the key to have one generated"
                    .to_owned(),
            );
        }
        return Ok((token.to_owned(), TokenOrigin::Config));
    }

    let path = config.server.data_dir.join(TOKEN_FILE);
    let (token, created) = read_or_create(&path).map_err(|error| {
        format!(
            "cannot keep the management token in {}: {error}",
            path.display()
        )
    })?;
    Ok((token, TokenOrigin::File { path, created }))
}

/// Reads the token file, or creates it (mode 0600) with 32 random bytes in hex; the
/// token, and whether it was created.
fn read_or_create(path: &Path) -> std::io::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(token) if !token.trim().is_empty() => return Ok((token.trim().to_owned(), false)),
        Ok(_) => {
            return Err(std::io::Error::other(
                "the file is empty; delete it to have a new token generated",
            ));
        }
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        Err(_) => {}
    }

    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)?;
    }
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    let token = hex::encode(bytes);

    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    Ok((token, true))
}

/// Answers 401 unless the request carries `Authorization: Bearer <token>`.
pub(crate) struct RequireToken<E> {
    pub(crate) token: Arc<str>,
    pub(crate) inner: E,
}

impl<E: Endpoint> Endpoint for RequireToken<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let Some(presented) = presented else {
            return Ok(unauthorized(
                "the management API needs an Authorization: Bearer <token> header",
            ));
        };
        if !bool::from(presented.as_bytes().ct_eq(self.token.as_bytes())) {
            return Ok(unauthorized("the bearer token is not the management token"));
        }

        Ok(self.inner.call(request).await?.into_response())
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response = error_response(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_kept_owner_only_and_reused() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("data").join(TOKEN_FILE);

        let (first, created) = read_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(first.len(), 64);
        assert_eq!(read_or_create(&path).unwrap(), (first, false));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_empty_token_file_is_an_error_not_an_open_door() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join(TOKEN_FILE);
        std::fs::write(&path, "\n").unwrap();
        assert!(read_or_create(&path).is_err());
    }
}
