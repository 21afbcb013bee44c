"""An exact alignment checker for the toy world (the role BLIP-VQA plays in T2I-CompBench).

:func:`detect` parses an image into objects: pixels are assigned to the nearest palette
colour (or to the black background), each colour's connected regions become objects,
and a region's shape is read from how it fills its bounding box (a triangle is heavier
at the bottom, a square fills its corners). :func:`check` scores an image against a
prompt in [0, 1] and says whether everything asked for is there:

- colour and shape: the fraction of the two objects found with their attributes;
- spatial: the mean of [first object found, second found, relation holds];
- numeracy: ``min(found, n) / max(found, n)`` for the named coloured shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from t2i.toy.world import COLOURS, Placed, Spec, parse, relation_holds

BACKGROUND = 70  # a pixel whose brightest channel is below this is background
MAX_COLOUR_DISTANCE = 100.0  # farther than this from every palette colour: unassigned
MIN_AREA = 6  # pixels; smaller regions are noise
LARGE = 10  # a bounding-box side from which an object counts as large
_PALETTE = np.array(list(COLOURS.values()), dtype=np.float64)
_NAMES = list(COLOURS)


@dataclass(frozen=True)
class Check:
    """A checker verdict: ``score`` in [0, 1] and whether every part is right."""

    score: float
    all_correct: bool


def colour_map(image: np.ndarray) -> np.ndarray:
    """(h, w) palette index of each pixel, -1 for background or unassigned."""
    pixels = np.asarray(image, dtype=np.float64)[..., :3]
    distance = np.linalg.norm(pixels[:, :, None, :] - _PALETTE, axis=-1)
    labels = distance.argmin(-1)
    unassigned = (pixels.max(-1) < BACKGROUND) | (distance.min(-1) > MAX_COLOUR_DISTANCE)
    return np.where(unassigned, -1, labels)


def detect(image: np.ndarray) -> list[Placed]:
    """The objects in an ``(h, w, 3)`` image (uint8), with colour, shape and box."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] < 3:
        raise ValueError(f"expected an (h, w, 3) image, got shape {image.shape}")
    labels = colour_map(image)
    found = []
    for index, name in enumerate(_NAMES):
        regions, count = ndimage.label(labels == index)
        for region, box in zip(range(1, count + 1), ndimage.find_objects(regions), strict=True):
            mask = regions[box] == region
            if mask.sum() < MIN_AREA:
                continue
            rows, cols = box
            found.append(
                Placed(
                    shape=classify_shape(mask),
                    colour=name,
                    box=(cols.start, rows.start, cols.stop - 1, rows.stop - 1),
                    area=int(mask.sum()),
                )
            )
    return found


def classify_shape(mask: np.ndarray) -> str:
    """``"triangle"``, ``"square"`` or ``"circle"`` for a boolean region cropped to its box."""
    height = mask.shape[0]
    top = mask[: height // 2].sum()
    bottom = mask[height - height // 2 :].sum()
    if bottom > 1.6 * max(top, 1):
        return "triangle"
    fill = mask.mean()
    return "square" if fill > 0.88 else "circle"


def size_of(obj: Placed) -> str:
    x0, y0, x1, y1 = obj.box
    return "large" if max(x1 - x0, y1 - y0) + 1 >= LARGE else "small"


def _matches(obj: Placed, thing) -> bool:
    return (
        obj.shape == thing.shape
        and (thing.colour is None or obj.colour == thing.colour)
        and (thing.size is None or size_of(obj) == thing.size)
    )


def _largest(objects: list[Placed], thing) -> Placed | None:
    candidates = [o for o in objects if _matches(o, thing)]
    return max(candidates, key=lambda o: o.area, default=None)


def check(prompt: str | Spec, image: np.ndarray) -> Check:
    """How well ``image`` shows ``prompt`` (a prompt of :mod:`t2i.toy.world`)."""
    spec = parse(prompt) if isinstance(prompt, str) else prompt
    objects = detect(image)
    if spec.category == "numeracy":
        found = sum(_matches(o, spec.things[0]) for o in objects)
        score = min(found, spec.count) / max(found, spec.count)
        return Check(score, found == spec.count)
    first, second = (_largest(objects, thing) for thing in spec.things)
    parts = [first is not None, second is not None]
    if spec.category == "spatial":
        parts.append(
            first is not None
            and second is not None
            and relation_holds(spec.relation, first, second)
        )
    return Check(float(np.mean(parts)), all(parts))
