"""The webshop environment: WebShop's files (real 1k data when present, and WebShop's raw shapes), goals,
splits, pages, reward, the scripted expert, and clear errors for a bad data folder."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from eef.envs.registry import get_suite
from eef.envs.shop.pages import parse_item
from eef.envs.shop.schema import Goal
from eef.envs.webshop.env import WebShopSuite, load_webshop
from eef.envs.webshop.files import DATA_ENV_VAR
from eef.envs.webshop.goals import DEV_GOALS, TEST_GOALS, price_limit
from eef.envs.webshop.reward import webshop_reward
from eef.errors import UserError
from eef.experts.registry import make_expert
from eef.react import parse_action

ROOT = Path(__file__).resolve().parents[2]
WEBSHOP_1K = next(
    (path for path in (ROOT / "shared/data/webshop-1k", ROOT.parent / "shared/data/webshop-1k") if path.is_dir()),
    None,
)
needs_data = pytest.mark.skipif(
    WEBSHOP_1K is None, reason="the real WebShop 1k data is not in shared/data/webshop-1k next to the repository"
)


@pytest.fixture(scope="module")
def suite() -> WebShopSuite:
    if WEBSHOP_1K is None:
        pytest.skip("the real WebShop 1k data is not in shared/data/webshop-1k next to the repository")
    return WebShopSuite(data_dir=str(WEBSHOP_1K))


def _records() -> dict[str, dict]:
    assert WEBSHOP_1K is not None
    with open(WEBSHOP_1K / "products.jsonl", encoding="utf-8") as lines:
        return {record["asin"]: record for record in map(json.loads, lines)}


def _play(suite, env, task, actions: list[str]):
    env.reset(task)
    result = None
    for action in actions:
        result = env.step(action)
        assert not result.info["invalid"], (action, result.observation)
    return result


# --- the real 1k data -----------------------------------------------------------------------------


@needs_data
def test_loads_real_products_goals_and_webshop_splits(suite):
    assert len(suite.world.catalog.products) == 1000
    assert suite.loaded.goal_source == "synthetic"  # no items_human_ins.json in the folder
    sizes = {split: len(suite.tasks(split)) for split in suite.splits()}
    # 415 instructions expand over their products' option combinations to 6,910 goals (the data README).
    assert sum(sizes.values()) == 6910
    assert sizes == {"test": TEST_GOALS, "dev": DEV_GOALS, "train": 6910 - TEST_GOALS - DEV_GOALS}
    indices = {split: [task.meta["goal_index"] for task in suite.tasks(split)] for split in suite.splits()}
    assert indices["test"] == list(range(500)) and indices["dev"] == list(range(500, 1500))
    ids = [task.task_id for split in suite.splits() for task in suite.tasks(split)]
    assert len(set(ids)) == len(ids)
    # Every option of the product is named, one goal per combination of values.
    goal = Goal.model_validate(suite.tasks("test")[0].meta["goal"])
    product = suite.world.catalog.by_asin[goal.asin]
    assert isinstance(goal.goal_options, dict) and sorted(goal.goal_options) == sorted(product.options)
    assert (
        goal.price_upper > product.price and f"price lower than {goal.price_upper:.2f} dollars" in goal.instruction_text
    )


@needs_data
def test_splits_are_deterministic_and_the_seed_moves_only_price_limits(suite):
    load_webshop.cache_clear()
    again = WebShopSuite(data_dir=str(WEBSHOP_1K))
    assert again.loaded is not suite.loaded
    assert again.tasks("dev") == suite.tasks("dev")
    other = WebShopSuite(data_dir=str(WEBSHOP_1K), seed=1)
    pairs = list(zip(suite.tasks("test"), other.tasks("test"), strict=True))
    assert all(a.meta["goal"]["asin"] == b.meta["goal"]["asin"] for a, b in pairs)
    assert any(a.meta["goal"]["price_upper"] != b.meta["goal"]["price_upper"] for a, b in pairs)


@needs_data
def test_item_page_shows_the_real_products_options(suite):
    records = _records()
    task = next(t for t in suite.tasks("dev") if len(t.meta["goal"]["goal_options"]) == 2)
    goal = Goal.model_validate(task.meta["goal"])
    env = suite.make()
    result = _play(suite, env, task, [f"search[{goal.name}]", f"click[{goal.asin}]"])
    view = parse_item(result.observation)
    assert view is not None
    assert view.title == records[goal.asin]["Title"]
    assert view.options == records[goal.asin]["options"]
    assert view.price == records[goal.asin]["pricing"][0]


@needs_data
def test_gold_product_with_the_goals_options_scores_one_and_wrong_ones_less(suite):
    task = next(t for t in suite.tasks("test") if len(t.meta["goal"]["goal_options"]) == 2)
    goal = Goal.model_validate(task.meta["goal"])
    product = suite.world.catalog.by_asin[goal.asin]
    assert isinstance(goal.goal_options, dict)
    env = suite.make()
    clicks = [f"click[{value}]" for value in goal.goal_options.values()]
    result = _play(suite, env, task, [f"search[{goal.name}]", f"click[{goal.asin}]", *clicks, "click[buy now]"])
    assert result.done and result.reward == 1.0
    assert webshop_reward(product, goal, {}).total < 1.0  # no option chosen
    name, wanted = next(iter(goal.goal_options.items()))
    # A value no fuzzy or text match can mistake for the wanted one.
    other = next(v for v in product.options[name] if v != wanted and v not in product.title.lower())
    wrong = {**goal.goal_options, name: other}
    assert webshop_reward(product, goal, wrong).total < 1.0
    elsewhere = next(p for p in suite.world.catalog.products if p.category != product.category)
    assert webshop_reward(elsewhere, goal, goal.goal_options).total < 1.0
    over = goal.model_copy(update={"price_upper": product.price / 2})
    assert webshop_reward(product, over, goal.goal_options).total < 1.0


@needs_data
def test_scripted_expert_plays_real_goals(suite):
    env = suite.make()
    wins = reached_end = 0
    tasks = suite.tasks("dev")[:40]
    for index, task in enumerate(tasks):
        observation = env.reset(task)
        episode = make_expert("webshop", "scripted").start(task, index, env)
        for _ in range(suite.max_steps):
            action = parse_action(episode.act(observation))
            if action is None:
                break
            result = env.step(action)
            observation = result.observation
            if result.done:
                reached_end += 1
                wins += suite.is_success(result.reward)
                break
    assert reached_end == len(tasks)
    assert 0 < wins < len(tasks)  # it succeeds on some goals and fails on others, as EEF needs


@needs_data
def test_registry_uses_the_environment_variable(monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(WEBSHOP_1K))
    assert isinstance(get_suite("webshop"), WebShopSuite)
    monkeypatch.delenv(DATA_ENV_VAR)
    with pytest.raises(UserError, match=DATA_ENV_VAR):
        get_suite("webshop")


# --- WebShop's raw file shapes (no real data needed) ------------------------------------------------

RAW_PRODUCTS = [
    {
        "asin": "B0RAW00001",
        "name": "Cozy Anti Slip Women's Slippers",
        "full_description": "Warm slippers.",
        "pricing": "$28.08 - $33.39",
        "images": ["https://example.invalid/1.jpg"],
        "product_category": "Clothing, Shoes & Jewelry › Women › Shoes › Slippers",
        "category": "fashion",
        "query": "Women's Slippers ",
        "small_description": ["Faux fur lining", "Rubber sole"],
        "customization_options": {
            "Color": [{"value": "Black/White", "is_selected": False}, {"value": "Pink", "is_selected": False}],
            "Size": [{"value": "Small"}, {"value": "Large"}],
            "Style": None,
        },
    },
    {
        "asin": "B0RAW00002",
        "name": "Plain Mug",
        "full_description": "",
        "pricing": "",
        "images": [""],
        "product_category": "Home & Kitchen › Kitchen & Dining › Mugs",
        "category": "garden",
        "query": "mugs",
        "small_description": "Holds coffee",
        "customization_options": "",
    },
    {"asin": "B0RAW00001", "name": "a duplicate, dropped as WebShop drops it"},
]
RAW_ATTRIBUTES = {
    "B0RAW00001": {
        "attributes": ["anti slip", "faux fur"],
        "instruction": "Find me anti slip women's slippers with faux fur",
        "instruction_attributes": ["anti slip", "faux fur"],
    },
    "B0RAW00002": {"attributes": []},
}


def _raw_folder(tmp_path: Path, human: dict | None = None) -> Path:
    (tmp_path / "items_shuffle_1000.json").write_text(json.dumps(RAW_PRODUCTS))
    (tmp_path / "items_ins_v2_1000.json").write_text(json.dumps(RAW_ATTRIBUTES))
    if human is not None:
        (tmp_path / "items_human_ins.json").write_text(json.dumps(human))
    return tmp_path


def test_raw_webshop_files_are_processed_as_load_products_does(tmp_path):
    suite = WebShopSuite(data_dir=str(_raw_folder(tmp_path)), seed=3)
    slippers, mug = suite.world.catalog.products
    assert (slippers.pricing, slippers.display_price) == ([28.08, 33.39], "$28.08 to $33.39")
    assert slippers.options == {"color": ["black | white", "pink"], "size": ["small", "large"]}
    assert slippers.query == "women's slippers" and slippers.title == "Cozy Anti Slip Women's Slippers"
    assert (mug.pricing, mug.bullet_points, mug.options) == ([100.0], ["Holds coffee"], {})
    # Synthetic goals: every combination of the slippers' options, in WebShop's wording; none for the mug.
    goals = [Goal.model_validate(task.meta["goal"]) for split in suite.splits() for task in suite.tasks(split)]
    assert len(goals) == 4 and {goal.asin for goal in goals} == {"B0RAW00001"}
    assert {tuple(goal.goal_options.values()) for goal in goals} == {
        (color, size) for color in ("black | white", "pink") for size in ("small", "large")
    }
    limit = goals[0].price_upper
    assert limit in (40.0, 50.0, 60.0) and {goal.price_upper for goal in goals} == {limit}
    assert f"with color: {goals[0].goal_options['color']}, and size: " in goals[0].instruction_text
    assert goals[0].instruction_text.endswith(f", and price lower than {limit:.2f} dollars")
    assert len(suite.tasks("test")) == 4 and suite.tasks("train") == []  # fewer than 500 goals: all are test


def test_human_instructions_are_used_when_present(tmp_path):
    human = {
        "B0RAW00001": [
            {"instruction": "i want pink anti slip slippers.", "instruction_attributes": ["anti slip"],
             "instruction_options": ["pink"]},
            {"instruction": "no attributes: skipped", "instruction_attributes": [], "instruction_options": []},
        ]
    }  # fmt: skip
    suite = WebShopSuite(data_dir=str(_raw_folder(tmp_path, human)))
    assert suite.loaded.goal_source == "human"
    (task,) = suite.tasks("test")
    goal = Goal.model_validate(task.meta["goal"])
    assert goal.goal_options == ["pink"] and goal.instruction_text.startswith("i want pink anti slip slippers, and")
    product = suite.world.catalog.by_asin[goal.asin]
    assert webshop_reward(product, goal, {"color": "pink"}).total == 1.0
    assert webshop_reward(product, goal, {"color": "black | white"}).total < 1.0
    synthetic = WebShopSuite(data_dir=str(tmp_path), goals="synthetic")
    assert len(synthetic.tasks("test")) == 4


def test_price_limits_follow_webshop():
    rng = random.Random(0)
    assert all(price_limit(28.08, rng) in (40.0, 50.0, 60.0) for _ in range(50))
    assert price_limit(985.0, rng) == 1_000_000.0  # fewer than two steps left under $1,000: no limit


# --- bad input ------------------------------------------------------------------------------------


def test_bad_data_folders_are_one_clear_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        get_suite("webshop", data_dir=str(tmp_path / "missing"))
    with pytest.raises(UserError, match=r"no WebShop product file"):
        get_suite("webshop", data_dir=str(tmp_path))
    (tmp_path / "items_shuffle_1000.json").write_text("[{not json")
    (tmp_path / "items_ins_v2_1000.json").write_text("{}")
    with pytest.raises(UserError, match=r"items_shuffle_1000\.json: not a readable JSON file"):
        get_suite("webshop", data_dir=str(tmp_path))
    (tmp_path / "items_shuffle.json").write_text("[]")
    with pytest.raises(UserError, match=r"several WebShop product files.*products_file"):
        get_suite("webshop", data_dir=str(tmp_path))


def test_cli_reports_a_bad_data_folder_in_one_line(tmp_path):
    env = {**os.environ, DATA_ENV_VAR: str(tmp_path / "missing"), "EEF_QUIET": "1"}
    out = tmp_path / "x.jsonl"
    command = [sys.executable, "-m", "eef", "collect", "--env", "webshop", "--expert", "scripted"]
    result = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "EEF_WEBSHOP_DATA" in lines[0] and "webshop" in lines[0]
    assert not out.exists()
