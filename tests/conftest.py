import os

# No test may reach a model hub: tiny models are built from configs and saved locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# deterministic cuBLAS on a GPU (the `deterministic` fixture); no effect on the CPU
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import pytest
import torch
from hypothesis import HealthCheck, settings

# Two pytest-xdist workers share two cores: one torch thread each avoids oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

settings.register_profile(
    "default", deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one mixed-precision setting per process; tests switch it."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


@pytest.fixture
def deterministic():
    """Deterministic kernels: a GPU's convolution backward, for one, is not by default."""
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


def seeded_image(pipe):
    """The pipeline's 2-step 16x16 image of "a red circle", seed 0, as an array (1, h, w, 3):
    equal for equal models, so it tells model versions apart."""
    generator = torch.Generator().manual_seed(0)
    options = {"num_inference_steps": 2, "output_type": "np", "height": 16, "width": 16}
    return pipe(["a red circle"], generator=generator, **options).images


def tiny_model_and_set(root, family: str = "sd", keep: int = 1, **generation):
    """Save a tiny ``family`` pipeline to ``root/model`` and build a fine-tuning set from it
    in ``root/set`` (2 prompts, M = 2, top ``keep``, 2 sampling steps); returns ``root``."""
    from t2i import selection, tiny

    tiny.build(family).save_pretrained(root / "model")
    selection.build_finetuning_set(
        str(root / "model"),
        ["a red circle", "a blue square"],
        root / "set",
        2,
        keep,
        num_inference_steps=2,
        batch_size=2,
        progress=False,
        **generation,
    )
    return root
