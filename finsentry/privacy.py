"""Masking of client identifiers in everything an analyst or on-call sees."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

import pandas as pd

DEFAULT_MASK_KEY = b"finsentry-local-demo-key"  # the deployment passes its own secret key


def mask_ids(values: pd.Series, key: bytes = DEFAULT_MASK_KEY) -> pd.Series:
    """Keyed, stable pseudonyms (HMAC-SHA256, 16 hex chars): joinable, not reversible."""
    key = bytes(key)
    return values.map(lambda v: _pseudonym(key, str(v)))


@lru_cache(maxsize=1 << 16)  # the clients of a stream's recent batches: each HMAC computed once
def _pseudonym(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:16]
