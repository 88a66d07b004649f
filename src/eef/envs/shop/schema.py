"""Products and goals in WebShop's own record schema.

Field aliases are WebShop's keys (``Title``, ``Price``, ``Attributes``, ``BulletPoints``,
``Description``), so a line of WebShop's ``products.jsonl`` validates as a :class:`Product`
(keys we do not use, such as ``images`` or ``customization_options``, are ignored) and a WebShop
goal dict validates as a :class:`Goal`. ``model_dump(by_alias=True)`` writes WebShop's keys back.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# WebShop gives a product without a scraped price this price.
DEFAULT_PRICE = 100.0


class Product(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    asin: str
    name: str
    title: str = Field(default="", alias="Title")
    product_category: str = ""  # breadcrumb, "A › B › C"
    query: str = ""  # the search query the product was found with
    category: str = ""  # top-level: beauty, electronics, garden, fashion, grocery
    pricing: list[float] = Field(default_factory=list)  # one price, or [low, high]
    price_text: str = Field(default="", alias="Price")  # display price, "$28.08" or "$28.08 to $33.39"
    options: dict[str, list[str]] = Field(default_factory=dict)  # option name -> values, lowercase
    attributes: list[str] = Field(default_factory=list, alias="Attributes")
    bullet_points: list[str] = Field(default_factory=list, alias="BulletPoints")
    description: str = Field(default="", alias="Description")

    @model_validator(mode="before")
    @classmethod
    def _title_defaults_to_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("Title") and not data.get("title") and "name" in data:
            data = {**data, "Title": data["name"]}
        return data

    @field_validator("options", mode="before")
    @classmethod
    def _null_option_lists_are_empty(cls, value: Any) -> Any:
        # Scraped option lists can be null; an empty options field can be "".
        if not value:
            return {}
        return {name: list(values or []) for name, values in value.items()}

    @property
    def price(self) -> float:
        """The price the reward compares with the goal's limit: the low end of a price range.

        (WebShop draws one price uniformly inside a range per session; a range's low end is the
        price the listing advertises.)
        """
        return self.pricing[0] if self.pricing else DEFAULT_PRICE

    @property
    def display_price(self) -> str:
        return self.price_text or f"${self.price:.2f}"


class Goal(BaseModel):
    """What one task asks for. ``asin`` is the product the goal was made from: buying it with the
    goal's options scores 1, and so does any other product that meets every requirement."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    asin: str
    instruction_text: str
    attributes: list[str] = Field(default_factory=list)
    # WebShop's human goals use {name: value}; its synthetic goals a list of values.
    goal_options: dict[str, str] | list[str] = Field(default_factory=dict)
    price_upper: float = 0.0  # 0 means no price limit
    query: str = ""
    product_category: str = ""
    name: str = ""  # the goal product's title
    category: str = ""
    difficulty: str = ""

    def option_values(self) -> list[str]:
        values = self.goal_options.values() if isinstance(self.goal_options, dict) else self.goal_options
        return list(values)
