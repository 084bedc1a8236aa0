"""Keeps TickStockAppV2's dropdowns in step with Phase 2.5 (tickstock-cache-sync).

A drop-in module for the app: standard library and redis-py only. It subscribes to
``{prefix}:universe:updated``, and on every (re)subscription first catches up from the durable
stream ``{prefix}:cache:changes`` (entry ids ``{seq}-1``), so a disconnect or a Redis restart
misses nothing. Delivery is at least once, so every event whose ``seq`` is not above the last one
applied is dropped. Each event refreshes exactly one ``[type][name][key]`` of a dict shaped like
``CacheControl.cache`` (``stock_universes``, ``etf_universes``, ``stock_etf_combos``, ``themes``,
``stock_stats``), plus that entry's dropdown in ``universes`` / ``universe_metadata``, built by
the same rules as ``CacheControl._build_universe_selections``.

Events carry what changed, not the new value: ``fetch(type, name, key)`` supplies it (the value
now, or ``None`` when the entry no longer exists). ``http_fetcher`` reads it from the service's
``GET /api/universes/{type}/{name}/{key}``; the app may pass its own function that reads the
``cache_entries`` row instead.

Start it (see the hand-back, section 9)::

    listener = CacheSyncListener(redis_url, lambda: cache_control.cache,
                                 http_fetcher(api_url, api_key),
                                 on_resync=cache_control.reset_cache)
    listener.last_seq = listener.newest_seq()   # before CacheControl loads the table
    ...                                         # CacheControl().initialize()
    listener.start()

Run as a script it watches a Redis and writes the dict it keeps to a JSON file (``--dump``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, Optional, Tuple, Union

import redis

log = logging.getLogger("cache_sync_listener")

#: The ``CacheControl.cache`` section that holds each ``cache_entries.type`` the job writes.
SECTIONS = {
    "stock_universe": "stock_universes",
    "etf_universe": "etf_universes",
    "stock_etf_combo": "stock_etf_combos",
    "themes": "themes",
    "stock_stats": "stock_stats",
}

Fetch = Callable[[str, str, str], Any]
Cache = Union[Dict[str, Any], Callable[[], Dict[str, Any]]]


def empty_cache() -> Dict[str, Any]:
    """A CacheControl-shaped dict with no entries."""
    cache: Dict[str, Any] = {section: {} for section in SECTIONS.values()}
    cache["universes"] = {}
    cache["universe_metadata"] = {}
    return cache


def http_fetcher(base_url: str, api_key: str, timeout: float = 10.0) -> Fetch:
    """``fetch`` reading an entry's current value from cache-sync's HTTP API (``X-API-Key``)."""
    base = base_url.rstrip("/")

    def fetch(entry_type: str, name: str, key: str) -> Any:
        path = "/".join(urllib.parse.quote(part, safe="") for part in (entry_type, name, key))
        request = urllib.request.Request(
            f"{base}/api/universes/{path}", headers={"X-API-Key": api_key}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.load(response).get("value")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    return fetch


def seq_of(stream_id: str) -> int:
    """The audit ``seq`` of a stream entry id ``{seq}-1``."""
    return int(str(stream_id).split("-", 1)[0])


# --------------------------------------------------------------------------- the dict


def _selection(entry_type: str, name: str, key: str, value: Any) -> Tuple[str, Optional[dict]]:
    """The dropdown key CacheControl gives this entry, and its selection (None: it shows none)."""
    if entry_type == "etf_universe":
        full_key = f"etf_{key}"
        if isinstance(value, list):
            meta = {"criteria": f"ETF - {name}", "description": f"{name} ETFs"}
            return full_key, {"tickers": value, "count": len(value), **meta}
        return full_key, None
    if entry_type == "themes":
        full_key = f"theme_{name}"
        if key == "list" and isinstance(value, list) and value:
            meta = {"criteria": f"Theme - {name}", "description": f"{name.title()} Theme Stocks"}
            return full_key, {"tickers": value, "count": len(value), **meta}
        return full_key, None
    full_key = f"{name}:{key}"
    meta = {
        "criteria": f"{name} - {key}",
        "description": f"{name.title()} {key.replace('_', ' ').title()}",
    }
    tickers: list = []
    count: Any = None
    if entry_type == "stock_universe":
        if not (isinstance(value, dict) and "stocks" in value):
            return full_key, None
        tickers = [stock["ticker"] for stock in value["stocks"]]
        count = value.get("count", len(tickers))
    elif entry_type == "stock_etf_combo":
        if isinstance(value, list):
            tickers, count = value, len(value)
        elif isinstance(value, dict) and "stocks" in value:
            tickers = [s["ticker"] for s in value["stocks"] if isinstance(s, dict) and "ticker" in s]
            count = value.get("count", len(tickers))
        elif isinstance(value, dict) and "symbols" in value:
            tickers = [
                s["ticker"] if isinstance(s, dict) else s
                for s in value["symbols"]
                if isinstance(s, str) or (isinstance(s, dict) and "ticker" in s)
            ]
            count = value.get("count", len(tickers))
        else:
            return full_key, None
    else:
        return full_key, None
    if not tickers:
        return full_key, None
    return full_key, {"tickers": tickers, "count": count, **meta}


def place(cache: Dict[str, Any], entry_type: str, name: str, key: str, value: Any) -> None:
    """Writes one entry's value (``None``: removes it) and refreshes its dropdown, nothing else."""
    section = SECTIONS.get(entry_type)
    if section is None:
        return
    if entry_type == "themes":
        if key != "list":
            return  # CacheControl keeps only a theme's list
        themes = cache.setdefault("themes", {})
        if value is None:
            themes.pop(name, None)
        else:
            themes[name] = value
    else:
        names = cache.setdefault(section, {})
        if value is None:
            keys = names.get(name)
            if keys is not None:
                keys.pop(key, None)
                if not keys:
                    names.pop(name, None)
        else:
            names.setdefault(name, {})[key] = value
    if "universes" not in cache:
        return
    full_key, selection = _selection(entry_type, name, key, value)
    universes = cache["universes"]
    metadata = cache.setdefault("universe_metadata", {})
    if selection is None:
        # Another entry may own this dropdown key (an ETF key under a renamed category).
        mine = _selection(entry_type, name, key, [] if entry_type == "etf_universe" else None)[1]
        current = metadata.get(full_key)
        if current is not None and (mine is None or current.get("criteria") == mine["criteria"]):
            universes.pop(full_key, None)
            metadata.pop(full_key, None)
        return
    meta = {"count": selection["count"], "criteria": selection["criteria"],
            "description": selection["description"]}
    universes[full_key] = {
        "tickers": selection["tickers"],
        "count": selection["count"],
        "metadata": {"criteria": meta["criteria"], "description": meta["description"]},
    }
    metadata[full_key] = meta


