"""datagen: write a deterministic synthetic day of sales orders as CSV files.

    datagen --date YYYY-MM-DD [--rows N] [--shards K] --out DIR

The same date always gives the same rows (the generator is seeded by the date), so a retried or
re-run task rewrites identical files. About 4% of the rows are deliberately dirty (blank fields,
bad numbers, duplicated order ids, odd spacing and case) for `transform clean` to deal with.
Writes `{"date", "dir", "files", "rows"}` to $ORCH_OUTPUT_PATH when the orchestrator sets it.
Standard library only; runs on any Python >= 3.11.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

COLUMNS = (
    "order_id",
    "ordered_at",
    "customer_id",
    "region",
    "product",
    "quantity",
    "unit_price",
    "status",
)
REGIONS = ("north", "south", "east", "west", "central")
PRODUCTS = {
    "widget": 4.50,
    "gadget": 12.00,
    "gizmo": 27.90,
    "doohickey": 8.25,
    "sprocket": 2.10,
    "flange": 15.75,
    "thingamajig": 49.00,
}
STATUSES = ("completed", "cancelled", "refunded")
STATUS_WEIGHTS = (90, 6, 4)
DIRTY_RATE = 0.04


def log(message: str) -> None:
    print(f"datagen: {message}", flush=True)


def generate(day: date, rows: int) -> list[dict[str, str]]:
    """`rows` orders for `day`, identical for identical arguments."""
    rng = random.Random(f"datagen:{day.isoformat()}")
    start = datetime.combine(day, time(0, 0), tzinfo=UTC)
    offsets = sorted(rng.randrange(86_400) for _ in range(rows))
    orders: list[dict[str, str]] = []
    for number, offset in enumerate(offsets, start=1):
        product = rng.choice(list(PRODUCTS))
        discount = rng.choice((1.0, 1.0, 1.0, 0.9, 0.8))
        order = {
            "order_id": f"{day:%Y%m%d}-{number:06d}",
            "ordered_at": (start + timedelta(seconds=offset)).isoformat(),
            "customer_id": f"C{rng.randrange(1, 2_000):05d}",
            "region": rng.choice(REGIONS),
            "product": product,
            "quantity": str(rng.choices((1, 2, 3, 4, 5, 10), (40, 25, 15, 10, 7, 3))[0]),
            "unit_price": f"{PRODUCTS[product] * discount:.2f}",
            "status": rng.choices(STATUSES, STATUS_WEIGHTS)[0],
        }
        if orders and rng.random() < DIRTY_RATE:
            order = dirty(rng, order, orders[-1])
        orders.append(order)
    return orders


def dirty(rng: random.Random, order: dict[str, str], previous: dict[str, str]) -> dict[str, str]:
    """One of the faults real exports have."""
    fault = rng.randrange(5)
    if fault == 0:
        return dict(previous)  # the same order exported twice
    order = dict(order)
    if fault == 1:
        order["customer_id"] = ""
    elif fault == 2:
        order["quantity"] = str(-int(order["quantity"]))
    elif fault == 3:
        order["unit_price"] = "n/a"
    else:
        order["region"] = f"  {order['region'].upper()} "  # fixable: clean normalises it
    return order


def write_shards(orders: list[dict[str, str]], out: Path, shards: int) -> list[Path]:
    """Write `orders` round-robin into `shards` files, replacing earlier ones atomically."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("orders-*.csv"):
        stale.unlink()
    paths = []
    for shard in range(shards):
        path = out / f"orders-{shard + 1:03d}-of-{shards:03d}.csv"
        partial = path.with_suffix(".csv.partial")
        with partial.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(orders[shard::shards])
        partial.replace(path)
        paths.append(path)
    return paths


def write_output(value: object) -> None:
    """Write this task's output (one JSON value) where the orchestrator asked for it."""
    target = os.environ.get("ORCH_OUTPUT_PATH")
    if not target:
        log("ORCH_OUTPUT_PATH is not set; output not written: " + json.dumps(value))
        return
    Path(target).write_text(json.dumps(value))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="datagen", description=__doc__.splitlines()[0])
    parser.add_argument("--date", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--rows", type=int, default=1000, help="orders to generate")
    parser.add_argument("--shards", type=int, default=2, help="CSV files to spread them over")
    parser.add_argument("--out", required=True, type=Path, help="directory to write into")
    args = parser.parse_args(argv)
    if args.rows < 0 or args.shards < 1:
        parser.error("--rows must be >= 0 and --shards >= 1")
    task = os.environ.get("ORCH_TASK_ID")
    if task:
        log(
            f"task {os.environ.get('ORCH_DAG_ID')}.{task} run {os.environ.get('ORCH_RUN_ID')} "
            f"try {os.environ.get('ORCH_TRY_NUMBER')}"
        )
    log(f"generating {args.rows} orders for {args.date} into {args.out}")
    orders = generate(args.date, args.rows)
    paths = write_shards(orders, args.out, args.shards)
    for path in paths:
        log(f"wrote {path} ({path.stat().st_size} bytes)")
    write_output(
        {
            "date": args.date.isoformat(),
            "dir": str(args.out),
            "files": [p.name for p in paths],
            "rows": len(orders),
        }
    )
    log(f"done: {len(orders)} rows in {len(paths)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
