//! Request bodies read as Google's JSON front end reads them into a protobuf message: the top level must be an
//! object (`Unknown name "": Root element must be a message.`), a list where a message is expected is refused
//! (`Unknown name "serviceAccount": Proto field is not repeating, cannot start list.`), and an unknown field of a
//! request struct that denies them is named as Google names it (`Unknown name "bogus" at 'service_account': Cannot
//! find field.`).
//!
//! Why a wrapper: serde's derived `Deserialize` for a struct also accepts a JSON array (its fields in order), so
//! `["id", {"displayName": "x"}]` would otherwise read as `{"accountId": "id", "serviceAccount": {…}}`. [`Strict`]
//! is a `Deserializer` over a parsed [`Value`] that answers `deserialize_struct` only for objects and hands every
//! other request to the `Value` itself. Maps, enums and `deserialize_any` (untagged or flattened fields, custom
//! impls) are read by `Value` as they are, without the list check below them.

use serde::de::value::StringDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// Why a body was refused; the text follows `Invalid JSON payload received. `.
#[derive(Debug)]
pub(crate) struct BodyError {
    message: String,
    /// Set when the error is an unknown field name (so the caller of the key can say where it was).
    unknown: Option<String>,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BodyError {}

impl de::Error for BodyError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        BodyError { message: msg.to_string(), unknown: None }
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        BodyError { message: format!("Unknown name \"{field}\": Cannot find field."), unknown: Some(field.to_owned()) }
    }
}

impl BodyError {
    fn json(e: serde_json::Error) -> Self {
        BodyError { message: e.to_string(), unknown: None }
    }
}

/// Parses `body` (JSON text) into `T`, strictly as described in the module docs.
pub(crate) fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    let value: Value = serde_json::from_slice(body).map_err(BodyError::json)?;
    if !value.is_object() {
        return Err(de::Error::custom("Unknown name \"\": Root element must be a message."));
    }
    T::deserialize(Strict { value, key: String::new(), at: String::new() })
}

/// Reads `value`, found under `key` in a body, into `T` as strictly as [`from_slice`] reads a body.
pub(crate) fn from_value<T: DeserializeOwned>(value: Value, key: &str) -> Result<T, BodyError> {
    T::deserialize(Strict { value, key: key.to_owned(), at: String::new() })
}

/// A value of the body: `key` is the JSON name it was found under (empty at the root), `at` the path of the message
/// holding it in Google's spelling (`service_account`), empty at the top level.
struct Strict {
    value: Value,
    key: String,
    at: String,
}

impl Strict {
    fn not_repeating(&self) -> BodyError {
        let at = if self.at.is_empty() { String::new() } else { format!(" at '{}'", self.at) };
        de::Error::custom(format!(
            "Unknown name \"{}\"{at}: Proto field is not repeating, cannot start list.",
            self.key
        ))
    }

    /// The path of the message this value is (`service_account`, `template.containers`).
    fn path(&self) -> String {
        match (self.at.is_empty(), self.key.is_empty()) {
            (_, true) => self.at.clone(),
            (true, false) => snake_case(&self.key),
            (false, false) => format!("{}.{}", self.at, snake_case(&self.key)),
        }
    }

    fn visit_array<'de, V: Visitor<'de>>(self, items: Vec<Value>, visitor: V) -> Result<V::Value, BodyError> {
        let len = items.len();
        let mut seq = Items { items: items.into_iter(), key: self.key, at: self.at };
        let out = visitor.visit_seq(&mut seq)?;
        if seq.items.len() == 0 {
            Ok(out)
        } else {
            Err(de::Error::invalid_length(len, &"fewer elements in array"))
        }
    }
}

/// `displayName` → `display_name`, as Google's errors name fields.
fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

macro_rules! by_value {
    ($($method:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
            self.value.$method(visitor).map_err(BodyError::json)
        }
    )*};
}

impl<'de> Deserializer<'de> for Strict {
    type Error = BodyError;

