//! `/v1/resource_type`: list, create, show, change (JSON patch) and delete
//! resource types.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use indexer::{AttributeSchema, AttributeType, IndexerError, ResourceType, ResourceTypeUpdate};
use serde_json::{json, Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Authenticated, BaseUrl, JsonBody};
use super::json::Json;
use super::openapi as doc;
use super::resource::{key_error, location, read_json, value_error};
use super::{created, path_segment, ApiError};
use crate::app::AppState;
use crate::auth::Target;

/// `max_length` of a string attribute defined without one (as Gnocchi).
const DEFAULT_MAX_LENGTH: u32 = 256;

/// Longest resource type name.
const MAX_NAME_LEN: usize = 255;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
}

/// Integral bounds render as integers, as Gnocchi's do.
fn bound(value: Option<f64>) -> Value {
    match value {
        None => Value::Null,
        Some(number) if number.fract() == 0.0 && number.abs() < 9.0e15 => json!(number as i64),
        Some(number) => json!(number),
    }
}

fn attribute_json(attribute: &AttributeSchema) -> Value {
    match &attribute.attr_type {
        AttributeType::String {
            min_length,
            max_length,
        } => json!({
            "type": "string",
            "required": attribute.required,
            "min_length": min_length,
            "max_length": max_length,
        }),
        AttributeType::Number { min, max } => json!({
            "type": "number",
            "required": attribute.required,
            "min": bound(*min),
            "max": bound(*max),
        }),
        AttributeType::Uuid => json!({"type": "uuid", "required": attribute.required}),
        AttributeType::Bool => json!({"type": "bool", "required": attribute.required}),
        AttributeType::Datetime => json!({"type": "datetime", "required": attribute.required}),
    }
}

fn attributes_json(rt: &ResourceType) -> Value {
    Value::Object(
        rt.attributes
            .iter()
            .map(|(name, attribute)| (name.clone(), attribute_json(attribute)))
            .collect(),
    )
}

fn type_json(rt: &ResourceType) -> Value {
    json!({
        "name": rt.name,
        "state": serde_json::to_value(rt.state).unwrap_or(Value::Null),
        "attributes": attributes_json(rt),
    })
}

/// Definition failures found by the indexer, worded as Gnocchi's.
fn type_error(error: IndexerError) -> ApiError {
    match error {
        IndexerError::InvalidResourceType(reason) => {
            ApiError::bad_request(format!("Invalid input: {reason}"))
        }
        other => other.into(),
    }
}

fn child(path: &[String], key: &str) -> Vec<String> {
    let mut out = path.to_vec();
    out.push(key.to_owned());
    out
}

/// A voluptuous failure while reading a definition: rendered structured at
/// the top level, as text inside a patch (as Gnocchi does).
#[derive(Debug)]
struct Bad {
    path: Vec<String>,
    message: String,
    /// About a key (missing or extra) rather than a value.
    key: bool,
}

impl Bad {
    fn value(path: &[String], message: impl Into<String>) -> Self {
        Self {
            path: path.to_vec(),
            message: message.into(),
            key: false,
        }
    }

    fn key(path: &[String], message: &str) -> Self {
        Self {
            path: path.to_vec(),
            message: message.to_owned(),
            key: true,
        }
    }

    fn reason(&self) -> String {
        if self.path.is_empty() {
            self.message.clone()
        } else if self.key {
            format!("{} @ {}", self.message, location(&self.path))
        } else {
            format!(
                "{} for dictionary value @ {}",
                self.message,
                location(&self.path)
            )
        }
    }

    fn into_api(self) -> ApiError {
        if self.key {
            key_error(&self.path, &self.message)
        } else {
            value_error(&self.path, self.message)
        }
    }
}

fn non_negative(value: &Value, path: &[String], min: u64) -> Result<u32, Bad> {
    let Some(number) = value.as_i64() else {
        return Err(Bad::value(path, "expected int"));
    };
    if number < min as i64 {
        return Err(Bad::value(path, format!("value must be at least {min}")));
    }
    u32::try_from(number).map_err(|_| Bad::value(path, "value must be at most 4294967295"))
}

fn optional_number(value: Option<&Value>, path: &[String]) -> Result<Option<f64>, Bad> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => Ok(number.as_f64()),
        Some(_) => Err(Bad::value(path, "expected Real")),
    }
}

