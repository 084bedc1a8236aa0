"""Unit tests of cache_sync_listener (python3 -m unittest, from this folder).

The dict tests follow TickStockAppV2's ``src/infrastructure/cache/cache_control.py``:
``CacheControl.load_settings_from_db`` (which section holds each type) and
``CacheControl._build_universe_selections`` (which entries become dropdowns, under which key).
The stream tests run a private ``redis-server`` on a free loopback port (skipped when it is not
installed); the end-to-end test against real runs is ``tests/api/listener.rs``.
"""

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import redis

import cache_sync_listener as csl

STOCKS = {"count": 2, "stocks": [{"ticker": "AAPL", "rank": 1}, {"ticker": "MSFT", "rank": 2}]}


def event(seq, entry_type, name, key, action="updated"):
    return {"seq": seq, "type": entry_type, "name": name, "key": key, "action": action,
            "universe": f"{name}:{key}", "added": [], "removed": [], "count": 0,
            "hash": None, "run_id": 1}


class Values:
    """``fetch`` over a dict of values, recording each call."""

    def __init__(self, values):
        self.values = values
        self.calls = []

    def __call__(self, entry_type, name, key):
        self.calls.append((entry_type, name, key))
        return self.values.get((entry_type, name, key))


class PlaceFollowsCacheControl(unittest.TestCase):
    """cache_control.py: load_settings_from_db and _build_universe_selections."""

    def setUp(self):
        self.cache = csl.empty_cache()

    def test_a_stock_universe_with_stocks_is_a_name_colon_key_dropdown(self):
        csl.place(self.cache, "stock_universe", "market_cap", "large_cap", STOCKS)
        self.assertEqual(self.cache["stock_universes"]["market_cap"]["large_cap"], STOCKS)
        self.assertEqual(self.cache["universes"]["market_cap:large_cap"], {
            "tickers": ["AAPL", "MSFT"], "count": 2,
            "metadata": {"criteria": "market_cap - large_cap",
                         "description": "Market_Cap Large Cap"},
        })
        self.assertEqual(self.cache["universe_metadata"]["market_cap:large_cap"]["count"], 2)

    def test_a_plain_ticker_array_under_stock_universe_is_kept_but_is_no_dropdown(self):
        csl.place(self.cache, "stock_universe", "complete", "all_stocks", ["AAPL", "MSFT"])
        self.assertEqual(self.cache["stock_universes"]["complete"]["all_stocks"], ["AAPL", "MSFT"])
        self.assertNotIn("complete:all_stocks", self.cache["universes"])

    def test_an_etf_ticker_array_is_an_etf_key_dropdown_and_a_detailed_value_is_none(self):
        csl.place(self.cache, "etf_universe", "Bond ETFs", "etf_bonds", ["AGG", "BND"])
        csl.place(self.cache, "etf_universe", "Bond ETFs", "etf_bonds_detailed",
                  {"count": 2, "etfs": [{"symbol": "AGG"}, {"symbol": "BND"}]})
        self.assertEqual(self.cache["universes"]["etf_etf_bonds"]["tickers"], ["AGG", "BND"])
        self.assertEqual(self.cache["universes"]["etf_etf_bonds"]["metadata"],
                         {"criteria": "ETF - Bond ETFs", "description": "Bond ETFs ETFs"})
        self.assertNotIn("etf_etf_bonds_detailed", self.cache["universes"])
        self.assertEqual(set(self.cache["etf_universes"]["Bond ETFs"]),
                         {"etf_bonds", "etf_bonds_detailed"})

    def test_a_theme_list_is_held_by_name_and_is_a_theme_dropdown(self):
        csl.place(self.cache, "themes", "Ai", "list", ["AMD", "NVDA"])
        self.assertEqual(self.cache["themes"], {"Ai": ["AMD", "NVDA"]})
        self.assertEqual(self.cache["universes"]["theme_Ai"]["metadata"]["description"],
                         "Ai Theme Stocks")

    def test_the_combo_dropdown_lists_the_tickers_of_its_stocks(self):
        detailed = {"count": 3, "stocks": [{"ticker": "AAPL"}, {"ticker": "MSFT"}],
                    "etfs": [{"ticker": "SPY", "type": "etf"}]}
        csl.place(self.cache, "stock_etf_combo", "stock_etf_test", "combo_test_detailed", detailed)
        csl.place(self.cache, "stock_etf_combo", "stock_etf_test", "combo_test",
                  ["AAPL", "MSFT", "SPY"])
        self.assertEqual(self.cache["universes"]["stock_etf_test:combo_test_detailed"]["tickers"],
                         ["AAPL", "MSFT"])
        self.assertEqual(self.cache["universes"]["stock_etf_test:combo_test_detailed"]["count"], 3)
        self.assertEqual(self.cache["universes"]["stock_etf_test:combo_test"]["count"], 3)

    def test_stats_are_held_but_are_no_dropdown(self):
        csl.place(self.cache, "stock_stats", "universe", "summary", {"overview": {}})
        self.assertEqual(self.cache["stock_stats"], {"universe": {"summary": {"overview": {}}}})
        self.assertEqual(self.cache["universes"], {})

    def test_removing_an_entry_removes_its_dropdown_and_touches_nothing_else(self):
        other = {"count": 1, "stocks": [{"ticker": "XOM"}]}
        csl.place(self.cache, "stock_universe", "market_cap", "large_cap", STOCKS)
        csl.place(self.cache, "stock_universe", "market_cap", "mid_cap", other)
        kept = self.cache["universes"]["market_cap:mid_cap"]
        csl.place(self.cache, "stock_universe", "market_cap", "large_cap", None)
        self.assertEqual(self.cache["stock_universes"], {"market_cap": {"mid_cap": other}})
        self.assertNotIn("market_cap:large_cap", self.cache["universes"])
        self.assertIs(self.cache["universes"]["market_cap:mid_cap"], kept)
        csl.place(self.cache, "stock_universe", "market_cap", "mid_cap", None)
        self.assertEqual(self.cache["stock_universes"], {})

    def test_an_entry_that_empties_loses_its_dropdown(self):
        csl.place(self.cache, "stock_universe", "ipos", "recent_ipos", STOCKS)
        csl.place(self.cache, "stock_universe", "ipos", "recent_ipos", {"count": 0, "stocks": []})
        self.assertNotIn("ipos:recent_ipos", self.cache["universes"])

    def test_types_the_job_does_not_write_are_never_touched(self):
        self.cache["app_settings"] = {"THEME": "dark"}
        csl.place(self.cache, "app_settings", "x", "THEME", "light")
        self.assertEqual(self.cache["app_settings"], {"THEME": "dark"})


