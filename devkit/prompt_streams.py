"""Prompt streams for drift tests and benchmarks: the demo's apparel ads, and a new product category.

Why here: the drift test must be judged on prompts like those the demo's captions describe (the
generated mirror's sportswear, sports and fashion captions, ``devkit.mirror.make_caption``) and on a
shift to a category the training data never saw (kitchen appliances). The integration test and
``bench/drift.py`` draw both from these functions, each stream from its own seed.
"""

from __future__ import annotations

import random

from devkit.mirror import make_caption

APPAREL_CATEGORIES = ("brand", "sportswear", "sports", "fashion")
APPLIANCES = (
    "blender", "toaster", "espresso machine", "air fryer", "stand mixer", "microwave oven", "electric kettle",
    "dishwasher", "food processor", "slow cooker", "rice cooker", "refrigerator",
)  # fmt: skip
APPLIANCE_FINISHES = ("stainless steel", "matte black", "white", "copper", "pastel green", "chrome")
APPLIANCE_ACTIONS = (
    "blends a strawberry smoothie",
    "toasts two slices of bread",
    "brews a double espresso",
    "crisps golden fries",
    "kneads bread dough",
    "heats a bowl of soup",
    "boils water for tea",
    "cleans a stack of plates",
    "chops onions and carrots",
    "simmers a beef stew",
    "steams white rice",
    "keeps vegetables fresh",
)  # fmt: skip, one action per appliance, in the same order
KITCHENS = (
    "on a marble countertop", "in a bright modern kitchen", "in a cosy family kitchen",
    "next to a window at dawn", "in a minimalist studio apartment", "on a wooden kitchen island",
)  # fmt: skip


def apparel_prompts(seed: int, count: int) -> list[str]:
    """``count`` captions of the demo's apparel categories: prompts from the training distribution."""
    rng = random.Random(seed)
    return [make_caption(rng, rng.choice(APPAREL_CATEGORIES)) for _ in range(count)]


def kitchen_prompts(seed: int, count: int) -> list[str]:
    """``count`` ad prompts for kitchen appliances: a product category the apparel captions lack."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        appliance = rng.randrange(len(APPLIANCES))  # each appliance does what it is for
        prompts.append(
            f"A {rng.choice(APPLIANCE_FINISHES)} {APPLIANCES[appliance]} {APPLIANCE_ACTIONS[appliance]} "
            f"{rng.choice(KITCHENS)}. The camera slowly zooms in on the product."
        )
    return prompts


def mixed_prompts(seed: int, count: int, shifted_share: float) -> list[str]:
    """Apparel prompts with ``shifted_share`` of them replaced by kitchen-appliance prompts."""
    shifted = round(count * shifted_share)
    prompts = apparel_prompts(seed, count - shifted) + kitchen_prompts(seed + 1, shifted)
    random.Random(seed).shuffle(prompts)
    return prompts
