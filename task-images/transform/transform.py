"""transform: clean raw order CSVs and aggregate them into a daily summary.

    transform clean --in DIR --out DIR
        Reads every *.csv in the input directory, drops rows that cannot be trusted (blank
        fields, bad numbers, duplicated order ids), normalises spacing and case, adds an
        `amount` column and writes DIR/orders.csv. Output: row counts and drop reasons.
    transform aggregate --in DIR [--date YYYY-MM-DD] [--top N]
        Summarises the cleaned orders (completed orders count towards revenue) and writes the
        summary as one JSON object to $ORCH_OUTPUT_PATH, the task's output that downstream
        tasks read as `{{ outputs.<task_id> }}`.

Standard library only; runs on any Python >= 3.11.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

REQUIRED = ("order_id", "ordered_at", "customer_id", "region", "product", "quantity", "unit_price")
CLEAN_COLUMNS = (*REQUIRED, "status", "amount")
CENT = Decimal("0.01")


def log(message: str) -> None:
    print(f"transform: {message}", flush=True)


def write_output(value: object) -> None:
    """Write this task's output (one JSON value) where the orchestrator asked for it."""
    target = os.environ.get("ORCH_OUTPUT_PATH")
    if not target:
        log("ORCH_OUTPUT_PATH is not set; output printed instead:")
        print(json.dumps(value, indent=2), flush=True)
        return
    Path(target).write_text(json.dumps(value))
    log(f"output written to {target}")


def read_rows(directory: Path) -> Iterator[dict[str, str]]:
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise SystemExit(f"transform: error: no *.csv files in {directory}")
    for path in files:
        log(f"reading {path}")
        with path.open(newline="") as f:
            yield from csv.DictReader(f)


def clean_row(row: dict[str, str]) -> tuple[dict[str, str] | None, str | None]:
    """The cleaned row, or None and the reason it was dropped."""
    fields = {key: (value or "").strip() for key, value in row.items() if key}
    for column in REQUIRED:
        if not fields.get(column):
            return None, f"missing_{column}"
    try:
        quantity = int(fields["quantity"])
        price = Decimal(fields["unit_price"])
    except (ValueError, InvalidOperation):
        return None, "bad_number"
    if quantity <= 0 or price < 0:
        return None, "out_of_range"
    fields["region"] = fields["region"].lower()
    fields["product"] = fields["product"].lower()
    fields["status"] = (fields.get("status") or "completed").lower()
    fields["amount"] = str((price * quantity).quantize(CENT))
    return {column: fields[column] for column in CLEAN_COLUMNS}, None


def clean(source: Path, target: Path) -> dict[str, Any]:
    seen: set[str] = set()
    kept: list[dict[str, str]] = []
    dropped: Counter[str] = Counter()
    rows_in = 0
    for row in read_rows(source):
        rows_in += 1
        cleaned, reason = clean_row(row)
        if cleaned is not None and cleaned["order_id"] in seen:
            cleaned, reason = None, "duplicate"
        if cleaned is None:
            dropped[reason or "invalid"] += 1
            continue
        seen.add(cleaned["order_id"])
        kept.append(cleaned)
    kept.sort(key=lambda r: r["order_id"])
    target.mkdir(parents=True, exist_ok=True)
    path = target / "orders.csv"
    partial = path.with_suffix(".csv.partial")
    with partial.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CLEAN_COLUMNS)
        writer.writeheader()
        writer.writerows(kept)
    partial.replace(path)
    log(f"kept {len(kept)} of {rows_in} rows; dropped {dict(sorted(dropped.items()))}")
    return {
        "rows_in": rows_in,
        "rows_out": len(kept),
        "dropped": dict(sorted(dropped.items())),
        "path": str(path),
    }


def money(value: Decimal) -> float:
    return float(value.quantize(CENT))


def aggregate(source: Path, day: str | None, top: int) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    revenue = Decimal(0)
    units = 0
    regions: dict[str, dict[str, Any]] = defaultdict(lambda: {"orders": 0, "revenue": Decimal(0)})
    products: dict[str, dict[str, Any]] = defaultdict(lambda: {"units": 0, "revenue": Decimal(0)})
    for row in read_rows(source):
        statuses[row["status"]] += 1
        if row["status"] != "completed":
            continue
        amount, quantity = Decimal(row["amount"]), int(row["quantity"])
        revenue += amount
        units += quantity
        regions[row["region"]]["orders"] += 1
        regions[row["region"]]["revenue"] += amount
        products[row["product"]]["units"] += quantity
        products[row["product"]]["revenue"] += amount
    orders = statuses["completed"]
    best = sorted(products.items(), key=lambda item: (-item[1]["revenue"], item[0]))[:top]
    return {
        "date": day,
        "orders": orders,
        "cancelled": statuses["cancelled"],
        "refunded": statuses["refunded"],
        "units": units,
        "revenue": money(revenue),
        "average_order_value": money(revenue / orders) if orders else 0.0,
        "by_region": {
            name: {"orders": r["orders"], "revenue": money(r["revenue"])}
            for name, r in sorted(regions.items())
        },
        "top_products": [
            {"product": name, "units": p["units"], "revenue": money(p["revenue"])}
            for name, p in best
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="transform", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    clean_cmd = commands.add_parser("clean", help="validate, normalise and de-duplicate orders")
    clean_cmd.add_argument("--in", dest="source", required=True, type=Path)
    clean_cmd.add_argument("--out", dest="target", required=True, type=Path)
    agg_cmd = commands.add_parser("aggregate", help="summarise cleaned orders as JSON output")
    agg_cmd.add_argument("--in", dest="source", required=True, type=Path)
    agg_cmd.add_argument("--date", default=None, help="the day summarised (for the report)")
    agg_cmd.add_argument("--top", type=int, default=3, help="how many best products to list")
    args = parser.parse_args(argv)
    task = os.environ.get("ORCH_TASK_ID")
    if task:
        log(f"task {os.environ.get('ORCH_DAG_ID')}.{task} try {os.environ.get('ORCH_TRY_NUMBER')}")
    if args.command == "clean":
        write_output(clean(args.source, args.target))
    else:
        summary = aggregate(args.source, args.date, args.top)
        log(f"{summary['orders']} completed orders, revenue {summary['revenue']:.2f}")
        write_output(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
