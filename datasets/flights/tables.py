"""The raw tables of the New York flights: what each holds, and the rules every row must meet."""

from datasets.flights import codes
from resources.dataset import CodeList, RawTable

FLIGHT_KEY = ("flight_date", "carrier", "flight", "origin")
CARRIERS = CodeList("carrier", codes.carriers)
ORIGINS = CodeList("New York origin (EWR, JFK, LGA)", lambda: codes.ORIGINS)
AIRPORTS = CodeList("airport code", codes.airports)

FLIGHTS = RawTable(
    name="raw_flights",
    description=(
        "Flights scheduled out of New York each day: carrier, flight, plane, route, times, "
        "distance."
    ),
    columns={
        "flight_date": "date32[pyarrow]",
        "carrier": "string",
        "flight": "int32",
        "tailnum": "string",
        "origin": "string",
        "dest": "string",
        "sched_dep_time": "int32",
        "sched_arr_time": "int32",
        "dep_hour": "int32",
        "distance": "float64",
    },
    day_column="flight_date",
    landing_name="flights",
    key=FLIGHT_KEY,
    required=("dest", "sched_dep_time", "sched_arr_time", "dep_hour", "distance"),
    # Real flight numbers have four digits; the synthetic source numbers its flights 1..n.
    ranges={"flight": (1, None), "dep_hour": (0, 23), "distance": (1, 6000)},
    clocks=("sched_dep_time", "sched_arr_time"),
    codes={"carrier": CARRIERS, "origin": ORIGINS, "dest": AIRPORTS},
)
WEATHER = RawTable(
    name="raw_weather",
    description="Hourly weather observations at the three origin airports (EWR, JFK, LGA).",
    columns={
        "obs_date": "date32[pyarrow]",
        "origin": "string",
        "hour": "int32",
        "temp": "float64",
        "dewp": "float64",
        "humid": "float64",
        "wind_dir": "float64",
        "wind_speed": "float64",
        "wind_gust": "float64",
        "precip": "float64",
        "pressure": "float64",
        "visib": "float64",
    },
    day_column="obs_date",
    landing_name="weather",
    key=("obs_date", "origin", "hour"),
    ranges={
        "hour": (0, 23),
        "temp": (-60, 130),  # Fahrenheit
        "dewp": (-80, 100),
        "humid": (0, 100),  # percent
        "wind_dir": (0, 360),  # degrees
        "wind_speed": (0, 250),  # mph
        "wind_gust": (0, 300),
        "precip": (0, 20),  # inches in the hour
        "pressure": (850, 1100),  # millibars
        "visib": (0, 100),  # miles
    },
    codes={"origin": ORIGINS},
)
OUTCOMES = RawTable(
    name="flight_outcomes",
    description=(
        "What actually happened to each flight (delays, cancellation): the labels, known after "
        "the day."
    ),
    columns={
        "flight_date": "date32[pyarrow]",
        "carrier": "string",
        "flight": "int32",
        "origin": "string",
        "dest": "string",
        "dep_time": "Int32",
        "dep_delay": "float64",
        "arr_time": "Int32",
        "arr_delay": "float64",
        "air_time": "float64",
        "cancelled": "bool",
    },
    day_column="flight_date",
    landing_name="outcomes",
    key=FLIGHT_KEY,
    required=("dest", "cancelled"),
    ranges={
        "flight": (1, None),
        "dep_delay": (-240, 2880),  # minutes: four hours early to two days late
        "arr_delay": (-240, 2880),
        "air_time": (1, 1440),
    },
    clocks=("dep_time", "arr_time"),
    codes={"carrier": CARRIERS, "origin": ORIGINS, "dest": AIRPORTS},
)
PLANES = RawTable(
    name="raw_planes",
    description="The register of planes (year built, seats, engines), joined into features.",
    columns={
        "tailnum": "string",
        "year": "Int32",
        "type": "string",
        "manufacturer": "string",
        "model": "string",
        "engines": "Int32",
        "seats": "Int32",
        "speed": "float64",
        "engine": "string",
    },
    landing_name="planes",
    key=("tailnum",),
    ranges={"year": (1900, 2100), "engines": (1, 8), "seats": (1, 1000), "speed": (1, 1000)},
)
