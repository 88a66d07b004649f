"""WebShop's own data files, read into the shop engine's :class:`Product` records.

A WebShop data folder holds (names as WebShop's ``setup.sh`` downloads them):

- the product file: ``items_shuffle_1000.json`` (1,000 products) or ``items_shuffle.json`` (1.18M), a
  JSON list of scraped products; or ``products.jsonl``, one product a line *after* WebShop's
  ``load_products`` processing (what a WebShop search index stores, e.g. ``shared/data/webshop-1k``);
- the attribute file ``items_ins_v2_1000.json`` / ``items_ins_v2.json``: ``{asin: {"attributes",
  "instruction"?, "instruction_attributes"?}}``, the synthetic instructions;
- optionally the human instructions ``items_human_ins.json``: ``{asin: [{"instruction",
  "instruction_attributes", "instruction_options", ...}]}``.

Raw products are processed as WebShop's ``load_products`` does it: duplicate and malformed ASINs
dropped, the title from ``name``, bullet points from ``small_description``, the price string parsed
into one price or a [low, high] range ($100 when missing), option names and values lowercased with
"/" written " | ", attributes from the attribute file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eef.envs.shop.schema import DEFAULT_PRICE, Product
from eef.errors import UserError, first_problem

DATA_ENV_VAR = "EEF_WEBSHOP_DATA"
PROCESSED_PRODUCTS = "products.jsonl"
HUMAN_INSTRUCTIONS = "items_human_ins.json"
_RAW_PRODUCTS = "items_shuffle*.json"
_ATTRIBUTES = "items_ins_v2*.json"


@dataclass(frozen=True)
class HumanInstruction:
    instruction: str
    attributes: list[str]  # instruction_attributes
    options: list[str]  # instruction_options: option values


@dataclass(frozen=True)
class WebShopData:
    """Products in file order (the order goals are made in), and what each ASIN's goals come from."""

    folder: Path
    products: tuple[Product, ...]
    synthetic: dict[str, tuple[str, list[str]]]  # asin -> (instruction, instruction_attributes)
    human: dict[str, list[HumanInstruction]] | None  # None: no human-instruction file
    files: tuple[str, ...]  # the file names read, for the record


