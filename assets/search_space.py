"""The ranges a hyperparameter search explores, as a model declares them.

A model's `search_space` maps each searched parameter of its estimator to one of these; the
search (`assets.tuning`) asks Optuna for a value of each per trial. Plain frozen dataclasses, so a
declaration names its space without importing Optuna.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Real:
    """A float in [low, high]; `log` draws it on a log scale (learning rates, penalties)."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self):
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"Real({self.low}, {self.high}, log={self.log}): empty range")

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class Integer:
    """An integer in [low, high]; `log` draws it on a log scale."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self):
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"Integer({self.low}, {self.high}, log={self.log}): empty range")

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class Choice:
    """One of `options` (strings, numbers, booleans or None)."""

    options: tuple

    def __post_init__(self):
        if len(self.options) < 2:
            raise ValueError(f"Choice{self.options}: a choice needs at least two options")

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.options))


Dimension = Real | Integer | Choice
