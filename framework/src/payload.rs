//! A response payload poem-openapi lacks: a body of any content type, which carries its
//! content type with it and is documented as `*/*`. A plugin that stores and serves
//! files of any type (as `files` does) answers with it, so that its document tells the
//! truth about what it sends.

use poem::{Body, IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{
    MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};

/// A body sent with the content type it was stored with.
#[derive(Debug)]
pub struct AnyContent {
    /// The value of the `Content-Type` header.
    pub content_type: String,
    /// The bytes, streamed.
    pub body: Body,
}

impl Payload for AnyContent {
    const CONTENT_TYPE: &'static str = "*/*";

    fn check_content_type(_content_type: &str) -> bool {
        true
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            format: Some("binary"),
            ..MetaSchema::new("string")
        }))
    }
}

impl IntoResponse for AnyContent {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(self.content_type)
            .body(self.body)
    }
}

impl ApiResponse for AnyContent {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: Self::CONTENT_TYPE,
                    schema: Self::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}