/// One attribute definition; `for_update` also accepts `options.fill`.
///
/// Gnocchi checks a definition against each type's schema in turn (`bool`
/// first) and, when all refuse it, reports the deepest error, the first on
/// a tie: that is the `bool` schema's own, unless the failure lies within
/// `options`.
fn parse_attribute(
    value: &Value,
    path: &[String],
    for_update: bool,
) -> Result<AttributeSchema, Bad> {
    parse_typed_attribute(value, path, for_update).map_err(|bad| match value.as_object() {
        Some(object) if bad.path.len() <= path.len() + 1 => {
            bool_schema_error(object, path, for_update)
        }
        _ => bad,
    })
}

/// What the `bool` attribute schema says of a definition, key by key
/// (`type` and `required` first: keys are not kept in the body's order).
fn bool_schema_error(object: &Map<String, Value>, path: &[String], for_update: bool) -> Bad {
    match object.get("type") {
        Some(Value::String(name)) if name == "bool" => {}
        Some(_) => return Bad::value(&child(path, "type"), "not a valid value"),
        None => {}
    }
    if object
        .get("required")
        .is_some_and(|required| !required.is_boolean())
    {
        return Bad::value(&child(path, "required"), "expected bool");
    }
    let allowed =
        |key: &str| matches!(key, "type" | "required") || (for_update && key == "options");
    match object.keys().find(|key| !allowed(key)) {
        Some(extra) => Bad::key(&child(path, extra), "extra keys not allowed"),
        None => Bad::key(&child(path, "type"), "required key not provided"),
    }
}

/// One attribute definition, by the schema of the type it names.
fn parse_typed_attribute(
    value: &Value,
    path: &[String],
    for_update: bool,
) -> Result<AttributeSchema, Bad> {
    let object = value
        .as_object()
        .ok_or_else(|| Bad::value(path, "expected a dictionary"))?;
    let type_name = match object.get("type") {
        None => return Err(Bad::key(&child(path, "type"), "required key not provided")),
        Some(Value::String(name)) => name.as_str(),
        Some(_) => return Err(Bad::value(path, "not a valid value")),
    };
    let specific: &[&str] = match type_name {
        "string" => &["min_length", "max_length"],
        "number" => &["min", "max"],
        "uuid" | "bool" | "datetime" => &[],
        _ => return Err(Bad::value(path, "not a valid value")),
    };
    if let Some(extra) = object.keys().find(|key| {
        !(matches!(key.as_str(), "type" | "required")
            || (for_update && key.as_str() == "options")
            || specific.contains(&key.as_str()))
    }) {
        return Err(Bad::key(&child(path, extra), "extra keys not allowed"));
    }
    let required = match object.get("required") {
        None => true,
        Some(Value::Bool(required)) => *required,
        Some(_) => return Err(Bad::value(&child(path, "required"), "expected bool")),
    };
    let attr_type = match type_name {
        "string" => {
            let min_length = match object.get("min_length") {
                None => 0,
                Some(v) => non_negative(v, &child(path, "min_length"), 0)?,
            };
            let max_length = match object.get("max_length") {
                None => DEFAULT_MAX_LENGTH,
                Some(v) => non_negative(v, &child(path, "max_length"), 1)?,
            };
            AttributeType::String {
                min_length,
                max_length,
            }
        }
        "number" => AttributeType::Number {
            min: optional_number(object.get("min"), &child(path, "min"))?,
            max: optional_number(object.get("max"), &child(path, "max"))?,
        },
        "uuid" => AttributeType::Uuid,
        "bool" => AttributeType::Bool,
        _ => AttributeType::Datetime,
    };
    let fill = match object.get("options") {
        None | Some(Value::Null) => None,
        Some(Value::Object(options)) => {
            let options_path = child(path, "options");
            if let Some(extra) = options.keys().find(|key| key.as_str() != "fill") {
                return Err(Bad::key(
                    &child(&options_path, extra),
                    "extra keys not allowed",
                ));
            }
            options.get("fill").cloned()
        }
        Some(_) => return Err(Bad::value(&child(path, "options"), "expected a dictionary")),
    };
    Ok(AttributeSchema {
        attr_type,
        required,
        fill,
    })
}

