"""Pieces of a run read one ahead: the next piece is read in a thread while the run writes the
current one.

A run over many days works a piece at a time (a month, or about a million rows) to bound its
memory. Reading a piece (a delivery and its contract check, a query of the lake) and writing one
(Parquet files, each fsynced) mostly run outside Python's lock, in Arrow, DuckDB and the file
system, so the two overlap on a second core. At most two pieces are held at once.
"""

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

P = TypeVar("P")
R = TypeVar("R")


def read_ahead(read: Callable[[P], R], pieces: Sequence[P]) -> Iterator[tuple[P, R]]:
    """Each piece with what `read` made of it, in order; `read` of the next piece runs while the
    caller handles the current one. An error of `read` is raised when its piece's turn comes."""
    if not pieces:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
        pending = pool.submit(read, pieces[0])
        for index, piece in enumerate(pieces):
            result = pending.result()
            if index + 1 < len(pieces):
                pending = pool.submit(read, pieces[index + 1])
            yield piece, result
