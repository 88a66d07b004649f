"""The text pages of the shop, as WebShop's text mode shows them: elements joined by " [SEP] ".

Renderers turn state into observations; parsers read observations back (the scripted expert sees
only what an agent sees). Two things WebShop's text mode does not show are added for small models:
an option name ends with ":" (so names and values can be told apart) and a selected option value is
followed by " (selected)".

The instruction is on the search page. WebShop's own pages repeat it on every page, at the top; ReAct
and ETO strip it from their observations. :func:`with_instruction` adds it to a page where the
environment's ``instruction_on_pages`` option asks (``top``, or ``bottom``: after the page, the
nearest text to the agent's next turn), and the parsers read a page with or without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from eef.envs.shop.schema import Product

SEP = " [SEP] "
RESULTS_PER_PAGE = 10
BACK_TO_SEARCH = "Back to Search"
PREV = "< Prev"
NEXT = "Next >"
BUY_NOW = "Buy Now"
SUB_PAGES = ("Description", "Features", "Reviews")
SELECTED = " (selected)"
SITE = "WebShop"
INSTRUCTION_LABEL = "Instruction:"
_HEAD = SITE + SEP + INSTRUCTION_LABEL + SEP  # how the search page (and a page with the instruction at the top) opens

# Where pages other than the search page show the instruction: nowhere, first, or last.
InstructionPlacement = Literal["none", "top", "bottom"]
INSTRUCTION_PLACEMENTS: tuple[InstructionPlacement, ...] = ("none", "top", "bottom")

_PAGE_HEADER = re.compile(r"Page (\d+) \(Total results: (\d+)\)")
_PRICE = re.compile(r"\$([0-9][0-9,]*(?:\.[0-9]+)?)")


def search_page(instruction: str) -> str:
    return SEP.join([SITE, INSTRUCTION_LABEL, instruction, "Search"])


def with_instruction(page: str, instruction: str, placement: InstructionPlacement) -> str:
    """``page`` with the instruction as WebShop's pages head it (``top``), after it (``bottom``), or not."""
    if placement == "top":
        return SEP.join([SITE, INSTRUCTION_LABEL, instruction, page])
    if placement == "bottom":
        return SEP.join([page, INSTRUCTION_LABEL, instruction])
    return page


def without_instruction(observation: str) -> str:
    """The page itself, where :func:`with_instruction` added the instruction to it."""
    if is_search_page(observation):
        return observation
    if observation.startswith(_HEAD):
        return observation[len(_HEAD) :].split(SEP, 1)[-1]
    return observation.rsplit(SEP + INSTRUCTION_LABEL + SEP, 1)[0]


def results_page(page: int, total: int, listings: Sequence[Product]) -> str:
    elements = [BACK_TO_SEARCH, f"Page {page} (Total results: {total})"]
    if page > 1:
        elements.append(PREV)
    if page * RESULTS_PER_PAGE < total:
        elements.append(NEXT)
    for product in listings:
        elements += [product.asin, product.title, product.display_price]
    return SEP.join(elements)


def item_page(product: Product, selected: Mapping[str, str]) -> str:
    elements = [BACK_TO_SEARCH, PREV]
    for name, values in product.options.items():
        elements.append(f"{name}:")
        elements += [value + SELECTED if selected.get(name) == value else value for value in values]
    elements += [product.title, f"Price: {product.display_price}", "Rating: N.A.", *SUB_PAGES, BUY_NOW]
    return SEP.join(elements)


def sub_page(product: Product, which: str) -> str:
    """The Description, Features or Reviews page of ``product``."""
    if which == "description":
        body = [product.description or "No description."]
    elif which == "features":
        body = [point.strip() for point in product.bullet_points] or ["No features listed."]
    else:
        body = ["No reviews yet."]
    return SEP.join([BACK_TO_SEARCH, PREV, *body])


def done_page(reward: float) -> str:
    return SEP.join(["Thank you for shopping with us!", "Your score (min 0.0, max 1.0)", f"{reward:.2f}"])


def invalid(reason: str, available: str) -> str:
    return f"Invalid action: {reason}. Available: {available}."


@dataclass(frozen=True)
class Listing:
    asin: str
    title: str
    price: float


@dataclass(frozen=True)
class ResultsView:
    page: int
    total: int
    has_prev: bool
    has_next: bool
    listings: tuple[Listing, ...]


@dataclass(frozen=True)
class ItemView:
    title: str
    price: float
    options: dict[str, list[str]]
    selected: dict[str, str]


def parse_price(text: str) -> float:
    """The (low) price in a display price such as "$28.08" or "Price: $28.08 to $33.39"."""
    match = _PRICE.search(text)
    if match is None:
        raise ValueError(f"no price in {text!r}")
    return float(match.group(1).replace(",", ""))


def is_search_page(observation: str) -> bool:
    # Pages with the instruction at the top open alike, but end with their own last element.
    return observation.startswith(_HEAD) and observation.endswith(SEP + "Search") and observation.count(SEP) == 3


def parse_results(observation: str) -> ResultsView | None:
    """The listings of a results page, or None when ``observation`` is not one."""
    elements = without_instruction(observation).split(SEP)
    header = _PAGE_HEADER.fullmatch(elements[1]) if len(elements) > 1 and elements[0] == BACK_TO_SEARCH else None
    if header is None:
        return None
    rest = elements[2:]
    has_prev = bool(rest) and rest[0] == PREV
    rest = rest[has_prev:]
    has_next = bool(rest) and rest[0] == NEXT
    rest = rest[has_next:]
    listings = tuple(
        Listing(rest[index], rest[index + 1], parse_price(rest[index + 2])) for index in range(0, len(rest) - 2, 3)
    )
    return ResultsView(int(header.group(1)), int(header.group(2)), has_prev, has_next, listings)


def parse_item(observation: str) -> ItemView | None:
    """What an item page shows, or None when ``observation`` is not one."""
    elements = without_instruction(observation).split(SEP)
    if len(elements) < 9 or elements[:2] != [BACK_TO_SEARCH, PREV] or elements[-1] != BUY_NOW:
        return None
    price_at = len(elements) - 6  # "Price: ...", then Rating, the three sub-pages and Buy Now
    options: dict[str, list[str]] = {}
    selected: dict[str, str] = {}
    name = ""
    for element in elements[2 : price_at - 1]:
        if element.endswith(":"):
            name = element[:-1]
            options[name] = []
            continue
        value = element.removesuffix(SELECTED)
        options.setdefault(name, []).append(value)
        if element.endswith(SELECTED):
            selected[name] = value
    return ItemView(elements[price_at - 1], parse_price(elements[price_at]), options, selected)
