"""Days and ranges of days: how a run over a range is cut into set-wise pieces."""

from datetime import date, timedelta

# A run over a range of days reads and writes it at most this many days at a time: one query per
# month keeps the work set-wise while bounding memory (about 3 M flights at 100 times the
# bundled volume), and each day's rows do not depend on how the range was cut.
CHUNK_DAYS = 31
# A range of a large volume is cut further, to about this many rows a piece: at 100 times the
# bundled flights, a month at once took 3 GiB to generate, check and write, and pieces of a
# million rows 1.8 GiB; at this size each step's process holds 0.6 to 0.9 GiB, as fast.
CHUNK_ROWS = 250_000


def days_between(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, inclusive."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def chunked(days: list[date], size: int = CHUNK_DAYS) -> list[list[date]]:
    """`days` cut into consecutive pieces of at most `size` days."""
    return [days[i : i + size] for i in range(0, len(days), size)]


def days_per_chunk(rows_per_day: int) -> int:
    """Days of `rows_per_day` rows that fit in `CHUNK_ROWS`: at least one, at most `CHUNK_DAYS`."""
    return max(1, min(CHUNK_DAYS, CHUNK_ROWS // max(1, rows_per_day)))


def row_chunks(days: list[date], rows: int) -> list[list[date]]:
    """`days`, holding `rows` rows in all, cut into pieces of a month or about `CHUNK_ROWS`
    rows, whichever is fewer days."""
    return chunked(days, days_per_chunk(rows // max(1, len(days))))


def describe_days(days: list[date]) -> str:
    """Days for a message: listed when few, else a count and a range."""
    if len(days) <= 5:
        return ", ".join(d.isoformat() for d in days)
    return f"{len(days)} days from {days[0].isoformat()} to {days[-1].isoformat()}"
