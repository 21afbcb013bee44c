"""A compositional world of coloured shapes: prompt grammar, scenes and a renderer.

Four categories mirror T2I-CompBench: ``colour`` ("a red circle and a blue square"),
``shape`` ("a large triangle and a small circle"), ``spatial`` ("a green triangle to
the left of a yellow square") and ``numeracy`` ("three purple circles"). Every prompt
is generated from a :class:`Spec`, and :func:`parse` turns the text back into one, so
the checker needs nothing but the prompt. Images are ``SIZE x SIZE`` RGB uint8 arrays
of flat shapes on black, drawn without anti-aliasing and without overlaps.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZE = 32
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 215, 40),
    "purple": (160, 60, 210),
    "white": (235, 235, 235),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": (6, 7), "large": (12, 14)}  # side of the bounding box in pixels
MEDIUM = (8, 10)  # when the prompt names no size
RELATIONS = ("to the left of", "to the right of", "above", "below")
NUMBERS = ("one", "two", "three", "four")
CATEGORIES = ("colour", "shape", "spatial", "numeracy")
HELD_OUT_FRACTION = 0.25
GAP = 2  # pixels kept free between objects


@dataclass(frozen=True)
class Thing:
    """One object phrase of a prompt; ``None`` means the prompt leaves it free."""

    shape: str
    colour: str | None = None
    size: str | None = None

    def phrase(self, plural: bool = False) -> str:
        words = [w for w in (self.size, self.colour, self.shape + ("s" if plural else "")) if w]
        return " ".join(words)


@dataclass(frozen=True)
class Spec:
    """What a prompt asks for: its category, objects, relation and count."""

    category: str
    things: tuple[Thing, ...]
    relation: str | None = None
    count: int = 1

    @property
    def prompt(self) -> str:
        if self.category == "numeracy":
            number = NUMBERS[self.count - 1]
            return f"{number} {self.things[0].phrase(plural=self.count > 1)}"
        first, second = (f"a {thing.phrase()}" for thing in self.things)
        joint = f" {self.relation} " if self.relation else " and "
        return first + joint + second


@dataclass
class Placed:
    """An object drawn in an image: bounding box ``(x0, y0, x1, y1)`` inclusive."""

    shape: str
    colour: str
    box: tuple[int, int, int, int]
    area: int = 0  # pixels, for detected objects

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2


# --- the grammar -------------------------------------------------------------------
def all_specs(category: str) -> list[Spec]:
    """Every prompt of ``category``, in a fixed order."""
    objects = [Thing(s, c) for c in COLOURS for s in SHAPES]
    if category == "colour":
        return [
            Spec("colour", (a, b))
            for a, b in itertools.permutations(objects, 2)
            if a.colour != b.colour and a.shape != b.shape
        ]
    if category == "shape":
        sized = [Thing(s, size=z) for z in SIZES for s in SHAPES]
        return [Spec("shape", pair) for pair in itertools.permutations(sized, 2)]
    if category == "spatial":
        return [
            Spec("spatial", (a, b), relation=r)
            for r in RELATIONS
            for a, b in itertools.permutations(objects, 2)
            if a.colour != b.colour
        ]
    if category == "numeracy":
        return [Spec("numeracy", (t,), count=n) for n in range(1, 5) for t in objects]
    raise ValueError(f"unknown category {category!r}; choose one of {CATEGORIES}")


def split(category: str, seed: int = 0) -> dict[str, list[Spec]]:
    """``{"train": [...], "held_out": [...]}``: a seeded quarter of the prompts (unseen
    combinations of objects, relations and counts) is held out. Every single object
    phrase still appears in training, so held-out prompts test composition."""
    specs = all_specs(category)
    rng = np.random.default_rng([seed, CATEGORIES.index(category)])
    order = rng.permutation(len(specs))
    n_held = round(HELD_OUT_FRACTION * len(specs))
    held = {int(i) for i in order[:n_held]}
    return {
        "train": [s for i, s in enumerate(specs) if i not in held],
        "held_out": [s for i, s in enumerate(specs) if i in held],
    }


_NUMBER = "|".join(NUMBERS)
_THING = (
    rf"(?:(?P<size{{i}}>{'|'.join(SIZES)}) )?"
    rf"(?:(?P<colour{{i}}>{'|'.join(COLOURS)}) )?"
    rf"(?P<shape{{i}}>{'|'.join(SHAPES)})"
)
_PAIR = re.compile(
    rf"a {_THING.format(i=1)}(?P<joint> and | {' | '.join(RELATIONS)} )a {_THING.format(i=2)}"
)
_COUNT = re.compile(rf"(?P<number>{_NUMBER}) {_THING.format(i=1)}s?")


def parse(prompt: str) -> Spec:
    """The :class:`Spec` of a prompt of this world; ``ValueError`` for any other text."""
    text = " ".join(prompt.lower().split())
    if match := _COUNT.fullmatch(text):
        return Spec("numeracy", (_thing(match, 1),), count=NUMBERS.index(match["number"]) + 1)
    if match := _PAIR.fullmatch(text):
        things = (_thing(match, 1), _thing(match, 2))
        joint = match["joint"].strip()
        if joint != "and":
            return Spec("spatial", things, relation=joint)
        category = "shape" if things[0].size or things[1].size else "colour"
        return Spec(category, things)
    raise ValueError(f"not a prompt of the toy world: {prompt!r}")


def _thing(match: re.Match, i: int) -> Thing:
    return Thing(match[f"shape{i}"], match[f"colour{i}"], match[f"size{i}"])


# --- scenes and rendering ------------------------------------------------------------
def sample_scene(spec: Spec, rng: np.random.Generator, max_tries: int = 200) -> list[Placed]:
    """A random layout satisfying ``spec``: free colours drawn at random, no overlaps,
    spatial relations with the horizontal (or vertical) offset dominating."""
    for _ in range(max_tries):
        placed = _try_scene(spec, rng)
        if placed is not None:
            return placed
    raise RuntimeError(f"could not lay out {spec.prompt!r} in {max_tries} tries")


def _try_scene(spec: Spec, rng: np.random.Generator, tries_per_object: int = 50):
    things = spec.things * spec.count if spec.category == "numeracy" else spec.things
    placed: list[Placed] = []
    for thing in things:
        low, high = SIZES[thing.size] if thing.size else MEDIUM
        side = int(rng.integers(low, high + 1))
        for _ in range(tries_per_object):
            x0, y0 = (int(v) for v in rng.integers(0, SIZE - side + 1, size=2))
            box = (x0, y0, x0 + side - 1, y0 + side - 1)
            if not any(_too_close(box, other.box) for other in placed):
                break
        else:
            return None
        colour = thing.colour or str(rng.choice(list(COLOURS)))
        placed.append(Placed(thing.shape, colour, box))
    if spec.relation and not relation_holds(spec.relation, placed[0], placed[1], margin=6):
        return None
    return placed


def _too_close(a, b) -> bool:
    return not (a[2] + GAP < b[0] or b[2] + GAP < a[0] or a[3] + GAP < b[1] or b[3] + GAP < a[1])


def relation_holds(relation: str, a: Placed, b: Placed, margin: float = 0.0) -> bool:
    """Whether ``a`` is ``relation`` ``b``, judged on centres: the offset along the
    relation's axis exceeds ``margin`` and dominates the offset across it."""
    (ax, ay), (bx, by) = a.centre, b.centre
    dx, dy = bx - ax, by - ay  # image rows grow downwards
    along, across = {
        "to the left of": (dx, dy),
        "to the right of": (-dx, dy),
        "above": (dy, dx),
        "below": (-dy, dx),
    }[relation]
    return along > margin and along > abs(across)


def render(placed: list[Placed]) -> np.ndarray:
    """The scene as an ``(SIZE, SIZE, 3)`` uint8 image on black."""
    image = Image.new("RGB", (SIZE, SIZE))
    draw = ImageDraw.Draw(image)
    for obj in placed:
        colour = COLOURS[obj.colour]
        x0, y0, x1, y1 = obj.box
        if obj.shape == "circle":
            draw.ellipse(obj.box, fill=colour)
        elif obj.shape == "square":
            draw.rectangle(obj.box, fill=colour)
        else:
            draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=colour)
    return np.asarray(image)


def sample(spec: Spec, rng: np.random.Generator) -> np.ndarray:
    """One rendered image for ``spec``."""
    return render(sample_scene(spec, rng))
