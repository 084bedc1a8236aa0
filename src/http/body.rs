//! Request bodies: JSON objects only. serde reads a struct from a JSON array too (positionally:
//! `["themes", true]` would be mode `themes` with `force: true`), so a body is parsed as JSON
//! first and refused unless it is an object; only then is it read into its type.

use super::error::ApiError;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A body that must be a JSON object, read into `T`.
pub struct ObjectBody<T>(pub T);

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `T` from a parsed body, refusing anything but an object.
fn from_object<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::BadRequest(format!(
            "the request body must be a JSON object of named fields, not {}",
            kind(&value)
        )));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ObjectBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = <Json<Value> as FromRequest<S>>::from_request(request, state).await?;
        from_object(value).map(ObjectBody)
    }
}

/// An optional body (`Option<ObjectBody<T>>`): absent when the request has no JSON content
/// type; with one, it must be an object like a required body.
impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequest<S> for ObjectBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let value: Option<Json<Value>> =
            <Json<Value> as OptionalFromRequest<S>>::from_request(request, state).await?;
        value
            .map(|Json(v)| from_object(v).map(ObjectBody))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::from_object;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        mode: String,
        #[serde(default)]
        force: bool,
    }

    #[test]
    fn only_objects_are_read_into_a_body() {
        assert_eq!(
            from_object::<Body>(json!({"mode": "themes"})).unwrap(),
            Body {
                mode: "themes".to_owned(),
                force: false
            }
        );
        // serde alone would read this as mode `themes`, force true.
        let refused = from_object::<Body>(json!(["themes", true])).unwrap_err();
        assert!(refused.to_string().contains("not an array"), "{refused}");
        for other in [json!("themes"), json!(1), json!(null), json!(true)] {
            assert!(from_object::<Body>(other).is_err());
        }
    }
}
