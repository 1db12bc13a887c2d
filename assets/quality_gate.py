"""The quality gate every trained model must pass before it may serve predictions."""

from dataclasses import dataclass

from assets.metrics import METRICS

# The blocking asset check on `<model>/model`; sensors and tests refer to it by this name.
QUALITY_GATE = "quality_gate"


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str


def decide(
    metric: str, candidate: float, champion: float | None, limit: float, tolerance: float
) -> GateDecision:
    """Pass when the candidate's holdout value of `metric` is not worse than `limit` and not
    worse than the champion's on the same rows by more than `tolerance`.

    Works alike for metrics where higher is better (the limit is a floor) and lower is better (a
    ceiling). A NaN value (AUC of one class only, say) never passes.
    """
    judge = METRICS[metric]
    bound = "floor" if judge.higher_is_better else "ceiling"
    value = f"holdout {metric} {candidate:.4f}"
    if judge.worse(candidate, limit):
        side = "below" if judge.higher_is_better else "above"
        return GateDecision(False, f"{value} is {side} the {bound} {limit}")
    if champion is None:
        return GateDecision(True, f"first model: {value} clears the {bound} {limit}")
    if judge.worse(candidate, champion, by=tolerance):
        return GateDecision(
            False,
            f"{value} is worse than the champion's {champion:.4f} on the same rows by more "
            f"than {tolerance}",
        )
    return GateDecision(
        True, f"{value} against the champion's {champion:.4f} (tolerance {tolerance})"
    )
