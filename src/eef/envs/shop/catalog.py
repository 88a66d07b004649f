"""A product catalog generated deterministically from a seed, in WebShop's product schema.

Products come in *clusters*: one product type (a noun such as "shampoo") with one pair of attributes.
A cluster's members differ only in brand, price and offered options, and their indexed text has the
same number of words with the same counts of every query word, so a query naming the cluster's
attributes and noun ranks them first (the goal generator checks that it does) and, as they score
equal, in catalog order (best seller first). The generator lays clusters out so that the goal levels
in :mod:`eef.envs.shop.goals` arise:

- "premium first" clusters list their members roughly from dearest to cheapest, so a cheap member
  sits below several pages of listings over a goal's price limit (paging);
- "mixed" clusters list them in random price order, so cheaper near-duplicates that lack the goal's
  option value sit above the target (tempting decoys);
- every member offers a random subset of its type's option values (choosing options).
"""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field

from eef.envs.shop.schema import Product
from eef.envs.shop.text import normalise


@dataclass(frozen=True)
class ProductType:
    category: str  # WebShop's top-level category
    breadcrumb: str  # product_category
    noun: str  # what the product is, as shown in titles; lowercased it is the product's query
    attributes: tuple[str, ...]  # attribute pool, as shown in titles
    options: tuple[tuple[str, tuple[str, ...]], ...]  # option name -> value pool
    price_range: tuple[float, float]
    blurb: str  # a feature line shared by the type; names no attribute


def _type(category, breadcrumb, noun, attributes, options, price_range, blurb) -> ProductType:
    return ProductType(
        category,
        breadcrumb,
        noun,
        tuple(attributes.split(", ")),
        tuple((name, tuple(values.split(", "))) for name, values in options.items()),
        price_range,
        blurb,
    )


