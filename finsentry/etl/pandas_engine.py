"""The batch transforms in one process (pandas): the local default and the parity reference.

It runs the very functions a Spark task runs (``finsentry.etl.transforms``), once, on all the
data: same parser, same join and validator, same feature kernel, same quality counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from finsentry.datasets import czech
from finsentry.etl import quality, transforms
from finsentry.layout import PARTITION_KEY

QUARANTINE_COLUMNS = ("stage", "table", "line", "reason", "detail", "raw")


@dataclass
class IngestResult:
    transactions: pd.DataFrame  # canonical rows + seq, in the loader's order (account, posting order)
    quarantine: pd.DataFrame  # QUARANTINE_COLUMNS: every row that did not make it, with its reason
    report: quality.QualityReport


def ingest(directory: Path | str, run_id: str = "local",
           max_rejected_share: float = quality.DEFAULT_MAX_REJECTED_SHARE) -> IngestResult:  # fmt: skip
    """Raw bank files of either form -> canonical transactions, quarantine and quality report."""
    raw, unread = czech.read_tables(directory, keep_line=True)
    trans_unread = unread[unread["table"] == "trans"]
    parsed = transforms.mark_repeated_ids(transforms.parsed_rows(raw.trans, trans_unread))
    good = parsed[parsed["q_reason"] == ""]
    held = parsed[parsed["q_reason"] != ""]
    canon = transforms.canonical_chunk(good, transforms.Dimensions.of(raw))
    counts = quality.chunk_counts(canon)
    report = quality.report_from_counts(
        "ingest", run_id, rows_in=len(parsed), counts=counts,
        read_reasons=held["q_reason"].value_counts().to_dict(), max_rejected_share=max_rejected_share,
        other_tables=_by_table(unread[unread["table"] != "trans"]),
    )  # fmt: skip
    valid = canon[canon["status"] == transforms.STATUS_VALID]
    rejected = canon[canon["status"] != transforms.STATUS_VALID]
    other = unread[unread["table"] != "trans"]
    quarantine = pd.concat([
        pd.DataFrame({"stage": "read", "table": other["table"], "line": other["line"], "reason": other["reason"],
                      "detail": other["detail"], "raw": other["raw"]}),
        pd.DataFrame({"stage": "read", "table": held["q_table"], "line": held[transforms.LINE],
                      "reason": held["q_reason"], "detail": held["q_detail"], "raw": held["q_raw"]}),
        pd.DataFrame({"stage": "validate", "table": "trans", "line": rejected[transforms.LINE],
                      "reason": rejected["reason"], "detail": rejected["detail"], "raw": rejected["raw"]}),
    ], ignore_index=True)  # fmt: skip
    quarantine["line"] = quarantine["line"].astype("int64")
    transactions = valid[[*transforms.CANONICAL_COLUMNS, transforms.SEQ]].reset_index(drop=True)
    return IngestResult(transactions=transactions, quarantine=quarantine, report=report)


def _by_table(unread: pd.DataFrame) -> dict[str, dict[str, int]]:
    return {str(t): {str(r): int(n) for r, n in g["reason"].value_counts().items()}
            for t, g in unread.groupby("table")}  # fmt: skip


def features(transactions: pd.DataFrame) -> pd.DataFrame:
    """Curated feature rows (trans_id, account_id, ts, seq, features..., dt) of canonical
    transactions carrying ``seq``."""
    out = transforms.account_features(transactions[list(transforms.FEATURE_INPUT_COLUMNS)])
    out[PARTITION_KEY] = out["ts"].dt.strftime("%Y-%m-%d")
    return out
