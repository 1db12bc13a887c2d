"""The local Dagster instance's storage: Dagster's SQLite storage, writing a batch of events in one
transaction per database.

A run over a range of days records events per day: a planned materialization per asset and day
when the run starts, a materialization per asset and day when a step ends. Dagster hands each of
those groups to the event storage as one batch when `DAGSTER_EVENT_BATCH_SIZE` is set, but its
SQLite storage still writes a batch event by event, each in transactions of its own (the run's
database, then the index database), each opening, committing and closing a database: for a year of
days that is most of a backfill's time. Its PostgreSQL storage writes a batch at once. This one
does the same on SQLite: one transaction on the run's database and one on the index for the whole
batch, storing the same rows in the same order as one-by-one writes, so the UI's partition status
and metadata, asset records and sensors read what they read before. A range run's planned check
names every day of the range; its rows, one per day, share one serialization of it.

`install_instance_config` writes an instance's `dagster.yaml` from `platform/dagster.yaml` with the
instance's own folder as the storage's `base_dir`, so the instance opens by its path whatever
`DAGSTER_HOME` says (`DagsterInstance.from_config`); the repository's file reads the folder from
`DAGSTER_HOME`, which holds when a person copies it by hand and starts Dagster there.

The instance using this storage turns batching on (`DAGSTER_EVENT_BATCH_SIZE`, unless the
environment already sets it) for every process that loads it: `dagster dev`, the daemon, the CLI
and each run. The files on disk are Dagster's default SQLite layout under `base_dir`, so an
instance made without this storage keeps its history.
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    SqlEventLogStorageTable,
)
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData, serialize_value

if TYPE_CHECKING:
    from dagster import DagsterInstance
    from dagster._core.events.log import EventLogEntry
    from sqlalchemy.engine import Connection

# Dagster's switch for handing events to the storage in batches, and the most events it holds
# before writing them (a batch also ends with its step's last event or the run's last planned
# event, whichever comes first).
EVENT_BATCH_SIZE_VARIABLE = "DAGSTER_EVENT_BATCH_SIZE"
EVENTS_PER_BATCH = 1000
PLATFORM_INSTANCE_CONFIG = Path(__file__).resolve().parents[1] / "platform" / "dagster.yaml"
# The storage's folder in platform/dagster.yaml, replaced by the instance's path on installation.
HOME_FROM_ENVIRONMENT = "base_dir:\n        env: DAGSTER_HOME\n"


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log storage, writing a batch of one run's events in one transaction
    on the run's database and one on the index database."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(base_dir, inst_data)
        self._tables_present: set[str] = set()

    def register_instance(self, instance: "DagsterInstance") -> None:
        os.environ.setdefault(EVENT_BATCH_SIZE_VARIABLE, str(EVENTS_PER_BATCH))
        super().register_instance(instance)

    def store_event_batch(self, events: Sequence["EventLogEntry"]) -> None:
        if len({event.run_id for event in events}) != 1:
            super().store_event_batch(events)
            return
        # Each event serialized once for both databases, and every insert compiled once: the
        # run's rows by executemany, the index's row by row to read their ids back in order.
        # A statement compiled with a value per row and column cost more than the writes.
        rows = [self._event_to_row(event) for event in events]
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        asset_events = [i for i, e in enumerate(events) if e.dagster_event_type in ASSET_EVENTS]
        indexed = [events[i] for i in asset_events]
        with self.index_transaction() as conn:
            ids = inserted_ids(conn, [rows[i] for i in asset_events])
            self._store_asset_event_tags(conn, indexed, ids)
            for event, event_id in last_of_each_kind(indexed, ids):
                self._store_asset_event(conn, event, event_id)
        for event, row in zip(events, rows, strict=True):
            if event.dagster_event_type in ASSET_CHECK_EVENTS:
                with self.index_connection() as conn:
                    insert = SqlEventLogStorageTable.insert().values(row)
                    event_id = conn.execute(insert).inserted_primary_key[0]
                self.store_asset_check_event(event, event_id)

    def _store_asset_check_evaluation_planned(
        self, event: "EventLogEntry", event_id: int | None
    ) -> None:
        """Dagster's rows of a planned check, one per partition, with the event serialized once:
        a range run's planned event names every day of the range, and serializing it again for
        each day was most of a year's check bookkeeping."""
        planned = event.get_dagster_event().event_specific_data
        subset = planned.partitions_subset
        shared = {
            "asset_key": planned.asset_key.to_string(),
            "check_name": planned.check_name,
            "run_id": event.run_id,
            "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
            "evaluation_event": serialize_value(event),
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
        }
        days = subset.get_partition_keys() if subset else [None]
        with self.index_connection() as conn:
            conn.execute(
                AssetCheckExecutionsTable.insert(), [shared | {"partition": d} for d in days]
            )

    def has_table(self, table_name: str) -> bool:
        """Whether the index holds `table_name`, asked once per table: Dagster asks before each
        asset event's tags are written, opening the index each time, and a table once created
        stays."""
        if table_name not in self._tables_present and super().has_table(table_name):
            self._tables_present.add(table_name)
        return table_name in self._tables_present


def inserted_ids(conn: "Connection", rows: Sequence[dict]) -> list[int]:
    """Insert event `rows` into the index; their ids, in the rows' order (which SQLAlchemy
    guarantees for `sort_by_parameter_order`, whatever order SQLite returns them in)."""
    if not rows:
        return []
    table = SqlEventLogStorageTable
    insert = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return list(conn.execute(insert, rows).scalars())


def last_of_each_kind(
    events: Sequence["EventLogEntry"], ids: Sequence[int]
) -> list[tuple["EventLogEntry", int]]:
    """The last event of each asset and event type, with its id, in the batch's order.

    An asset's row in the index holds what the latest event of each type set (the last
    materialization, the last run, the time of the latest event); events of one type set the same
    columns, so applying these alone leaves the row as applying every event in turn would."""
    last = {(e.dagster_event.asset_key, e.dagster_event_type): i for i, e in enumerate(events)}
    return [(events[i], ids[i]) for i in sorted(last.values())]


class BatchingSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite instance storage (runs, events, schedules) with the batching event log.

    Configured in `platform/dagster.yaml` as `storage: custom:` with `base_dir` the instance's
    home, where Dagster's default SQLite storage keeps the same files."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(base_dir, inst_data)
        self._event_log_storage = BatchingSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: dict
    ) -> "BatchingSqliteStorage":
        # Dagster's own returns its base class whatever `cls` is.
        return cls.from_local(config_value["base_dir"], inst_data=inst_data)


def install_instance_config(home: Path) -> None:
    """Write `home/dagster.yaml`: platform/dagster.yaml, comments kept, with `home` as the
    storage's folder."""
    text = PLATFORM_INSTANCE_CONFIG.read_text()
    if HOME_FROM_ENVIRONMENT not in text:
        raise ValueError(
            f"{PLATFORM_INSTANCE_CONFIG}: the storage's base_dir must read `env: DAGSTER_HOME` "
            "(the installed copy replaces it with the instance's folder)"
        )
    home.mkdir(parents=True, exist_ok=True)
    folder = json.dumps(str(home.resolve()))  # a JSON string is a YAML string
    (home / "dagster.yaml").write_text(text.replace(HOME_FROM_ENVIRONMENT, f"base_dir: {folder}\n"))
