"""Pieces of a run read ahead: the next pieces are read in threads while the run writes the
current one.

A run over many days works a piece at a time (a month, or a quarter of a million rows) to bound
its memory. Reading a piece (a delivery and its contract check, a query of the lake) and writing
one (Parquet files, each fsynced) mostly run outside Python's lock, in Arrow, DuckDB, numpy and
the file system, so they overlap on a second core. Two reads beside the writer kept both cores
busier than one (a June of 100 times the flights: 14.7 s against 17.8 s, and 0.2 GiB more).
"""

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

P = TypeVar("P")
R = TypeVar("R")
# Pieces read beside the one the caller handles: at most this many more are held at once.
READ_AHEAD = 2


def read_ahead(read: Callable[[P], R], pieces: Sequence[P]) -> Iterator[tuple[P, R]]:
    """Each piece with what `read` made of it, in order. The first piece is read alone, as it
    loads what every read shares (a source's files, a generator's timetable); after it, the
    next `READ_AHEAD` pieces are read while the caller handles the current one. An error of
    `read` is raised when its piece's turn comes."""
    if not pieces:
        return
    with ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="read-ahead") as pool:
        pending: deque[Future[R]] = deque([pool.submit(read, pieces[0])])
        for index, piece in enumerate(pieces):
            result = pending.popleft().result()
            following = index + 1 + len(pending)
            for ahead in pieces[following : index + 1 + READ_AHEAD]:
                pending.append(pool.submit(read, ahead))
            yield piece, result
