"""A model's rollout experiments, read from its promotion history and looked up as of a day.

A `challenge` entry starts an experiment: its id (`experiment`, the challenger's version), the
`champion` it challenges, the `policy` (`shadow` or `ab`) and, under `ab`, the `share` of the rows
the challenger serves. It is live from the entry's effective date until the effective date of the
entry that ends it: a `retire` entry, or a `promote` entry naming it, both carrying the evidence
they were decided on. Like the champion, the experiment of a day is looked up as of that day, so
a rerun or a backfill of a past day scores and serves its rows as they were.
"""

from dataclasses import dataclass
from datetime import date

from resources.promotions import CHALLENGE, RETIRE

# The entries that end an experiment: its challenger made champion, or retired.
ENDINGS = ("promote", RETIRE)


@dataclass(frozen=True)
class Experiment:
    id: str
    challenger: str
    champion: str
    policy: str
    share: float | None
    started: date
    start: dict
    end: dict | None  # the entry that ended it, if any

    @property
    def ended(self) -> date | None:
        """The first day it is no longer live."""
        return date.fromisoformat(self.end["effective_from"]) if self.end else None

    @property
    def outcome(self) -> str:
        """`live`, `promoted` or `retired`."""
        if self.end is None:
            return "live"
        return "promoted" if self.end["action"] == "promote" else "retired"

    def live_on(self, day: date) -> bool:
        return self.started <= day and (self.ended is None or day < self.ended)


def experiments(entries: list[dict]) -> list[Experiment]:
    """Every experiment of the history, in the order they were started."""
    found = []
    for start in entries:
        if start["action"] != CHALLENGE:
            continue
        end = next(
            (
                e
                for e in entries
                if e["seq"] > start["seq"]
                and e["action"] in ENDINGS
                and e.get("experiment") == start["experiment"]
            ),
            None,
        )
        found.append(
            Experiment(
                id=start["experiment"],
                challenger=start["version"],
                champion=start["champion"],
                policy=start["policy"],
                share=start.get("share"),
                started=date.fromisoformat(start["effective_from"]),
                start=start,
                end=end,
            )
        )
    return found


def live_at(entries: list[dict], day: date) -> Experiment | None:
    """The experiment live on `day`: of those whose span holds it, the one started last."""
    live = [e for e in experiments(entries) if e.live_on(day)]
    return max(live, key=lambda e: (e.started, e.start["seq"])) if live else None


def open_experiment(entries: list[dict]) -> Experiment | None:
    """The experiment no entry has ended yet, if any (at most one: starting one ends the other)."""
    running = [e for e in experiments(entries) if e.end is None]
    return running[-1] if running else None


def challenged(entries: list[dict]) -> set[str]:
    """Versions that have been challengers: the gate never starts one of them again by itself."""
    return {e.challenger for e in experiments(entries)}