def data_folder(data_dir: str | os.PathLike[str] | None) -> Path:
    """``data_dir``, else ``$EEF_WEBSHOP_DATA``; a UserError when neither is given."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_ENV_VAR)
    if not chosen:
        raise UserError(unavailable_message())
    return Path(chosen).expanduser()


def unavailable_message() -> str:
    return (
        f"no WebShop data: set {DATA_ENV_VAR} to a folder with WebShop's product file (items_shuffle*.json or "
        f"{PROCESSED_PRODUCTS}) and attribute file (items_ins_v2*.json), or pass the env option data_dir "
        "(run configs: env.options.data_dir)"
    )


def default_data_problem() -> str | None:
    """Why ``$EEF_WEBSHOP_DATA`` does not hold usable data (None when it does)."""
    try:
        _find_files(data_folder(None), None, None)
    except UserError as err:
        return str(err)
    return None


def read_webshop_data(
    data_dir: str | os.PathLike[str] | None,
    products_file: str | None = None,
    attributes_file: str | None = None,
    num_products: int | None = None,
) -> WebShopData:
    """Read a WebShop data folder; any problem is one UserError that names the file."""
    folder = data_folder(data_dir)
    products_path, attributes_path = _find_files(folder, products_file, attributes_file)
    attributes = _read_json(attributes_path, dict)
    if products_path.name.endswith(".jsonl"):
        records = _read_jsonl(products_path)
    else:
        records = [_process_raw(record) for record in _read_json(products_path, list)]
    products: list[Product] = []
    seen: set[str] = set()
    embedded_human: dict[str, list[HumanInstruction]] = {}
    for index, record in enumerate(records):
        if num_products is not None and len(products) == num_products:
            break
        asin = record.get("asin") if isinstance(record, dict) else None
        if not isinstance(asin, str) or asin == "nan" or len(asin) > 10 or asin in seen:
            continue  # as WebShop's load_products
        seen.add(asin)
        if "Attributes" not in record:
            spec = attributes.get(asin)
            record = {**record, "Attributes": spec.get("attributes", []) if isinstance(spec, dict) else []}
        try:
            products.append(Product.model_validate(record))
        except ValidationError as err:
            where, problem = first_problem(err)
            raise UserError(f"{products_path}: product {index} ({asin}): {where}: {problem}") from None
        if record.get("instructions"):
            embedded_human[asin] = [_human(item, products_path) for item in record["instructions"]]
    if not products:
        raise UserError(f"{products_path}: no products in it; point data_dir at a WebShop data folder")
    synthetic = {}
    for product in products:
        spec = attributes.get(product.asin)
        # WebShop asserts that an instruction names attributes; one that names none cannot be scored.
        if isinstance(spec, dict) and spec.get("instruction") and spec.get("instruction_attributes"):
            synthetic[product.asin] = (spec["instruction"], list(spec["instruction_attributes"]))
    human_path = folder / HUMAN_INSTRUCTIONS
    files = [products_path.name, attributes_path.name]
    human: dict[str, list[HumanInstruction]] | None = None
    if human_path.is_file():
        raw = _read_json(human_path, dict)
        human = {asin: [_human(item, human_path) for item in raw[asin]] for asin in seen if raw.get(asin)}
        files.append(human_path.name)
    elif embedded_human:
        human = embedded_human  # WebShop's load_products stores them in each product's "instructions"
    return WebShopData(folder, tuple(products), synthetic, human, tuple(files))


def _find_files(folder: Path, products_file: str | None, attributes_file: str | None) -> tuple[Path, Path]:
    if not folder.is_dir():
        raise UserError(f"WebShop data folder {folder} does not exist: {unavailable_message()}")
    products = _one_file(folder, products_file, [_RAW_PRODUCTS, PROCESSED_PRODUCTS], "product", "products_file")
    attributes = _one_file(folder, attributes_file, [_ATTRIBUTES], "attribute", "attributes_file")
    return products, attributes


def _one_file(folder: Path, name: str | None, patterns: list[str], what: str, option: str) -> Path:
    if name is not None:
        path = folder / name
        if not path.is_file():
            raise UserError(f"WebShop {what} file {path} does not exist: check the env option {option}")
        return path
    found = sorted({path for pattern in patterns for path in folder.glob(pattern) if path.is_file()})
    if not found:
        wanted = " or ".join(patterns)
        raise UserError(f"no WebShop {what} file ({wanted}) in {folder}: {unavailable_message()}")
    if len(found) > 1:
        names = ", ".join(path.name for path in found)
        raise UserError(f"several WebShop {what} files in {folder} ({names}): choose one with the env option {option}")
    return found[0]


def _read_json(path: Path, kind: type) -> Any:
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(data, kind):
        raise UserError(f"{path}: expected a JSON {'object' if kind is dict else 'list'}, got {type(data).__name__}")
    return data


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise UserError(f"{path}:{number}: expected one product object a line")
            records.append(record)
    return records


def _human(item: Any, path: Path) -> HumanInstruction:
    if not isinstance(item, dict) or not isinstance(item.get("instruction"), str):
        raise UserError(f"{path}: a human instruction needs an 'instruction' text, got {str(item)[:80]!r}")
    return HumanInstruction(
        item["instruction"],
        list(item.get("instruction_attributes") or []),
        list(item.get("instruction_options") or []),
    )


def _process_raw(record: Any) -> Any:
    """One ``items_shuffle*.json`` product as ``load_products`` leaves it (the fields we use)."""
    if not isinstance(record, dict):
        return record
    bullets = record.get("small_description") or []
    pricing, price_tag = _parse_pricing(record.get("pricing"))
    options: dict[str, list[str]] = {}
    for name, contents in (record.get("customization_options") or {}).items():
        if contents is None:
            continue
        options[name.lower()] = [str(content["value"]).strip().replace("/", " | ").lower() for content in contents]
    return {
        "asin": record.get("asin"),
        "name": record.get("name", ""),
        "Title": record.get("name", ""),
        "Description": record.get("full_description") or "",
        "BulletPoints": bullets if isinstance(bullets, list) else [bullets],
        "product_category": record.get("product_category", ""),
        "category": record.get("category", ""),
        "query": str(record.get("query", "")).lower().strip(),
        "pricing": pricing,
        "Price": price_tag,
        "options": options,
    }


_NOT_PRICE = re.compile(r"[^\d.]")


def _parse_pricing(pricing: Any) -> tuple[list[float], str]:
    """Parse a price string: "$28.08" gives [28.08], "$28.08 - $33.39" [28.08, 33.39], none [100.0] (WebShop)."""
    if not pricing or not isinstance(pricing, str):
        return [DEFAULT_PRICE], f"${DEFAULT_PRICE}"
    try:
        prices = [float(Decimal(_NOT_PRICE.sub("", part))) for part in pricing.split("$")[1:]]
    except InvalidOperation:
        prices = []
    if not prices:
        return [DEFAULT_PRICE], f"${DEFAULT_PRICE}"
    if len(prices) == 1:
        return prices, f"${prices[0]}"
    return prices[:2], f"${prices[0]} to ${prices[1]}"
