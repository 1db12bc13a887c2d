"""The column contract of the raw tables every source must deliver.

One place defines names and types so that the bundled and synthetic sources (and any future one)
produce identical tables, and a source that drifts from the contract fails loudly.
"""

import pandas as pd

FLIGHTS = {
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
}

WEATHER = {
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
}

OUTCOMES = {
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
}

PLANES = {
    "tailnum": "string",
    "year": "Int32",
    "type": "string",
    "manufacturer": "string",
    "model": "string",
    "engines": "Int32",
    "seats": "Int32",
    "speed": "float64",
    "engine": "string",
}

FLIGHT_KEY = ["flight_date", "carrier", "flight", "origin"]


def conform(frame: pd.DataFrame, schema: dict[str, str], table: str) -> pd.DataFrame:
    """Return `frame` with exactly the contract's columns, in order and with the contract's types."""
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise ValueError(f"{table}: source is missing required columns {missing}")
    out = frame[list(schema)].copy()
    for column, dtype in schema.items():
        try:
            out[column] = out[column].astype(dtype)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{table}.{column}: cannot convert to {dtype}: {exc}") from exc
    return out.reset_index(drop=True)


def empty_frame(contract: dict[str, str], table: str) -> pd.DataFrame:
    """A table with the contract's columns and types and no rows."""
    return conform(
        pd.DataFrame({c: pd.Series([], dtype=object) for c in contract}), contract, table
    )
