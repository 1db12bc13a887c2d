"""The quality gate every trained model must pass before it may serve predictions."""

from dataclasses import dataclass

# The blocking asset check on `<model>/model`; sensors and tests refer to it by this name.
QUALITY_GATE = "quality_gate"
DEFAULT_AUC_FLOOR = 0.65
DEFAULT_AUC_TOLERANCE = 0.005


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str


def decide(
    candidate_auc: float, champion_auc: float | None, floor: float, tolerance: float
) -> GateDecision:
    """Pass when the candidate clears the floor and is not worse than the champion beyond tolerance.

    Both AUCs are measured on the same held-out rows. A NaN AUC (one class only) never passes.
    """
    if not candidate_auc >= floor:
        return GateDecision(False, f"holdout AUC {candidate_auc:.4f} is below the floor {floor}")
    if champion_auc is None:
        return GateDecision(True, f"first model: holdout AUC {candidate_auc:.4f} clears {floor}")
    if candidate_auc < champion_auc - tolerance:
        return GateDecision(
            False,
            f"holdout AUC {candidate_auc:.4f} is worse than the champion's {champion_auc:.4f} "
            f"on the same rows by more than {tolerance}",
        )
    return GateDecision(
        True,
        f"holdout AUC {candidate_auc:.4f} against the champion's {champion_auc:.4f} "
        f"(tolerance {tolerance})",
    )
