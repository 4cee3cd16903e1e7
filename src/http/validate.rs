//! Request-body checks that fail the way Gnocchi's voluptuous schemas fail.
//!
//! Clients (and Gnocchi's tests) read the structured 400 description:
//! `{"cause": "Invalid input", "reason": "<message> @ data['a'][0]['b']",
//! "detail": ["a", "0", "b"]}`. [`Fields`] walks a JSON object, records the path
//! it is at, and produces exactly those errors; handlers read their body
//! through it instead of through serde so the wording stays Gnocchi's.

use serde_json::{json, Map, Value};

use super::ApiError;

/// A voluptuous-style validation failure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Invalid {
    message: String,
    path: Vec<String>,
    /// Whether voluptuous would add "for dictionary value" (errors found while
    /// validating a value under a key, as opposed to missing or extra keys).
    in_value: bool,
}

impl Invalid {
    /// A failure of the value at `path`.
    pub(crate) fn value(path: &[String], message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            path: path.to_vec(),
            in_value: !path.is_empty(),
        }
    }

    /// A failure of the list item at `path` (which ends with its index).
    pub(crate) fn item(path: Vec<String>, message: &str) -> Self {
        Self::key(path, message)
    }

    /// A failure of the key at `path` itself: missing, extra or refused.
    pub(crate) fn key(path: Vec<String>, message: &str) -> Self {
        Self {
            message: message.to_owned(),
            path,
            in_value: false,
        }
    }

    fn reason(&self) -> String {
        if self.path.is_empty() {
            return self.message.clone();
        }
        let mut location = String::from("data");
        for part in &self.path {
            if part.parse::<usize>().is_ok() {
                location.push_str(&format!("[{part}]"));
            } else {
                location.push_str(&format!("['{part}']"));
            }
        }
        if self.in_value {
            format!("{} for dictionary value @ {location}", self.message)
        } else {
            format!("{} @ {location}", self.message)
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        ApiError::bad_request(json!({
            "cause": "Invalid input",
            "reason": invalid.reason(),
            "detail": invalid.path,
        }))
    }
}

/// One JSON object being validated, with the path that leads to it.
#[derive(Debug)]
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: Vec<String>,
}

impl<'a> Fields<'a> {
    /// The top-level body, which must be an object whose keys are all in `allowed`.
    pub(crate) fn body(value: &'a Value, allowed: &[&str]) -> Result<Self, Invalid> {
        Self::at(value, Vec::new(), allowed)
    }

    fn at(value: &'a Value, path: Vec<String>, allowed: &[&str]) -> Result<Self, Invalid> {
        let map = value
            .as_object()
            .ok_or_else(|| Invalid::value(&path, "expected a dictionary"))?;
        if let Some(extra) = map.keys().find(|key| !allowed.contains(&key.as_str())) {
            let mut extra_path = path.clone();
            extra_path.push(extra.clone());
            return Err(Invalid::key(extra_path, "extra keys not allowed"));
        }
        Ok(Self { map, path })
    }

    /// The path of `key` under this object.
    pub(crate) fn path_of(&self, key: &str) -> Vec<String> {
        let mut path = self.path.clone();
        path.push(key.to_owned());
        path
    }

    pub(crate) fn optional(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    pub(crate) fn required(&self, key: &str) -> Result<&'a Value, Invalid> {
        self.map
            .get(key)
            .ok_or_else(|| Invalid::key(self.path_of(key), "required key not provided"))
    }

    pub(crate) fn required_str(&self, key: &str) -> Result<&'a str, Invalid> {
        let value = self.required(key)?;
        value
            .as_str()
            .ok_or_else(|| Invalid::value(&self.path_of(key), "expected str"))
    }

    pub(crate) fn optional_str(&self, key: &str) -> Result<Option<&'a str>, Invalid> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(Invalid::value(&self.path_of(key), "expected str")),
        }
    }

    /// A list under `key` with at least `min_len` items.
    pub(crate) fn list(&self, key: &str, min_len: usize) -> Result<&'a [Value], Invalid> {
        let value = self.required(key)?;
        let items = value
            .as_array()
            .ok_or_else(|| Invalid::value(&self.path_of(key), "expected a list"))?;
        if items.len() < min_len {
            return Err(Invalid::value(
                &self.path_of(key),
                format!("length of value must be at least {min_len}"),
            ));
        }
        Ok(items)
    }

    /// The object at `key[index]`, restricted to `allowed` keys.
    pub(crate) fn item(
        &self,
        key: &str,
        index: usize,
        value: &'a Value,
        allowed: &[&str],
    ) -> Result<Fields<'a>, Invalid> {
        let mut path = self.path_of(key);
        path.push(index.to_string());
        Self::at(value, path, allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_keys_come_first_with_their_path() {
        let body = json!({"cowsay": "moo"});
        let err = Fields::body(&body, &["name", "definition"]).unwrap_err();
        assert_eq!(err.reason(), "extra keys not allowed @ data['cowsay']");
        assert_eq!(err.path, ["cowsay"]);
    }

    #[test]
    fn nested_messages_match_voluptuous() {
        let body = json!({"name": "x", "definition": [{"cowsay": "moo"}]});
        let fields = Fields::body(&body, &["name", "definition"]).unwrap();
        let items = fields.list("definition", 1).unwrap();
        let err = fields
            .item("definition", 0, &items[0], &["granularity"])
            .unwrap_err();
        assert_eq!(
            err.reason(),
            "extra keys not allowed @ data['definition'][0]['cowsay']"
        );
        assert_eq!(err.path, ["definition", "0", "cowsay"]);

        let body = json!({"definition": "foobar"});
        let fields = Fields::body(&body, &["definition"]).unwrap();
        assert_eq!(
            fields.list("definition", 1).unwrap_err().reason(),
            "expected a list for dictionary value @ data['definition']"
        );
        assert_eq!(
            fields.required("name").unwrap_err().reason(),
            "required key not provided @ data['name']"
        );
    }
}
