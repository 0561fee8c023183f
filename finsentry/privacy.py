"""Masking of client identifiers in everything an analyst or on-call sees."""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd

DEFAULT_MASK_KEY = b"finsentry-local-demo-key"  # the deployment passes its own secret key


def mask_ids(values: pd.Series, key: bytes = DEFAULT_MASK_KEY) -> pd.Series:
    """Keyed, stable pseudonyms (HMAC-SHA256, 16 hex chars): joinable, not reversible."""
    cache: dict[str, str] = {}

    def one(v: object) -> str:
        s = str(v)
        if s not in cache:
            cache[s] = hmac.new(key, s.encode(), hashlib.sha256).hexdigest()[:16]
        return cache[s]

    return values.map(one)
