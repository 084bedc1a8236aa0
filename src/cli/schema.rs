//! `cache-sync migrate [--widen-unique [--yes]]`.

use super::{open_store, print, render, write_out, CliError, Exit};
use crate::config::{Config, Format};
use crate::store::Schema;
use serde::Serialize;

/// What `--widen-unique` did or would do.
#[derive(Serialize)]
pub(super) struct Widen<'a> {
    pub applied: bool,
    pub statements: &'a [String],
}

/// Creates or upgrades the schema; with `widen_unique`, shows (or with `yes` applies) the
/// replacement of unique constraints that leave out `name`.
pub(super) async fn migrate(
    config: &Config,
    widen_unique: bool,
    yes: bool,
) -> Result<Exit, CliError> {
    // Migrating is what this command is for, `--no-migrate` or not.
    let store = open_store(config.database_url.as_ref().map(|u| u.expose()), true).await?;
    store.migrate().await?;
    if widen_unique {
        let statements = store.widen_unique(yes).await?;
        let widen = Widen {
            applied: yes,
            statements: &statements,
        };
        print(config.format, &widen, || render::widen(&widen))?;
    } else if config.format == Format::Text {
        write_out("Schema is up to date.\n")?;
    }
    Ok(Exit::Success)
}
