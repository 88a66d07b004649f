"""WebShop's purchase reward (``get_reward`` in WebShop's ``goal.py``), written afresh.

    r_total = r_type * (n_attributes_matched + n_options_matched + r_price)
                     / (n_goal_attributes + n_goal_options + 1)

``r_price`` is 1 when the bought product's price is within the goal's ``price_upper``.
``r_type`` is 1.0 when the product is of the goal's type, lowered to 0.5 when neither the product's
search query equals the goal's, nor do at least two levels of their category breadcrumbs agree, nor
do their titles overlap by more than 0.2; then to 0.1 when the title overlap is below 0.1 and to 0.0
when it is 0 (these two apply even when the query or category matches, as in WebShop).
Title overlap = |goal title words & product title words| / |goal title words|.

Where this differs from WebShop, and why:
- Title words: WebShop keeps the nouns that spaCy tags in each title; we keep all words minus a
  stopword list (no spaCy model to download, and the same answer on every machine). Adjectives such as
  "vegan" therefore count towards the overlap; an empty goal title still scores 0.2, as in WebShop.
- Attributes: WebShop counts a goal attribute as matched when ``fuzz.token_set_ratio`` with one of the
  product's attributes exceeds 85, or when it is a raw substring of the title, bullet points or
  description. We use exact matching after normalisation (lowercase words, punctuation dropped): equal
  to one of the product's attributes, or present as whole consecutive words in the title, bullet points
  or description (so "free" no longer matches inside "freeze").
- Options: WebShop fuzzy-matches (after folding colour names) the selected option values against the
  goal's option values; with a dict of goal options it compares (name, value) pairs, a quirk. We compare
  the goal's option values with the selected values, exactly after normalisation.
- Price: the product's price is the low end of its range (see ``Product.price``); WebShop draws one
  inside the range. A goal without a price limit (``price_upper <= 0``) counts the price as met, where
  WebShop would fail on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from eef.envs.shop.schema import Goal, Product
from eef.envs.shop.text import content_words, has_phrase, normalise


@dataclass(frozen=True)
class Reward:
    total: float
    r_type: float
    attributes_matched: int
    options_matched: int
    price_ok: bool


def type_reward(product: Product, goal: Goal) -> float:
    query_match = product.query == goal.query
    product_levels = {level.strip() for level in product.product_category.split("›")} - {""}
    goal_levels = {level.strip() for level in goal.product_category.split("›")} - {""}
    category_match = len(product_levels & goal_levels) >= 2
    desired = set(content_words(goal.name))
    title_score = len(desired & set(content_words(product.name))) / len(desired) if desired else 0.2
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return r_type


def attribute_matches(product: Product, goal: Goal) -> int:
    own = {normalise(attribute) for attribute in product.attributes}
    texts = [product.title, " ".join(product.bullet_points), product.description]
    return sum(
        1
        for attribute in goal.attributes
        if normalise(attribute) in own or any(has_phrase(text, attribute) for text in texts)
    )


def option_matches(selected: Mapping[str, str], goal: Goal) -> int:
    chosen = {normalise(value) for value in selected.values()}
    return sum(1 for value in goal.option_values() if normalise(value) in chosen)


def price_ok(product: Product, goal: Goal) -> bool:
    return goal.price_upper <= 0 or product.price <= goal.price_upper


def shop_reward(product: Product, goal: Goal, selected: Mapping[str, str]) -> Reward:
    """The reward for buying ``product`` with the ``selected`` options (name -> value)."""
    r_type = type_reward(product, goal)
    n_attributes = attribute_matches(product, goal)
    n_options = option_matches(selected, goal)
    within_price = price_ok(product, goal)
    denominator = len(goal.attributes) + len(goal.option_values()) + 1
    total = r_type * (n_attributes + n_options + int(within_price)) / denominator
    return Reward(total, r_type, n_attributes, n_options, within_price)
