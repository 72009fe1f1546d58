"""Realistic clickstream traffic: users with habits, sessions that expire, funnels.

Not uniform noise: a skewed population (a few heavy users, a long tail),
devices, countries and referrers with real-world-like shares, sessions that end
after inactivity or at random (20% per event, as in the original example), and
page flows in which views outnumber clicks, clicks outnumber carts and carts
outnumber purchases. Everything derives from one seeded Random, so a seed
reproduces the exact same stream for the same sequence of event times.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate

from services.common.schema import ClickEvent

DEVICES = {"mobile": 0.56, "desktop": 0.34, "tablet": 0.10}
COUNTRIES = {
    "US": 0.34,
    "GB": 0.11,
    "DE": 0.10,
    "IN": 0.09,
    "FR": 0.07,
    "BR": 0.07,
    "CA": 0.06,
    "JP": 0.06,
    "AU": 0.05,
    "ES": 0.05,
}
REFERRERS = {
    "google.com": 0.36,
    "direct": 0.22,
    "email": 0.12,
    "x.com": 0.10,
    "facebook.com": 0.09,
    "reddit.com": 0.07,
    "bing.com": 0.04,
}
CATEGORIES = ("electronics", "clothing", "home", "books", "sports", "beauty")
PRODUCTS = {
    "electronics": ("laptop", "phone", "headphones", "monitor", "camera", "tablet"),
    "clothing": ("jacket", "sneakers", "jeans", "t-shirt", "dress"),
    "home": ("lamp", "sofa", "coffee-maker", "rug"),
    "books": ("novel", "cookbook", "biography"),
    "sports": ("yoga-mat", "bicycle", "running-shoes", "tent"),
    "beauty": ("perfume", "face-cream", "shampoo"),
}
CONTENT_PAGES = {
    "/": "home",
    "/blog": "content",
    "/blog/holiday-gift-guide": "content",
    "/blog/how-to-choose-a-laptop": "content",
    "/about": "support",
    "/contact": "support",
    "/faq": "support",
}
SESSION_TIMEOUT_S = 30 * 60
NEW_SESSION_CHANCE = 0.20

# Next event type by funnel stage: browsing, then with something in the cart.
BROWSING = {"page_view": 0.44, "click": 0.30, "search": 0.14, "add_to_cart": 0.12}
WITH_CART = {
    "page_view": 0.34,
    "click": 0.24,
    "search": 0.07,
    "add_to_cart": 0.13,
    "purchase": 0.22,
}


class _Choice:
    """Weighted choice with precomputed cumulative weights (random.choices is slower)."""

    def __init__(self, weights: dict[str, float]):
        self.items = tuple(weights)
        self.cumulative = tuple(accumulate(weights.values()))

    def pick(self, rng: random.Random) -> str:
        return rng.choices(self.items, cum_weights=self.cumulative)[0]


_devices, _countries, _referrers = _Choice(DEVICES), _Choice(COUNTRIES), _Choice(REFERRERS)
_browsing, _with_cart = _Choice(BROWSING), _Choice(WITH_CART)


def _catalog() -> tuple[list[tuple[str, str]], list[float]]:
    """Pages and their popularity: a Zipf-like head of product and landing pages."""
    pages = [(url, category) for url, category in CONTENT_PAGES.items()]
    pages += [(f"/category/{category}", category) for category in CATEGORIES]
    pages += [
        (f"/products/{product}", category)
        for category, products in PRODUCTS.items()
        for product in products
    ]
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(pages))]
    return pages, weights


PAGES, PAGE_WEIGHTS = _catalog()


@dataclass
class User:
    user_id: str
    device_type: str
    country: str
    session_id: str = ""
    session_referrer: str = "direct"
    last_event_at: float = float("-inf")
    cart_items: int = 0
    page: tuple[str, str] = ("/", "home")


@dataclass
class TrafficGenerator:
    """Produces events for a fixed user population; `next_event(t)` is deterministic per seed."""

    users: int = 100
    seed: int | None = None
    rng: random.Random = field(init=False)
    population: list[User] = field(init=False)
    activity: list[float] = field(init=False)

    def __post_init__(self) -> None:
        if self.users <= 0:
            raise ValueError("users must be positive")
        self.rng = random.Random(self.seed)
        self.population = [
            User(f"user_{n}", _devices.pick(self.rng), _countries.pick(self.rng))
            for n in range(1, self.users + 1)
        ]
        # Heavy users come back far more often than the tail.
        self.activity = list(accumulate(1.0 / (n**0.7) for n in range(1, self.users + 1)))

    def next_event(self, event_time: float) -> ClickEvent:
        """The next event of a randomly chosen user, stamped with `event_time` (epoch seconds)."""
        rng = self.rng
        user = rng.choices(self.population, cum_weights=self.activity)[0]
        if (
            not user.session_id
            or event_time - user.last_event_at > SESSION_TIMEOUT_S
            or rng.random() < NEW_SESSION_CHANCE
        ):
            self._start_session(user)
        user.last_event_at = event_time
        event_type = (_with_cart if user.cart_items else _browsing).pick(rng)
        if event_type == "add_to_cart" and not user.page[0].startswith("/products/"):
            event_type = "page_view"
        page = user.page
        if event_type in ("page_view", "click"):
            page = self._next_page(user)
        elif event_type == "search":
            page = ("/search", "search")
        elif event_type == "add_to_cart":
            user.cart_items += 1
        elif event_type == "purchase":
            page, user.cart_items = ("/checkout", "checkout"), 0
        user.page = page
        return ClickEvent(
            event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            timestamp=datetime.fromtimestamp(event_time, UTC),
            user_id=user.user_id,
            session_id=user.session_id,
            event_type=event_type,
            page_url=page[0],
            page_category=page[1],
            referrer=user.session_referrer,
            device_type=user.device_type,
            country=user.country,
            duration_ms=self._duration_ms(event_type),
        )

    def _start_session(self, user: User) -> None:
        user.session_id = f"sess_{self.rng.getrandbits(48):012x}"
        user.session_referrer = _referrers.pick(self.rng)
        user.cart_items = 0
        user.page = self.rng.choices(PAGES, weights=PAGE_WEIGHTS)[0]

    def _next_page(self, user: User) -> tuple[str, str]:
        # Shoppers already on a category page tend to open one of its products.
        current_url, current_category = user.page
        if current_url.startswith("/category/") and self.rng.random() < 0.6:
            product = self.rng.choice(PRODUCTS[current_category])
            return (f"/products/{product}", current_category)
        return self.rng.choices(PAGES, weights=PAGE_WEIGHTS)[0]

    def _duration_ms(self, event_type: str) -> int:
        median = {"page_view": 6000, "click": 1500, "search": 4000}.get(event_type, 2500)
        return min(600_000, max(50, int(self.rng.lognormvariate(0, 0.8) * median)))
