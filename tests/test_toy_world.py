"""The toy world's grammar, splits, renderer and checker (no models needed)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t2i.toy import checker, world

ALL = [spec for category in world.CATEGORIES for spec in world.all_specs(category)]


def test_every_prompt_parses_back_to_its_spec():
    assert len({spec.prompt for spec in ALL}) == len(ALL)
    for spec in ALL:
        assert world.parse(spec.prompt) == spec


@pytest.mark.parametrize("text", ["a red circle", "two red", "a pink circle and a blue square", ""])
def test_parse_rejects_text_outside_the_world(text):
    with pytest.raises(ValueError, match="not a prompt of the toy world"):
        world.parse(text)


@pytest.mark.parametrize("category", world.CATEGORIES)
def test_held_out_prompts_are_unseen_combinations_of_seen_parts(category):
    parts = world.split(category)
    train, held = parts["train"], parts["held_out"]
    assert not set(train) & set(held)
    assert len(held) == round(world.HELD_OUT_FRACTION * (len(train) + len(held)))
    seen = {thing for spec in train for thing in spec.things}
    assert {thing for spec in held for thing in spec.things} <= seen
    assert world.split(category) == parts  # seeded


def test_unknown_category_is_named():
    with pytest.raises(ValueError, match="unknown category 'texture'"):
        world.all_specs("texture")


@settings(max_examples=150, deadline=None)
@given(index=st.integers(0, len(ALL) - 1), seed=st.integers(0, 2**32 - 1))
def test_checker_accepts_every_rendered_ground_truth(index, seed):
    spec = ALL[index]
    image = world.sample(spec, np.random.default_rng(seed))
    assert image.shape == (world.SIZE, world.SIZE, 3) and image.dtype == np.uint8
    assert checker.check(spec.prompt, image) == checker.Check(1.0, True)


def test_rendering_is_seeded():
    spec = ALL[7]
    a, b = (world.sample(spec, np.random.default_rng(3)) for _ in range(2))
    np.testing.assert_array_equal(a, b)


def _scene(prompt, seed=0):
    spec = world.parse(prompt)
    return spec, world.sample_scene(spec, np.random.default_rng(seed))


def test_a_wrong_colour_costs_half_the_colour_score():
    spec, placed = _scene("a red circle and a blue square")
    placed[1].colour = "green"
    assert checker.check(spec, world.render(placed)) == checker.Check(0.5, False)


def test_a_missing_object_costs_half_and_a_blank_image_scores_zero():
    spec, placed = _scene("a large triangle and a small circle")
    assert checker.check(spec, world.render(placed[:1])) == checker.Check(0.5, False)
    assert checker.check(spec, world.render([])) == checker.Check(0.0, False)


def test_a_mirrored_scene_breaks_only_the_relation():
    spec, placed = _scene("a green triangle to the left of a yellow square")
    mirrored = world.render(placed)[:, ::-1]
    verdict = checker.check(spec, mirrored)
    assert verdict.score == pytest.approx(2 / 3) and not verdict.all_correct


@pytest.mark.parametrize("drawn, expected", [(2, 2 / 3), (4, 0.75), (3, 1.0)])
def test_numeracy_scores_the_count_ratio(drawn, expected):
    spec = world.parse(f"{world.NUMBERS[drawn - 1]} purple circles")
    placed = world.sample_scene(spec, np.random.default_rng(1))
    verdict = checker.check("three purple circles", world.render(placed))
    assert verdict.score == pytest.approx(expected)
    assert verdict.all_correct == (drawn == 3)


def test_wrong_shapes_are_seen():
    spec, placed = _scene("four white squares")
    placed[0].shape = "triangle"
    placed[1].shape = "circle"
    assert checker.check(spec, world.render(placed)) == checker.Check(0.5, False)


def test_checker_rejects_a_non_image():
    with pytest.raises(ValueError, match=r"expected an \(h, w, 3\) image"):
        checker.detect(np.zeros((32, 32)))
