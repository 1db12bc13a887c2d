"""Run the benchmarks one after the other and print all their figures together at the end.

`make bench` runs the full suite: the flights' year backfill with flight_delay alone (the graph
the speed targets are set on) and with every flights model, electricity's, every dataset's in
one command, the flights with flight_delay at 10 and 100 times the volume, the replay of each
dataset against never-retrained models and naive forecasts, 53 models at once, and a second
`make run`. `make bench-quick` runs a reduced one (ten weeks of flights, 10 times the volume
only, the 53 models' load time, a week of electricity's replay) that checks the harness in a few
minutes. Each benchmark is its own process, so one that fails does not stop the others; the
suite exits non-zero if any did.
"""

import argparse
import json
import re
import subprocess
import sys
import time

from bench.harness import (
    Figure,
    bench_dir,
    machine,
    measured_on,
    stop_cleanly_on_sigterm,
    table,
)

FULL = [
    ["bench.backfill", "--dataset", "flights", "--models", "flight_delay"],
    ["bench.backfill", "--dataset", "flights"],
    ["bench.backfill", "--dataset", "electricity"],
    ["bench.every_dataset"],
    ["bench.scale", "--models", "flight_delay"],
    ["bench.replay_retraining", "--dataset", "flights"],
    ["bench.replay_retraining", "--dataset", "electricity"],
    ["bench.many_models"],
    ["bench.second_run"],
]
# `record` writes `<name>.json` and a copy `<name>-<UTC time>.json`; the summary reads the former.
TIMESTAMPED = re.compile(r"-\d{8}T\d{6}Z$")
QUICK = [
    ["bench.backfill", "--quick"],
    ["bench.scale", "--quick"],
    ["bench.many_models", "--quick"],
    ["bench.replay_retraining", "--dataset", "electricity", "--through", "2014-03-08"],
]


def summary(since: float) -> str:
    """Every figure table recorded by a benchmark of this suite (newer than `since`)."""
    records = [
        json.loads(path.read_text())
        for path in sorted(bench_dir().glob("*.json"))
        if path.stat().st_mtime >= since and not TIMESTAMPED.search(path.stem)
    ]
    blocks = []
    for content in records:
        figures = [Figure(**f) for f in content.get("figures", [])]
        if figures:
            title = f"{content['benchmark']} (finished {content['finished_at']})"
            blocks.append(table(title, figures) + "\n" + measured_on(content["machine"]))
    return "\n\n".join(blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reduced suite")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    started = time.time()
    failed = []
    for command in QUICK if args.quick else FULL:
        print(f"\n=== {' '.join(command)}", flush=True)
        clock = time.perf_counter()
        status = subprocess.run([sys.executable, "-m", *command]).returncode
        print(
            f"=== {command[0]}: exit {status} after {time.perf_counter() - clock:.0f} s", flush=True
        )
        if status != 0:
            failed.append(command[0])
    about = machine()
    print(
        f"\n\nSummary ({'quick' if args.quick else 'full'} suite, {time.time() - started:.0f} s; "
        f"{about['cores']} cores {about['cpu']}, {about['memory_gib']} GiB, commit "
        f"{about['commit']}, load {about['load_average_1m_at_end']} / "
        f"{about['load_average_5m_at_end']} / {about['load_average_15m_at_end']} at the end; "
        f"results in {bench_dir()})\n"
    )
    print(summary(started))
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (see their output above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
