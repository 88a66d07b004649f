"""The built-in shop: reward formula, navigation, invalid actions, step limit, seeds, goal levels."""

import itertools
import json
import os
from pathlib import Path

import pytest

from eef.envs.registry import get_suite
from eef.envs.shop.catalog import PRODUCT_TYPES
from eef.envs.shop.env import ShopSuite
from eef.envs.shop.goals import DIFFICULTIES, SPLIT_SIZES, goal_query
from eef.envs.shop.pages import RESULTS_PER_PAGE, is_search_page, parse_item, parse_results, without_instruction
from eef.envs.shop.reward import shop_reward, type_reward
from eef.envs.shop.schema import Goal, Product
from eef.envs.shop.text import has_phrase, normalise
from eef.envs.shop.world import generate_world, load_world
from eef.errors import UserError
from eef.experts.collect import collect
from eef.experts.scripted_shop import ScriptedShopExpert

ROOT = Path(__file__).resolve().parents[2]
WEBSHOP_1K = [path / "data/webshop-1k" for path in (ROOT / "shared", ROOT.parent / "shared")]


@pytest.fixture(scope="module")
def suite() -> ShopSuite:
    return ShopSuite(seed=0)


def _goal(task) -> Goal:
    return Goal.model_validate(task.meta["goal"])


def _first_task(suite: ShopSuite, difficulty: str):
    return next(task for task in suite.tasks("train") if task.difficulty == difficulty)


# --- reward ----------------------------------------------------------------------------------------

SHAMPOO = Product(
    asin="B0TESTSH01",
    name="Nuvo Sulfate Free Vegan Shampoo",
    product_category="Beauty & Personal Care › Hair Care › Shampoo",
    query="shampoo",
    pricing=[20.0],
    options={"size": ["8 oz", "16 oz"], "scent": ["mint", "rose"]},
    Attributes=["sulfate free", "vegan"],
    BulletPoints=["Sulfate Free", "Vegan"],
    Description="This shampoo is sulfate free and vegan.",
)


def _shampoo_goal(**changes) -> Goal:
    fields = {
        "asin": SHAMPOO.asin,
        "instruction_text": "i need sulfate free and vegan shampoo with size: 16 oz, and scent: mint",
        "attributes": ["sulfate free", "vegan"],
        "goal_options": {"size": "16 oz", "scent": "mint"},
        "price_upper": 30.0,
        "query": "shampoo",
        "product_category": SHAMPOO.product_category,
        "name": SHAMPOO.name,
    }
    return Goal(**{**fields, **changes})


def test_reward_full_match_is_one():
    assert shop_reward(SHAMPOO, _shampoo_goal(), {"size": "16 oz", "scent": "mint"}).total == 1.0
    # WebShop's synthetic goals list option values without names.
    listed = _shampoo_goal(goal_options=["16 oz", "mint"])
    assert shop_reward(SHAMPOO, listed, {"size": "16 oz", "scent": "mint"}).total == 1.0


def test_reward_missing_attribute():
    goal = _shampoo_goal(attributes=["sulfate free", "paraben free"])
    # (1 attribute + 2 options + price) / (2 + 2 + 1)
    assert shop_reward(SHAMPOO, goal, {"size": "16 oz", "scent": "mint"}).total == pytest.approx(4 / 5)


def test_reward_wrong_or_missing_option():
    assert shop_reward(SHAMPOO, _shampoo_goal(), {"size": "8 oz", "scent": "mint"}).total == pytest.approx(4 / 5)
    assert shop_reward(SHAMPOO, _shampoo_goal(), {}).total == pytest.approx(3 / 5)


def test_reward_over_price():
    reward = shop_reward(SHAMPOO, _shampoo_goal(price_upper=15.0), {"size": "16 oz", "scent": "mint"})
    assert not reward.price_ok
    assert reward.total == pytest.approx(4 / 5)


def test_reward_wrong_type():
    pot = Product(
        asin="B0TESTPT01",
        name="Kora Ceramic Plant Pot",
        product_category="Patio, Lawn & Garden › Planters › Plant Pots",
        query="plant pot",
        pricing=[10.0],
        Attributes=["ceramic"],
    )
    assert shop_reward(pot, _shampoo_goal(), {}).total == 0.0  # no title word in common: r_type 0
    same_brand = pot.model_copy(update={"name": "Nuvo Ceramic Plant Pot"})
    # One goal title word in five (0.2) and no query or category match: r_type 0.5.
    assert type_reward(same_brand, _shampoo_goal()) == 0.5
    assert shop_reward(same_brand, _shampoo_goal(), {}).total == pytest.approx(0.5 * 1 / 5)


