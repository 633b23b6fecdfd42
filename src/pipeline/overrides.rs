//! `--set KEY=VALUE` overrides. The value is read as YAML, so `5` is an int, `1e-4` a float and
//! `[a,b]` a list. A key names a param (`train.epochs`) or a built-in stage's setting (`split.mode`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::yaml;

/// One parsed `--set`: the same type in a run request, its record and a Slurm submission. In JSON it
/// is the pair `["key", value]`; a run record writes its list as one mapping ([`as_mapping`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// Dotted key.
    pub key: String,
    /// Typed value.
    pub value: Value,
}

impl Serialize for Override {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.key, &self.value).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Override {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Override, D::Error> {
        let (key, value) = <(String, Value)>::deserialize(deserializer)?;
        Ok(Override { key, value })
    }
}

/// A list of overrides as one JSON mapping `{key: value}` (`run.json`'s `overrides`): a key given
/// twice keeps its last value, as it did on the command line; read back in key order.
pub mod as_mapping {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    use super::Override;

    /// Writes `overrides` as a mapping.
    pub fn serialize<S: Serializer>(
        overrides: &[Override],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let map: BTreeMap<&str, &Value> = overrides
            .iter()
            .map(|o| (o.key.as_str(), &o.value))
            .collect();
        serializer.collect_map(map)
    }

    /// Reads a mapping back into overrides.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Override>, D::Error> {
        let map = BTreeMap::<String, Value>::deserialize(deserializer)?;
        Ok(map
            .into_iter()
            .map(|(key, value)| Override { key, value })
            .collect())
    }
}

impl std::str::FromStr for Override {
    type Err = String;

    fn from_str(arg: &str) -> Result<Override, String> {
        let (key, text) = key_and_text(arg, "KEY=VALUE")?;
        Ok(Override {
            key: key.to_string(),
            value: yaml_value(text),
        })
    }
}

/// `KEY=TEXT` split at its first `=`, the key checked as a dotted name; `form` names the expected
/// shape in the error.
pub fn key_and_text<'a>(arg: &'a str, form: &str) -> Result<(&'a str, &'a str), String> {
    let (key, text) = arg
        .split_once('=')
        .ok_or_else(|| format!("`{arg}` is not {form}"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(format!("`{key}` is not a valid dotted key"));
    }
    Ok((key, text))
}

/// A command-line value read as YAML (`5`, `1e-4`, `[a, b]`); text that is not YAML stays text.
pub fn yaml_value(text: &str) -> Value {
    match yaml::parse(text) {
        Ok(Some(node)) => node.to_value(),
        Ok(None) => Value::Null,
        Err(_) => Value::String(text.to_string()),
    }
}

/// The existing value at dotted `path` in `params`, to be overwritten.
pub fn param_slot<'v>(params: &'v mut Value, path: &str) -> Option<&'v mut Value> {
    path.split('.')
        .try_fold(params, |current, part| match current {
            Value::Object(map) => map.get_mut(part),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_typed() {
        let o: Override = "train.epochs=5".parse().unwrap();
        assert_eq!((o.key.as_str(), o.value), ("train.epochs", json!(5)));
        assert_eq!("lr=1e-4".parse::<Override>().unwrap().value, json!(1e-4));
        assert_eq!(
            "flags=[a,b]".parse::<Override>().unwrap().value,
            json!(["a", "b"])
        );
        assert_eq!(
            "name=hello world".parse::<Override>().unwrap().value,
            json!("hello world")
        );
        assert!("novalue".parse::<Override>().is_err());
    }
}
