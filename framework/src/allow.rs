//! The `Allow` header of a 405 answer (RFC 9110 requires it): the methods that a path of
//! an OpenAPI service takes, read once from the document the service was built with.

use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use serde_json::Value;

use crate::server::error_response;

/// One path template of a document, as segments: a literal, or `{parameter}`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter,
}

/// Each path template of a document with the methods it takes, as the header says them.
#[derive(Debug, Default)]
pub(crate) struct AllowedMethods {
    routes: Vec<(Vec<Segment>, String)>,
}

/// The operations an OpenAPI path item may hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

impl AllowedMethods {
    /// Reads the `paths` of a document, relative to its server prefix.
    pub(crate) fn from_document(document: &Value) -> Self {
        let Some(paths) = document.get("paths").and_then(Value::as_object) else {
            return AllowedMethods::default();
        };
        let routes = paths
            .iter()
            .map(|(path, item)| {
                let methods: Vec<String> = METHODS
                    .iter()
                    .filter(|method| item.get(**method).is_some())
                    .map(|method| method.to_uppercase())
                    .collect();
                (segments(path), methods.join(", "))
            })
            .collect();
        AllowedMethods { routes }
    }

    /// Adds `Allow` to a 405 answer for `path`; other answers pass unchanged.
    pub(crate) fn add_allow_header(&self, path: &str, mut response: Response) -> Response {
        if response.status() != StatusCode::METHOD_NOT_ALLOWED {
            return response;
        }
        if let Some(value) = self
            .for_path(path)
            .and_then(|methods| header::HeaderValue::from_str(methods).ok())
        {
            response.headers_mut().insert(header::ALLOW, value);
        }
        response
    }

    /// The methods of the path template that `path` matches.
    fn for_path(&self, path: &str) -> Option<&str> {
        let requested: Vec<&str> = path.trim_matches('/').split('/').collect();
        self.routes.iter().find_map(|(template, methods)| {
            let matches = template.len() == requested.len()
                && template
                    .iter()
                    .zip(&requested)
                    .all(|(segment, given)| match segment {
                        Segment::Literal(literal) => literal == given,
                        Segment::Parameter => !given.is_empty(),
                    });
            matches.then_some(methods.as_str())
        })
    }
}

fn segments(template: &str) -> Vec<Segment> {
    template
        .trim_matches('/')
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                Segment::Parameter
            } else {
                Segment::Literal(segment.to_owned())
            }
        })
        .collect()
}

/// Wraps an OpenAPI service so that its 405 answers say which methods are allowed.
pub(crate) struct WithAllow<E> {
    pub(crate) inner: E,
    pub(crate) allowed: Arc<AllowedMethods>,
}

impl<E: Endpoint> Endpoint for WithAllow<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        // Kept for a 405 only; cloning a URI shares its bytes.
        let uri = request.uri().clone();
        let response = match self.inner.call(request).await {
            Ok(output) => output.into_response(),
            Err(error) if error.status() == StatusCode::METHOD_NOT_ALLOWED => {
                error_response(StatusCode::METHOD_NOT_ALLOWED, &error)
            }
            Err(error) => return Err(error),
        };
        Ok(self.allowed.add_allow_header(uri.path(), response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_path_gets_the_methods_of_the_template_it_matches() {
        let document = json!({ "paths": {
            "/notes": { "get": {}, "post": {} },
            "/notes/{id}": { "get": {}, "put": {}, "delete": {} },
        }});
        let allowed = AllowedMethods::from_document(&document);
        assert_eq!(allowed.for_path("/notes"), Some("GET, POST"));
        assert_eq!(allowed.for_path("/notes/18ab"), Some("GET, PUT, DELETE"));
        assert_eq!(allowed.for_path("/notes/18ab/x"), None);
        assert_eq!(allowed.for_path("/other"), None);
    }
}