class ApplyDeduplicatesBySeq(unittest.TestCase):
    def test_a_repeated_or_older_seq_is_dropped_without_fetching(self):
        fetch = Values({("stock_universe", "market_cap", "large_cap"): STOCKS})
        listener = csl.CacheSyncListener("redis://unused", csl.empty_cache(), fetch)
        self.assertTrue(listener.apply(event(7, "stock_universe", "market_cap", "large_cap")))
        self.assertFalse(listener.apply(event(7, "stock_universe", "market_cap", "large_cap")))
        self.assertFalse(listener.apply(event(3, "stock_universe", "market_cap", "large_cap")))
        self.assertEqual(len(fetch.calls), 1)
        self.assertEqual(listener.duplicates, 2)
        self.assertEqual(listener.last_seq, 7)

    def test_a_deletion_removes_without_fetching(self):
        cache = csl.empty_cache()
        csl.place(cache, "themes", "Ai", "list", ["NVDA"])
        fetch = Values({})
        listener = csl.CacheSyncListener("redis://unused", lambda: cache, fetch)
        listener.apply(event(2, "themes", "Ai", "list", action="deleted"))
        self.assertEqual(cache["themes"], {})
        self.assertEqual(fetch.calls, [])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(shutil.which("redis-server"), "redis-server is not installed")