# --------------------------------------------------------------------------- the listener


class CacheSyncListener:
    """Applies ``universe_updated`` events to a CacheControl-shaped dict, once each, in order."""

    def __init__(
        self,
        redis_url: str,
        cache: Cache,
        fetch: Fetch,
        *,
        prefix: str = "tickstock",
        last_seq: int = 0,
        lock: Optional[threading.RLock] = None,
        on_resync: Optional[Callable[[], None]] = None,
        on_applied: Optional[Callable[[int, dict], None]] = None,
        reconnect_delay: float = 1.0,
        batch: int = 500,
    ) -> None:
        self.redis_url = redis_url
        self._cache = cache
        self.fetch = fetch
        self.channel = f"{prefix}:universe:updated"
        self.stream = f"{prefix}:cache:changes"
        #: The highest ``seq`` applied; events at or below it are repeats.
        self.last_seq = last_seq
        self.lock = lock or threading.RLock()
        self.on_resync = on_resync
        self.on_applied = on_applied
        self.reconnect_delay = reconnect_delay
        self.batch = batch
        self.duplicates = 0
        self.resyncs = 0
        self._server_id: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # ---- the dict

    @property
    def cache(self) -> Dict[str, Any]:
        return self._cache() if callable(self._cache) else self._cache

    def apply(self, payload: dict) -> bool:
        """Applies one ``universe_updated`` payload unless its ``seq`` was applied already."""
        seq = int(payload["seq"])
        with self.lock:
            if seq <= self.last_seq:
                self.duplicates += 1
                return False
        entry_type, name, key = payload["type"], payload["name"], payload["key"]
        value = None
        if payload.get("action") != "deleted" and entry_type in SECTIONS:
            value = self.fetch(entry_type, name, key)
        with self.lock:
            if seq <= self.last_seq:
                self.duplicates += 1
                return False
            place(self.cache, entry_type, name, key, value)
            self.last_seq = seq
        if self.on_applied is not None:
            self.on_applied(seq, payload)
        return True

    def _apply_envelope(self, text: Union[str, bytes]) -> None:
        envelope = json.loads(text)
        if envelope.get("event") == "universe_updated":
            self.apply(envelope["payload"])

    # ---- the stream

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.redis_url, decode_responses=True, socket_connect_timeout=2, socket_timeout=10
        )

    def newest_seq(self, client: Optional[redis.Redis] = None) -> int:
        """The newest ``seq`` in the stream (0 when it is empty): where to start after a load."""
        client = client or self._client()
        newest = client.xrevrange(self.stream, count=1)
        return seq_of(newest[0][0]) if newest else 0

    def _continuous(self, client: redis.Redis) -> bool:
        """Whether the stream still holds every entry after ``last_seq``."""
        server_id = client.info("server").get("run_id")
        restarted = self._server_id is not None and server_id != self._server_id
        self._server_id = server_id
        try:
            info = client.xinfo_stream(self.stream)
        except redis.ResponseError:  # no stream (yet)
            return not restarted or self.last_seq == 0
        first = info.get("first-entry")
        first_seq = seq_of(first[0]) if first else None
        deleted = info.get("max-deleted-entry-id")
        if deleted is not None and seq_of(deleted) > self.last_seq:
            return False  # entries after last_seq were deleted (XDEL)
        added = info.get("entries-added")
        # Redis < 7 does not count what the cap trimmed: assume it may have.
        trimmed = added is None or added > info.get("length", 0)
        gap = first_seq is not None and first_seq > self.last_seq + 1
        if gap and (trimmed or (restarted and self.last_seq > 0)):
            # The cap trimmed entries before the oldest one, or the server came back without
            # them: some may be after last_seq (seq has gaps, so this can ask for a reload that
            # was not needed; a reload is always safe).
            return False
        if first_seq is None and restarted and self.last_seq > 0:
            return False
        return True

    def _resync(self, client: redis.Redis) -> None:
        newest = self.newest_seq(client)  # taken first: later events re-apply harmlessly
        self.resyncs += 1
        if self.on_resync is not None:
            self.on_resync()
        else:
            log.error("cache-sync events were lost; reload the dropdowns from cache_entries")
        with self.lock:
            self.last_seq = max(self.last_seq, newest)

    def catch_up(self, client: redis.Redis) -> None:
        """Applies what the stream holds after ``last_seq`` (a full reload if it cannot tell)."""
        if not self._continuous(client):
            self._resync(client)
        while True:
            entries = client.xrange(
                self.stream, min=f"{self.last_seq + 1}-0", max="+", count=self.batch
            )
            for _entry_id, fields in entries:
                self._apply_envelope(fields["event"])
            if len(entries) < self.batch:
                return

    # ---- the loop

    def _session(self) -> None:
        client = self._client()
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    # The first subscription and every automatic re-subscription: messages
                    # published from now on queue up while the stream fills the gap.
                    self.catch_up(client)
                elif message["type"] == "message":
                    self._apply_envelope(message["data"])
        finally:
            pubsub.close()
            client.close()

    def run_forever(self) -> None:
        """Listens until ``stop()``; reconnects after any Redis or fetch failure."""
        while not self._stop.is_set():
            try:
                self._session()
            except (redis.RedisError, OSError, ValueError) as error:
                log.warning("cache-sync listener reconnecting: %s", error)
                self._stop.wait(self.reconnect_delay)

    def start(self) -> threading.Thread:
        """Runs the listener in a daemon thread."""
        self._thread = threading.Thread(
            target=self.run_forever, name="cache-sync-listener", daemon=True
        )
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


