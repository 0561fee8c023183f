"""The Spark engine runs the same transforms as the pandas engine and gives the same rows.

Includes the parity test of the design: Spark features = pandas batch features = streaming
incremental features (``update_profiles`` from stored profiles) on the same transactions.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F  # noqa: N812

from finsentry.datasets import czech
from finsentry.etl import engines, pandas_engine, quality, transforms
from finsentry.etl import spark as engine
from finsentry.features import (
    FEATURE_COLUMNS,
    AccountProfile,
    compute_features,
    features_with_sequence,
    update_profiles,
)
from tests.etl.banks import clean_bank, dirty_bank


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    return dirty_bank(tmp_path_factory.mktemp("dirty"))


@pytest.fixture(scope="module")
def spark_run(spark, dirty):
    """The ingest stages on Spark, with small input splits so the trans file spans partitions."""
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16k")
    try:
        bank = engine.read_bank(spark, str(dirty.directory))
        parsed = engine.mark_repeated_ids(bank.parsed.persist())
        canon = engine.canonical(parsed, bank.dims, buckets=3)
        rows, held = canon.toPandas(), parsed.where(F.col("q_reason") != "").toPandas()
        counts = engine.chunk_counts(canon)
        partitions = bank.parsed.rdd.getNumPartitions()
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    return rows, held, counts, partitions


def test_spark_ingest_gives_the_pandas_engines_rows(spark_run, dirty):
    rows, _, _, partitions = spark_run
    assert partitions > 1
    expected = pandas_engine.ingest(dirty.directory).transactions
    valid = rows[rows["status"] == transforms.STATUS_VALID]
    got = valid.sort_values(["trans_id"]).reset_index(drop=True)[expected.columns]
    want = expected.sort_values(["trans_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got.astype({"ts": "datetime64[ns]"}), want, check_dtype=False)


def test_spark_ingest_quarantines_the_same_rows_for_the_same_reasons(spark_run, dirty):
    rows, held, counts, _ = spark_run
    reasons = Counter(quality.unread_reason_key(r) for r in held["q_reason"])
    reasons.update(rows.loc[rows["status"] != transforms.STATUS_VALID, "reason"])
    assert reasons == dirty.expected_reasons
    assert counts["rows_out"] + sum(reasons.values()) == dirty.records
    lines = sorted(held[transforms.LINE]) + sorted(rows.loc[rows["status"] != "valid", transforms.LINE])
    assert sorted(lines) == list(range(dirty.records + 2 - 6, dirty.records + 3))


def test_numbered_lines_follow_the_file_across_splits(spark, tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"row {i}\n" for i in range(1, 3001)))
    spark.conf.set("spark.sql.files.maxPartitionBytes", "4k")
    try:
        lines = engine.numbered_lines(spark, str(path))
        assert lines.rdd.getNumPartitions() > 2
        got = lines.toPandas()
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert (got["value"] == "row " + got["line"].astype(str)).all() and len(got) == 3000


def test_features_agree_spark_pandas_batch_and_streaming(spark, tmp_path):
    """No training/serving skew: one feature definition, three ways of running it."""
    clean_bank(tmp_path, accounts=25, months=5, seed=11)
    tx = pandas_engine.ingest(tmp_path).transactions
    batch = compute_features(tx)
    spark_rows = engine.features(spark.createDataFrame(tx)).toPandas().set_index("trans_id")
    on_spark = spark_rows.loc[tx["trans_id"], list(FEATURE_COLUMNS)].set_axis(tx.index)
    replay = tx.sort_values("ts", kind="stable")
    stored: dict[str, dict] = {}
    parts = []
    for start in range(0, len(replay), 97):  # batches as the scorer sees them; profiles stored between
        chunk = replay.iloc[start:start + 97]
        profiles = {a: AccountProfile.from_dict(stored[a]) for a in set(chunk["account_id"]) if a in stored}
        parts.append(update_profiles(profiles, chunk))
        stored.update({a: p.to_dict() for a, p in profiles.items()})
    streaming = pd.concat(parts).loc[tx.index]
    np.testing.assert_array_equal(on_spark.to_numpy(), batch.to_numpy())
    np.testing.assert_array_equal(streaming.to_numpy(), batch.to_numpy())
    assert (spark_rows["dt"] == spark_rows["ts"].dt.strftime("%Y-%m-%d")).all()


def test_demo_engine_hooks_give_the_loaders_results_in_either_form(spark, tmp_path):
    clean_bank(tmp_path, accounts=8, months=3, seed=2, form="tsv", compress=True)
    bank = engines.load_bank(tmp_path, "spark")
    expected = czech.load(tmp_path)
    assert bank.form == "tsv"
    pd.testing.assert_frame_equal(bank.transactions.valid, expected.transactions.valid, check_dtype=False)
    pd.testing.assert_frame_equal(bank.orders, expected.orders, check_dtype=False)
    shuffled = expected.transactions.valid.sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(engines.compute(shuffled, "spark"), features_with_sequence(shuffled))
    with pytest.raises(ValueError, match="unknown engine"):
        engines.compute(shuffled, "dask")


def test_spark_reads_bad_files_as_pandas_does(spark, tmp_path):
    """A non-UTF-8 line is quarantined with the same reason, line and text; a truncated gzip is
    the same clear error (an empty district.asc goes through the same ``czech.require_rows``)."""
    import gzip

    bank = clean_bank(tmp_path / "bank", accounts=3, months=1)
    trans = bank / "trans.asc"
    lines = trans.read_bytes().splitlines()
    lines[3] = lines[3][:-2] + b"\xff\xfe"
    trans.write_bytes(b"\n".join(lines) + b"\n")
    want = czech.load(bank).quarantine[["table", "line", "reason", "detail", "raw"]]
    held = engine.read_bank(spark, str(bank)).parsed.where(F.col("q_reason") != "").toPandas()
    got = held[["q_table", transforms.LINE, "q_reason", "q_detail", "q_raw"]]
    assert want.values.tolist() == got.values.tolist() == [
        ["trans", 4, "malformed", czech.NOT_UTF8, lines[3].decode("utf-8", "replace")]]
    packed = gzip.compress(trans.read_bytes())
    trans.unlink()
    (bank / "trans.asc.gz").write_bytes(packed[:-40])
    with pytest.raises(czech.DatasetError, match=r"^trans.asc.gz: truncated or corrupt gzip file"):
        engine.read_bank(spark, str(bank))
