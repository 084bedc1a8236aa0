//! `cache-sync events`: the outbox's change events, the Redis stream followed live, or a relay of
//! what an outage left pending.

use super::{connect, print, publisher, write_out, CliError, Exit};
use crate::config::{Config, Format};
use crate::domain::types::EntryKey;
use crate::store::Outbox;
use serde_json::json;

/// Which outbox events to print.
pub(super) struct EventsFilter<'a> {
    pub from_seq: Option<i64>,
    pub universe: Option<&'a EntryKey>,
    pub limit: i64,
}

/// Prints outbox events (and with `follow` the stream after them), or relays with `relay_only`.
pub(super) async fn events(
    config: &Config,
    filter: EventsFilter<'_>,
    follow: bool,
    relay_only: bool,
) -> Result<Exit, CliError> {
    let store = connect(config).await?;
    let publisher = publisher(config)?;
    if relay_only {
        let p = publisher.ok_or_else(|| CliError::Usage("--relay needs REDIS_URL".to_owned()))?;
        let outcome = p.relay(&store).await.map_err(|source| CliError::Publish {
            context: "relay failed, events stay in the outbox",
            source,
        })?;
        print(config.format, &outcome, || {
            format!("Published {} pending events.\n", outcome.published)
        })?;
        return Ok(Exit::Success);
    }
    let universe = filter.universe;
    let rows = store
        .read_outbox(filter.from_seq, universe, filter.limit)
        .await?;
    let mut last_seq = filter.from_seq.unwrap_or(0);
    for row in &rows {
        last_seq = last_seq.max(row.seq.unwrap_or(0));
        print_event(
            config.format,
            &row.channel,
            &crate::publish::envelope_of(row),
        )?;
    }
    if follow {
        let p = publisher.ok_or_else(|| CliError::Usage("--follow needs REDIS_URL".to_owned()))?;
        // The stream never ends by itself; a closed pipe ends the command (exit 0).
        let closed = tokio::sync::Notify::new();
        let mut failed = None;
        let following = p.follow(last_seq, |channel, event| {
            let matches = universe.is_none_or(|u| {
                event["payload"]["type"] == u.entry_type.as_str()
                    && event["payload"]["name"] == u.name.as_str()
                    && event["payload"]["key"] == u.key.as_str()
            });
            if matches && failed.is_none() {
                if let Err(e) = print_event(config.format, channel, event) {
                    failed = Some(e);
                    closed.notify_one();
                }
            }
        });
        tokio::select! {
            followed = following => {
                followed.map_err(|source| CliError::Publish {
                    context: "cannot follow the stream",
                    source,
                })?;
            }
            () = closed.notified() => {}
        }
        if let Some(error) = failed {
            return Err(error);
        }
    }
    Ok(Exit::Success)
}

fn print_event(format: Format, channel: &str, event: &serde_json::Value) -> Result<(), CliError> {
    match format {
        Format::Json => write_out(&format!(
            "{}\n",
            json!({"channel": channel, "message": event})
        )),
        Format::Text => {
            let p = &event["payload"];
            let seq = p["seq"]
                .as_i64()
                .map_or(String::new(), |s| format!("seq {s} "));
            let event = event["event"].as_str().unwrap_or("");
            write_out(&format!("{seq}{channel} {event} {p}\n"))
        }
    }
}
