//! The one place that names what a run covers: the API's trigger modes, the label notices and
//! the job board carry, the label of the completion event, and the run record's `families`.

use crate::domain::types::{Family, FamilySelection, RunId};

/// A mode of `POST …/trigger` (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerMode {
    Full,
    MarketCap,
    Themes,
    Ipos,
}

impl TriggerMode {
    /// The mode named `text`.
    ///
    /// # Errors
    /// A message naming the modes there are.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "full" => Ok(TriggerMode::Full),
            "market_cap" => Ok(TriggerMode::MarketCap),
            "themes" => Ok(TriggerMode::Themes),
            "ipos" => Ok(TriggerMode::Ipos),
            _ => Err(format!(
                "unknown mode `{}`; expected full, market_cap, themes or ipos",
                text.chars().take(40).collect::<String>().escape_debug()
            )),
        }
    }

    /// Its name in requests, notices and the job board.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerMode::Full => "full",
            TriggerMode::MarketCap => "market_cap",
            TriggerMode::Themes => "themes",
            TriggerMode::Ipos => "ipos",
        }
    }

    /// The families it runs (empty: all of them). `market_cap` is every family whose members
    /// move with prices.
    pub fn families(self) -> Vec<Family> {
        match self {
            TriggerMode::Full => Vec::new(),
            TriggerMode::MarketCap => vec![
                Family::MarketCap,
                Family::MarketLeaders,
                Family::SectorLeaders,
                Family::Industry,
                Family::Complete,
                Family::Stats,
                Family::Combo,
            ],
            TriggerMode::Themes => vec![Family::Themes],
            TriggerMode::Ipos => vec![Family::Ipos],
        }
    }
}

/// What a run was asked to cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMode {
    /// These families (all of them when empty), as the command line's `--only` names them.
    Families(Vec<Family>),
    /// A mode of the API's trigger.
    Trigger(TriggerMode),
    /// The owned catalog as it was after this run.
    Rollback(RunId),
}

impl RunMode {
    /// The families the run computes (empty: all of them; a rollback covers every family).
    pub fn families(&self) -> Vec<Family> {
        match self {
            RunMode::Families(families) => families.clone(),
            RunMode::Trigger(mode) => mode.families(),
            RunMode::Rollback(_) => Vec::new(),
        }
    }

    /// The label the run's notices (`cache_sync_triggered`, `cache_sync_started`) carry: the API's
    /// mode name, or what the run covers (`full`, the families, `rollback`).
    pub fn label(&self) -> String {
        match self {
            RunMode::Trigger(mode) => mode.as_str().to_owned(),
            RunMode::Families(families) => covered(&FamilySelection::only(families), false),
            RunMode::Rollback(_) => covered(&FamilySelection::all(), true),
        }
    }

    /// The run it rolls back to, if it is a rollback.
    pub fn rollback_target(&self) -> Option<RunId> {
        match self {
            RunMode::Rollback(run_id) => Some(*run_id),
            _ => None,
        }
    }
}

/// What a run covered, as its completion event (`cache_sync_completed`) names it: `rollback`,
/// `full` for every family, else the families in catalog order.
pub(crate) fn covered(selection: &FamilySelection, rollback: bool) -> String {
    if rollback {
        "rollback".to_owned()
    } else if selection.is_all() {
        "full".to_owned()
    } else {
        family_list(selection)
    }
}

/// The run record's `families` column: `rollback to run R`, `all`, or the families.
pub(crate) fn recorded(selection: &FamilySelection, rollback_to: Option<RunId>) -> String {
    match rollback_to {
        Some(run_id) => format!("rollback to run {run_id}"),
        None if selection.is_all() => "all".to_owned(),
        None => family_list(selection),
    }
}

fn family_list(selection: &FamilySelection) -> String {
    selection
        .families()
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_some_families_is_labelled_by_them_in_catalog_order_everywhere() {
        let mode = RunMode::Families(vec![Family::Themes, Family::MarketCap]);
        let selection = FamilySelection::only(&mode.families());
        assert_eq!(mode.label(), "market_cap,themes");
        assert_eq!(covered(&selection, false), mode.label());
        assert_eq!(recorded(&selection, None), "market_cap,themes");
    }

    #[test]
    fn a_run_of_every_family_is_full_in_events_and_all_in_the_record() {
        let mode = RunMode::Families(Vec::new());
        assert_eq!(mode.label(), "full");
        assert_eq!(recorded(&FamilySelection::all(), None), "all");
        assert_eq!(RunMode::Trigger(TriggerMode::Full).label(), "full");
    }

    #[test]
    fn an_api_run_is_labelled_by_its_trigger_mode() {
        let mode = RunMode::Trigger(TriggerMode::parse("market_cap").unwrap());
        assert_eq!(mode.label(), "market_cap");
        assert_eq!(mode.families().len(), 7);
        assert!(TriggerMode::parse("everything")
            .unwrap_err()
            .contains("expected full, market_cap, themes or ipos"));
    }

    #[test]
    fn a_rollback_is_labelled_rollback_and_records_its_target() {
        let mode = RunMode::Rollback(RunId(3));
        assert_eq!(mode.label(), "rollback");
        assert_eq!(
            recorded(&FamilySelection::all(), mode.rollback_target()),
            "rollback to run 3"
        );
    }
}
