"""Instacart Online Grocery Shopping Dataset 2017: order histories and the product catalogue.

Orders carry a day of week (0-6) and an hour but no date; absolute time is the running sum of
`days_since_prior_order`, which the release caps at 30 ("30 or more"). So that a timestamp says both how long
ago and which weekday and hour an order was placed, each user's orders are laid on a calendar: the first order
falls on the day whose weekday (Monday = 0, what `service.edge.ranker` computes from unix seconds) equals its
`order_dow`; an uncapped gap is taken as released; a capped gap is the smallest gap >= 30 days that lands on
the order's weekday. Weekday labels are the release's own (0-6); which of them is Sunday does not matter to a
ranker that only compares them.

Item text = product name, aisle and department: what a device knows about a product it shows.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from model_store.data.textio import read_lines

DAY_S = 86400
HOUR_S = 3600
GAP_CAP_DAYS = 30  # the release writes 30 for "30 or more"
# Day number (days since 1970-01-01) of Monday 2017-01-02; every user's calendar starts in its first week.
BASE_DAY = 17168
ORDER_FIELDS = (
    "order_id",
    "user_id",
    "order_number",
    "order_dow",
    "order_hour_of_day",
    "days_since_prior_order",
    "product_id",
    "add_to_cart_order",
    "reordered",
)


@dataclass(frozen=True, slots=True)
class Product:
    product_id: int
    name: str
    aisle: str
    department: str

    @property
    def text(self) -> str:
        return f"{self.name}, {self.aisle}, {self.department}"


@dataclass(frozen=True, slots=True)
class Order:
    order_id: int
    user_id: int
    number: int  # 1 for the user's first order
    dow: int  # 0-6, the release's labels
    hour: int  # 0-23, local
    ts: float  # unix seconds on the user's reconstructed calendar (see the module docstring)
    products: tuple[int, ...]  # in add-to-cart order


def weekday(ts: float) -> int:
    """Monday = 0 for unix seconds (1970-01-01 was a Thursday)."""
    return int((ts // DAY_S + 3) % 7)


def load_products(path: str | Path) -> dict[int, Product]:
    rows = csv.reader(read_lines(path))
    header = next(rows, None)
    if header != ["product_id", "product_name", "aisle", "department"]:
        raise ValueError(f"{path}: unexpected header {header}")
    products = {}
    for n, row in enumerate(rows, start=2):
        if len(row) != 4:
            raise ValueError(f"{path}:{n}: expected 4 fields, got {len(row)}")
        products[int(row[0])] = Product(int(row[0]), row[1].strip(), row[2].strip(), row[3].strip())
    return products


def load_orders(path: str | Path) -> dict[int, list[Order]]:
    """user id -> that user's orders, oldest first, on a reconstructed calendar."""
    rows = csv.reader(read_lines(path))
    header = next(rows, None)
    if tuple(header or ()) != ORDER_FIELDS:
        raise ValueError(f"{path}: unexpected header {header}")
    heads: dict[int, tuple[int, int, int, int, int | None]] = {}  # order id -> user, number, dow, hour, gap
    lines: dict[int, list[tuple[int, int]]] = defaultdict(list)  # order id -> (add-to-cart order, product)
    for n, row in enumerate(rows, start=2):
        if len(row) != len(ORDER_FIELDS):
            raise ValueError(f"{path}:{n}: expected {len(ORDER_FIELDS)} fields, got {len(row)}")
        order_id, user_id, number, dow, hour = (int(x) for x in row[:5])
        gap = int(float(row[5])) if row[5] else None
        if not (0 <= dow <= 6 and 0 <= hour <= 23) or (gap is not None and not 0 <= gap <= GAP_CAP_DAYS):
            raise ValueError(f"{path}:{n}: day of week, hour or gap out of range")
        heads.setdefault(order_id, (user_id, number, dow, hour, gap))
        lines[order_id].append((int(row[7]), int(row[6])))
    by_user: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for order_id, (user_id, number, *_rest) in heads.items():
        by_user[user_id].append((number, order_id))
    return {
        user_id: _calendar(user_id, [(oid, heads[oid], lines[oid]) for _, oid in sorted(orders)])
        for user_id, orders in sorted(by_user.items())
    }


def _calendar(
    user_id: int, orders: Iterable[tuple[int, tuple[int, int, int, int, int | None], list[tuple[int, int]]]]
) -> list[Order]:
    out: list[Order] = []
    day = 0
    for order_id, (_, number, dow, hour, gap), items in orders:
        if not out:
            day = BASE_DAY + dow
        elif gap is None or gap < GAP_CAP_DAYS:
            day += gap or 0
        else:
            day += GAP_CAP_DAYS + (dow - (day + GAP_CAP_DAYS + 3)) % 7
        products = tuple(dict.fromkeys(p for _, p in sorted(items)))  # a product once per basket
        out.append(Order(order_id, user_id, number, dow, hour, float(day * DAY_S + hour * HOUR_S), products))
    return out
