"""Observations in a canonical order.

ScienceWorld lists a room's objects and a container's contents in the iteration order of a Java hash
set, which changes between loads of the same variation (e.g. three wood cups of paint come in any order).
EEF restores states by reset + replay and checks that every replayed observation equals the recorded one,
so the environment sorts those lists: the tab-indented object lines of a description and the
comma-separated items after "is:" / "contains:" ... "see:". The text is otherwise the simulator's.
"""

from __future__ import annotations

import re

_LISTING = re.compile(r"((?:is|ins): )([^\n]*?)(?=\.(?:\s|$))")


def _split_top_level(text: str) -> list[str]:
    """Split on ", " outside parentheses: "a cup (containing a, b), a jug" -> two items."""
    items, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0 and text.startswith(", ", index):
            items.append(text[start:index])
            start = index + 2
    items.append(text[start:])
    return items


def _sort_items(match: re.Match[str]) -> str:
    lead, listing = match.group(1), match.group(2)
    items = _split_top_level(listing)
    if any(item.count("(") != item.count(")") for item in items):
        return lead + listing  # not a plain list: leave it as it is
    return lead + ", ".join(sorted(items))


def canonical_observation(text: str) -> str:
    lines = text.split("\n")
    result: list[str] = []
    block: list[str] = []
    for line in lines:
        if line.startswith("\t"):
            block.append(_LISTING.sub(_sort_items, line))
            continue
        result.extend(sorted(block))
        block = []
        result.append(_LISTING.sub(_sort_items, line))
    result.extend(sorted(block))
    return "\n".join(result)
