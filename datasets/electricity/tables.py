"""The raw tables of Victoria's electricity demand: what is known before the day (the calendar and
the temperature) and what the day consumed (the labels, known after it)."""

from resources.dataset import RawTable

DEMAND_KEY = ("demand_date", "half_hour")
HALF_HOURS = 48  # half-hours of a day, numbered 0 (00:00-00:30) to 47 (23:30-24:00)

CONDITIONS = RawTable(
    name="electricity_conditions",
    description=(
        "The conditions of each half-hour in Victoria, known before the day: whether it is a "
        "work day, and the temperature in Melbourne (degrees Celsius)."
    ),
    columns={
        "demand_date": "date32[pyarrow]",
        "half_hour": "int32",
        "work_day": "bool",
        "temperature": "float64",
    },
    day_column="demand_date",
    key=DEMAND_KEY,
    required=("work_day", "temperature"),
    ranges={"half_hour": (0, HALF_HOURS - 1), "temperature": (-10, 50)},
)
DEMAND = RawTable(
    name="electricity_demand",
    description=(
        "Electricity demand of Victoria in each half-hour (GW): the labels, known after the day."
    ),
    columns={
        "demand_date": "date32[pyarrow]",
        "half_hour": "int32",
        "demand": "float64",
    },
    day_column="demand_date",
    key=DEMAND_KEY,
    required=("demand",),
    ranges={"half_hour": (0, HALF_HOURS - 1), "demand": (0, 20)},
)
