//! axum extractors for the values the payload layer puts in extensions.

use std::convert::Infallible;
use std::fmt;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::{RawPayload, TaskEvent};

/// Rejection of the [`TaskEvent`] and [`RawPayload`] extractors: the route
/// has no [`PayloadLayer`](crate::PayloadLayer) in front of it.
///
/// This is a programming error, so it answers `500 Internal Server Error`
/// naming the missing type (and the provider retries, which gives a fixed
/// deployment a chance to receive the event).
#[derive(Debug, Clone, Copy)]
pub struct MissingPayload {
    type_name: &'static str,
}

impl fmt::Display for MissingPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Missing request extension: `{}` was not found. \
             Is `taskhook::PayloadLayer` applied to this route?",
            self.type_name
        )
    }
}

impl std::error::Error for MissingPayload {}

impl IntoResponse for MissingPayload {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

macro_rules! extractor {
    ($ty:ty) => {
        impl<S: Send + Sync> FromRequestParts<S> for $ty {
            type Rejection = MissingPayload;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
                parts
                    .extensions
                    .get::<$ty>()
                    .cloned()
                    .ok_or(MissingPayload {
                        type_name: std::any::type_name::<$ty>(),
                    })
            }
        }

        impl<S: Send + Sync> OptionalFromRequestParts<S> for $ty {
            type Rejection = Infallible;

            async fn from_request_parts(
                parts: &mut Parts,
                _: &S,
            ) -> Result<Option<Self>, Self::Rejection> {
                Ok(parts.extensions.get::<$ty>().cloned())
            }
        }
    };
}

extractor!(TaskEvent);
extractor!(RawPayload);
