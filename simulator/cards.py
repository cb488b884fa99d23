"""The card-payment world: terminals with locations and customers with habits.

Following the "Reproducible Machine Learning for Credit Card Fraud Detection"
handbook's simulator, terminals and customers live on a 100 x 100 grid (mapped
to latitude and longitude over western Europe). Each customer has a home, a
mean amount, a number of payments per day and a few usual terminals near home.

>>> import random
>>> terminals = build_terminals(random.Random(0), 50)
>>> customers = build_customers(random.Random(1), 20, terminals, payments_per_day=2.0)
>>> all(1 <= len(c.terminals) <= 8 for c in customers)
True
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass

from simulator.choice import Weighted

GRID = 100.0
#: Terminals within this many grid units are the customer's neighbourhood (scaled by density).
_NEIGHBOURS_WANTED = 12
#: Merchant categories, their share of terminals and their typical amount relative to the mean.
CATEGORIES = {
    "grocery": (25, 1.0),
    "restaurant": (18, 0.8),
    "fuel": (10, 1.2),
    "clothing": (8, 1.5),
    "pharmacy": (7, 0.6),
    "electronics": (5, 2.5),
    "travel": (3, 3.0),
    "online_retail": (14, 1.3),
    "digital_goods": (10, 0.4),
}
#: Categories paid for online, where the card is not present.
ONLINE = frozenset({"online_retail", "digital_goods"})
_CATEGORY = Weighted({name: share for name, (share, _) in CATEGORIES.items()})
_CURRENCY = Weighted({"EUR": 0.96, "GBP": 0.02, "USD": 0.015, "CHF": 0.005})


@dataclass(frozen=True, slots=True)
class Terminal:
    """A payment terminal (or online merchant) at a fixed place."""

    terminal_id: str
    x: float
    y: float
    lat: float
    lon: float
    category: str
    amount_factor: float
    currency: str
    card_present: bool


@dataclass(frozen=True, slots=True)
class Customer:
    """A card holder and their spending habits."""

    customer_id: str
    x: float
    y: float
    mean_amount: float
    std_amount: float
    payments_per_day: float
    terminals: tuple[Terminal, ...]


def to_lat_lon(x: float, y: float) -> tuple[float, float]:
    """Grid position to (lat, lon): 43..53 N, 1 W..14 E.

    >>> to_lat_lon(0.0, 100.0)
    (53.0, -1.0)
    """
    return round(43.0 + y * 0.1, 5), round(-1.0 + x * 0.15, 5)


def build_terminals(rng: random.Random, count: int) -> list[Terminal]:
    """``count`` terminals spread uniformly over the grid."""
    terminals = []
    for n in range(count):
        x, y = rng.uniform(0, GRID), rng.uniform(0, GRID)
        category = _CATEGORY.pick(rng)
        lat, lon = to_lat_lon(x, y)
        terminals.append(
            Terminal(
                terminal_id=f"t{n:06d}",
                x=x,
                y=y,
                lat=lat,
                lon=lon,
                category=category,
                amount_factor=CATEGORIES[category][1],
                currency=_CURRENCY.pick(rng),
                card_present=category not in ONLINE,
            )
        )
    return terminals


def build_customers(
    rng: random.Random, count: int, terminals: list[Terminal], payments_per_day: float
) -> list[Customer]:
    """``count`` customers, paying ``payments_per_day`` on average, at terminals near home."""
    radius = math.sqrt(_NEIGHBOURS_WANTED * GRID * GRID / (math.pi * len(terminals)))
    cells = _cells(terminals, radius)
    customers = []
    for n in range(count):
        x, y = rng.uniform(0, GRID), rng.uniform(0, GRID)
        mean = rng.uniform(5, 100)
        wanted = rng.randint(2, 8)
        near = _near(x, y, radius, cells)
        if len(near) < wanted:
            near = sorted(terminals, key=lambda t: (t.x - x) ** 2 + (t.y - y) ** 2)[:wanted]
        customers.append(
            Customer(
                customer_id=f"c{n:06d}",
                x=x,
                y=y,
                mean_amount=mean,
                std_amount=mean / 2,
                payments_per_day=payments_per_day * rng.uniform(0.25, 1.75),
                terminals=tuple(rng.sample(near, min(wanted, len(near)))),
            )
        )
    return customers


def _cells(terminals: list[Terminal], size: float) -> dict[tuple[int, int], list[Terminal]]:
    cells: dict[tuple[int, int], list[Terminal]] = defaultdict(list)
    for t in terminals:
        cells[int(t.x // size), int(t.y // size)].append(t)
    return cells


def _near(x: float, y: float, radius: float, cells: dict[tuple[int, int], list[Terminal]]) -> list[Terminal]:
    cx, cy = int(x // radius), int(y // radius)
    found = []
    for i in (cx - 1, cx, cx + 1):
        for j in (cy - 1, cy, cy + 1):
            for t in cells.get((i, j), ()):
                if (t.x - x) ** 2 + (t.y - y) ** 2 <= radius * radius:
                    found.append(t)
    return found
