"""In-memory DuckDB connections for the platform's queries: each a cursor of one database per
process.

Opening an in-memory database costs about 13 ms, a cursor of an open one half a millisecond, and
a year's backfill opens about a hundred (every read of the lake, every contract check), besides
the declarations' checks at each start. A cursor's registered tables and temporary views are its
own, so one piece of work never sees another's names, and whatever a caller creates in one must
be temporary (`register`, `CREATE TEMP VIEW`). The database belongs to the process that opened
it: a forked process (a worker, a step of the multiprocess executor) opens its own.

A database keeps the memory its queries freed until it closes, which a database per query did
at once; over a long step that memory sat beside the step's own (0.2 GiB more at 100 times the
flights). Its allocator's background threads hand it back to the system within a second.
"""

import os
import threading
from functools import cache

import duckdb

_opening = threading.Lock()


@cache
def _database(pid: int) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(config={"allocator_background_threads": True})


def scratch() -> duckdb.DuckDBPyConnection:
    """A connection of its own for one piece of work, over the process's in-memory database."""
    with _opening:
        return _database(os.getpid()).cursor()
