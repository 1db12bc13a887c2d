"""The champion timeline of a model: an append-only history of promotions with effective dates.

Each event is one immutable JSON object `<seq>.json` (seq counts from 1) in the lake's store,
created exclusively (a hard link locally, a conditional PUT on S3) and never rewritten. The
champion at day D is the entry with the latest `effective_from` on or before D; among entries
effective the same day, the later one (higher seq) wins. A past champion is therefore looked up
as of D, and backfilled predictions do not change when later promotions are appended.

Appending is a compare-and-swap: a writer that read N entries creates entry N+1, and only if no
one else did first. A decision taken on the history (the quality gate's comparison with the
champion, a rollback's choice of the version to restore) is therefore written only if the history
is still the one it was taken on, on a local disk and on S3 alike, whatever serializes the runs.
The same history holds the experiments of the rollout policies (`resources.experiments`): a
`challenge` entry starts a challenger, a `retire` entry ends it, and a `promote` entry that names
an `experiment` ends it by making it champion. Only `promote`, `manual` and `rollback` entries
change the champion; `challenge` and `retire` entries never do. Every entry kind may carry fields
of its own beside the common ones, so a reader that follows promotions ignores what it does not
know.

Readers check the history is whole: an entry missing from the sequence, or one that is not a
whole entry, makes them refuse naming the file, because the champion of some days would
otherwise change without a word.
"""

import json
from datetime import UTC, date, datetime

from resources import records
from resources.storage import ObjectStore

# The entries that change the champion, and those that start and end a challenger.
CHAMPION_ACTIONS = ("promote", "manual", "rollback")
CHALLENGE, RETIRE = "challenge", "retire"
ACTIONS = (*CHAMPION_ACTIONS, CHALLENGE, RETIRE)
ENTRY_FIELDS = ("seq", "version", "effective_from", "action")
_SEQ_DIGITS = 6
_RESTORE = (
    "The history is append-only: restore the file from a backup or the bucket's object "
    "versions. To withdraw a champion, roll it back (a new entry); never delete or edit one."
)


class HistoryChanged(RuntimeError):
    """Another writer appended to the history after it was read: a decision taken on the
    history read is stale and must be taken again on the history as it is now."""


def entry_key(folder: str, seq: int) -> str:
    return f"{folder}/{seq:0{_SEQ_DIGITS}d}.json"


def read(store: ObjectStore, folder: str) -> list[dict]:
    """Every entry under the key prefix `folder`, in the order they were appended; raises
    DamagedRegistryError naming the file when an entry is missing from the sequence or damaged."""
    numbered = {}
    for key in store.sizes(folder):
        name = key[len(folder) + 1 :]
        stem = name.removesuffix(".json")
        if stem != name and stem.isdigit():
            numbered[int(stem)] = key
    gaps = sorted(set(range(1, max(numbered, default=0) + 1)) - set(numbered))
    if gaps:
        shown = ", ".join(store.uri(entry_key(folder, seq)) for seq in gaps[:5])
        raise records.DamagedRegistryError(
            f"promotion history {store.uri(folder)}: entries {gaps[:5]} are missing ({shown}); "
            f"the champion of some days would change silently. {_RESTORE}"
        )
    keys = [numbered[seq] for seq in sorted(numbered)]
    entries = []
    for seq, key, content in zip(sorted(numbered), keys, store.get_many(keys), strict=True):
        entry = records.parse(store, key, content, ENTRY_FIELDS, _RESTORE)
        if entry["seq"] != seq:
            raise records.damaged(store, key, f"says it is entry {entry['seq']!r}", _RESTORE)
        entries.append(entry)
    return entries


def append(store: ObjectStore, folder: str, entry: dict, decided_on: list[dict]) -> dict:
    """Append `entry` (version, effective_from, action, reason, ...) as the entry after
    `decided_on`, the history it was decided on; raise HistoryChanged, writing nothing, when
    another entry was appended since."""
    if entry["action"] not in ACTIONS:
        raise ValueError(f"unknown promotion action {entry['action']!r}; expected one of {ACTIONS}")
    seq = len(decided_on) + 1
    full = {"seq": seq, **entry, "created_at": datetime.now(UTC).isoformat()}
    try:
        store.put_new(entry_key(folder, seq), json.dumps(full, indent=2).encode())
    except FileExistsError:
        raise HistoryChanged(
            f"promotion history {store.uri(folder)}: entry {seq} was appended by another writer"
        ) from None
    return full


def timeline_order(entries: list[dict]) -> list[dict]:
    """The entries that change the champion, by effective date, then by sequence: the last one
    effective on a day rules it."""
    changes = [e for e in entries if e["action"] in CHAMPION_ACTIONS]
    return sorted(changes, key=lambda e: (e["effective_from"], e["seq"]))


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
