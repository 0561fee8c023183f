"""The protocol's pure rules: the channel mark's ``advance``, the prefix rule, the slices."""

from __future__ import annotations

from finsentry.stream.protocol import advance, blocked_after, slices
from finsentry.stream.state import COMPLETE, ChannelMark, decode, encode_mark


def test_a_shorter_redelivery_does_not_move_the_mark_past_an_incomplete_record():
    """The lost-record schedule in four lines: 10007 and 10012 fail in a long delivery, a short
    redelivery completes 10007 only; ``through`` must stop below 10012 (seq numbers are sparse)."""
    first = {10006: COMPLETE, 10007: "", 10008: "as", 10010: COMPLETE, 10012: "", 10014: COMPLETE}
    mark = advance(ChannelMark("shard-0", version=1, through=10005), first, floor=10006)
    assert mark.through == 10006 and mark.done[10012] == ""
    mark = decode(encode_mark(mark, 2))  # the entry of an incomplete record survives the item
    assert mark.done[10007] == "" and mark.done[10012] == ""
    mark = advance(mark, {10006: COMPLETE, 10007: COMPLETE}, floor=10006)
    assert mark.through == 10007 and mark.delivered(10012) == "" and mark.delivered(10010) == COMPLETE
    mark = advance(mark, {10008: COMPLETE, 10010: COMPLETE, 10012: "s", 10014: COMPLETE}, floor=10008)
    assert mark.through == 10010 and mark.delivered(10012) == "s"
    mark = advance(mark, {10012: COMPLETE, 10014: COMPLETE}, floor=10012)
    assert mark.through == 10014 and mark.done == {}


def test_records_below_the_floor_no_longer_hold_the_mark():
    """Lambda delivers from the floor: what is below it was given up (retries exhausted)."""
    mark = ChannelMark("c", version=3, through=5, done={6: "", 7: COMPLETE, 9: ""})
    assert advance(mark, {9: COMPLETE}, floor=9).through == 9
    assert advance(mark, {8: COMPLETE}, floor=8).through == 8  # 9's entry is above: kept as it was
    assert advance(mark, {8: COMPLETE}, floor=8).done == {9: ""}


def test_the_prefix_rule_and_the_hot_account_slices():
    blocked = blocked_after(["a", "a", "a", "b"], ["c"] * 4, [1, 2, 3, 4], [False, True, False, False])
    assert blocked.tolist() == [False, True, True, False]
    assert slices(["a", "a", "b", "a", None], limit=2) == [(0, 3), (3, 5)]
