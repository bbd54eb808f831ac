#!/usr/bin/env python3
"""Does streaming an event's CSV export take memory that grows with the event?

Seeds (bench/admin_scale.py's SQL, another split) a PostgreSQL database of its own, dropped
and recreated: event ``scale-1`` with 100,000 orders, event ``scale-2`` with 10,000, each with
its tickets, paid and declined attempts and refunds. Then each measurement runs in a child
process of its own, through the app (Flask test client, ``buffered=False``, signed in as the
owner): it first exports the same kind of a near-empty event (imports, templates, pool: what
any export costs once), notes its peak RSS, streams the export of the event measured to the
end, reading it chunk by chunk as a download would, and reports its peak RSS again, and the
largest resident set sampled while streaming against the one before (the warm-up's peak
could hide a growth below it). A baseline
child does the warm-up only. ``--before DIR`` measures another checkout's orders export the
same way (e.g. one extracted with ``git archive``), to compare with the code before a change.

    .venv/bin/python bench/export_memory.py                  # seed, measure, write bench/REPORT.md
    .venv/bin/python bench/export_memory.py --no-seed --before /tmp/storefront-before
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path

import admin_scale

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "bench" / "REPORT.md"
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/storefront_bench_exports"
BIG, SMALL, WARM = "scale-1", "scale-2", "scale-3"
SIZES = {BIG: 100_000, SMALL: 10_000}
KINDS = ("orders", "attendees", "attempts", "refunds")
BEGIN, END = "<!-- export-memory:begin -->", "<!-- export-memory:end -->"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", default=DEFAULT_DB)
    ap.add_argument("--no-seed", action="store_true", help="measure the database seeded by an earlier run")
    ap.add_argument("--before", help="another checkout whose orders export to measure too")
    ap.add_argument("--no-report", action="store_true", help="print only; leave bench/REPORT.md alone")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--root", default=str(ROOT), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not re.match(r"postgresql\+psycopg://[^/]*@(127\.0\.0\.1|localhost)(:\d+)?/storefront_bench", args.database_url):
        ap.error("give a loopback PostgreSQL database named storefront_bench…; it is dropped and recreated")
    sys.path.insert(0, args.root)
    os.environ.setdefault("SECRET_KEY", secrets.token_hex(16))
    if args.child:
        return _child(args)
    if not args.no_seed:
        _seed(args)
    results = [_run(args, "baseline", ROOT)]
    for kind in KINDS:
        for slug in (SMALL, BIG):
            results.append(_run(args, f"{kind}:{slug}", ROOT))
    if args.before:
        for slug in (SMALL, BIG):
            results.append(_run(args, f"orders:{slug}", Path(args.before), before=True))
    text = _table(results)
    print(text)
    if not args.no_report:
        _write_report(text)
    return 0


def _seed(args) -> None:
    orders = sum(SIZES.values())
    sql = admin_scale.SEED_SQL
    assert sql.count(admin_scale.EVENT_OF_ORDER) == 1
    sql = sql.replace(admin_scale.EVENT_OF_ORDER, f"CASE WHEN i <= {SIZES[BIG]} THEN 1 ELSE 2 END")
    seed_args = argparse.Namespace(
        orders=orders, attempts=orders + orders // 5 + 20_000, abandoned=20_000, database_url=args.database_url
    )
    admin_scale._seed(admin_scale._app(args.database_url), seed_args, sql)


def _run(args, what: str, root: Path, *, before: bool = False) -> dict:
    command = [sys.executable, __file__, "--database-url", args.database_url, "--child", what, "--root", str(root)]
    child = subprocess.run(command, capture_output=True, text=True, cwd=root)
    lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
    if child.returncode or not lines:
        raise SystemExit(f"{what} failed:\n{child.stdout[-2000:]}\n{child.stderr[-4000:]}")
    result = json.loads(lines[-1])
    result["before"] = before
    print(result, flush=True)
    return result


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _rss_mb() -> float:
    """The resident set now (``ru_maxrss`` is the peak since the start, which the warm-up may hold)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _stream(client, path: str) -> tuple[int, int, int, float]:
    """Status, lines, bytes, and the largest resident set seen while reading (every 1,000 lines)."""
    response = client.get(path, buffered=False)
    size = lines = 0
    largest = _rss_mb()
    for n, chunk in enumerate(response.response):
        size += len(chunk)
        lines += chunk.count(b"\n")
        if n % 1000 == 0:
            largest = max(largest, _rss_mb())
    response.close()
    return response.status_code, lines, size, max(largest, _rss_mb())


def _child(args) -> int:
    from flask import url_for

    app = admin_scale._app(args.database_url)
    client = admin_scale._client(app)
    kind, _, slug = args.child.partition(":")
    warm_kind = "orders" if kind == "baseline" else kind
    with app.test_request_context():
        warm_path = url_for("admin.event_export", organiser="scale", event=WARM, kind=warm_kind)
        path = url_for("admin.event_export", organiser="scale", event=slug, kind=kind) if slug else None
    status, _lines, _size, _largest = _stream(client, warm_path)
    assert status == 200, (warm_path, status)
    warm = _peak_mb()
    import storefront

    now = _rss_mb()
    result = {"what": args.child, "code": storefront.__file__, "warm_mb": round(warm), "peak_mb": round(warm)}
    result.update(rss_before_mb=round(now), rss_during_mb=round(now))
    if path:
        started = time.perf_counter()
        status, lines, size, largest = _stream(client, path)
        assert status == 200, (path, status)
        result.update(
            peak_mb=round(_peak_mb()),
            rss_during_mb=round(largest),
            lines=lines,
            mb=round(size / 1e6, 1),
            seconds=round(time.perf_counter() - started, 1),
        )
    print(json.dumps(result))
    return 0


def _table(results: list[dict]) -> str:
    baseline = next(r for r in results if r["what"] == "baseline")
    out = [
        f"Peak RSS of one child process streaming one export to the end (no-export baseline: "
        f"{baseline['peak_mb']} MB, the app after one export of a near-empty event):",
        "",
        "| export | event | lines | size | time | peak RSS | above the baseline | RSS before → while streaming |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r["what"] == "baseline":
            continue
        kind, _, slug = r["what"].partition(":")
        label = f"{kind} (before: ORM objects)" if r["before"] else kind
        out.append(
            f"| {label} | {SIZES[slug]:,} orders | {r['lines']:,} | {r['mb']} MB | {r['seconds']} s "
            f"| {r['peak_mb']} MB | {r['peak_mb'] - baseline['peak_mb']:+d} MB "
            f"| {r['rss_before_mb']} → {r['rss_during_mb']} MB |"
        )
    return "\n".join(out)


def _write_report(text: str) -> None:
    report = REPORT.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in report:
        report = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _m: block, report, flags=re.S)
    else:
        report = report.rstrip("\n") + "\n\n" + block + "\n"
    REPORT.write_text(report)


if __name__ == "__main__":
    raise SystemExit(main())
