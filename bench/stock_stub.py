"""The stock bench's catalogue, its feeds, and its stand-in for Shopify's Admin GraphQL API.

Shared by `bench/stock.py` (which writes the feeds and checks the result) and the stub server it
starts in a process of its own (`python bench/stock_stub.py INFO_FILE`), so both agree on which
SKUs exist, which channel lists which, and which inventory item each one is. The feed helpers
write the suppliers' CSV feeds, change 1 % of one, and compute, from the files alone (the csv
module, not OrderHub's parser), what each channel should be sent; the memory helpers read RSS
and its peak from /proc.

The stub answers, on http://127.0.0.1:PORT/<channel>/admin/api/<version>/graphql.json:

- `OrderHubVariantsBySku`: the variants of the SKUs in `sku:"..." OR ...` that the channel
  lists (one page; a SKU the channel does not list is simply absent, as in Shopify);
- `OrderHubInventorySet`: records each absolute `available` quantity, checks the location, the
  `@idempotent` key and `changeFromQuantity` against what it holds (a stale one is answered
  with Shopify's CHANGE_FROM_QUANTITY_STALE userError), and answers success;

both with cost extensions and a bucket generous enough that the client never waits.
`GET /_bench/next` ends a run: it returns the run's request counts per channel and the stub's
CPU seconds, and starts the next run; `GET /_bench/sets` returns, per run and channel, every
quantity set (kept here, so the measured process does not hold them while it runs).
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import resource
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

API_VERSION = "2026-10"
LOCATION = "gid://shopify/Location/71234567"
ITEM_GID = "gid://shopify/InventoryItem/"
PREFIXES = ("AG-BED", "GS-SOIL", "HX-TOOL", "PL-POT", "TW-SEED", "OK-HOSE")
SKUS_PER_SUPPLIER = 100_000
UNIVERSE = 180_000
# Each supplier's SKUs: 100,000 consecutive numbers from its offset (wrapping at UNIVERSE), so
# neighbours share 40,000 SKUs and every SKU is stocked by one or two suppliers.
SUPPLIERS = {"alpha": 0, "bravo": 60_000, "charlie": 120_000}
CHANNELS = ("shopify", "shopify_eu", "shopify_us")
# The availability rule per channel, (buffer, percent, max), as bench/stock.py's StockRules.
RULES = {"shopify": (1, 100, None), "shopify_eu": (1, 50, None), "shopify_us": (2, 100, 40)}
CHANGED_SHARE = 0.01       # of one supplier's SKUs get a new quantity before run 2
CHANGED_SUPPLIER = "alpha"


def sku(n: int) -> str:
    return f"{PREFIXES[n % len(PREFIXES)]}-{n:06d}"


def number(sku_text: str) -> int:
    return int(sku_text[-6:])


def supplier_numbers(supplier: str) -> range | list[int]:
    start = SUPPLIERS[supplier]
    if start + SKUS_PER_SUPPLIER <= UNIVERSE:
        return range(start, start + SKUS_PER_SUPPLIER)
    return [*range(start, UNIVERSE), *range(0, start + SKUS_PER_SUPPLIER - UNIVERSE)]


def listed(channel: str, n: int) -> bool:
    """Whether `channel` sells SKU number `n`: 95 %, 80 % and 60 % of the catalogue."""
    if channel == "shopify":
        return n % 20 != 0
    if channel == "shopify_eu":
        return n % 5 != 0
    return n % 10 < 6


# ---------------------------------------------------------------- feeds and what they should give

def quantity(rng: random.Random) -> int:
    """Units on a shelf: 15 % none, most a few, some hundreds, a few thousands."""
    r = rng.random()
    if r < 0.15:
        return 0
    if r < 0.75:
        return rng.randint(1, 30)
    return rng.randint(31, 200) if r < 0.95 else rng.randint(201, 2000)


def write_feed(path: Path, supplier: str, seed: int) -> int:
    """One supplier's feed, row by row; a fifth of the SKUs sit in two warehouses."""
    rng = random.Random(seed)
    rows = 0
    with path.open("w", newline="") as out:
        out.write("sku,quantity,warehouse\n")
        for n in supplier_numbers(supplier):
            out.write(f"{sku(n)},{quantity(rng)},main\n")
            rows += 1
            if rng.random() < 0.2:
                out.write(f"{sku(n)},{quantity(rng)},north\n")
                rows += 1
    return rows