# No two types share more than one attribute, nor a breadcrumb's first two levels, so a product of
# one type cannot earn a full reward for a goal of another.
PRODUCT_TYPES: tuple[ProductType, ...] = (
    _type("beauty", "Beauty & Personal Care › Hair Care › Shampoo", "Shampoo",
          "Sulfate Free, Paraben Free, Color Safe, Anti Dandruff, Tea Tree, Argan Oil",
          {"size": "8 oz, 12 oz, 16 oz, 32 oz", "scent": "lavender, coconut, mint, citrus, unscented"},
          (6, 38), "Gentle daily cleansing formula"),
    _type("beauty", "Beauty & Personal Care › Hair Conditioning › Conditioner", "Conditioner",
          "Leave In, Deep Moisture, Frizz Control, Keratin, Silicone Free, Curl Defining",
          {"size": "8 oz, 12 oz, 16 oz", "scent": "vanilla, coconut, rose, unscented"},
          (7, 35), "Rinses clean without weighing hair down"),
    _type("beauty", "Beauty & Personal Care › Skin Care › Face Moisturizer", "Face Moisturizer",
          "Fragrance Free, Oil Free, SPF 30, Hyaluronic Acid, Non Comedogenic, Night Repair",
          {"size": "1 oz, 1.7 oz, 2.5 oz"},
          (9, 60), "Absorbs quickly into the skin"),
    _type("beauty", "Beauty & Personal Care › Makeup › Lipstick", "Lipstick",
          "Long Lasting, Matte, Cruelty Free, Waterproof, Vitamin E, Satin Finish",
          {"color": "red, nude, pink, plum, coral, berry"},
          (5, 30), "Rich color in one swipe"),
    _type("beauty", "Beauty & Personal Care › Nail Care › Nail Polish", "Nail Polish",
          "Quick Dry, Chip Resistant, Non Toxic, High Gloss, Gel Effect, Vegan",
          {"color": "red, pink, black, lilac, gold, teal"},
          (4, 18), "Smooth brush for even coats"),
    _type("beauty", "Beauty & Personal Care › Bath & Body › Body Wash", "Body Wash",
          "Sensitive Skin, Exfoliating, pH Balanced, Shea Butter, Natural Ingredients, Dermatologist Tested",
          {"scent": "eucalyptus, lavender, oatmeal, citrus", "size": "12 oz, 18 oz, 24 oz"},
          (5, 25), "Rich lather that rinses clean"),
    _type("beauty", "Beauty & Personal Care › Hair Tools › Hair Dryer", "Hair Dryer",
          "Ionic, Lightweight, Foldable, Ceramic, Diffuser Included, Low Noise",
          {"color": "black, pink, white"},
          (19, 90), "Two heat and two speed settings"),
    _type("electronics", "Electronics › Headphones › Earbuds", "Wireless Earbuds",
          "Noise Cancelling, Water Resistant, Touch Control, Charging Case, Bluetooth 5.3, Long Battery Life",
          {"color": "black, white, navy, gray"},
          (18, 120), "Pairs in seconds with phones and laptops"),
    _type("electronics", "Electronics › Phone Accessories › Cases", "Phone Case",
          "Shockproof, Slim, Kickstand, Card Holder, Clear Back, Magnetic",
          {"color": "black, clear, blue, green, purple", "model": "iphone 13, iphone 14, galaxy s22, pixel 7"},
          (7, 35), "Raised edges guard the screen and camera"),
    _type("electronics", "Electronics › Computer Cables › USB Cables", "USB C Cable",
          "Fast Charging, Braided Nylon, Data Sync, Tangle Free, Right Angle, 100W",
          {"length": "3 ft, 6 ft, 10 ft", "color": "black, white, red"},
          (5, 22), "Works with phones tablets and laptops"),
    _type("electronics", "Electronics › Power › Power Banks", "Portable Charger",
          "High Capacity, Fast Charging, Compact, Dual USB, LED Display, Solar",
          {"capacity": "10000mah, 20000mah, 26800mah", "color": "black, white, blue"},
          (15, 70), "Charges two devices at once"),
    _type("electronics", "Electronics › Audio › Portable Speakers", "Bluetooth Speaker",
          "Waterproof, Bass Boost, Long Playtime, Built In Mic, Stereo Pairing, Rugged",
          {"color": "black, blue, red, camo"},
          (20, 150), "Clear sound indoors and outdoors"),
    _type("electronics", "Electronics › Television & Video › HDMI Cables", "HDMI Cable",
          "4K, High Speed, Gold Plated, Ethernet, 8K, Slim",
          {"length": "3 ft, 6 ft, 10 ft, 15 ft"},
          (6, 30), "Connects consoles and streaming boxes to a TV"),
    _type("electronics", "Electronics › Computer Mice › Mice", "Computer Mouse",
          "Wireless, Ergonomic, Rechargeable, Silent Click, Adjustable DPI, Ambidextrous",
          {"color": "black, white, gray, pink"},
          (9, 60), "Smooth tracking on most surfaces"),
    _type("electronics", "Electronics › Keyboards › Keyboards", "Keyboard",
          "Mechanical, Backlit, Wireless, Compact, Quiet Keys, Spill Resistant",
          {"color": "black, white"},
          (25, 130), "Full size keys with a comfortable feel"),
    _type("electronics", "Electronics › Webcams › Webcams", "Webcam",
          "1080p, Auto Focus, Privacy Cover, Wide Angle, Dual Microphone, Plug and Play",
          {},
          (20, 90), "Sharp video for calls and streams"),
    _type("garden", "Home & Kitchen › Bedding › Throw Pillow Covers", "Throw Pillow Cover",
          "Hidden Zipper, Velvet, Machine Washable, Farmhouse, Double Sided, Linen",
          {"size": "16x16 inch, 18x18 inch, 20x20 inch", "color": "beige, gray, navy, green, rust"},
          (8, 30), "Fits standard cushion inserts"),
    _type("garden", "Home & Kitchen › Bath › Shower Curtains", "Shower Curtain",
          "Waterproof, Mildew Resistant, Machine Washable, Heavy Duty, Hooks Included, Fabric",
          {"size": "72x72 inch, 72x84 inch", "color": "white, gray, blue, sage"},
          (10, 40), "Weighted hem keeps it in place"),
    _type("garden", "Home & Kitchen › Furniture › Console Tables", "Console Table",
          "Solid Wood, Easy Assembly, Storage Shelf, Rustic, Metal Frame, Narrow",
          {"color": "walnut, black, white, oak"},
          (60, 300), "Fits entryways and hallways"),
    _type("garden", "Home & Kitchen › Lighting › Desk Lamps", "Desk Lamp",
          "Dimmable, LED, USB Charging Port, Eye Caring, Touch Control, Clamp",
          {"color": "black, white, silver"},
          (15, 60), "Flexible neck aims light where needed"),
    _type("garden", "Patio, Lawn & Garden › Planters › Plant Pots", "Plant Pot",
          "Drainage Hole, Ceramic, Saucer Included, Self Watering, Hanging, Modern",
          {"size": "4 inch, 6 inch, 8 inch, 10 inch", "color": "white, terracotta, black, green"},
          (8, 45), "Suits herbs succulents and houseplants"),
    _type("garden", "Home & Kitchen › Linens › Bath Towels", "Bath Towel",
          "Quick Dry, Highly Absorbent, Turkish Cotton, Oversized, Hotel Quality, Plush",
          {"color": "white, gray, navy, teal"},
          (12, 50), "Soft on skin after many washes"),
    _type("garden", "Home & Kitchen › Storage & Organization › Baskets", "Storage Basket",
          "Foldable, Woven, Sturdy Handles, Large Capacity, Cotton Rope, Stackable",
          {"size": "small, medium, large", "color": "natural, gray, white, black"},
          (10, 40), "Tidies toys blankets and laundry"),
    _type("garden", "Patio, Lawn & Garden › Watering Equipment › Garden Hoses", "Garden Hose",
          "Expandable, Kink Free, Lightweight, Leak Proof, Brass Fittings, Heavy Duty",
          {"length": "25 ft, 50 ft, 100 ft"},
          (18, 80), "Includes a spray nozzle with several patterns"),
    _type("fashion", "Clothing, Shoes & Jewelry › Women's Shoes › Slippers", "Women's Slippers",
          "Anti Slip, Memory Foam, Faux Fur, Open Toe, Machine Washable, Indoor Outdoor",
          {"size": "small, medium, large, x-large", "color": "black, gray, pink, brown"},
          (10, 40), "Cozy around the house"),
    _type("fashion", "Clothing, Shoes & Jewelry › Men's Clothing › T-Shirts", "Men's T-Shirt",
          "Slim Fit, Cotton, Short Sleeve, Crew Neck, Moisture Wicking, Tagless",
          {"size": "small, medium, large, x-large", "color": "white, black, navy, heather gray"},
          (8, 35), "Holds its shape wash after wash"),
    _type("fashion", "Clothing, Shoes & Jewelry › Athletic Shoes › Running Shoes", "Running Shoes",
          "Breathable, Non Slip, Arch Support, Cushioned, Lightweight, Wide Toe Box",
          {"size": "7, 8, 9, 10, 11, 12", "color": "black, white, blue, red"},
          (35, 140), "Grippy outsole for road and track"),
    _type("fashion", "Clothing, Shoes & Jewelry › Women's Clothing › Leggings", "Women's Leggings",
          "High Waist, Tummy Control, Squat Proof, Side Pockets, Buttery Soft, Fleece Lined",
          {"size": "small, medium, large, x-large", "color": "black, navy, olive, burgundy"},
          (12, 40), "Stretches for yoga and running"),
    _type("fashion", "Clothing, Shoes & Jewelry › Accessories › Hats", "Baseball Cap",
          "Adjustable, Washed Cotton, Sun Protection, Embroidered, Unisex, Low Profile",
          {"color": "black, khaki, navy, red"},
          (8, 25), "Curved brim shades the eyes"),
    _type("fashion", "Clothing, Shoes & Jewelry › Luggage › Backpacks", "Backpack",
          "Water Resistant, Laptop Compartment, USB Charging Port, Anti Theft, Padded Straps, Large Capacity",
          {"color": "black, gray, navy, pink"},
          (20, 70), "Many pockets keep things organized"),
    _type("grocery", "Grocery & Gourmet Food › Beverages › Green Tea", "Green Tea",
          "Organic, Decaf, Non GMO, Sugar Free, Individually Wrapped, Loose Leaf",
          {"flavor": "jasmine, peppermint, lemon ginger, honey", "size": "20 count, 50 count, 100 count"},
          (4, 25), "Steep two to three minutes"),
    _type("grocery", "Grocery & Gourmet Food › Snacks › Protein Bars", "Protein Bar",
          "Gluten Free, High Protein, Low Sugar, Keto Friendly, Vegan, Non GMO",
          {"flavor": "chocolate, peanut butter, vanilla, cookie dough", "size": "12 count, 24 count"},
          (12, 45), "A filling snack between meals"),
    _type("grocery", "Grocery & Gourmet Food › Coffee › Whole Bean Coffee", "Coffee Beans",
          "Medium Roast, Fair Trade, Single Origin, Low Acid, Organic, Small Batch",
          {"size": "12 oz, 2 lb, 5 lb"},
          (9, 45), "Roasted and packed fresh"),
    _type("grocery", "Grocery & Gourmet Food › Pantry › Olive Oil", "Olive Oil",
          "Extra Virgin, Cold Pressed, Organic, Glass Bottle, Unfiltered, Early Harvest",
          {"size": "500 ml, 1 liter, 3 liter"},
          (8, 40), "Good for cooking and dressings"),
    _type("grocery", "Grocery & Gourmet Food › Nuts & Seeds › Mixed Nuts", "Mixed Nuts",
          "Unsalted, Roasted, Low Sodium, Resealable Bag, Gluten Free, Kosher",
          {"size": "16 oz, 32 oz, 48 oz"},
          (8, 35), "A crunchy mix for snacking"),
)  # fmt: skip

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "tr", "st", "kl")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "io")
_CODAS = ("", "", "n", "r", "x", "l")
_ASIN_CHARS = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class Catalog:
    """Products in catalog order (the search engine's tie-break: best seller first)."""

    products: tuple[Product, ...]
    by_asin: dict[str, Product] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_asin", {product.asin: product for product in self.products})