def test_attributes_match_whole_words_in_the_text():
    plain = SHAMPOO.model_copy(update={"attributes": [], "bullet_points": []})
    assert shop_reward(plain, _shampoo_goal(), {"size": "16 oz", "scent": "mint"}).attributes_matched == 2
    frozen = plain.model_copy(
        update={"description": "A sulfate freeze vegans shampoo.", "name": "Nuvo Shampoo", "title": "Nuvo Shampoo"}
    )
    assert shop_reward(frozen, _shampoo_goal(), {}).attributes_matched == 0


def test_webshop_products_load_into_the_schema():
    data = next((path for path in WEBSHOP_1K if (path / "products.jsonl").exists()), None)
    if data is None:
        pytest.skip("the WebShop 1k data is not in shared/data/webshop-1k")
    with open(data / "products.jsonl", encoding="utf-8") as lines:
        records = [json.loads(line) for line in itertools.islice(lines, 3)]
    products = [Product.model_validate(record) for record in records]
    for record, product in zip(records, products, strict=True):
        assert product.asin == record["asin"] and product.title == record["Title"]
        assert product.attributes == record["Attributes"] and product.options == record["options"]
        assert product.price == record["pricing"][0] and product.display_price == record["Price"]
        assert Product.model_validate(product.model_dump(by_alias=True)) == product
        goal = Goal(
            asin=product.asin,
            instruction_text="",
            attributes=product.attributes,
            price_upper=product.price + 1,
            query=product.query,
            product_category=product.product_category,
            name=product.name,
        )
        assert shop_reward(product, goal, {}).total == 1.0


# --- the suite and its catalog ---------------------------------------------------------------------


def test_search_keeps_jax_off_the_gpu_unless_told(monkeypatch):
    """bm25s runs JAX at import where JAX is installed; on a GPU that took 75% of its memory."""
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    ShopSuite(seed=1)
    assert os.environ["JAX_PLATFORMS"] == "cpu"
    monkeypatch.setenv("JAX_PLATFORMS", "cuda")
    ShopSuite(seed=2)
    assert os.environ["JAX_PLATFORMS"] == "cuda"


def test_suite_registered_with_disjoint_splits(suite):
    assert isinstance(get_suite("shop"), ShopSuite)
    assert suite.splits() == ["train", "dev", "test"]
    instructions = {}
    for split, size in SPLIT_SIZES.items():
        tasks = suite.tasks(split)
        assert len(tasks) == size
        assert [task.task_id for task in tasks] == [f"shop-{split}-{index}" for index in range(size)]
        assert {task.difficulty for task in tasks} == set(DIFFICULTIES)
        assert all(task.env == "shop" and task.split == split for task in tasks)
        instructions[split] = {task.instruction for task in tasks}
    assert not instructions["train"] & instructions["dev"]
    assert not instructions["train"] & instructions["test"]
    assert not instructions["dev"] & instructions["test"]


def test_unknown_split_is_a_user_error(suite):
    with pytest.raises(UserError, match="train, dev, test"):
        suite.tasks("validation")


def test_product_types_cannot_stand_in_for_each_other():
    for first, second in itertools.combinations(PRODUCT_TYPES, 2):
        assert len(set(first.attributes) & set(second.attributes)) <= 1, (first.noun, second.noun)
        levels = [{level.strip() for level in t.breadcrumb.split("›")} for t in (first, second)]
        assert len(levels[0] & levels[1]) < 2, (first.noun, second.noun)
    for product_type in PRODUCT_TYPES:
        # An attribute found inside another attribute or the blurb would match products without it.
        for attribute, other in itertools.permutations(product_type.attributes, 2):
            assert not has_phrase(other, attribute), (attribute, other)
        assert not any(has_phrase(product_type.blurb, attribute) for attribute in product_type.attributes)


def test_catalog_size_and_ids(suite):
    products = suite.world.catalog.products
    assert 4000 <= len(products) <= 6000
    assert len({product.asin for product in products}) == len(products)


def test_same_seed_same_world_other_seed_other_world(suite):
    again = generate_world(0)
    assert again.catalog.products == suite.world.catalog.products
    assert again.goals == suite.world.goals
    other = load_world(1)
    assert other.catalog.products != suite.world.catalog.products
    assert [goal.instruction_text for goal in other.goals["train"]] != [
        goal.instruction_text for goal in suite.world.goals["train"]
    ]


