"""The gaps of moto 5.2's Firehose this project runs into, filled: dynamic partitioning and Parquet.

moto writes each ``PutRecordBatch`` to S3 as one object of the records' bytes under
``Prefix + YYYY/MM/DD/HH/``, evaluating neither the prefix's ``!{partitionKeyFromQuery:...}``
nor the data format conversion. The deployed scored stream (``infra/stacks/ingestion.py``) asks
Firehose for both. ``firehose_as_deployed`` does what AWS documents for that configuration,
and nothing more:

* the MetadataExtraction processor with the one query the CDK app uses
  (``{dt: (.ts | tostring | .[0:10])}``) gives each JSON document its ``dt``, which fills the
  prefix (any other query raises: this fill is not a jq engine);
* the format conversion (OpenX JSON in, Parquet out, SNAPPY) reads every JSON document of a
  record and writes the columns of the Glue table the ``SchemaConfiguration`` names, with their
  types, one Parquet object per partition and call.

A stream without both settings keeps moto's own behaviour.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Iterator

import boto3
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from moto.firehose.models import FirehoseBackend
from moto.s3.models import s3_backends

from finsentry.layout import PARTITION_KEY

QUERY = f"{{{PARTITION_KEY}: (.ts | tostring | .[0:10])}}"  # the CDK app's MetadataExtractionQuery
_ARROW = {"string": pa.string(), "double": pa.float64(), "int": pa.int32(), "bigint": pa.int64(),
          "timestamp": pa.timestamp("ms"), "boolean": pa.bool_()}  # fmt: skip


def _query(destination: dict) -> str:
    for processor in destination.get("ProcessingConfiguration", {}).get("Processors", []):
        for p in processor.get("Parameters", []):
            if p["ParameterName"] == "MetadataExtractionQuery":
                return p["ParameterValue"]
    return ""


def _parquet(docs: list[dict], columns: dict[str, str], codec: str = "snappy") -> bytes:
    frame = pd.DataFrame([{c: d.get(c) for c in columns} for d in docs])
    arrays = []
    for name, hive in columns.items():
        values = pd.to_datetime(frame[name]) if hive == "timestamp" else frame[name]
        arrays.append(pa.array(values, type=_ARROW[hive], from_pandas=True))
    buf = io.BytesIO()
    pq.write_table(pa.table(arrays, names=list(columns)), buf, compression=codec)
    return buf.getvalue()


@contextlib.contextmanager
def firehose_as_deployed() -> Iterator[None]:
    """Inside ``mock_aws``: Firehose streams with dynamic partitioning and Parquet conversion on
    write partitioned Parquet, as the deployed scored stream does."""
    original = FirehoseBackend.put_s3_records

    def put(self, delivery_stream_name, version_id, s3_destination, records):  # noqa: ANN001
        conversion = s3_destination.get("DataFormatConversionConfiguration", {})
        partitioning = s3_destination.get("DynamicPartitioningConfiguration", {})
        if not (conversion.get("Enabled") and partitioning.get("Enabled")):
            return original(self, delivery_stream_name, version_id, s3_destination, records)
        if _query(s3_destination) != QUERY:
            raise NotImplementedError(f"firehose_as_deployed evaluates only {QUERY!r}")
        schema = conversion["SchemaConfiguration"]
        serde = conversion.get("OutputFormatConfiguration", {}).get("Serializer", {}).get("ParquetSerDe", {})
        codec = str(serde.get("Compression", "SNAPPY")).lower()  # Firehose's default: SNAPPY
        table = boto3.client("glue", region_name=self.region_name).get_table(
            DatabaseName=schema["DatabaseName"], Name=schema["TableName"])["Table"]  # fmt: skip
        columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
        docs = [json.loads(line) for r in records for line in r["Data"].decode().splitlines() if line.strip()]
        days: dict[str, list[dict]] = {}
        for doc in docs:
            days.setdefault(str(doc.get("ts"))[0:10], []).append(doc)
        bucket = s3_destination["BucketARN"].split(":")[-1]
        for day, rows in days.items():
            prefix = s3_destination.get("Prefix", "").replace(f"!{{partitionKeyFromQuery:{PARTITION_KEY}}}", day)
            key = f"{prefix}{delivery_stream_name}-{version_id}-{uuid.uuid4()}.parquet"
            s3_backends[self.account_id][self.partition].put_object(bucket, key, _parquet(rows, columns, codec))
        return [{"RecordId": str(uuid.uuid4())} for _ in records]

    FirehoseBackend.put_s3_records = put
    try:
        yield
    finally:
        FirehoseBackend.put_s3_records = original
