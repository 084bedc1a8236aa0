//! The demo walkthrough, end to end on each store.

use crate::helpers::{on_both_stores, Backend, TestDb};
use tickstock_cache_sync::devtools::demo;

async fn the_demo_narrates_every_step_and_its_rollback_matches_the_replay(backend: Backend) {
    let db = TestDb::on(backend).await;
    let mut narration = String::new();
    demo::run(&db.database, &mut |text| narration.push_str(text))
        .await
        .expect("demo runs");
    for step in [
        "1. Loaded",
        "2. Day 1",
        "3. Day 2's prices",
        "4. Day 2 applied",
        "5. The history",
        "6. Replayed",
        "7. Rolled back",
    ] {
        assert!(
            narration.contains(step),
            "missing `{step}` in:\n{narration}"
        );
    }
    let line = narration.lines().find(|l| l.starts_with("7.")).unwrap();
    let counts: Vec<usize> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    // "… {matching} of {total} live rows now hash-equal the replay …"
    let of = line.split_whitespace().position(|w| w == "of").unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    let matching: usize = words[of - 1].parse().unwrap();
    let total: usize = words[of + 1].parse().unwrap();
    assert!(total > 60, "{line}");
    assert_eq!(matching, total, "{line} ({counts:?})");
    assert!(
        narration.contains("because"),
        "reasons are shown:\n{narration}"
    );
}

on_both_stores!(the_demo_narrates_every_step_and_its_rollback_matches_the_replay);