fn parse_attributes(
    value: Option<&Value>,
    for_update: bool,
) -> Result<BTreeMap<String, AttributeSchema>, ApiError> {
    let path = vec!["attributes".to_owned()];
    let object = match value {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(object)) => object,
        Some(_) => return Err(value_error(&path, "expected a dictionary")),
    };
    object
        .iter()
        .map(|(name, definition)| {
            parse_attribute(definition, &child(&path, name), for_update)
                .map(|attribute| (name.clone(), attribute))
                .map_err(Bad::into_api)
        })
        .collect()
}

#[utoipa::path(
    get,
    path = "/v1/resource_type",
    tag = "resource type",
    responses(
        (status = 200, description = "Every resource type", body = Vec<doc::ResourceType>),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody)
    )
)]
async fn list(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
) -> Result<Json<Value>, ApiError> {
    caller.enforce(&state, "list resource type", &Target::new())?;
    let types = state.indexer.list_resource_types().await?;
    Ok(Json(types.iter().map(type_json).collect()))
}

#[utoipa::path(
    get,
    path = "/v1/resource_type/{name}",
    tag = "resource type",
    params(("name" = String, Path, description = "Resource type name")),
    responses(
        (status = 200, description = "The type", body = doc::ResourceType),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource type", body = doc::ErrorBody)
    )
)]
async fn show(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rt = state.indexer.get_resource_type(&name).await?;
    caller.enforce(&state, "get resource type", &Target::new())?;
    Ok(Json(type_json(&rt)))
}

#[utoipa::path(
    post,
    path = "/v1/resource_type",
    tag = "resource type",
    request_body = doc::ResourceTypeCreate,
    responses(
        (status = 201, description = "Created; `Location` names it", body = doc::ResourceType),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 409, description = "A resource type of that name already exists", body = doc::ErrorBody),
        (status = 415, description = "The body is not JSON", body = doc::ErrorBody)
    )
)]
async fn create(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    base: BaseUrl,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.enforce(&state, "create resource type", &Target::new())?;
    let object = body
        .as_object()
        .ok_or_else(|| value_error(&[], "expected a dictionary"))?;
    if let Some(extra) = object
        .keys()
        .find(|key| !matches!(key.as_str(), "name" | "attributes"))
    {
        return Err(key_error(
            std::slice::from_ref(extra),
            "extra keys not allowed",
        ));
    }
    let name = match object.get("name") {
        None => return Err(key_error(&["name".to_owned()], "required key not provided")),
        Some(Value::String(name)) => name.as_str(),
        Some(_) => return Err(value_error(&["name".to_owned()], "expected str")),
    };
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.contains('/') {
        return Err(value_error(&["name".to_owned()], "not a valid value"));
    }
    let attributes = parse_attributes(object.get("attributes"), false)?;
    let rt = state
        .indexer
        .create_resource_type(name, &attributes)
        .await
        .map_err(type_error)?;
    let location = base.join(&format!("/v1/resource_type/{}", path_segment(&rt.name)));
    Ok(created(location, type_json(&rt)))
}

/// One RFC 6902 operation, as Gnocchi's schema admits them.
#[derive(Debug)]
struct PatchOp {
    add: bool,
    path: String,
    value: Option<Value>,
}

fn parse_patch(value: &Value) -> Result<Vec<PatchOp>, ApiError> {
    let items = value
        .as_array()
        .ok_or_else(|| value_error(&[], "expected a list"))?;
    let mut ops = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let at = vec![index.to_string()];
        let object = item
            .as_object()
            .ok_or_else(|| value_error(&at, "expected a dictionary"))?;
        if let Some(extra) = object
            .keys()
            .find(|key| !matches!(key.as_str(), "op" | "path" | "value"))
        {
            return Err(key_error(&child(&at, extra), "extra keys not allowed"));
        }
        let add = match object.get("op") {
            None => return Err(key_error(&child(&at, "op"), "required key not provided")),
            Some(Value::String(op)) if op == "add" => true,
            Some(Value::String(op)) if op == "remove" => false,
            Some(_) => return Err(value_error(&child(&at, "op"), "not a valid value")),
        };
        let path = match object.get("path") {
            None => return Err(key_error(&child(&at, "path"), "required key not provided")),
            Some(Value::String(path)) => path.clone(),
            Some(_) => return Err(value_error(&child(&at, "path"), "expected str")),
        };
        if !path.starts_with("/attributes/") {
            return Err(value_error(
                &child(&at, "path"),
                "does not match regular expression ^/attributes/",
            ));
        }
        if path.chars().count() < 12 {
            return Err(value_error(
                &child(&at, "path"),
                "length of value must be at least 12",
            ));
        }
        let value = object.get("value").cloned();
        if value.as_ref().is_some_and(|v| !v.is_object()) {
            return Err(value_error(&child(&at, "value"), "expected dict"));
        }
        ops.push(PatchOp { add, path, value });
    }
    Ok(ops)
}