# --- goal levels -----------------------------------------------------------------------------------


def _offers(product: Product, goal: Goal) -> dict[str, str]:
    """The goal's options ``product`` offers (what a careful agent would select on it)."""
    return {name: value for name, value in goal.goal_options.items() if value in product.options.get(name, [])}


def test_goal_levels_hold_on_the_natural_query(suite):
    world = suite.world
    for split in suite.splits():
        for goal in world.goals[split]:
            ranking = world.engine.search(goal_query(goal))
            rank = ranking.index(goal.asin)
            target = world.catalog.by_asin[goal.asin]
            assert shop_reward(target, goal, goal.goal_options).total == 1.0
            above = [world.catalog.by_asin[asin] for asin in ranking[:rank]]
            # The target is the first listing that can earn reward 1.
            assert all(shop_reward(product, goal, _offers(product, goal)).total < 1.0 for product in above)
            decoys = [product for product in above if product.price <= goal.price_upper]
            page = rank // RESULTS_PER_PAGE + 1
            if goal.difficulty == "easy":
                assert page == 1 and not goal.goal_options and not decoys
            elif goal.difficulty == "options":
                assert page == 1 and goal.goal_options and not decoys
            elif goal.difficulty == "paging":
                assert page in (2, 3) and not decoys
            else:
                assert goal.difficulty == "tempting" and page <= 3 and goal.goal_options
                # Near-duplicates within the price limit, told apart only by their option lists.
                same_title = normalise(target.title).split()[1:]  # all but the brand
                assert decoys and all(normalise(decoy.title).split()[1:] == same_title for decoy in decoys)


# --- pages and navigation --------------------------------------------------------------------------


def test_initial_observation(suite):
    task = suite.tasks("train")[0]
    assert suite.make().reset(task) == f"WebShop [SEP] Instruction: [SEP] {task.instruction} [SEP] Search"


def test_paging_and_back_navigation(suite):
    task = _first_task(suite, "paging")
    env = suite.make()
    start = env.reset(task)
    page1 = env.step(f"search[{goal_query(_goal(task))}]").observation
    view1 = parse_results(page1)
    assert view1.page == 1 and view1.has_next and not view1.has_prev and len(view1.listings) == RESULTS_PER_PAGE
    assert "< Prev" not in page1 and "Page 1 (Total results: " in page1

    page2 = env.step("click[Next >]").observation
    view2 = parse_results(page2)
    assert view2.page == 2 and view2.has_prev and view2.listings != view1.listings
    assert env.step("click[< prev]").observation == page1
    assert env.step("click[next >]").observation == page2

    listing = view2.listings[3]
    item = env.step(f"click[{listing.asin.lower()}]").observation  # product ids match in any case
    assert parse_item(item).title == listing.title and f"Price: ${listing.price:.2f}" in item
    assert env.step("click[< prev]").observation == page2  # back to the results page it came from
    assert env.step("click[back to search]").observation == start
    assert parse_results(env.step(f"search[{goal_query(_goal(task))}]").observation).page == 1


def test_options_sub_pages_and_buying(suite):
    task = _first_task(suite, "options")
    goal = _goal(task)
    target = suite.world.catalog.by_asin[goal.asin]
    env = suite.make()
    env.reset(task)
    env.step(f"search[{goal_query(goal)}]")
    page = env.step(f"click[{goal.asin}]").observation
    assert page.startswith("Back to Search [SEP] < Prev [SEP] ") and page.endswith(
        "Description [SEP] Features [SEP] Reviews [SEP] Buy Now"
    )
    for name, value in goal.goal_options.items():
        result = env.step(f"click[{value.upper()}]")
        assert not result.info["invalid"] and parse_item(result.observation).selected[name] == value
    description = env.step("click[description]").observation
    assert description == f"Back to Search [SEP] < Prev [SEP] {target.description}"
    assert env.step("click[< prev]").observation == result.observation  # options stay selected
    assert env.step("click[features]").observation.split(" [SEP] ")[2:] == target.bullet_points
    env.step("click[< prev]")
    bought = env.step("click[Buy Now]")
    assert bought.done and bought.reward == 1.0 and bought.info["termination"] == "done"
    assert bought.observation.endswith("[SEP] 1.00")


