"""The champion timeline of a model: an append-only history of promotions with effective dates.

Each event is one immutable JSON object `<seq>.json` (seq counts from 1) in the lake's store,
created exclusively (a hard link locally, a conditional PUT on S3) and never rewritten, so the
history survives crashes and races of concurrent writers on a local disk and on S3 alike. The
champion at day D is the entry with the latest `effective_from` on or before D; among entries
effective the same day, the later one (higher seq) wins. A past champion is therefore looked up
as of D, and backfilled predictions do not change when later promotions are appended.
"""

import json
import re
from datetime import UTC, date, datetime

from resources.storage import ObjectStore

ACTIONS = ("promote", "manual", "rollback")
_SEQ_DIGITS = 6
_ENTRY = re.compile(r"^\d+\.json$")


def read(store: ObjectStore, folder: str) -> list[dict]:
    """Every entry under the key prefix `folder`, in the order they were appended."""
    keys = [k for k in store.sizes(folder) if _ENTRY.fullmatch(k[len(folder) + 1 :])]
    entries = [json.loads(content) for content in store.get_many(keys)]
    return sorted(entries, key=lambda e: e["seq"])


def append(store: ObjectStore, folder: str, entry: dict) -> dict:
    """Append `entry` (version, effective_from, action, reason, ...) with the next sequence number.

    A writer that loses the race for a number retries with the next one.
    """
    if entry["action"] not in ACTIONS:
        raise ValueError(f"unknown promotion action {entry['action']!r}; expected one of {ACTIONS}")
    while True:
        seq = max((e["seq"] for e in read(store, folder)), default=0) + 1
        full = {"seq": seq, **entry, "created_at": datetime.now(UTC).isoformat()}
        try:
            store.put_new(
                f"{folder}/{seq:0{_SEQ_DIGITS}d}.json", json.dumps(full, indent=2).encode()
            )
        except FileExistsError:
            continue
        return full


def timeline_order(entries: list[dict]) -> list[dict]:
    """Entries by effective date, then by sequence: the last one effective on a day rules it."""
    return sorted(entries, key=lambda e: (e["effective_from"], e["seq"]))


def champion_at(entries: list[dict], day: date) -> dict | None:
    """The entry in force on `day`, or None before the first promotion."""
    effective = [e for e in timeline_order(entries) if e["effective_from"] <= day.isoformat()]
    return effective[-1] if effective else None


def rolled_back(entries: list[dict]) -> set[str]:
    """Versions withdrawn by a rollback; the gate never promotes them again by itself."""
    return {e["replaces"] for e in entries if e["action"] == "rollback"}


def rollback_target(entries: list[dict]) -> tuple[dict, dict]:
    """The entry in force from the latest effective date, and the champion to restore in its place.

    The champion to restore is the most recent one on the timeline before the current version
    that was not itself rolled back.
    """
    ordered = timeline_order(entries)
    if not ordered:
        raise LookupError("no champion has been promoted; nothing to roll back")
    current = ordered[-1]
    withdrawn = rolled_back(entries) | {current["version"]}
    for entry in reversed(ordered):
        if entry["version"] not in withdrawn:
            return current, entry
    raise LookupError(
        f"version {current['version']} is the only champion there has been; "
        "promote another version instead of rolling back"
    )
