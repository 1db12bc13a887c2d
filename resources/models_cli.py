"""Inspect, promote and roll back model versions from the command line.

Usage: `python -m resources.models_cli --model <model> <command>` (or the `flightdesk-models`
script); `--help` lists the declared models and the commands. It finds the lake the way the
platform does (PLATFORM_LAKE_URI, else PLATFORM_DATA_DIR/lake, else .data/lake), and writes to
the same append-only promotion history as the quality gate and the Launchpad jobs
`promote_model` and `rollback_model`.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date

from resources import experiments as experiments_of
from resources import promotions
from resources.lake import Lake
from resources.registry import ModelRegistry

# Far enough ahead that every promotion is in force: the current champion.
_FOREVER = date(9999, 12, 31)


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    import dagster as dg

    # Loading the declarations builds the assets, whose beta parameters Dagster warns about:
    # noise on a command line, as in the UI (platform/definitions.py).
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    from assets.catalog import load_catalog

    catalog = load_catalog()
    models = [spec.name for spec in catalog.models]
    parser = _parser(models)
    args = parser.parse_args(argv)
    names = getattr(args, "names", [])
    if args.model is None and names and names[0] in models:
        args.model, args.names = names[0], names[1:]
    if args.model is None and args.command is not mlflow_sync:
        parser.error(f"name the model: --model {{{','.join(models)}}}")
    args.spec = catalog.model(args.model) if args.model else None
    args.models = [args.model] if args.model else models
    registry = ModelRegistry(lake=Lake())
    try:
        args.command(registry, args)
    except (KeyError, LookupError, ValueError) as error:
        print(f"error: {error.args[0] if error.args else error}", file=sys.stderr)
        return 1
    return 0


def list_versions(registry: ModelRegistry, args: argparse.Namespace) -> None:
    """One line per version: window, the gate metric on the holdout beside the champion's, gate,
    fingerprint; * marks the current champion."""
    current = registry.champion_at(args.model, _FOREVER)
    history = registry.history(args.model)
    versions = registry.versions(args.model)
    metric = versions[-1]["gate"]["metric"] if versions else "metric"
    print(
        f"  {'version':<24}{'training window':<26}{metric:>9}{'champion':>10}  "
        f"{'gate':<7}{'fingerprint':<14}champion from"
    )
    for record in versions:
        version = record["version"]
        gate = record["gate"]
        served = [
            e["effective_from"]
            for e in promotions.timeline_order(history)
            if e["version"] == version
        ]
        print(
            f"{'*' if current and current['version'] == version else ' '} {version:<24}"
            f"{' .. '.join(record['training_window']):<26}"
            f"{record['metrics'][gate['metric']]:>9.4f}{_number(gate['champion_value']):>10}  "
            f"{'pass' if gate['passed'] else 'FAIL':<7}{record['data_fingerprint'][:12]:<14}"
            f"{', '.join(served) or '-'}"
        )


def show(registry: ModelRegistry, args: argparse.Namespace) -> None:
    """The full record of a version and its entries in the promotion history."""
    record = registry.record(args.model, args.version)
    promotions = [e for e in registry.history(args.model) if e["version"] == args.version]
    print(json.dumps({**record, "promotions": promotions}, indent=2))


def history(registry: ModelRegistry, args: argparse.Namespace) -> None:
    """Every promotion, manual promotion, rollback, challenger start and retirement, oldest
    first."""
    for entry in registry.history(args.model):
        print(
            f"{entry['seq']:>4}  {entry['effective_from']}  {entry['action']:<9}"
            f"{entry['version']:<24}{entry['reason']}"
        )


def experiments(registry: ModelRegistry, args: argparse.Namespace) -> None:
    """Every experiment: challenger, champion, policy, days, outcome and the evidence of its
    decision (of a live one: the evidence so far, from the quality table); with --days, the
    metric of each version on every day judged."""
    from assets.monitoring import experiment_days
    from assets.rollout import judge

    found = experiments_of.experiments(registry.history(args.model))
    if not found:
        print(f"{args.model}: no experiment yet (rollout policy direct, or no challenger passed)")
    for experiment in found:
        share = f" {experiment.share:.0%}" if experiment.share else ""
        end = experiment.end
        span = f"{experiment.started} .. {experiment.ended or 'live'}"
        print(
            f"{experiment.id}  {experiment.policy}{share}  {span}  {experiment.outcome}\n"
            f"    challenger {experiment.challenger} against champion {experiment.champion}"
        )
        evidence = (end or {}).get("evidence")
        if end is not None:
            print(f"    {end['action']} (entry {end['seq']}): {end['reason']}")
        else:
            spec = args.spec
            pairs = experiment_days(registry.lake, spec, experiment)
            so_far = judge(spec.gate_metric, spec.higher_is_better, pairs, spec.rollout)
            evidence = so_far.as_json()
            print(f"    so far: {so_far.decision} ({so_far.reason})")
        if evidence:
            low, high = evidence["interval"]
            print(
                f"    {evidence['paired_days']} days: {evidence['metric']} challenger "
                f"{_number(evidence['challenger_mean'])}, champion "
                f"{_number(evidence['champion_mean'])}, difference "
                f"{_number(evidence['difference'])} [{_number(low)}, {_number(high)}] at "
                f"{evidence['confidence']:.0%}"
            )
            if args.days:
                for day in evidence["days"]:
                    print(
                        f"      {day['day']}  champion {_number(day['champion'])}  "
                        f"challenger {_number(day['challenger'])}"
                    )


def champion(registry: ModelRegistry, args: argparse.Namespace) -> None:
    """The champion in force on a day (default: from the latest effective date on)."""
    entry = registry.champion_at(args.model, args.at or _FOREVER)
    if entry is None:
        raise LookupError(f"{args.model}: no champion in force on {args.at or 'any day'}")
    print(entry["version"])


def trained_on(registry: ModelRegistry, args: argparse.Namespace) -> None:
    """Versions whose training window (fitting or holdout) read the partition `day`."""
    for record in registry.versions_trained_on(args.model, args.day):
        print(f"{record['version']}  {' .. '.join(record['training_window'])}")


def promote(registry: ModelRegistry, args: argparse.Namespace) -> None:
    entry = registry.promote(args.model, args.version, args.effective_from, "manual", args.reason)
    print(f"{entry['version']} is champion of {args.model} from {entry['effective_from']}")


def rollback(registry: ModelRegistry, args: argparse.Namespace) -> None:
    entry = registry.rollback(args.model, args.effective_from, args.reason)
    print(
        f"rolled back {entry['replaces']}: {entry['version']} is champion of {args.model} "
        f"from {entry['effective_from']}"
    )


def compare(registry: ModelRegistry, args: argparse.Namespace) -> None:
    """Versions side by side: window, rows, the parameters that differ, holdout metrics, gate,
    champion dates, served days and served metric (default: the latest five versions)."""
    from assets.comparison import as_text
    from assets.comparison import compare as comparison

    print(as_text(comparison(registry, registry.lake, args.spec, args.names)))


def mlflow_sync(registry: ModelRegistry, args: argparse.Namespace) -> None:
    """Replay the registry and promotion history into MLflow (PLATFORM_MLFLOW_TRACKING_URI):
    mirror every version not yet there and point the champion alias at the champion. Safe to
    repeat; every model unless --model names one."""
    from resources import mlflow_mirror

    for model in args.models:
        done = mlflow_mirror.sync(registry, model)
        mlflow_mirror.note_state(registry, model, None)
        print(
            f"{model}: {len(done.mirrored)} versions mirrored, "
            f"{len(done.run_urls) - len(done.mirrored)} already there; champion alias: "
            f"{done.champion or 'none'}"
        )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _parser(models: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m resources.models_cli", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model",
        choices=models,
        default=models[0] if len(models) == 1 else None,
        help=f"the model: {', '.join(models)} (compare also takes it as its first argument)",
    )
    commands = parser.add_subparsers(required=True, metavar="command")
    day = date.fromisoformat

    def command(name, function, help):
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(command=function)
        return sub

    command("list", list_versions, list_versions.__doc__)
    command("show", show, show.__doc__).add_argument("version")
    command("history", history, history.__doc__)
    command("experiments", experiments, experiments.__doc__).add_argument(
        "--days", action="store_true", help="each day's metric of both versions"
    )
    command("champion", champion, champion.__doc__).add_argument("--at", type=day)
    command("trained-on", trained_on, trained_on.__doc__).add_argument("day", type=day)
    command("compare", compare, compare.__doc__).add_argument(
        "names", nargs="*", metavar="[model] version", help="versions to compare"
    )
    command("mlflow-sync", mlflow_sync, mlflow_sync.__doc__)
    sub = command("promote", promote, "Make a version champion from a date (default: its cutoff).")
    sub.add_argument("version")
    sub.add_argument("--effective-from", type=day)
    sub.add_argument("--reason", default="promoted from the command line")
    sub = command(
        "rollback", rollback, "Restore the previous champion in place of the current one."
    )
    sub.add_argument("--effective-from", type=day, help="default: when the current one took effect")
    sub.add_argument("--reason", default="")
    return parser


if __name__ == "__main__":
    sys.exit(main())
