"""How values leave tenantgate as JSON: one encoder for responses and ETags alike.

Decimals go out as strings (a JSON number would round them through a float), bytes as
base64; orjson encodes datetimes, dates, times and UUIDs itself.
"""

from __future__ import annotations

import base64
import decimal
from typing import Any

import orjson


def default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(payload: Any, *, sort_keys: bool = False) -> bytes:
    option = orjson.OPT_SORT_KEYS if sort_keys else 0
    return orjson.dumps(payload, default=default, option=option)
