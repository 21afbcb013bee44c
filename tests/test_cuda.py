"""The same code on a CUDA GPU; skipped where there is none (CI), run on a lent GPU machine.

Estimators: default settings on a Gaussian with known MI (tolerances of test_trained.py),
and the same seed gives the same estimate. t2i: a loaded pipeline lands on the GPU by
default; its scores and MI during generation agree with the CPU's (same noise draws, so
only arithmetic differs: cuDNN runs convolutions in TF32 by default, about 1e-3 relative),
and float16 weights agree with float32 to within half-precision error.
"""

import numpy as np
import pytest
import torch
from conftest import seeded_image, tiny_model_and_set

import miest
import t2i
from miest.gaussian import GaussianPair
from t2i import finetune, tiny

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

DIFFUSION = ["minde-c", "minde-j", "rfmi"]
CRITICS = ["mine", "infonce", "nwj"]
PROMPTS = ["a red circle", "a blue square", "two green cubes", "a cat"]
SIZE = {"height": 16, "width": 16}


@pytest.fixture(scope="module")
def gaussian():
    pair = GaussianPair.from_correlations([0.8, 0.5], 3, 2, seed=0)
    return pair.mutual_information(), *pair.sample(5000, seed=1)


@pytest.mark.parametrize("name", DIFFUSION + CRITICS)
def test_estimators_on_cuda_are_accurate_and_repeatable(gaussian, name):
    truth, x, y = gaussian
    first, second = (miest.estimator(name, seed=0, device="cuda") for _ in range(2))
    estimate = first.estimate(x, y)
    relative, absolute = (0.10, 0.10) if name in DIFFUSION else (0.15, 0.15)
    assert abs(estimate - truth) <= max(absolute, relative * truth), (estimate, truth)
    assert second.estimate(x, y) == pytest.approx(estimate, abs=1e-4)
    if name in DIFFUSION:
        values = first.pointwise()
        assert np.isfinite(values).all()
        assert values.mean() == pytest.approx(first.mutual_information())


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folders = {}
    for family in tiny.FAMILIES:
        folders[family] = tmp_path_factory.mktemp(family)
        tiny.build(family).save_pretrained(folders[family])
    return folders


def _scores(folder, device, dtype="float32"):
    pipe = t2i.load_pipeline(folder, device, dtype)
    images = np.random.default_rng(0).uniform(size=(len(PROMPTS), 16, 16, 3))
    return t2i.score(pipe, PROMPTS, images, n_draws=16, seed=0).values("orthogonal")


@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_pipelines_load_on_the_gpu_and_score_as_on_the_cpu(saved, family):
    assert t2i.load_pipeline(saved[family]).device.type == "cuda"
    cpu, gpu = _scores(saved[family], "cpu"), _scores(saved[family], None)
    half = _scores(saved[family], None, "float16")
    scale = np.abs(cpu).max()
    np.testing.assert_allclose(gpu, cpu, atol=5e-3 * scale)
    np.testing.assert_allclose(half, cpu, atol=5e-2 * scale)


@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_mi_during_generation_on_the_gpu_matches_the_cpu(saved, family):
    options = {"num_inference_steps": 4, "guidance_scale": 5.0, **SIZE}
    cpu = t2i.generate(t2i.load_pipeline(saved[family], "cpu"), PROMPTS, 0, **options)
    gpu = t2i.generate(t2i.load_pipeline(saved[family]), PROMPTS, 0, **options)
    np.testing.assert_allclose(gpu.mi, cpu.mi, atol=5e-3 * np.abs(cpu.mi).max())


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_finetuning_on_the_gpu_trains_and_reloads(tmp_path, precision, fresh_accelerate_state):
    root = tiny_model_and_set(tmp_path, "sd", **SIZE)
    pipe = t2i.load_pipeline(root / "model")
    base = seeded_image(pipe)
    config = finetune.FinetuneConfig(
        steps=2,
        batch_size=2,
        gradient_accumulation=1,
        learning_rate=1e-3,
        mixed_precision=precision,
    )
    out = finetune.finetune(pipe, root / "set", tmp_path / "adapter", config, progress=False)
    reloaded = t2i.load_pipeline(root / "model")
    finetune.load_adapter(reloaded, out)
    assert reloaded.unet.device.type == "cuda"
    np.testing.assert_allclose(seeded_image(reloaded), seeded_image(pipe), atol=1e-5)
    assert np.abs(seeded_image(reloaded) - base).max() > 1e-4