def change_feed(path: Path, before: Path, seed: int) -> set[str]:
    """Keep `path` as `before`, then give 1 % of its SKUs (random) another quantity in their
    first row; returns those SKUs."""
    rng = random.Random(seed)
    numbers = list(supplier_numbers(CHANGED_SUPPLIER))
    chosen = {sku(n) for n in rng.sample(numbers, round(len(numbers) * CHANGED_SHARE))}
    os.replace(path, before)
    pending = set(chosen)
    with before.open(newline="") as src, path.open("w", newline="") as out:
        for line in src:
            name, qty, warehouse = line.rstrip("\n").split(",")
            if name in pending:
                pending.discard(name)
                new = quantity(rng)
                while new == int(qty):
                    new = quantity(rng)
                line = f"{name},{new},{warehouse}\n"
            out.write(line)
    return chosen


def feed_sums(paths: Sequence[Path]) -> dict[str, int]:
    """Σ of every row of every feed, per SKU, read here with the csv module (not OrderHub's)."""
    sums: dict[str, int] = {}
    for path in paths:
        with path.open(newline="") as src:
            reader = csv.reader(src)
            next(reader)
            for name, qty, _ in reader:
                sums[name] = sums.get(name, 0) + int(qty)
    return sums


def availability(total: int, buffer: int, percent: int, maximum: int | None) -> int:
    """The README's rule with nothing reserved (the bench has no orders), in integers."""
    q = total * percent // 100 - buffer
    return max(0, q if maximum is None else min(maximum, q))


def expected(sums: dict[str, int], channel: str) -> dict[str, int]:
    return {s: availability(t, *RULES[channel]) for s, t in sums.items()
            if listed(channel, number(s))}


def write_long_feed(path: Path, lines: int) -> None:
    """A feed of `lines` rows, four warehouses per SKU, for the parser alone."""
    rng = random.Random(7)
    with path.open("w") as out:
        out.write("sku,quantity,warehouse\n")
        for i in range(lines):
            out.write(f"{sku(i // 4)},{quantity(rng)},wh{i % 4}\n")


# ---------------------------------------------------------------- measuring memory

def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    """The process's peak RSS (getrusage's maxrss), since it started or `reset_peak`."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hwm_mb() -> float:
    """The peak RSS of this process's own memory (VmHWM): unlike maxrss, not the parent's
    size at the fork before exec."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def machine_busy_s() -> float:
    """CPU seconds all CPUs have been busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def reset_peak() -> bool:
    """Start the peak RSS afresh (Linux >= 4.0), so each run shows its own; False if not."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True



# ---------------------------------------------------------------- the stub

def cost(requested: int) -> dict[str, Any]:
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": requested,
                     "throttleStatus": {"maximumAvailable": 1_000_000.0,
                                        "currentlyAvailable": 999_000.0,
                                        "restoreRate": 100_000.0}}}


_SKU_TERM = re.compile(r'sku:"((?:[^"\\]|\\.)*)"')


