"""Stripe's form encoding: ``line_items[0][price_data][currency]=eur&expand[]=x``.

The stripe library flattens nested params into bracket notation, for POST bodies
(form-encoded) and GET query strings alike. This module turns them back into nested
dicts and lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import invalid_request

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def _split(key: str) -> list[str]:
    match = _KEY.match(key)
    if not match:
        raise invalid_request(f"Invalid parameter name: {key}", param=key)
    return [match.group(1), *_PART.findall(match.group(2))]


def _insert(tree: dict, parts: list[str], value: str, key: str) -> None:
    node: Any = tree
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "":  # `name[]`: append
            if not isinstance(node, dict):
                raise invalid_request(f"Invalid array parameter: {key}", param=key)
            node = node.setdefault("\0append", [])
            if last:
                node.append(value)
                return
            node.append({})
            node = node[-1]
            continue
        if not isinstance(node, dict):
            raise invalid_request(f"Invalid parameter: {key}", param=key)
        if last:
            node[part] = value
        else:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise invalid_request(f"Invalid parameter: {key}", param=key)
            node = child


def _listify(node: Any) -> Any:
    """Dicts whose keys are all indices (``[0]``, ``[1]``) become lists, in index order."""
    if isinstance(node, list):
        return [_listify(v) for v in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"\0append"}:
        return [_listify(v) for v in node["\0append"]]
    node.pop("\0append", None)
    if node and all(k.isdigit() for k in node):
        return [_listify(node[k]) for k in sorted(node, key=int)]
    return {k: _listify(v) for k, v in node.items()}


def parse_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nested params from decoded ``(key, value)`` pairs in bracket notation."""
    tree: dict[str, Any] = {}
    for key, value in pairs:
        _insert(tree, _split(key), value, key)
    return _listify(tree)
