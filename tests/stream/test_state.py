"""The items of the profiles table: the new layout round-trips; the old one is migrated on first touch."""

from __future__ import annotations

import json

import boto3
import numpy as np
import pandas as pd

from finsentry.features import F_N, AccountProfile
from finsentry.local.aws import LOCAL_REGION, local_aws
from finsentry.local.stream_resources import point_model
from finsentry.monitoring import Metric
from finsentry.partners import P_N, partner_key
from finsentry.stream.events import decode_event
from finsentry.stream.state import AccountItem, PartnerItem, decode, encode_account, trans_hashes
from tests.stream.world import bank, event_of, payloads, service, setup_world


def old_item(key: str, f: np.ndarray, i: np.ndarray, recent_ids: list[str], version: int,
             outbox: dict | None = None) -> dict:  # fmt: skip
    """An item as the scorer wrote it before issue 15 (finsentry/stream/profiles.py, 1bae226)."""
    item = {"account_id": {"S": key}, "f": {"B": np.ascontiguousarray(f, dtype="<f8").tobytes()},
            "i": {"B": np.ascontiguousarray(i, dtype="<i8").tobytes()},
            "recent_ids": {"S": json.dumps(recent_ids)}, "version": {"N": str(version)}}  # fmt: skip
    if outbox:
        item["outbox"] = {"S": json.dumps(outbox)}
    return item


def test_an_old_layout_item_is_read_as_the_same_profile_not_as_corrupt():
    p = next(iter(bank().profiles.values()))
    got = decode(old_item(p.account_id, p.f, p.i, ["t1", "t2"], 7, {"t2": {"scored": "{}", "at": 1.0}}))
    assert isinstance(got, AccountItem) and got.legacy and got.version == 7 and not got.corrupt
    np.testing.assert_array_equal(got.profile.f, p.f)
    np.testing.assert_array_equal(got.profile.i, p.i)
    assert got.guard == trans_hashes(["t1", "t2"]) and got.checkpoints == {} and not got.outbox
    partner = next(iter(bank().partners.values()))
    got = decode(old_item("partner#" + partner.partner, partner.f, partner.i, [], 2))
    assert isinstance(got, PartnerItem) and got.legacy and got.version == 2
    assert decode(old_item(p.account_id, p.f[:-1], p.i, [], 7)) is None  # a foreign state is still corrupt
    new = decode(encode_account(AccountItem(p), 3))
    assert not new.legacy and new.version == 3


def test_a_table_of_old_items_is_migrated_by_the_scorer_on_first_touch(tmp_path):
    """Seeded in the old layout, the table is scored exactly as a new-layout one (same scores),
    no item is replaced as corrupt, each touched item is rewritten in the new layout with its
    transactions folded once, and a redelivery of what the old scorer folded is not folded again."""
    b = bank()
    test = b.test.head(60)
    results = {}
    for layout in ("new", "old"):
        with local_aws():
            world = setup_world(tmp_path / layout)
            point_model(f"s3://{world.bucket}/models/isolation_forest/", "if-1", 0.7)
            table = world.env["PROFILES_TABLE"]
            ddb = boto3.client("dynamodb", region_name=LOCAL_REGION)
            already = b.train.groupby("account_id")["trans_id"].apply(lambda s: [str(t) for t in s.tail(256)])
            if layout == "old":  # the same states, written as the old scorer did
                for acc, prof in b.profiles.items():
                    ddb.put_item(TableName=table, Item=old_item(acc, prof.f, prof.i, already.get(acc, []), 5))
                for key, prof in b.partners.items():
                    ddb.put_item(TableName=table, Item=old_item("partner#" + key, prof.f, prof.i, [], 5))
            svc = service(world)
            resent = b.train.tail(1) if layout == "old" else b.train.head(0)  # folded by the old scorer, again
            _, records = decode_event(event_of(payloads(pd.concat([resent, test])), first=100))
            report = svc.process(records)
            assert not report.failed and svc.metrics.total(Metric.CORRUPT_ITEMS) == 0
            items = {i["account_id"]["S"]: i for i in world.profile_items()}
            rows = pd.DataFrame(world.scored_rows()).set_index("trans_id")
            results[layout] = (rows["score"].sort_index(), report, items)
    old_scores, report, items = results["old"]
    pd.testing.assert_series_equal(old_scores, results["new"][0])
    assert str(b.train["trans_id"].iloc[-1]) not in old_scores.index and len(report.redelivered) == 1
    for acc, n in test["account_id"].value_counts().items():
        raw = items[acc]
        assert "version" not in raw and raw["v"]["N"] == "6" and "f" not in raw  # rewritten, new layout
        before = b.profiles[acc].f[F_N] if acc in b.profiles else 0
        assert decode(raw).profile.f[F_N] == before + n
    keys = partner_key(test)
    for p, n in keys[keys != ""].value_counts().items():
        got = decode(items["partner#" + p])
        before = b.partners[p].f[P_N] if p in b.partners else 0
        assert not got.legacy and got.profile.f[P_N] == before + n
    untouched = set(b.profiles) - set(test["account_id"]) - set(b.train["account_id"].tail(1))
    assert untouched and all("version" in items[a] for a in untouched)  # still old, still readable
    assert all(decode(items[a]).legacy for a in untouched)
    assert isinstance(AccountProfile("x").q, np.ndarray)
