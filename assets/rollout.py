"""The evidence an experiment is decided on: the challenger's and the champion's daily gate metric,
paired by day, and a seeded bootstrap over those days.

Days are the unit: the rows of one day share its weather, its traffic and its labels' delay, so
they are not independent, while days nearly are. Each day gives one difference (challenger minus
champion, on the same rows under shadow, on their own arms under A/B); resampling the days with
replacement gives the distribution of the mean difference. Pure functions of numbers, without
Dagster: the decision sensor calls them on metadata, the quality asset on its table, the bench on
a replay.
"""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from assets.model_spec import Rollout

PROMOTE, RETIRE, CONTINUE = "promote", "retire", "continue"


@dataclass(frozen=True)
class DayPair:
    day: str
    champion: float
    challenger: float


@dataclass(frozen=True)
class Evidence:
    """What a decision rests on: the days judged, the mean metric of each version over the days
    both have, the mean difference (challenger minus champion) and its bootstrap interval, whose
    ends are each a one-sided bound at `confidence`; and the decision with its reason."""

    metric: str
    days: tuple[DayPair, ...]
    paired_days: int
    champion_mean: float
    challenger_mean: float
    difference: float
    interval: tuple[float, float]
    confidence: float
    decision: str
    reason: str

    def as_json(self) -> dict:
        """The evidence as an entry of the promotion history keeps it."""
        found = asdict(self)
        found["days"] = [asdict(d) for d in self.days]
        found["interval"] = list(self.interval)
        return {k: _finite(v) for k, v in found.items()}

    def summary(self) -> str:
        low, high = self.interval
        return (
            f"{self.paired_days} days: {self.metric} challenger {self.challenger_mean:.4f}, "
            f"champion {self.champion_mean:.4f}, difference {self.difference:+.4f} "
            f"[{low:+.4f}, {high:+.4f}] at {self.confidence:.0%}"
        )


def bootstrap_interval(
    differences: Sequence[float], confidence: float, samples: int, seed: int
) -> tuple[float, float]:
    """The (1 - confidence) and confidence quantiles of the mean of `differences` resampled with
    replacement `samples` times: each end bounds the mean on its side with `confidence`."""
    values = np.asarray(differences, dtype=float)
    if not len(values):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    low, high = np.quantile(means, [1 - confidence, confidence])
    return float(low), float(high)


def judge(
    metric: str, higher_is_better: bool, days: Sequence[DayPair], settings: Rollout
) -> Evidence:
    """The decision on an experiment after `days` (every judged day, oldest first; a day where
    either value is NaN, such as an AUC of one class, is not paired).

    Promote when at least `min_days` days are paired, the mean difference favours the challenger
    and the bootstrap bound on the champion's side is beyond zero; retire when the bound on the
    challenger's side is beyond zero the other way (worse with that confidence), or when
    `max_days` days have been judged without either.
    """
    paired = [d for d in days if not (math.isnan(d.champion) or math.isnan(d.challenger))]
    differences = [d.challenger - d.champion for d in paired]
    low, high = bootstrap_interval(
        differences, settings.confidence, settings.bootstrap_samples, settings.seed
    )
    mean = float(np.mean(differences)) if differences else math.nan
    sign = 1 if higher_is_better else -1
    better = sign * mean > 0 and (low > 0 if higher_is_better else high < 0)
    worse = high < 0 if higher_is_better else low > 0
    enough = len(paired) >= settings.min_days
    level = f"{settings.confidence:.0%}"
    if enough and better:
        decision, reason = PROMOTE, f"the challenger is better with {level} confidence"
    elif enough and worse:
        decision, reason = RETIRE, f"the challenger is worse with {level} confidence"
    elif len(days) >= settings.max_days:
        decision = RETIRE
        reason = f"no decision after {len(days)} days, the most an experiment may last"
    elif not enough:
        decision = CONTINUE
        reason = f"{len(paired)} of the {settings.min_days} paired days a decision needs"
    else:
        decision, reason = CONTINUE, f"the difference is not beyond zero with {level} confidence"
    return Evidence(
        metric=metric,
        days=tuple(days),
        paired_days=len(paired),
        champion_mean=float(np.mean([d.champion for d in paired])) if paired else math.nan,
        challenger_mean=float(np.mean([d.challenger for d in paired])) if paired else math.nan,
        difference=mean,
        interval=(low, high),
        confidence=settings.confidence,
        decision=decision,
        reason=reason,
    )


def _finite(value):
    """JSON has no NaN: a missing number is written as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value
