"""A small synthetic order history in the Instacart format, written at test time: users with weekly staples,
occasional extras and a few products bought only in target orders."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from model_store.data.instacart import ORDER_FIELDS

PRODUCTS = [
    (1, "Whole Milk", "milk", "dairy eggs"),
    (2, "Sourdough Bread", "bread", "bakery"),
    (3, "Bananas", "fresh fruits", "produce"),
    (4, "Greek Yogurt", "yogurt", "dairy eggs"),
    (5, "Free Range Eggs", "eggs", "dairy eggs"),
    (6, "Dark Chocolate", "candy chocolate", "snacks"),
    (7, "Sparkling Water", "water seltzer", "beverages"),
    (8, "Baby Spinach", "packaged vegetables", "produce"),
    (9, "Cheddar Cheese", "packaged cheese", "dairy eggs"),
    (10, "Ground Coffee", "coffee", "beverages"),
    (11, "Target Only Truffles", "specialty", "pantry"),
]
TARGET_ONLY = 11


def write_basket_files(root: Path, users: int = 24, orders: int = 8, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    lines = [",".join(ORDER_FIELDS)]
    order_id = 1000
    for user in range(1, users + 1):
        staples = rng.choice(np.arange(1, 11), size=3, replace=False)
        for number in range(1, orders + 1):
            order_id += 1
            basket = [int(p) for p in staples if rng.random() < 0.8] + [int(rng.integers(1, 11))]
            if number == orders and user % 3 == 0:
                basket.append(TARGET_ONLY)
            basket = list(dict.fromkeys(basket))
            gap = "" if number == 1 else str(int(rng.integers(5, 10)))
            dow, hour = int(rng.integers(0, 7)), int(rng.integers(8, 20))
            for pos, p in enumerate(basket, start=1):
                lines.append(f"{order_id},{user},{number},{dow},{hour},{gap},{p},{pos},0")
    orders_path, products_path = root / "orders.csv.gz", root / "products.csv.gz"
    # weekdays are drawn at random above, so the loader lays out gaps as given (only capped gaps align weekdays)
    with gzip.open(orders_path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    with gzip.open(products_path, "wt") as fh:
        fh.write("product_id,product_name,aisle,department\n")
        fh.write("".join(f"{p},{n},{a},{d}\n" for p, n, a, d in PRODUCTS))
    return orders_path, products_path