/// Applies one operation to `doc` with jsonpatch's semantics and messages.
fn apply(doc: &mut Value, op: &PatchOp) -> Result<(), String> {
    let tokens: Vec<String> = op
        .path
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = tokens.split_last() else {
        return Err("invalid path".to_owned());
    };
    let mut target = doc;
    for token in parents {
        target = match target {
            Value::Object(map) => map
                .get_mut(token)
                .ok_or_else(|| format!("member '{token}' not found in document"))?,
            _ => return Err(format!("member '{token}' not found in document")),
        };
    }
    let Value::Object(map) = target else {
        return Err(format!("can't add or remove '{last}' in a non-object"));
    };
    if op.add {
        let value = op
            .value
            .clone()
            .ok_or_else(|| "The operation does not contain a 'value' member".to_owned())?;
        map.insert(last.clone(), value);
    } else if map.remove(last).is_none() {
        return Err(format!("can't remove a non-existent object '{last}'"));
    }
    Ok(())
}

/// Adds and removes attributes with a JSON patch
/// (`application/json-patch+json`); `options.fill` gives existing resources
/// a value for a new or newly required attribute.
#[utoipa::path(
    patch,
    path = "/v1/resource_type/{name}",
    tag = "resource type",
    params(("name" = String, Path, description = "Resource type name")),
    request_body(content = Vec<doc::JsonPatchOp>, content_type = "application/json-patch+json"),
    responses(
        (status = 200, description = "The changed type", body = doc::ResourceType),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource type", body = doc::ErrorBody),
        (status = 415, description = "The body is not JSON", body = doc::ErrorBody)
    )
)]
async fn update(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let rt = state.indexer.get_resource_type(&name).await?;
    caller.enforce(&state, "update resource type", &Target::new())?;
    let patch = read_json(&headers, &body, &["application/json-patch+json"])?;
    let ops = parse_patch(&patch)?;
    let current = attributes_json(&rt);
    let mut doc = json!({"name": rt.name, "attributes": current.clone()});
    for op in &ops {
        apply(&mut doc, op).map_err(ApiError::bad_request)?;
    }
    let next: Map<String, Value> =
        match doc.get("attributes") {
            Some(Value::Object(next)) => next.clone(),
            _ => return Err(ApiError::bad_request(
                "Invalid input: expected a dictionary for dictionary value @ data['attributes']",
            )),
        };
    let mut change = ResourceTypeUpdate::default();
    for (attr, definition) in &next {
        let path = vec!["attributes".to_owned(), attr.clone()];
        let parsed = parse_attribute(definition, &path, true)
            .map_err(|bad| ApiError::bad_request(format!("Invalid input: {}", bad.reason())))?;
        let unchanged = current.get(attr) == Some(&attribute_json(&parsed));
        if !unchanged {
            change.add.insert(attr.clone(), parsed);
        }
    }
    change.remove = rt
        .attributes
        .keys()
        .filter(|attr| !next.contains_key(*attr))
        .cloned()
        .collect();
    if change.add.is_empty() && change.remove.is_empty() {
        return Ok(Json(type_json(&rt)));
    }
    let rt = state
        .indexer
        .update_resource_type(&name, &change)
        .await
        .map_err(type_error)?;
    Ok(Json(type_json(&rt)))
}

#[utoipa::path(
    delete,
    path = "/v1/resource_type/{name}",
    tag = "resource type",
    params(("name" = String, Path, description = "Resource type name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Resources of the type still exist", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource type", body = doc::ErrorBody)
    )
)]
async fn remove(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.enforce(&state, "delete resource type", &Target::new())?;
    state.indexer.delete_resource_type(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
