//! A cap on JSON request bodies. poem-openapi reads a JSON body whole before it parses
//! it, so without a cap one request can make the process hold gigabytes; this reads at
//! most the cap and answers 413 past it. Other bodies (a file's bytes) stream as they are.

use poem::error::ReadBodyError;
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::server::error_response;

/// Wraps an API so that its JSON request bodies are at most `limit` bytes.
pub(crate) struct JsonBodyLimit<E> {
    pub(crate) inner: E,
    pub(crate) limit: usize,
}

impl<E: Endpoint> Endpoint for JsonBodyLimit<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> poem::Result<Response> {
        if is_json(&request) {
            if let Err(refused) = read_json_body(&mut request, self.limit).await {
                return Ok(refused);
            }
        }
        Ok(self.inner.call(request).await?.into_response())
    }
}

/// Whether the request says its body is JSON.
pub(crate) fn is_json(request: &Request) -> bool {
    request
        .content_type()
        .is_some_and(|content_type| content_type.to_ascii_lowercase().contains("json"))
}

/// Reads a JSON body of at most `limit` bytes into memory, where the API will parse it
/// from. `Err` is the answer when the body is refused.
pub(crate) async fn read_json_body(request: &mut Request, limit: usize) -> Result<(), Response> {
    match request.take_body().into_bytes_limit(limit).await {
        Ok(bytes) => {
            request.set_body(bytes);
            Ok(())
        }
        Err(ReadBodyError::PayloadTooLarge) => {
            let message = format!(
                "the JSON body is over the limit of {limit} bytes (server.max_json_body_bytes)"
            );
            Err(error_response(StatusCode::PAYLOAD_TOO_LARGE, message))
        }
        Err(error) => {
            let message = format!("cannot read the request body: {error}");
            Err(error_response(StatusCode::BAD_REQUEST, message))
        }
    }
}
