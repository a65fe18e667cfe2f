//! A JSON reader that keeps what `serde_json::Value` would lose: keys given
//! twice in one object (where the later one would silently win).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::error::Rule;

/// One step of a path inside the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// The parsed document and the paths of keys that were repeated.
pub(super) struct Document {
    pub value: Value,
    pub duplicates: Vec<Vec<Seg>>,
}

/// Parse `text` as one JSON document.
pub(super) fn parse(text: &str) -> Result<Document, Rule> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(Rule::EmptyFile);
    }
    let mut ctx = Ctx::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let value = ValueSeed { ctx: &mut ctx }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(syntax)?;
    Ok(Document {
        value,
        duplicates: ctx.duplicates,
    })
}

fn syntax(e: serde_json::Error) -> Rule {
    let mut message = e.to_string();
    // serde_json appends " at line L column C"; the rule says it itself.
    if let Some(pos) = message.rfind(" at line ") {
        message.truncate(pos);
    }
    Rule::Syntax {
        line: e.line(),
        column: e.column(),
        message,
    }
}

/// Render a path as a field name: `roles[0].ext.sip_port`.
pub(super) fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => {
                s.push('[');
                s.push_str(&i.to_string());
                s.push(']');
            }
        }
    }
    s
}

#[derive(Default)]
struct Ctx {
    path: Vec<Seg>,
    duplicates: Vec<Vec<Seg>>,
}

struct ValueSeed<'a> {
    ctx: &'a mut Ctx,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let ctx = self.ctx;
        let mut out = Vec::new();
        loop {
            ctx.path.push(Seg::Index(out.len()));
            let next = seq.next_element_seed(ValueSeed { ctx: &mut *ctx })?;
            ctx.path.pop();
            match next {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let ctx = self.ctx;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            ctx.path.push(Seg::Key(key.clone()));
            let v = map.next_value_seed(ValueSeed { ctx: &mut *ctx })?;
            if out.contains_key(&key) {
                ctx.duplicates.push(ctx.path.clone());
            }
            ctx.path.pop();
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values_like_serde_json() {
        let text = r#"{"a": [1, -2, 1.5, "x", null, true, {"b": {}}], "c": 18446744073709551615}"#;
        let doc = parse(text).unwrap();
        let plain: Value = serde_json::from_str(text).unwrap();
        assert_eq!(doc.value, plain);
        assert!(doc.duplicates.is_empty());
    }

    #[test]
    fn finds_repeated_keys_with_their_path() {
        let doc =
            parse(r#"{"roles": [{"group": 1, "ext": {"a": 1, "a": 2}, "group": 2}]}"#).unwrap();
        let paths: Vec<String> = doc.duplicates.iter().map(|p| path_string(p)).collect();
        assert_eq!(paths, ["roles[0].ext.a", "roles[0].group"]);
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        match parse("{\n  \"a\": 1,\n  \"b\" 2\n}") {
            Err(Rule::Syntax { line, column, .. }) => assert_eq!((line, column), (3, 7)),
            other => panic!("{:?}", other.map(|d| d.value)),
        }
        assert!(matches!(parse("{} x"), Err(Rule::Syntax { .. })));
        assert_eq!(parse(" \n\t").err(), Some(Rule::EmptyFile));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = "[".repeat(100_000);
        assert!(matches!(parse(&text), Err(Rule::Syntax { .. })));
    }
}