    by_value!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_unit,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self.value {
            Value::Array(items) => Strict { value: Value::Null, ..self }.visit_array(items, visitor),
            value => value.deserialize_any(visitor).map_err(BodyError::json),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, BodyError> {
        self.value.deserialize_unit_struct(name, visitor).map_err(BodyError::json)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, BodyError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BodyError> {
        match self.value {
            Value::Array(items) => Strict { value: Value::Null, ..self }.visit_array(items, visitor),
            value => value.deserialize_seq(visitor).map_err(BodyError::json),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, BodyError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        match self.value {
            Value::Array(_) => Err(self.not_repeating()),
            Value::Object(map) => {
                let at = Strict { value: Value::Null, key: self.key, at: self.at }.path();
                visitor.visit_map(Fields { entries: map.into_iter(), pending: None, at })
            }
            value => value.deserialize_struct(name, fields, visitor).map_err(BodyError::json),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BodyError> {
        self.value.deserialize_enum(name, variants, visitor).map_err(BodyError::json)
    }
}

/// The elements of a list; each is read strictly, under the list's name.
struct Items {
    items: std::vec::IntoIter<Value>,
    key: String,
    at: String,
}

impl<'de> SeqAccess<'de> for Items {
    type Error = BodyError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, BodyError> {
        match self.items.next() {
            Some(value) => seed.deserialize(Strict { value, key: self.key.clone(), at: self.at.clone() }).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The fields of a message (`at` is its path).
struct Fields {
    entries: serde_json::map::IntoIter,
    pending: Option<(String, Value)>,
    at: String,
}

impl<'de> MapAccess<'de> for Fields {
    type Error = BodyError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, BodyError> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        let read = seed.deserialize(StringDeserializer::<BodyError>::new(key.clone())).map_err(|mut e| {
            if let (Some(name), false) = (&e.unknown, self.at.is_empty()) {
                e.message = format!("Unknown name \"{name}\" at '{}': Cannot find field.", self.at);
            }
            e
        })?;
        self.pending = Some((key, value));
        Ok(Some(read))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, BodyError> {
        let (key, value) = self.pending.take().ok_or_else(|| de::Error::custom("a field without a value"))?;
        seed.deserialize(Strict { value, key, at: self.at.clone() })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A proto `bool` as Google's JSON parser reads it: `true`/`false`, or the strings `"true"`/`"false"`.
pub(crate) fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Either {
        Bool(bool),
        Text(String),
    }
    match <Either as serde::Deserialize>::deserialize(d)? {
        Either::Bool(b) => Ok(b),
        Either::Text(t) => match t.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(serde::de::Error::custom(format!("invalid value `{other}` for a bool; use true or false"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, Default, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        display_name: Option<String>,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Outer {
        account_id: Option<String>,
        #[serde(default)]
        service_account: Inner,
        #[serde(default)]
        items: Vec<Inner>,
        #[serde(default)]
        labels: std::collections::BTreeMap<String, String>,
        #[serde(default)]
        any: Value,
    }

    fn read(body: &str) -> Result<Outer, String> {
        from_slice::<Outer>(body.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn objects_read_as_before() {
        let o = read(
            r#"{"accountId":"a","serviceAccount":{"displayName":"d","tags":["x"]},"items":[{},{"displayName":"i"}],
                "labels":{"k":"v"},"any":[1,{"a":[2]}]}"#,
        )
        .unwrap();
        assert_eq!(o.account_id.as_deref(), Some("a"));
        assert_eq!(o.service_account.display_name.as_deref(), Some("d"));
        assert_eq!(o.service_account.tags, ["x"]);
        assert_eq!(o.items[1].display_name.as_deref(), Some("i"));
        assert_eq!(o.labels["k"], "v");
        assert_eq!(o.any, serde_json::json!([1, {"a": [2]}]));
        assert!(from_slice::<Value>(b"{\"a\":[1]}").is_ok());
    }

    #[test]
    fn lists_in_place_of_messages_are_refused_as_google_refuses_them() {
        for (body, why) in [
            (r#"["a",{"displayName":"x"}]"#, "Unknown name \"\": Root element must be a message."),
            ("\"a\"", "Unknown name \"\": Root element must be a message."),
            ("3", "Unknown name \"\": Root element must be a message."),
            (
                r#"{"serviceAccount":["d","e"]}"#,
                "Unknown name \"serviceAccount\": Proto field is not repeating, cannot start list.",
            ),
            (r#"{"items":[["d"]]}"#, "Unknown name \"items\": Proto field is not repeating, cannot start list."),
            (r#"{"bogus":1}"#, "Unknown name \"bogus\": Cannot find field."),
            (r#"{"serviceAccount":{"bogus":1}}"#, "Unknown name \"bogus\" at 'service_account': Cannot find field."),
        ] {
            assert_eq!(read(body).unwrap_err(), why, "{body}");
        }
        assert_eq!(
            from_slice::<Value>(b"[1]").unwrap_err().to_string(),
            "Unknown name \"\": Root element must be a message."
        );
    }
}
