"""Bounds on what a file may make rnn-parity read: archive members and JSON nesting.

A small file must not make the tool use gigabytes or crash: a zip member is
refused by its declared size before it is decompressed (and read with a hard
cap, in case the header lies), and JSON nested deeper than Keras ever writes is
refused with one line instead of a ``RecursionError``. Standard library only:
the NumPy runtime of exported models uses it too.
"""

from __future__ import annotations

import json
import zipfile

from .errors import InvalidInput

__all__ = ["MAX_JSON_BYTES", "MAX_JSON_DEPTH", "check_member_size", "json_depth", "loads_bounded", "read_member"]

#: The largest JSON member (a model's config.json or metadata.json, an export's graph) read, in bytes.
MAX_JSON_BYTES = 64 * 1024 * 1024
#: The deepest nesting of JSON objects and lists accepted (Keras's configurations nest about 10 deep).
MAX_JSON_DEPTH = 100


def check_member_size(archive: zipfile.ZipFile, name: str, where: str, limit: int = MAX_JSON_BYTES) -> None:
    """Refuse (InvalidInput) a member whose header says it is larger than ``limit`` once decompressed."""
    size = archive.getinfo(name).file_size
    if size > limit:
        raise InvalidInput(f"{where}: {name} is {size} bytes once decompressed, over the limit of {limit}; refused")


def read_member(archive: zipfile.ZipFile, name: str, where: str, limit: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of one archive member, refused (InvalidInput) when larger than ``limit`` once decompressed."""
    check_member_size(archive, name, where, limit)
    with archive.open(name) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(f"{where}: {name} is larger than its header says (over {limit} bytes); refused")
    return data


def json_depth(value) -> int:
    """How deeply lists and objects nest in a parsed JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def loads_bounded(data: bytes | str, where: str, max_depth: int = MAX_JSON_DEPTH):
    """``json.loads`` that refuses nesting deeper than ``max_depth`` (InvalidInput, one line).

    Raises ``ValueError``/``UnicodeDecodeError`` for text that is not JSON, as ``json.loads`` does.
    """
    if isinstance(data, (bytes, bytearray)) and len(data) > MAX_JSON_BYTES:
        raise InvalidInput(f"{where}: {len(data)} bytes of JSON, over the limit of {MAX_JSON_BYTES}; refused")
    try:
        value = json.loads(data)
    except RecursionError:
        raise InvalidInput(f"{where}: JSON nested too deeply (over {max_depth} levels); refused") from None
    depth = json_depth(value)
    if depth > max_depth:
        raise InvalidInput(f"{where}: JSON nested {depth} levels deep, over the limit of {max_depth}; refused")
    return value