def cluster_key(product: Product) -> tuple[str, tuple[str, ...]]:
    """Products with the same key are near-duplicates: same type, same attributes."""
    return product.query, tuple(product.attributes)


def generate_catalog(rng: random.Random, products_per_type: int = 150) -> Catalog:
    """About ``products_per_type`` products of each of :data:`PRODUCT_TYPES`, in clusters."""
    brands = _brand_names(rng)
    asins: set[str] = set()
    products: list[Product] = []
    for product_type in PRODUCT_TYPES:
        pairs = list(itertools.combinations(product_type.attributes, 2))
        rng.shuffle(pairs)
        for pair, size in zip(pairs, _cluster_sizes(rng, products_per_type), strict=False):
            for price in _cluster_prices(rng, product_type.price_range, size):
                brand = rng.choice(brands[product_type.category])
                products.append(_make_product(rng, product_type, pair, brand, price, _new_asin(rng, asins)))
    return Catalog(tuple(products))


def _cluster_sizes(rng: random.Random, total: int) -> list[int]:
    # A few large clusters (several result pages: the paging and tempting goals' targets lie on pages
    # 2 and 3 of them) and several small ones.
    sizes = [rng.randint(24, 32), rng.randint(24, 32), *(rng.randint(16, 22) for _ in range(3)), rng.randint(10, 14)]
    while sum(sizes) < total:
        sizes.append(min(rng.randint(4, 9), total - sum(sizes)))
    return sizes


