"""report: print a readable sales report from the summary `transform aggregate` produced.

    report [--summary JSON | --summary-file PATH] [--title TEXT] [--min-orders N]

The summary comes from --summary, --summary-file or the SUMMARY environment variable (the
example DAG fills it with `{{ outputs.aggregate | tojson }}`). With --min-orders the task
fails (exit 1) when the day had fewer completed orders: a data-quality gate. Writes
`{"ok", "orders", "revenue"}` to $ORCH_OUTPUT_PATH when set. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def load_summary(args: argparse.Namespace) -> dict[str, Any]:
    if args.summary_file is not None:
        text, origin = args.summary_file.read_text(), str(args.summary_file)
    elif args.summary is not None:
        text, origin = args.summary, "--summary"
    else:
        text, origin = os.environ.get("SUMMARY", ""), "$SUMMARY"
    if not text.strip():
        raise SystemExit("report: error: no summary given (--summary, --summary-file or SUMMARY)")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"report: error: {origin} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SystemExit(f"report: error: {origin} is not a JSON object")
    return value


def render(summary: dict[str, Any], title: str) -> list[str]:
    lines = [title, "=" * len(title)]
    orders = int(summary.get("orders", 0))
    lines += [
        f"completed orders   {orders:>10}",
        f"cancelled          {int(summary.get('cancelled', 0)):>10}",
        f"refunded           {int(summary.get('refunded', 0)):>10}",
        f"units sold         {int(summary.get('units', 0)):>10}",
        f"revenue            {float(summary.get('revenue', 0)):>10.2f}",
        f"average order      {float(summary.get('average_order_value', 0)):>10.2f}",
        "",
        f"{'region':<12}{'orders':>8}{'revenue':>12}{'share':>8}",
    ]
    total = float(summary.get("revenue", 0)) or 1.0
    for region, figures in summary.get("by_region", {}).items():
        revenue = float(figures.get("revenue", 0))
        lines.append(
            f"{region:<12}{int(figures.get('orders', 0)):>8}{revenue:>12.2f}{revenue / total:>8.1%}"
        )
    products = summary.get("top_products", [])
    if products:
        lines += ["", "top products:"]
        lines += [
            f"  {i}. {p.get('product')}: {p.get('units')} units, {float(p.get('revenue', 0)):.2f}"
            for i, p in enumerate(products, start=1)
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="report", description=__doc__.splitlines()[0])
    parser.add_argument("--summary", default=None, help="the summary as a JSON string")
    parser.add_argument("--summary-file", default=None, type=Path)
    parser.add_argument("--title", default=None)
    parser.add_argument("--min-orders", type=int, default=0)
    args = parser.parse_args(argv)
    summary = load_summary(args)
    title = args.title or f"Sales report {summary.get('date') or ''}".strip()
    for line in render(summary, title):
        print(line, flush=True)
    orders = int(summary.get("orders", 0))
    ok = orders >= args.min_orders
    target = os.environ.get("ORCH_OUTPUT_PATH")
    if target:
        Path(target).write_text(
            json.dumps({"ok": ok, "orders": orders, "revenue": summary.get("revenue")})
        )
    if not ok:
        print(
            f"report: FAILED: {orders} completed orders, fewer than {args.min_orders}", flush=True
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
