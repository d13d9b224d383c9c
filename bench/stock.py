"""Stock benchmark: three suppliers' 100,000-SKU feeds over SFTP to three Shopify channels.

    .venv/bin/python bench/stock.py [--json FILE] [--profile N [--profile-out FILE]]

CSV feeds of 100,000 SKUs for 3 suppliers on an SFTP server on 127.0.0.1 (asyncssh, a process
of its own), 3 channels served by a stand-in for Shopify's Admin GraphQL API (bench/stock_stub.py,
a process of its own), and `stock.sync.sync_stock` in this process on a fresh, migrated SQLite
file. Run 1 looks every SKU up and pushes every listed one; then 1 % of one supplier's quantities
change and run 2 must push exactly the SKUs whose available quantity changed (computed here from
the two feeds). Then a 1,000,000-line feed is parsed by `stock.feeds.read_feed` in a fresh
process. See bench/README.md ("Stock").

Targets: each run < 30 s, peak RSS < 300 MB, only the changed SKUs pushed, the 1M-line parse in
bounded memory (RSS growth < 32 MB). Exit status 0 when every target is met, 1 when one is
missed, 2 when the bench itself fails.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.dispatch import PASSWORD, USER, SftpProcess  # noqa: E402
from bench.ingest import INHERITED_ENV, stop_process_group  # noqa: E402
from bench.stock_stub import (  # noqa: E402
    API_VERSION,
    CHANGED_SUPPLIER,
    CHANNELS,
    LOCATION,
    SUPPLIERS,
    change_feed,
    expected,
    feed_sums,
    hwm_mb,
    machine_busy_s,
    peak_mb,
    reset_peak,
    rss_mb,
    sku,
    write_feed,
    write_long_feed,
)

TARGET_SECONDS = 30.0
TARGET_RSS_MB = 300.0
TARGET_PARSE_GROWTH_MB = 32.0
PARSE_LINES = 1_000_000

SUPPLIER = """\
[suppliers.{key}]
transport = "sftp://{user}@127.0.0.1:{port}/inbound"
password_env = "BENCH_SFTP_PASSWORD"
host_key = "{host_key}"
stock_feed = "/feeds/{key}.csv"
"""


# ---------------------------------------------------------------- processes and measuring

class StubProcess:
    """`bench/stock_stub.py` in a process of its own."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        info = tmp / "stub.json"
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "stock_stub.py"), str(info)], env=env,
            stdout=subprocess.DEVNULL, stderr=(tmp / "stub.log").open("ab"),
            start_new_session=True)
        deadline = time.monotonic() + 30
        while not info.exists() or not info.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the stub API did not start: {(tmp / 'stub.log').read_text()}")
            time.sleep(0.05)
        self.port: int = json.loads(info.read_text())["port"]
        self.cpu_s = 0.0

    def get(self, what: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/_bench/{what}"
        with urllib.request.urlopen(url, timeout=60) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data

    def next_run(self) -> dict[str, Any]:
        """The request counts of the run that ends, and the stub's CPU seconds in it."""
        data = self.get("next")
        data["cpu_s"], self.cpu_s = round(data["cpu_s"] - self.cpu_s, 2), data["cpu_s"]
        return data

    def stop(self) -> None:
        stop_process_group(self.proc, grace_s=5)


class TimedApi:
    """An `InventoryApi` that adds up the seconds spent in the channel's calls."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.lookup_s, self.set_s = inner, 0.0, 0.0

    def lookup_listings(self, skus: Sequence[str], *, location_id: str | None = None) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.lookup_listings(skus, location_id=location_id)
        finally:
            self.lookup_s += time.perf_counter() - started

    def set_quantities(self, changes: Sequence[Any], **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.set_quantities(changes, **kwargs)
        finally:
            self.set_s += time.perf_counter() - started


def sync_once(label: str, sync: Any, apis: dict[str, TimedApi], stub: StubProcess,
              profile: cProfile.Profile | None) -> dict[str, Any]:
    from stock.sync import StockRun

    for api in apis.values():
        api.lookup_s = api.set_s = 0.0
    marks: list[tuple[str, float]] = []
    peaks: dict[str, float] = {}    # the peak RSS of each step (a feed, a channel's push)

    def progress(step: str) -> None:
        if marks:
            peaks[marks[-1][0]] = peak_mb()
        marks.append((step, time.perf_counter()))
        reset_peak()

    reset_peak()
    rss_before = rss_mb()
    cpu, busy, started = time.process_time(), machine_busy_s(), time.perf_counter()
    if profile:
        profile.enable()
    run: StockRun = sync(progress=progress)
    if profile:
        profile.disable()
    ended = time.perf_counter()
    cpu, busy = time.process_time() - cpu, machine_busy_s() - busy
    peaks[marks[-1][0]] = peak_mb()
    peak = max(peaks.values())
    got = stub.next_run()
    pushes = [t for step, t in marks if step.startswith("push ")] + [ended]
    channels = {}
    for i, (push, (name, api)) in enumerate(zip(run.pushes, apis.items(), strict=True)):
        sent = got["channels"][name]
        channels[name] = {
            "seconds": round(pushes[i + 1] - pushes[i], 2), "lookup_s": round(api.lookup_s, 2),
            "peak_rss_mb": round(peaks[f"push {name}"], 1),
            "set_s": round(api.set_s, 2), "considered": push.considered,
            "not_listed": push.not_listed, "changed": push.changed, "pushed": push.pushed,
            "errors": len(push.errors), "lookup_requests": sent["lookup_requests"],
            "set_requests": sent["set_requests"],
            **{k: sent[k] for k in ("duplicates", "stale", "wrong_location", "no_key")}}
    return {"label": label, "seconds": round(ended - started, 2),
            "feeds_s": round(pushes[0] - started, 2), "push_s": round(ended - pushes[0], 2),
            "cpu_s": round(cpu, 2), "stub_cpu_s": got["cpu_s"],
            "other_cpu_pct": round(100 * max(0.0, busy - cpu - got["cpu_s"])
                                   / ((ended - started) * (os.cpu_count() or 1)), 1),
            "rss_before_mb": round(rss_before, 1), "peak_rss_mb": round(peak, 1),
            "rss_growth_mb": round(peak - rss_before, 1),
            "feeds_peak_rss_mb": round(max(v for k, v in peaks.items() if k.startswith("feed")), 1),
            "feeds": {f.supplier: {"status": f.status, "rows": f.rows, "skus": f.skus,
                                   "bad_rows": f.bad_rows, "changed": f.changed}
                      for f in run.feeds},
            "channels": channels}


def parse_in_child(path: Path) -> dict[str, Any]:
    """`--parse`: this process reads one feed through `read_feed`, counting its rows."""
    from stock.feeds import FeedProblems, read_feed

    reset_peak()
    rss_before = rss_mb()
    problems = FeedProblems()
    rows = units = 0
    started = time.perf_counter()
    with path.open("rb") as stream:
        for row in read_feed(stream, name=path.name, problems=problems):
            rows += 1
            units += row.quantity
    seconds = time.perf_counter() - started
    return {"lines": PARSE_LINES, "rows": rows, "bad_rows": problems.bad_rows,
            "units": units, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
            "file_mb": round(path.stat().st_size / 2**20, 1),
            "rss_before_mb": round(rss_before, 1), "peak_rss_mb": round(hwm_mb(), 1),
            "rss_growth_mb": round(hwm_mb() - rss_before, 1)}


# ---------------------------------------------------------------- main

def run_bench(tmp: Path, env: dict[str, str], profile: cProfile.Profile | None
              ) -> dict[str, Any]:
    from app.channels.shopify_api import ShopifyAdmin
    from app.db import Database, upgrade
    from app.dispatch import folder_transports
    from app.suppliers import load_suppliers
    from app.types import utcnow
    from stock.availability import ChannelRule, RuleOverride
    from stock.levels import StockRules, push_changed
    from stock.sync import sync_stock

    class Alerts:   # a feed held or stale would alert: none may
        kinds: list[str] = []

        def alert(self, subject: str, body: str, *, kind: str, ref: str | None = None) -> None:
            self.kinds.append(kind)

    sftp = SftpProcess(tmp, env)
    stub: StubProcess | None = None
    try:
        stub = StubProcess(tmp, env)
        feeds = sftp.root / "feeds"
        feeds.mkdir()
        started = time.perf_counter()
        rows = {key: write_feed(feeds / f"{key}.csv", key, seed)
                for seed, key in enumerate(SUPPLIERS, start=1)}
        sizes = {key: round((feeds / f"{key}.csv").stat().st_size / 2**20, 2) for key in rows}
        print(f"feeds written in {time.perf_counter() - started:.1f} s: " + ", ".join(
            f"{k} {rows[k]:,} rows {sizes[k]} MB" for k in rows), flush=True)
        (tmp / "suppliers.toml").write_text("".join(
            SUPPLIER.format(key=key, user=USER, port=sftp.port, host_key=sftp.host_key)
            for key in SUPPLIERS))
        url = f"sqlite:///{tmp / 'stock.db'}"
        upgrade(url)
        db = Database(url)
        book = load_suppliers(str(tmp / "suppliers.toml"), env, required=True)
        apis = {name: TimedApi(ShopifyAdmin(
                    f"{name}.myshopify.com", "shpat_bench", api_version=API_VERSION,
                    base_url=f"http://127.0.0.1:{stub.port}/{name}/admin/api/{API_VERSION}",
                    location_id=LOCATION)) for name in CHANNELS}
        rules = StockRules(default=ChannelRule(buffer=1), per_channel={
            "shopify_eu": RuleOverride(percent=Decimal(50)),
            "shopify_us": RuleOverride(buffer=2, max=40)})
        alerts = Alerts()

        def sync(**kwargs: Any) -> Any:
            return sync_stock(db=db, book=book, folders=folder_transports(env), apis=apis,
                              rules=rules, alerts=alerts, now=utcnow, **kwargs)

        print("run 1: every SKU new", flush=True)
        first = sync_once("run 1", sync, apis, stub, profile)
        before = tmp / f"{CHANGED_SUPPLIER}.before.csv"
        changed = change_feed(feeds / f"{CHANGED_SUPPLIER}.csv", before, seed=99)
        print(f"run 2: {len(changed):,} of {CHANGED_SUPPLIER}'s SKUs changed", flush=True)
        second = sync_once("run 2", sync, apis, stub, profile)
        process_peak = max(first["peak_rss_mb"], second["peak_rss_mb"], peak_mb())
        # What a sale's push_inventory job computes for its SKUs, at this catalogue size.
        started = time.perf_counter()
        sale = push_changed(db, channel="shopify", api=apis["shopify"], rules=rules,
                            skus=[sku(n) for n in (1, 2, 3)], reason="sale", run="bench-sale",
                            now=utcnow())
        sale_job = {"skus": 3, "ms": round((time.perf_counter() - started) * 1000, 1),
                    "changed": sale.changed}
        db.dispose()
        sets = stub.get("sets")["runs"]
        # What each channel should have been sent, from the feeds alone.
        others = [feeds / f"{k}.csv" for k in SUPPLIERS if k != CHANGED_SUPPLIER]
        old, new = feed_sums([before, *others]), feed_sums([feeds / f"{CHANGED_SUPPLIER}.csv",
                                                            *others])
        checks: dict[str, Any] = {"alerts": alerts.kinds, "feed_changed_skus": len(changed)}
        for name in CHANNELS:
            want1, now = expected(old, name), expected(new, name)
            want2 = {s: q for s, q in now.items() if want1.get(s) != q}
            got1, got2 = sets[0][name], sets[1][name]
            checks[name] = {
                "run1_expected": len(want1), "run1_exact": got1 == want1,
                "run2_expected": len(want2), "run2_exact": got2 == want2,
                "run2_unexpected": len(set(got2) - set(want2)),
                "run2_missing": len(set(want2) - set(got2)),
                "run2_wrong_quantity": sum(1 for s in want2 if s in got2 and got2[s] != want2[s])}
        return {"feeds": {k: {"rows": rows[k], "mb": sizes[k]} for k in rows},
                "runs": [first, second], "process_peak_rss_mb": round(process_peak, 1),
                "sale_job": sale_job, "checks": checks}
    finally:
        if stub is not None:
            stub.stop()
        sftp.stop()


def parse_million(tmp: Path) -> dict[str, Any]:
    path = tmp / "million.csv"
    write_long_feed(path, PARSE_LINES)
    done = subprocess.run([sys.executable, __file__, "--parse", str(path)], capture_output=True,
                          text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the 1M-line parse failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def report(bench: dict[str, Any], parse: dict[str, Any]) -> dict[str, bool]:
    runs = bench["runs"]
    line = "{:<46}" + "{:>27}" * len(runs)
    print()
    print(line.format("", *(r["label"] for r in runs)))
    for label, key in (("sync_stock, seconds", "seconds"),
                       ("  feeds: download, parse, apply (s)", "feeds_s"),
                       ("  push to 3 channels (s)", "push_s"),
                       ("CPU of this process (s)", "cpu_s"),
                       ("CPU of the stub API (s)", "stub_cpu_s"),
                       ("CPU of other processes (% of the machine)", "other_cpu_pct"),
                       ("RSS before (MB)", "rss_before_mb"),
                       ("peak RSS in the run (MB)", "peak_rss_mb"),
                       ("  peak RSS reading the feeds (MB)", "feeds_peak_rss_mb"),
                       ("  growth over before (MB)", "rss_growth_mb")):
        print(line.format(label, *(r[key] for r in runs)))
    for supplier in runs[0]["feeds"]:
        print(line.format(f"feed {supplier}: status, rows / SKUs / changed", *(
            f"{f['status']} {f['rows']:,}/{f['skus']:,}/{f['changed']:,}"
            for f in (r["feeds"][supplier] for r in runs))))
    for name in CHANNELS:
        for label, keys in (("considered / not listed", ("considered", "not_listed")),
                            ("changed / pushed", ("changed", "pushed")),
                            ("seconds / API lookup / API set", ("seconds", "lookup_s", "set_s")),
                            ("peak RSS (MB)", ("peak_rss_mb",)),
                            ("requests: lookup / set", ("lookup_requests", "set_requests"))):
            print(line.format(f"{name}: {label}", *(
                " / ".join(f"{r['channels'][name][k]:,}" for k in keys) for r in runs)))
    checks = bench["checks"]
    for name in CHANNELS:
        c = checks[name]
        print(f"{name}: run 1 set exactly the {c['run1_expected']:,} expected quantities: "
              f"{c['run1_exact']}; run 2 {c['run2_expected']:,} expected: {c['run2_exact']} "
              f"({c['run2_unexpected']} unexpected, {c['run2_missing']} missing, "
              f"{c['run2_wrong_quantity']} wrong quantity)")
    print(f"a sale's push job, 3 SKUs on shopify: {bench['sale_job']['ms']} ms "
          f"({bench['sale_job']['changed']} changed)")
    print(f"1M-line feed ({parse['file_mb']} MB): {parse['rows']:,} rows in {parse['seconds']} s "
          f"({parse['rows_per_s']:,} rows/s), RSS {parse['rss_before_mb']} -> peak "
          f"{parse['peak_rss_mb']} MB (growth {parse['rss_growth_mb']} MB)")
    clean = all(r["channels"][n][k] == 0 for r in runs for n in CHANNELS
                for k in ("errors", "duplicates", "stale", "wrong_location", "no_key")) and all(
        f["status"] == "ok" for r in runs for f in r["feeds"].values()) and not checks["alerts"]
    ok = {**{f"time_{r['label'].replace(' ', '')}": r["seconds"] < TARGET_SECONDS for r in runs},
          "rss": bench["process_peak_rss_mb"] < TARGET_RSS_MB,
          "only_changed": clean and all(checks[n]["run1_exact"] and checks[n]["run2_exact"]
                                        for n in CHANNELS),
          "parse_bounded": parse["rss_growth_mb"] < TARGET_PARSE_GROWTH_MB
          and parse["rows"] == PARSE_LINES}
    verdict = {True: "met", False: "MISSED"}
    print("targets: " + "; ".join(
        f"{r['label']} {r['seconds']} s < {TARGET_SECONDS:g} s: "
        f"{verdict[ok['time_' + r['label'].replace(' ', '')]]}" for r in runs)
        + f"; peak RSS {bench['process_peak_rss_mb']} MB < {TARGET_RSS_MB:g} MB: "
        f"{verdict[ok['rss']]}; only the changed SKUs pushed: {verdict[ok['only_changed']]}; "
        f"1M-line parse RSS growth {parse['rss_growth_mb']} MB < {TARGET_PARSE_GROWTH_MB:g} MB: "
        f"{verdict[ok['parse_bounded']]}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--profile", type=int, metavar="N",
                        help="profile both runs (cProfile) and print the top N functions")
    parser.add_argument("--profile-out", type=Path, metavar="FILE",
                        help="with --profile: also save the raw profile (pstats) to FILE")
    parser.add_argument("--parse", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.parse:
        print(json.dumps(parse_in_child(args.parse)))
        return 0
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.update({"PYTHONPATH": str(REPO), "BENCH_SFTP_PASSWORD": PASSWORD,
                "ORDERHUB_ENV_FILE": os.devnull, "LOG_LEVEL": "WARNING"})
    profile = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="orderhub-stock-") as tmpdir:
        bench = run_bench(Path(tmpdir), env, profile)
        parse = parse_million(Path(tmpdir))
    ok = report(bench, parse)
    print(f"bench took {time.perf_counter() - started:.0f} s")
    if profile and args.profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)
        if args.profile_out:
            profile.dump_stats(args.profile_out)
    if args.json:
        args.json.write_text(json.dumps({"stock": bench, "parse_1m": parse, "targets": ok},
                                        indent=2) + "\n")
    return 0 if all(ok.values()) else 1


def interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt   # SIGTERM too: the finally blocks stop what the bench started


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupted)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:   # the bench failed, not a target: say why, exit 2
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
