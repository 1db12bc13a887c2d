"""Where a dataset's rows come from: the `Sources` resource, and the kinds of source it knows.

Assets ask one question of it, whatever the dataset and whatever the kind: the rows of a table
for a range of days, with their provenance (`deliver`), and how to cut a range into reads
(`delivery_chunks`). The kind of each dataset is configuration, resolved once from the settings
(`resources.settings.source_kind`):

- `bundled`: the data a package ships, as the dataset's `bundled` delivery reads it;
- `synthetic`: the dataset's generator, with the fields `synthetic` sets (strings, parsed by the
  generator; each generator takes the fields it has);
- `landing`: files other teams drop in the landing zone (`resources.landing`).

A source serves whole ranges of days, inclusive, so that a backfill reads once, and the content
of a day never depends on the range it was read with.
"""

from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from resources import settings
from resources.dataset import SOURCE_DAY, SOURCE_FILE, SOURCE_ROW, Dataset, Delivery, RawTable
from resources.days import chunked, days_per_chunk
from resources.landing import Landed, LandingZone


class Sources(dg.ConfigurableResource):
    """The source of each dataset: one kind for all, `kinds` naming the exceptions."""

    kind: str = Field(
        default=settings.DEFAULT_SOURCE_KIND,
        description=f"The source of every dataset: one of {', '.join(settings.SOURCE_KINDS)}.",
    )
    kinds: dict[str, str] = Field(
        default={}, description="Datasets whose source differs from `kind`: dataset -> kind."
    )
    landing_uri: str = Field(
        default="", description="The landing zone: a folder or s3://bucket/prefix."
    )
    s3_endpoint_url: str = Field(
        default="",
        description="S3-compatible endpoint of the landing zone. Empty: the lake's (settings).",
    )
    synthetic: dict[str, str] = Field(
        default={},
        description="Fields of the datasets' generators, e.g. {seed: '7', flights_per_day: '120'}.",
    )

    def kind_of(self, dataset: Dataset) -> str:
        kind = self.kinds.get(dataset.name, self.kind)
        if kind not in settings.SOURCE_KINDS:
            raise ValueError(
                f"source of {dataset.name}: {kind!r} is not one of {settings.SOURCE_KINDS}"
            )
        return kind

    def landing(self) -> LandingZone:
        if not self.landing_uri:
            raise ValueError(
                f"a landing source needs {settings.LANDING_URI_ENV}: a folder or s3://bucket/prefix"
            )
        return LandingZone(self.landing_uri, settings.s3_endpoint(self.s3_endpoint_url))

    def delivery(self, dataset: Dataset) -> Delivery:
        """The bundled or synthetic delivery of `dataset`."""
        kind = self.kind_of(dataset)
        if kind == "bundled":
            if dataset.bundled is None:
                raise ValueError(f"dataset {dataset.name} ships no bundled data")
            return dataset.bundled
        if dataset.synthetic is None:
            raise ValueError(f"dataset {dataset.name} has no synthetic generator")
        fields = dataset.synthetic.model_fields
        return dataset.synthetic(**{k: v for k, v in self.synthetic.items() if k in fields})

    def deliver(
        self, dataset: Dataset, table: RawTable, first: date | None, last: date | None
    ) -> Landed:
        """The rows of `table` for first..last with their provenance.

        Landing-zone rows come with their file and row number; generated rows are numbered in
        the order the delivery returned them, under the name of the source kind. Missing or
        unreadable landing files raise `LandingError` before anything is written.
        """
        kind = self.kind_of(dataset)
        if kind == "landing":
            return self.landing().landed(table, first, last)
        rows = pa.Table.from_pandas(
            self.delivery(dataset).rows(table, first, last), preserve_index=False
        )
        return Landed(rows=numbered(rows, table, kind, first, last), files=[])

    def delivery_chunks(self, dataset: Dataset, days: list[date]) -> list[list[date]]:
        """The pieces a range is ingested in: from a generated source, a month or as many days
        as hold about `CHUNK_ROWS` rows, to bound memory at any volume (a day's rows do not
        depend on the cut); at once from a landing zone, whose files are all read and checked
        before anything is written, so an unreadable file leaves the lake unchanged."""
        if self.kind_of(dataset) == "landing":
            return [days]
        return chunked(days, days_per_chunk(self.delivery(dataset).rows_per_day()))


def numbered(
    rows: pa.Table, table: RawTable, origin: str, first: date | None, last: date | None
) -> pa.Table:
    """`rows` with their provenance: `origin` as their file, their order as row numbers, and
    the day they were delivered for. A row dated outside the range is charged to its first day,
    where the contract rejects it for its date."""
    count = rows.num_rows
    if table.day_column is None:
        day = pa.nulls(count, pa.date32())
    else:
        own = rows.column(table.day_column)
        inside = pc.and_(
            pc.greater_equal(own, pa.scalar(first)), pc.less_equal(own, pa.scalar(last))
        )
        day = pc.if_else(pc.fill_null(inside, False), own, pa.scalar(first))
    provenance = {
        SOURCE_FILE: pa.repeat(pa.scalar(origin), count),
        SOURCE_ROW: pa.array(range(1, count + 1), pa.int64()),
        SOURCE_DAY: day,
    }
    for name, column in provenance.items():
        rows = rows.append_column(name, column)
    return rows


def sources_from_settings(landing_uri: str | dg.EnvVar = "") -> Sources:
    """The sources the environment names (`resources.settings`); the landing zone is
    `landing_uri` when given (the code location passes its `dg.EnvVar`), else the variable's
    value."""
    return Sources(
        kind=settings.source_kind(""),
        kinds=settings.source_kinds(),
        landing_uri=landing_uri or settings.landing_uri(),
        synthetic=settings.synthetic_settings(),
    )
