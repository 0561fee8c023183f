"""Small banks written in the Czech file forms, clean or with known dirt, for the ETL tests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from finsentry.datasets import czech, synthetic


@dataclass
class DirtyBank:
    directory: Path
    records: int  # non-blank data lines of the trans file
    clean_records: int
    expected_reasons: Counter  # quarantined trans rows by report key


def clean_bank(directory: Path, accounts: int = 30, months: int = 6, seed: int = 5, form: str = "asc",
               compress: bool = False) -> Path:  # fmt: skip
    raw = synthetic.generate_bank(synthetic.SyntheticConfig(n_accounts=accounts, months=months, seed=seed))
    czech.write_tables(raw, directory, form=form, compress=compress)
    return directory


def dirty_bank(directory: Path, accounts: int = 30, months: int = 6, seed: int = 5) -> DirtyBank:
    """An asc bank plus one row per kind of bad input (and a blank line, which is no record)."""
    clean_bank(directory, accounts, months, seed)
    path = directory / "trans.asc"
    header, *body = path.read_text().splitlines()
    rows = [line.split(";") for line in body]
    next_id = max(int(r[0]) for r in rows) + 1
    other_account = next(r[1] for r in rows if r[1] != rows[30][1])

    def row(base: list[str], **changes: str) -> str:
        cols = dict(zip(czech.ASC_FILES["trans"] + ("time",), base, strict=True))
        cols.update(changes)
        return ";".join(cols.values())

    dirt = [
        "garbage;line",  # read:malformed
        row(rows[5], trans_id=str(next_id), date="991399"),  # read:unparseable_date
        row(rows[6], trans_id=str(next_id + 1), account_id="999999"),  # unknown_account
        body[20],  # duplicate_id (same account)
        row(rows[30], account_id=other_account),  # duplicate_id (another account, first line kept)
        row(rows[7], trans_id=str(next_id + 2), type='"XXX"'),  # read:invalid_value
        row(rows[8], trans_id=str(next_id + 3), amount="abc"),  # read:wrong_type
    ]
    lines = [header, *body[:50], "", *body[50:], *dirt]
    path.write_text("\n".join(lines) + "\n")
    client = directory / "client.asc"
    client.write_text(client.read_text() + 'x;"bad";1\n')  # an unreadable client line
    expected = Counter({"read:malformed": 1, "read:unparseable_date": 1, "unknown_account": 1, "duplicate_id": 2,
                        "read:invalid_value": 1, "read:wrong_type": 1})  # fmt: skip
    return DirtyBank(directory=directory, records=len(body) + len(dirt), clean_records=len(body),
                     expected_reasons=expected)  # fmt: skip