def _cluster_prices(rng: random.Random, price_range: tuple[float, float], size: int) -> list[float]:
    low, high = price_range
    prices = [round(rng.uniform(low, high), 2) for _ in range(size)]
    if rng.random() < 0.5:  # premium first: dearest to cheapest, with a few neighbours swapped
        prices.sort(reverse=True)
        for _ in range(size // 6):
            index = rng.randrange(size - 1)
            prices[index], prices[index + 1] = prices[index + 1], prices[index]
    return prices


def _make_product(
    rng: random.Random, product_type: ProductType, pair: Sequence[str], brand: str, price: float, asin: str
) -> Product:
    title = " ".join([brand, *(_title_case(attribute) for attribute in pair), _title_case(product_type.noun)])
    noun = product_type.noun.lower()
    options = {}
    for name, pool in product_type.options:
        offered = set(rng.sample(pool, rng.randint(2, len(pool))))
        options[name] = [value for value in pool if value in offered]
    return Product(
        asin=asin,
        name=title,
        Title=title,
        product_category=product_type.breadcrumb,
        query=noun,
        category=product_type.category,
        pricing=[price],
        Price=f"${price:.2f}",
        options=options,
        Attributes=[attribute.lower() for attribute in pair],
        BulletPoints=[*pair, product_type.blurb],
        Description=f"This {noun} is {pair[0].lower()} and {pair[1].lower()}. {product_type.blurb}.",
    )


def _title_case(phrase: str) -> str:
    return " ".join(word[0].upper() + word[1:] for word in phrase.split())


def _brand_names(rng: random.Random, per_category: int = 14) -> dict[str, list[str]]:
    """Made-up one-word brands per category, none of them a word of the catalog's own text."""
    taken = {
        word
        for product_type in PRODUCT_TYPES
        for text in (product_type.noun, product_type.blurb, *product_type.attributes)
        for word in normalise(text).split()
    }
    brands: dict[str, list[str]] = {}
    for category in sorted({product_type.category for product_type in PRODUCT_TYPES}):
        names: list[str] = []
        while len(names) < per_category:
            name = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(2)) + rng.choice(_CODAS)
            if name not in taken:
                taken.add(name)
                names.append(name.capitalize())
        brands[category] = names
    return brands


def _new_asin(rng: random.Random, taken: set[str]) -> str:
    while True:
        asin = "B0" + "".join(rng.choice(_ASIN_CHARS) for _ in range(8))
        if asin not in taken:
            taken.add(asin)
            return asin
