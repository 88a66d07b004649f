"""WebShop's purchase reward (``get_reward`` in WebShop's ``goal.py``) for real products, written afresh.

    r_total = r_type * (n_attributes_matched + n_options_matched + r_price)
                     / (n_goal_attributes + n_goal_options + 1)

It follows WebShop's matching rules, with ``rapidfuzz`` for ``thefuzz`` (thefuzz is a wrapper around
rapidfuzz) and without spaCy:

- attributes: a goal attribute matches when ``token_set_ratio`` with one of the product's attributes is
  over 85, or when it is a substring of the lowercased title, bullet points or description;
- options: each *selected* value counts once when it matches a goal option value: exactly for an option
  named "size", by ``token_set_ratio`` over 85 otherwise, or when it is a substring of the lowercased
  title, bullet points or description (so a selected value that the title names counts even when the
  goal asks for another one, as in WebShop);
- price: met when the product's price is within the goal's limit;
- type: :func:`eef.envs.shop.reward.type_reward` (query, category breadcrumb, title overlap).

Differences from WebShop, and why (docs/webshop.md lists them with their effect):

- Title overlap in the type reward counts all title words minus stopwords, where WebShop counts the
  words spaCy's ``en_core_web_lg`` tags as nouns: no 600 MB model to download, the same answer on every
  machine. Only ``r_type`` depends on it, and only for a product other than the goal's own.
- WebShop folds colour names (``normalize_color``: "black forest" -> "black") before matching options;
  we do not. ``token_set_ratio`` already scores 100 when one value's words contain the other's, which
  covers most of what the folding does.
- thefuzz drops non-ASCII characters before comparing; rapidfuzz's ``default_process`` keeps them. Scores
  are rounded to integers first, as thefuzz does, so the "> 85" threshold is the same.
- A product sold at a price range is priced at the range's low end (``Product.price``); WebShop draws one
  price uniformly inside the range, once per process, without a seed.
"""

from __future__ import annotations

from collections.abc import Mapping

from rapidfuzz import fuzz, utils

from eef.envs.shop.reward import Reward, price_ok, type_reward
from eef.envs.shop.schema import Goal, Product

FUZZY_THRESHOLD = 85
EXACT_MATCH_OPTIONS = ("size",)


def _similar(first: str, second: str) -> bool:
    return round(fuzz.token_set_ratio(first, second, processor=utils.default_process)) > FUZZY_THRESHOLD


def _in_product_text(product: Product, phrase: str) -> bool:
    texts = (product.title.lower(), " ".join(product.bullet_points).lower(), product.description.lower())
    return any(phrase in text for text in texts)


def attribute_matches(product: Product, goal: Goal) -> int:
    return sum(
        1
        for wanted in goal.attributes
        if any(_similar(own, wanted) for own in product.attributes) or _in_product_text(product, wanted)
    )


def option_matches(product: Product, goal: Goal, selected: Mapping[str, str]) -> int:
    wanted = goal.option_values()
    matches = 0
    for name, value in selected.items():
        if name.lower() in EXACT_MATCH_OPTIONS:
            matched = value in wanted
        else:
            matched = any(_similar(option, value) for option in wanted)
        matches += matched or _in_product_text(product, value)
    return matches


def webshop_reward(product: Product, goal: Goal, selected: Mapping[str, str]) -> Reward:
    """The reward for buying ``product`` with the ``selected`` options (name -> value)."""
    r_type = type_reward(product, goal)
    n_attributes = attribute_matches(product, goal)
    n_options = option_matches(product, goal, selected)
    within_price = price_ok(product, goal)
    denominator = len(goal.attributes) + len(goal.option_values()) + 1
    total = r_type * (n_attributes + n_options + int(within_price)) / denominator
    return Reward(total, r_type, n_attributes, n_options, within_price)