class Stub:
    """Shopify's side of the bench: what each channel holds and what it was sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: dict[str, dict[int, int]] = {c: {} for c in CHANNELS}
        self.runs: list[dict[str, dict[str, Any]]] = []
        self.next_run()

    def next_run(self) -> dict[str, dict[str, Any]]:
        """The counts of the run that ends (without its sets); a new run starts."""
        with self.lock:
            ended = ({c: {k: v for k, v in got.items() if k != "sets"}
                      for c, got in self.runs[-1].items()} if self.runs else {})
            fresh: dict[str, dict[str, Any]] = {
                c: {"sets": {}, "set_requests": 0, "lookup_requests": 0, "looked_up": 0,
                    "found": 0, "duplicates": 0, "stale": 0, "wrong_location": 0, "no_key": 0}
                for c in CHANNELS}
            self.received = fresh
            self.runs.append(fresh)
            return ended

    def lookup(self, channel: str, variables: dict[str, Any]) -> dict[str, Any]:
        skus = [s.replace('\\"', '"').replace("\\\\", "\\")
                for s in _SKU_TERM.findall(variables["query"])]
        nodes = []
        for text in skus:
            n = number(text)
            if listed(channel, n) and text == sku(n):
                nodes.append({"id": f"gid://shopify/ProductVariant/{40_000_000 + n}",
                              "sku": text,
                              "inventoryItem": {"id": f"{ITEM_GID}{n}", "inventoryLevel": {
                                  "id": f"gid://shopify/InventoryLevel/{n}"}}})
        with self.lock:
            got = self.received[channel]
            got["lookup_requests"] += 1
            got["looked_up"] += len(skus)
            got["found"] += len(nodes)
        return {"data": {"productVariants": {
                    "pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": nodes}},
                "extensions": cost(2 + 3 * len(nodes))}

    def set_quantities(self, channel: str, variables: dict[str, Any]) -> dict[str, Any]:
        quantities = variables["input"]["quantities"]
        errors = []
        with self.lock:
            got, held = self.received[channel], self.held[channel]
            got["set_requests"] += 1
            got["no_key"] += not variables.get("key")
            for index, q in enumerate(quantities):
                n = int(q["inventoryItemId"].removeprefix(ITEM_GID))
                if q["locationId"] != LOCATION:
                    got["wrong_location"] += 1
                if q["changeFromQuantity"] is not None and q["changeFromQuantity"] != held.get(n):
                    got["stale"] += 1
                    errors.append({"field": ["input", "quantities", str(index),
                                             "changeFromQuantity"],
                                   "code": "CHANGE_FROM_QUANTITY_STALE",
                                   "message": "The changeFromQuantity value does not match "
                                              "persisted value."})
            if not errors:
                for q in quantities:
                    n = int(q["inventoryItemId"].removeprefix(ITEM_GID))
                    got["duplicates"] += sku(n) in got["sets"]
                    got["sets"][sku(n)] = held[n] = q["quantity"]
        group = None if errors else {"id": "gid://shopify/InventoryAdjustmentGroup/1"}
        return {"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": group,
                                                    "userErrors": errors}},
                "extensions": cost(10)}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as the client's session expects
    disable_nagle_algorithm = True  # else each reply waits ~40 ms for a delayed ACK
    stub: Stub

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        channel = self.path.strip("/").split("/")[0]
        op = body["query"].split("(")[0].split()[-1]
        if channel not in CHANNELS:
            self.reply(404, {"errors": "Not Found"})
        elif op == "OrderHubVariantsBySku":
            self.reply(200, self.stub.lookup(channel, body["variables"]))
        elif op == "OrderHubInventorySet":
            self.reply(200, self.stub.set_quantities(channel, body["variables"]))
        else:
            self.reply(200, {"errors": [{"message": f"the bench stub does not answer {op}"}]})

    def do_GET(self) -> None:
        if self.path == "/_bench/next":
            self.reply(200, {"channels": self.stub.next_run(), "cpu_s": time.process_time()})
        elif self.path == "/_bench/sets":
            self.reply(200, {"runs": [{c: got["sets"] for c, got in run.items()}
                                      for run in self.stub.runs]})
        else:
            self.reply(404, {"errors": "Not Found"})

    def reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Shopify-API-Version", API_VERSION)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:   # noqa: A002 - the stdlib's name
        pass


def serve(info_file: Path) -> None:
    Handler.stub = Stub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    info_file.write_text(json.dumps({"port": server.server_address[1]}))
    server.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