class StreamCatchUp(unittest.TestCase):
    """A private redis-server; the stream and channel are written here as the relay writes them."""

    def setUp(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="listener-test-")
        self.server = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}"
        self.redis = redis.Redis.from_url(self.url, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.redis.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.stream = "t:cache:changes"

    def tearDown(self):
        self.server.kill()
        self.server.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def add(self, seq, key, maxlen=None):
        envelope = {"event": "universe_updated", "timestamp": "2026-01-01T00:00:00.000Z",
                    "source": "tickstock-cache-sync", "version": "1.0",
                    "payload": event(seq, "stock_universe", "market_cap", key)}
        text = json.dumps(envelope)
        self.redis.xadd(self.stream, {"seq": seq, "event": text}, id=f"{seq}-1",
                        maxlen=maxlen, approximate=False)
        self.redis.publish("t:universe:updated", text)

    def wait_for(self, condition):
        deadline = time.monotonic() + 10
        while not condition():
            self.assertLess(time.monotonic(), deadline, "timed out")
            time.sleep(0.02)

    def test_subscribing_catches_up_from_the_stream_then_follows_live_events(self):
        for seq, key in [(3, "large_cap"), (5, "mid_cap")]:
            self.add(seq, key)
        fetch = Values({("stock_universe", "market_cap", k): STOCKS
                        for k in ["large_cap", "mid_cap", "small_cap"]})
        applied = []
        listener = csl.CacheSyncListener(self.url, csl.empty_cache(), fetch, prefix="t",
                                         on_applied=lambda seq, _: applied.append(seq))
        listener.start()
        try:
            self.wait_for(lambda: applied == [3, 5])
            self.add(9, "small_cap")
            self.wait_for(lambda: applied == [3, 5, 9])
            # A relay that died before marking publishes again: dropped by seq.
            self.redis.publish(
                "t:universe:updated",
                json.dumps({"event": "universe_updated", "payload": event(5, "stock_universe",
                                                                          "market_cap", "mid_cap")}))
            self.wait_for(lambda: listener.duplicates >= 1)
            self.assertEqual(applied, [3, 5, 9])
            self.assertEqual(listener.resyncs, 0)
            self.assertEqual(set(listener.cache["stock_universes"]["market_cap"]),
                             {"large_cap", "mid_cap", "small_cap"})
        finally:
            listener.stop()

    def test_a_stream_trimmed_past_the_last_applied_seq_asks_for_a_reload(self):
        for seq in range(1, 6):
            self.add(seq, f"k{seq}")
        reloads = []
        listener = csl.CacheSyncListener(self.url, csl.empty_cache(), Values({}), prefix="t",
                                         last_seq=2, on_resync=lambda: reloads.append(1))
        self.add(6, "k6", maxlen=2)  # trims 1..4: 3 and 4 were never applied
        client = redis.Redis.from_url(self.url, decode_responses=True)
        listener.catch_up(client)
        self.assertEqual(reloads, [1])
        self.assertEqual(listener.last_seq, 6)

    def test_a_stream_trimmed_only_below_the_last_applied_seq_needs_no_reload(self):
        for seq in range(1, 6):
            self.add(seq, f"k{seq}")
        reloads = []
        listener = csl.CacheSyncListener(self.url, csl.empty_cache(), Values({}), prefix="t",
                                         last_seq=5, on_resync=lambda: reloads.append(1))
        self.add(8, "k8", maxlen=2)
        listener.catch_up(redis.Redis.from_url(self.url, decode_responses=True))
        self.assertEqual(reloads, [])
        self.assertEqual(listener.last_seq, 8)


if __name__ == "__main__":
    unittest.main()
