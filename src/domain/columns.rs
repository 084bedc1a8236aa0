//! The sizes of `cache_entries`' identity columns and the one rule that fits a generated name
//! or key into them. Keys come from data (a 99-character industry becomes a longer slug once
//! `&` reads `and`) and from configuration (display names); nothing longer than its column may
//! reach a write, and shortened keys must stay unique and the same every night.

use crate::domain::config::ConfigWarning;
use crate::domain::types::EntryKey;
use std::collections::BTreeMap;

/// `cache_entries.type varchar(50)` (migrations and the production schema), in characters.
pub const TYPE_CHARS: usize = 50;
/// `cache_entries.name varchar(100)`.
pub const NAME_CHARS: usize = 100;
/// `cache_entries.key varchar(100)`.
pub const KEY_CHARS: usize = 100;
/// `cache_entries.environment varchar(20)`.
pub const ENVIRONMENT_CHARS: usize = 20;

/// How many hex digits of the hash a shortened text ends with.
const SUFFIX_HEX: usize = 8;

/// `text` fitted into a column of `max` characters (varchar counts characters, not bytes):
/// unchanged when it fits; otherwise its first `max - 9` characters, `~`, and the first 8 hex
/// digits of the BLAKE3 hash of the whole text. Deterministic; two different texts that do
/// not fit get different results unless their hashes share 32 bits, and a shortened text is
/// exactly `max` characters long.
pub fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max || max <= SUFFIX_HEX + 1 {
        return text.chars().take(max).collect();
    }
    let hash = blake3::hash(text.as_bytes()).to_hex();
    let mut out: String = text.chars().take(max - SUFFIX_HEX - 1).collect();
    out.push('~');
    out.push_str(&hash[..SUFFIX_HEX]);
    out
}

/// `key` with its name and key fitted into their columns (`None` when both already fit).
pub fn fit_entry_key(key: &EntryKey) -> Option<EntryKey> {
    let fitted = EntryKey::new(
        fit(&key.entry_type, TYPE_CHARS),
        fit(&key.name, NAME_CHARS),
        fit(&key.key, KEY_CHARS),
    );
    (fitted != *key).then_some(fitted)
}

/// The catalog's entries whose identity had to be shortened to fit, and those left out because
/// their shortened identity was already another entry's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shortened {
    /// Stored identity → the identity the catalog's rules produced.
    pub keys: BTreeMap<EntryKey, EntryKey>,
    /// Identities left out, as the rules produced them.
    pub skipped: Vec<EntryKey>,
}

impl Shortened {
    /// The identity to store `key` under (fitted into the columns), or `None` when that would
    /// merge it with another entry (`taken` says which stored identities exist): then it is
    /// skipped and reported, never written over another.
    pub fn admit(&mut self, key: EntryKey, taken: impl Fn(&EntryKey) -> bool) -> Option<EntryKey> {
        let stored = fit_entry_key(&key);
        let clash = match &stored {
            Some(fitted) => taken(fitted) || self.keys.contains_key(fitted),
            None => self.keys.contains_key(&key),
        };
        if clash {
            self.skipped.push(key);
            return None;
        }
        Some(match stored {
            Some(fitted) => {
                self.keys.insert(fitted.clone(), key);
                fitted
            }
            None => key,
        })
    }

    /// One warning per shortened or skipped entry, for the plan and run reports.
    pub fn warnings(&self) -> Vec<ConfigWarning> {
        let limits = format!(
            "cache_entries' columns (type {TYPE_CHARS}, name {NAME_CHARS}, key {KEY_CHARS} characters)"
        );
        let shortened = self.keys.iter().map(|(stored, original)| ConfigWarning {
            source: "catalog".to_owned(),
            message: format!("{original} does not fit {limits}; written as {stored}"),
        });
        let skipped = self.skipped.iter().map(|original| ConfigWarning {
            source: "catalog".to_owned(),
            message: format!(
                "{original} does not fit {limits} and its shortened form is another entry's; skipped"
            ),
        });
        shortened.chain(skipped).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_text_that_fits_is_unchanged() {
        assert_eq!(fit("software", KEY_CHARS), "software");
        let exact = "x".repeat(KEY_CHARS);
        assert_eq!(fit(&exact, KEY_CHARS), exact);
    }

    #[test]
    fn a_long_slug_is_cut_and_ends_with_a_hash_of_the_whole() {
        let long = format!("{}_and_more", "a".repeat(99));
        let fitted = fit(&long, KEY_CHARS);
        assert_eq!(fitted.chars().count(), KEY_CHARS);
        assert!(fitted.starts_with(&"a".repeat(91)));
        assert_eq!(&fitted[91..92], "~");
        assert_eq!(&fitted[92..], &blake3::hash(long.as_bytes()).to_hex()[..8]);
    }

    #[test]
    fn characters_are_counted_not_bytes() {
        let wide = "é".repeat(KEY_CHARS);
        assert_eq!(fit(&wide, KEY_CHARS), wide, "100 characters fit");
        let wider = "é".repeat(KEY_CHARS + 1);
        assert_eq!(fit(&wider, KEY_CHARS).chars().count(), KEY_CHARS);
    }

    #[test]
    fn a_shortened_identity_that_is_taken_is_skipped_not_merged() {
        let long = |tail: &str| {
            EntryKey::new(
                "stock_universe",
                "industry",
                format!("{}{tail}", "x".repeat(120)),
            )
        };
        let mut shortened = Shortened::default();
        let first = shortened
            .admit(long("a"), |_| false)
            .expect("fits once shortened");
        assert_eq!(first.key.chars().count(), KEY_CHARS);
        let second = shortened
            .admit(long("b"), |_| false)
            .expect("a different hash");
        assert_ne!(first, second);
        assert_eq!(shortened.admit(long("c"), |_| true), None, "taken: skipped");
        assert_eq!(shortened.skipped, vec![long("c")]);
        let short = EntryKey::new("stock_universe", "industry", "software");
        assert_eq!(
            shortened.admit(short.clone(), |_| true),
            Some(short),
            "fits: kept"
        );
        assert_eq!(shortened.warnings().len(), 3);
    }

    proptest! {
        #[test]
        fn fitting_is_bounded_deterministic_and_keeps_texts_apart(
            a in "\\PC{0,160}",
            b in "\\PC{0,160}",
        ) {
            let (fa, fb) = (fit(&a, KEY_CHARS), fit(&b, KEY_CHARS));
            prop_assert!(fa.chars().count() <= KEY_CHARS);
            prop_assert_eq!(&fa, &fit(&a, KEY_CHARS));
            if a != b {
                prop_assert_ne!(fa, fb);
            }
        }
    }
}