@pytest.mark.parametrize(
    "setup, action, probe",
    [
        ([], "click[buy now]", "search"),  # the search page has no buttons
        ([], "buy the shampoo", "search"),  # not an action at all
        (["search"], "search[other things]", "click[next >]"),  # search only on the search page
        (["search"], "click[< prev]", "click[next >]"),  # no previous page on page 1
        (["search"], "click[B0NOTLISTED]", "click[next >]"),
        (["search", "item"], "click[next >]", "click[< prev]"),
        (["search", "item"], "click[purple polka dots]", "click[description]"),
        (["search", "item", "click[features]"], "click[buy now]", "click[< prev]"),
    ],
)
def test_invalid_actions_change_nothing(suite, setup, action, probe):
    task = _first_task(suite, "options")  # its target is on page 1
    goal = _goal(task)
    named = {"search": f"search[{goal_query(goal)}]", "item": f"click[{goal.asin}]"}
    env, control = suite.make(), suite.make()
    for episode in (env, control):
        episode.reset(task)
        for step in setup:
            episode.step(named.get(step, step))
    result = env.step(action)
    assert result.observation.startswith("Invalid action:") and "Available:" in result.observation
    assert result.info["invalid"] and result.reward == 0.0 and not result.done
    # The state is the one before: the same valid action gives the same page in both.
    assert env.step(named.get(probe, probe)).observation == control.step(named.get(probe, probe)).observation


def test_step_limit_ends_the_episode():
    suite = ShopSuite(seed=0, max_steps=3)
    task = suite.tasks("train")[0]
    env = suite.make()
    env.reset(task)
    assert not env.step(f"search[{goal_query(_goal(task))}]").done
    assert not env.step("click[nonsense]").done  # invalid actions count as steps
    last = env.step("click[back to search]")
    assert last.done and last.reward == 0.0 and last.info["termination"] == "step_limit"
    after = env.step("search[anything]")
    assert after.done and after.observation.startswith("Invalid action:")


# --- the instruction on every page (option instruction_on_pages) ----------------------------------


def test_instruction_on_pages_top_bottom_or_none(suite):
    task = _first_task(suite, "options")
    goal = _goal(task)
    actions = [f"search[{goal_query(goal)}]", f"click[{goal.asin}]", "click[no such button]", "click[features]"]
    plain = suite.make()
    plain.reset(task)
    pages_without = [plain.step(action).observation for action in actions]
    head = f"WebShop [SEP] Instruction: [SEP] {task.instruction} [SEP] "
    for placement in ("top", "bottom"):
        env = ShopSuite(seed=0, instruction_on_pages=placement).make()
        assert env.reset(task) == f"WebShop [SEP] Instruction: [SEP] {task.instruction} [SEP] Search"  # as before
        for action, without in zip(actions, pages_without, strict=True):
            page = env.step(action).observation
            # WebShop's own pages head every page with the instruction; bottom puts it nearest the next turn.
            expected = (
                head + without if placement == "top" else f"{without} [SEP] Instruction: [SEP] {task.instruction}"
            )
            assert page == expected
            assert without_instruction(page) == without and not is_search_page(page)
    results, item = pages_without[0], pages_without[1]
    for page in (results, head + results, f"{results} [SEP] Instruction: [SEP] {task.instruction}"):
        assert parse_results(page) == parse_results(results) is not None
    for page in (item, head + item, f"{item} [SEP] Instruction: [SEP] {task.instruction}"):
        assert parse_item(page) == parse_item(item) is not None


def test_the_expert_acts_alike_whatever_the_placement(suite):
    tasks = [_first_task(suite, level) for level in DIFFICULTIES]
    turns = {}
    for placement in ("none", "top", "bottom"):
        placed = ShopSuite(seed=0, instruction_on_pages=placement)
        turns[placement] = [t.agent_turns() for t in collect(placed, ScriptedShopExpert(), tasks, seed=0)]
    assert turns["none"] == turns["top"] == turns["bottom"]


def test_a_bad_placement_is_a_user_error():
    with pytest.raises(UserError, match="instruction_on_pages must be one of none, top, bottom, got 'left'"):
        get_suite("shop", instruction_on_pages="left")


def test_option_values_and_product_ids_are_atomic_terms(suite):
    terms = set(suite.atomic_terms())
    assert {product.asin for product in suite.world.catalog.products} <= terms
    assert {"16 oz", "black", "x-large", "heather gray"} <= terms
