//! Member lists inside entry values: which tickers a value holds, at which position, with which
//! record. Knows the value shapes of SPEC §3 (plain ticker arrays, and objects whose `stocks` /
//! `etfs` arrays hold records keyed by `ticker` or `symbol`).

use serde_json::{Map, Value};

/// Where a member list sits in a value.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ListPath {
    /// The value itself is an array of tickers.
    Root,
    /// `value.stocks`.
    Stocks,
    /// `value.etfs`.
    Etfs,
}

impl ListPath {
    /// The object field holding the list, if any.
    pub fn field(self) -> Option<&'static str> {
        match self {
            ListPath::Root => None,
            ListPath::Stocks => Some("stocks"),
            ListPath::Etfs => Some("etfs"),
        }
    }
}

/// One member: its ticker, 1-based position in its list, and record (a string for plain arrays).
#[derive(Debug, Clone, PartialEq)]
pub struct Member<'a> {
    pub ticker: &'a str,
    pub position: usize,
    pub record: &'a Value,
}

/// The ticker of a list element: the string itself, or a record's `ticker` / `symbol`.
pub fn member_ticker(element: &Value) -> Option<&str> {
    match element {
        Value::String(t) => Some(t),
        Value::Object(record) => record
            .get("ticker")
            .or_else(|| record.get("symbol"))
            .and_then(Value::as_str),
        _ => None,
    }
}

fn list_members(items: &[Value]) -> Option<Vec<Member<'_>>> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            member_ticker(item).map(|ticker| Member {
                ticker,
                position: i + 1,
                record: item,
            })
        })
        .collect()
}

/// Every member list in `value`. A value of another shape (stats) has none.
pub fn member_lists(value: &Value) -> Vec<(ListPath, Vec<Member<'_>>)> {
    match value {
        Value::Array(items) => list_members(items)
            .map(|m| vec![(ListPath::Root, m)])
            .unwrap_or_default(),
        Value::Object(map) => [ListPath::Stocks, ListPath::Etfs]
            .into_iter()
            .filter_map(|path| {
                let items = map.get(path.field()?)?.as_array()?;
                Some((path, list_members(items)?))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The list at `path` as a mutable array, if present.
pub fn list_mut(value: &mut Value, path: ListPath) -> Option<&mut Vec<Value>> {
    match path {
        ListPath::Root => value.as_array_mut(),
        _ => value.get_mut(path.field()?)?.as_array_mut(),
    }
}

/// The top-level fields of an object value other than its member lists (`count`, `sector`, …).
pub fn scalar_fields(value: &Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map
            .iter()
            .filter(|(k, v)| !(matches!(k.as_str(), "stocks" | "etfs") && v.is_array()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_arrays_are_one_root_list() {
        let v = json!(["A", "B"]);
        let lists = member_lists(&v);
        assert_eq!(lists.len(), 1);
        assert_eq!(lists[0].0, ListPath::Root);
        assert_eq!(lists[0].1[1].ticker, "B");
        assert_eq!(lists[0].1[1].position, 2);
    }

    #[test]
    fn records_are_keyed_by_ticker_or_symbol() {
        let v = json!({"count": 2, "stocks": [{"ticker": "A"}], "etfs": [{"symbol": "SPY"}]});
        let lists = member_lists(&v);
        assert_eq!(lists.len(), 2);
        assert_eq!(lists[1].1[0].ticker, "SPY");
        assert_eq!(
            scalar_fields(&v),
            json!({"count": 2}).as_object().unwrap().clone()
        );
    }

    #[test]
    fn stats_values_have_no_members() {
        assert!(member_lists(&json!({"overview": {"total_stocks": 1}})).is_empty());
        assert!(member_lists(&json!([1, 2])).is_empty());
    }
}
