//! Canonical encoding and content hashes. A value's hash is BLAKE3 over its canonical JSON:
//! object keys sorted, no insignificant whitespace, numbers as serde_json prints them. The same
//! value read back from PostgreSQL `jsonb` (which reorders keys) hashes the same.

use serde_json::Value;
use std::fmt;

/// A BLAKE3 content hash, shown as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// Parses 64 hex digits.
    pub fn parse(hex: &str) -> Option<Self> {
        blake3::Hash::from_hex(hex)
            .ok()
            .map(|h| Self(*h.as_bytes()))
    }

    /// The hex form.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl serde::Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for ContentHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// The canonical bytes of a JSON value. `serde_json::Value` keeps object keys in a `BTreeMap`
/// (the crate is built without `preserve_order`), so compact serialisation is already canonical.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialising a serde_json::Value cannot fail")
}

/// BLAKE3 over the canonical encoding of `value`.
pub fn hash_value(value: &Value) -> ContentHash {
    ContentHash(*blake3::hash(&canonical_json(value)).as_bytes())
}

/// BLAKE3 over the canonical encoding of any serialisable value (configuration, catalogs).
pub fn hash_serializable<T: serde::Serialize>(value: &T) -> ContentHash {
    let as_value = serde_json::to_value(value).expect("configuration values serialise to JSON");
    hash_value(&as_value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":[1,2]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "a": [1, 2], "b": 1 }"#).unwrap();
        assert_eq!(hash_value(&a), hash_value(&b));
        assert_eq!(canonical_json(&a), br#"{"a":[1,2],"b":1}"#.to_vec());
    }

    #[test]
    fn array_order_changes_the_hash() {
        assert_ne!(
            hash_value(&json!(["A", "B"])),
            hash_value(&json!(["B", "A"]))
        );
    }

    #[test]
    fn hash_round_trips_through_hex() {
        let h = hash_value(&json!({"x": 1}));
        assert_eq!(ContentHash::parse(&h.to_hex()), Some(h));
        assert_eq!(h.to_hex().len(), 64);
    }
}
