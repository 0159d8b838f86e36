"""The Instacart loader: header checks, one calendar per user whose weekdays agree with the release."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from model_store.data.instacart import DAY_S, ORDER_FIELDS, load_orders, load_products, weekday

HEADER = ",".join(ORDER_FIELDS)


def _write(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def test_calendar_gaps_weekdays_and_capped_gaps(tmp_path: Path) -> None:
    rows = [
        HEADER,
        "10,1,1,2,8,,100,1,0",
        "10,1,1,2,8,,200,2,0",
        "11,1,2,5,14,3.0,100,1,1",  # 3 days later: weekday 2 -> 5
        "12,1,3,1,9,30.0,300,1,0",  # "30 or more": the first day >= 30 later that is weekday 1 -> 31 days
        "12,1,3,1,9,30.0,300,2,0",  # a product once per basket
    ]
    orders = load_orders(_write(tmp_path / "orders.csv.gz", rows))
    first, second, third = orders[1]
    assert [o.number for o in orders[1]] == [1, 2, 3]
    assert [weekday(o.ts) for o in orders[1]] == [2, 5, 1]
    assert (second.ts - first.ts) // DAY_S == 3 and (third.ts // DAY_S) - (second.ts // DAY_S) == 31
    assert third.ts % DAY_S == 9 * 3600 and first.products == (100, 200) and third.products == (300,)


def test_every_shared_order_lands_on_its_weekday() -> None:
    from model_store.data.paths import data_file

    orders = load_orders(data_file("instacart", "orders.csv.gz"))
    assert len(orders) == 474
    assert all(weekday(o.ts) == o.dow for user in orders.values() for o in user)


@pytest.mark.parametrize(
    "row",
    ["10,1,1,7,8,,100,1,0", "10,1,1,2,24,,100,1,0", "10,1,1,2,8,31,100,1,0", "10,1,1,2,8,,100,1"],
)
def test_out_of_range_rows_are_refused(tmp_path: Path, row: str) -> None:
    with pytest.raises(ValueError, match=r"orders\.csv\.gz:2"):
        load_orders(_write(tmp_path / "orders.csv.gz", [HEADER, row]))


def test_products_text_and_header(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p.csv.gz", ["product_id,product_name,aisle,department", '7,"Milk, Whole",milk,dairy eggs']
    )
    assert load_products(path)[7].text == "Milk, Whole, milk, dairy eggs"
    with pytest.raises(ValueError, match="unexpected header"):
        load_products(_write(tmp_path / "q.csv.gz", ["id,name", "1,a"]))
