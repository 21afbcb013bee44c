"""Scoring image folders: the MI scorer, CLIP score with local weights, and clear errors."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_model_and_set

from t2i import dataset, evaluate, score, tiny
from t2i.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    root = tmp_path_factory.mktemp("evaluate")
    tiny_model_and_set(root, "sd", keep=2)
    tokenizer = tiny.tokenizer()
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 1,
    }
    vision = {
        "image_size": 32,
        "patch_size": 8,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    }
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(
        root / "clip"
    )
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(root / "clip")
    return root


def test_scores_every_image_with_each_scorer(setup):
    from PIL import Image

    root = setup
    mi = evaluate.MIScorer(str(root / "model"), n_draws=4)
    frame = evaluate.evaluate(root / "set", [mi, evaluate.CLIPScorer(root / "clip")])
    assert list(frame.columns) == ["file_name", "text", "mi_mmse-gap", "clip_score"]
    assert len(frame) == 4 and frame.clip_score.between(0, 100).all()
    paths, prompts, _ = dataset.read_dataset(root / "set")
    images = [Image.open(p).convert("RGB") for p in paths]
    expected = score(str(root / "model"), prompts, images, n_draws=4).mmse_gap
    np.testing.assert_allclose(frame["mi_mmse-gap"], expected, rtol=1e-6)
    assert pd.read_csv(root / "set" / "scores.csv").shape == (4, 4)


def test_missing_weights_and_cli(setup, tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no CLIP model at"):
        evaluate.CLIPScorer(tmp_path)
    with pytest.raises(ValueError, match="at least one scorer"):
        evaluate.evaluate(setup / "set", [])
    args = ["evaluate", "--data", str(setup / "set")]
    assert main([*args, "--clip", str(setup / "clip")]) == 0
    assert "scores.csv" in capsys.readouterr().out
    assert main([*args, "--clip", str(tmp_path / "none")]) == 2
    assert "nothing is downloaded" in capsys.readouterr().err


def test_generate_then_evaluate_from_the_cli(setup, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\na blue square\n")
    out = tmp_path / "images"
    args = ["generate", "--model", str(setup / "model"), "--prompts", str(prompts)]
    assert main([*args, "--out", str(out), "--dtype", "half"]) == 2
    assert "unknown dtype 'half'" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--device", "gpu"]) == 2
    assert "unknown device 'gpu'" in capsys.readouterr().err
    options = ["--seeds", "3", "4", "--steps", "2", "--device", "cpu"]
    assert main([*args, "--out", str(out), *options]) == 0
    rows = pd.read_json(out / "metadata.jsonl", lines=True)
    assert list(rows.seed) == [3, 4, 3, 4] and (rows.mi > 0).all()
    scoring = ["evaluate", "--data", str(out), "--model", str(setup / "model"), "--draws", "2"]
    assert main([*scoring, "--dtype", "bfloat16"]) == 0
    assert "mi_mmse-gap" in pd.read_csv(out / "scores.csv").columns


def test_set_metrics_are_zero_for_one_set_and_grow_with_a_shift(setup):
    rng = np.random.default_rng(0)
    images = list(rng.integers(0, 256, size=(12, 32, 32, 3), dtype=np.uint8))
    brighter = [np.clip(image.astype(int) + 90, 0, 255).astype(np.uint8) for image in images]
    same = evaluate.set_metrics(images, images, setup / "clip")
    shifted = evaluate.set_metrics(images, brighter, setup / "clip")
    assert abs(same["fd_clip"]) < 1e-3 and abs(same["cmmd"]) < 0.5
    assert shifted["fd_clip"] > 100 * max(abs(same["fd_clip"]), 1e-6)
    assert shifted["cmmd"] > 0
    with pytest.raises(ValueError, match="at least two images"):
        evaluate.cmmd(torch.zeros(1, 4), torch.zeros(3, 4))


def test_cli_set_metrics_against_reference_images(setup, tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png"
        )
    args = ["evaluate", "--data", str(setup / "set"), "--reference", str(tmp_path)]
    assert main([*args, "--clip", str(setup / "clip")]) == 0
    metrics = json.loads((setup / "set" / "set_metrics.json").read_text())
    assert set(metrics) == {"cmmd", "fd_clip"} and np.isfinite(list(metrics.values())).all()
    assert main(args) == 2
    assert "--reference needs --clip" in capsys.readouterr().err
