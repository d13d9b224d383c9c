"""What the demo is made of: its two suppliers, the products the demo shop sells, and where
their files live under the demo folder. Shared by every process of `deploy/demo.py`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path


@dataclass(frozen=True)
class DemoSupplier:
    key: str                 # also its SFTP user name and its folder under sftp/
    name: str
    format: str              # the purchase-order format OrderHub sends it
    notice_format: str       # what it answers with: "xml" (our native notice) or "csv"
    sku_prefix: str
    default: bool = False

    @property
    def password_env(self) -> str:
        return f"DEMO_{self.key.upper()}_SFTP_PASSWORD"


@dataclass(frozen=True)
class Product:
    sku: str
    title: str
    variant: str | None
    vendor: str
    price: Decimal
    grams: int


SUPPLIERS = (
    DemoSupplier("greenleaf", "Greenleaf Tools", "orderhub", "xml", "GL-"),
    # default: takes what nobody else claims (e.g. `make send-test-webhook`'s sample order).
    DemoSupplier("terra", "Terra Soils", "ubl", "csv", "TS-", default=True),
)

PRODUCTS = (
    Product("GL-TRWL-01", "Hand Trowel", "Ash handle", "Greenleaf Tools", Decimal("12.50"), 300),
    Product("GL-PRUNE-02", "Bypass Pruning Shears", None, "Greenleaf Tools", Decimal("34.00"),
            250),
    Product("GL-GLV-M", "Garden Gloves", "M", "Greenleaf Tools", Decimal("9.90"), 100),
    Product("GL-GLV-L", "Garden Gloves", "L", "Greenleaf Tools", Decimal("9.90"), 110),
    Product("GL-CAN-10", "Watering Can 10 L", "Green", "Greenleaf Tools", Decimal("29.00"),
            900),
    Product("GL-BED-CED", "Raised Garden Bed", "Cedar / 120 x 60 cm", "Greenleaf Tools",
            Decimal("149.00"), 15000),
    Product("TS-SOIL-40", "Organic Potting Soil 40 L", None, "Terra Soils", Decimal("12.99"),
            12000),
    Product("TS-COMP-25", "Garden Compost 25 L", None, "Terra Soils", Decimal("8.49"), 9000),
    Product("TS-SEED-TOM", "Heirloom Tomato Seeds", "Mixed colours", "Terra Soils",
            Decimal("3.95"), 20),
    Product("TS-MULCH-50", "Pine Bark Mulch 50 L", None, "Terra Soils", Decimal("14.50"), 8000),
)

SFTP_USER_FOLDERS = ("inbound", "shipments", "stock")
STOCK_FEED = "stock.csv"


@dataclass(frozen=True)
class DemoPaths:
    """Every file and folder of one demo, under `root` (default var/demo)."""

    root: Path

    @property
    def sftp_root(self) -> Path:
        return self.root / "sftp"

    def supplier_dir(self, key: str, folder: str = "") -> Path:
        return self.sftp_root / key / folder if folder else self.sftp_root / key

    @property
    def host_key(self) -> Path:
        return self.root / "sftp_host_key"

    @property
    def sftp_info(self) -> Path:
        return self.root / "run" / "sftp.json"

    @property
    def suppliers_toml(self) -> Path:
        return self.root / "suppliers.toml"

    @property
    def env_file(self) -> Path:
        return self.root / "demo.env"

    @property
    def database(self) -> Path:
        return self.root / "orderhub.db"

    @property
    def orders(self) -> Path:           # the demo shop's orders (what its API returns)
        return self.root / "orders"

    @property
    def fulfillments(self) -> Path:     # what OrderHub pushed back to the demo shop
        return self.root / "fulfillments.jsonl"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "run" / "pids"

    @property
    def lock(self) -> Path:
        return self.root / "run" / "demo.lock"

    @property
    def supplier_state(self) -> Path:
        return self.root / "run" / "supplier-answered.txt"


def products_of(supplier: DemoSupplier) -> tuple[Product, ...]:
    return tuple(p for p in PRODUCTS if p.sku.startswith(supplier.sku_prefix))


def say(who: str, message: str) -> None:
    """One line of what the demo is doing, for the terminal `make run` runs in."""
    # A terminal gone away (`make run | head`) is no reason to stop: carry on, quietly.
    with contextlib.suppress(OSError):
        print(f"{datetime.now().strftime('%H:%M:%S')} {who:<9} {message}", flush=True)