# --------------------------------------------------------------------------- the script


def _write_json(path: str, document: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(document, out, sort_keys=True)
    os.replace(tmp, path)


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    parser.add_argument("--prefix", default=os.environ.get("CACHE_SYNC_CHANNEL_PREFIX", "tickstock"))
    parser.add_argument("--api-url", default=os.environ.get("CACHE_SYNC_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--from-seq", type=int, default=0,
                        help="apply what follows this seq (0: everything the stream holds)")
    parser.add_argument("--dump", help="write the dict, the applied seqs and counters here")
    args = parser.parse_args(argv)
    api_key = os.environ.get("CACHE_SYNC_API_KEY", "")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    cache = empty_cache()
    applied: list = []

    def dump(seq: int = 0, payload: Optional[dict] = None) -> None:
        if payload is not None:
            applied.append(seq)
            log.info("applied seq %d: %s %s/%s/%s", seq, payload.get("action"),
                     payload["type"], payload["name"], payload["key"])
        if args.dump:
            _write_json(args.dump, {
                "last_seq": listener.last_seq, "applied": applied,
                "duplicates": listener.duplicates, "resyncs": listener.resyncs, "cache": cache,
            })

    listener = CacheSyncListener(
        args.redis_url, cache, http_fetcher(args.api_url, api_key), prefix=args.prefix,
        last_seq=args.from_seq, on_applied=dump, reconnect_delay=0.2,
    )
    original_apply = listener.apply

    def apply_and_dump(payload: dict) -> bool:
        done = original_apply(payload)
        if not done:
            dump()  # a repeat: the counters moved
        return done

    listener.apply = apply_and_dump  # type: ignore[method-assign]
    dump()
    try:
        listener.run_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
