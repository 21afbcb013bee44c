"""LoRA/DoRA fine-tuning on tiny pipelines: the loss falls, the adapter round-trips through
``load_lora_weights``, a resumed run equals an uninterrupted one, and bad input fails clearly."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import seeded_image, tiny_model_and_set
from PIL import Image
from safetensors.torch import load_file

from t2i import dataset, families, finetune, loading, tiny

SIZE = {"height": 16, "width": 16}
FAST = {"batch_size": 2, "gradient_accumulation": 1, "learning_rate": 1e-3}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Per family: a saved tiny pipeline and a 2-prompt fine-tuning set built from it."""
    return {f: tiny_model_and_set(tmp_path_factory.mktemp(f), f, **SIZE) for f in tiny.FAMILIES}


@pytest.mark.parametrize("kind", ["dora", "lora"])
@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_adapter_changes_the_model_and_reloads_exactly(models, family, kind, tmp_path):
    root = models[family]
    pipe = loading.load_pipeline(root / "model")
    before = seeded_image(pipe)
    config = finetune.FinetuneConfig(adapter=kind, steps=2, **FAST)
    finetune.finetune(pipe, root / "set", tmp_path, config, progress=False)
    tuned = seeded_image(pipe)
    assert np.abs(tuned - before).max() > 1e-4
    fresh = loading.load_pipeline(root / "model")
    finetune.load_adapter(fresh, tmp_path)
    np.testing.assert_array_equal(seeded_image(fresh), tuned)
    card = (tmp_path / "README.md").read_text()
    assert f"{kind.upper()} adapter" in card and "MI of the selected images" in card
    assert any(
        "magnitude" in key for key in load_file(tmp_path / "pytorch_lora_weights.safetensors")
    ) == (kind == "dora")


@pytest.mark.parametrize("family", ["sd", "sd3"])
def test_one_step_lowers_the_loss_on_a_fixed_batch(models, family):
    model = families.model_for(loading.load_pipeline(models[family] / "model"))
    config = finetune.FinetuneConfig(steps=1, **FAST).resolved(model)
    images, prompts, _ = dataset.read_dataset(models[family] / "set")
    latents = model.encode_images(images).float()
    conditions = model.encode_prompts(prompts)
    finetune.add_adapter(model, config)
    params = [p for p in model.denoiser.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.05)
    rows = torch.tensor([0, 1])

    batch = {key: value[rows] for key, value in conditions.with_prompt.items()}

    def loss():
        generator = torch.Generator().manual_seed(3)
        return finetune.loss_on_batch(model, latents[rows], batch, config, generator)

    first = loss()
    first.backward()
    optimizer.step()
    with torch.no_grad():
        assert loss().item() < first.item()


def test_bf16_mixed_precision_trains_on_the_cpu(models, tmp_path, fresh_accelerate_state):
    pipe = loading.load_pipeline(models["sd"] / "model")
    before = seeded_image(pipe)
    config = finetune.FinetuneConfig(steps=2, mixed_precision="bf16", **FAST)
    finetune.finetune(pipe, models["sd"] / "set", tmp_path, config, progress=False)
    assert np.abs(seeded_image(pipe) - before).max() > 1e-4
    with pytest.raises(ValueError, match="mixed_precision must be"):
        finetune.FinetuneConfig(mixed_precision="fp8").resolved(families.SDModel)


@pytest.mark.parametrize("family", ["sd", "sdxl", "sd3"])
@pytest.mark.parametrize("kind", ["dora", "lora"])
def test_text_encoder_adapters_train_and_reload(models, family, kind, tmp_path):
    pipe = loading.load_pipeline(models[family] / "model")
    config = finetune.FinetuneConfig(steps=2, train_text_encoder=True, adapter=kind, **FAST)
    finetune.finetune(pipe, models[family] / "set", tmp_path, config, progress=False)
    saved = load_file(tmp_path / finetune.WEIGHTS)
    assert any(key.startswith("text_encoder.") for key in saved)
    assert any(key.startswith("text_encoder_2.") for key in saved) == (family != "sd")
    fresh = loading.load_pipeline(models[family] / "model")
    finetune.load_adapter(fresh, tmp_path)
    np.testing.assert_array_equal(seeded_image(fresh), seeded_image(pipe))
    base = seeded_image(loading.load_pipeline(models[family] / "model"))
    assert np.abs(seeded_image(fresh) - base).max() > 1e-4


def test_adapters_train_in_float32_on_a_half_precision_model(models, tmp_path):
    pipe = loading.load_pipeline(models["sd"] / "model", "cpu", "bfloat16")
    config = finetune.FinetuneConfig(steps=1, **FAST)
    finetune.finetune(pipe, models["sd"] / "set", tmp_path, config, progress=False)
    trained = [p for p in pipe.unet.parameters() if p.requires_grad]
    assert trained and all(p.dtype == torch.float32 for p in trained)
    assert pipe.unet.conv_in.weight.dtype == torch.bfloat16  # the frozen model stays as loaded


def test_gradient_checkpointing_trains_the_same_adapter(models, tmp_path, deterministic):
    weights = []
    for checkpointing in (False, True):
        config = finetune.FinetuneConfig(steps=2, gradient_checkpointing=checkpointing, **FAST)
        out = tmp_path / str(checkpointing)
        pipe = loading.load_pipeline(models["sd"] / "model", "cpu")
        finetune.finetune(pipe, models["sd"] / "set", out, config, progress=False)
        assert pipe.unet.is_gradient_checkpointing == checkpointing
        weights.append(load_file(out / finetune.WEIGHTS))
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=1e-5, atol=1e-6)


def test_resumed_run_reproduces_the_uninterrupted_one(models, tmp_path, deterministic):
    root = models["sd"]
    config = finetune.FinetuneConfig(steps=4, checkpoint_every=2, **FAST)
    finetune.finetune(
        loading.load_pipeline(root / "model"), root / "set", tmp_path / "a", config, progress=False
    )
    halfway = finetune.FinetuneConfig(steps=2, checkpoint_every=2, **FAST)
    finetune.finetune(
        loading.load_pipeline(root / "model"),
        root / "set",
        tmp_path / "b",
        halfway,
        progress=False,
    )
    finetune.finetune(
        loading.load_pipeline(root / "model"), root / "set", tmp_path / "b", config, progress=False
    )
    a, b = (load_file(tmp_path / d / "pytorch_lora_weights.safetensors") for d in "ab")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


@pytest.mark.parametrize("family", ["sd", "sd3"])
def test_prompt_dropout_trains_some_rows_on_the_empty_prompt(models, family):
    model = families.model_for(loading.load_pipeline(models[family] / "model"))
    _, prompts, _ = dataset.read_dataset(models[family] / "set")
    texts = model.encode_prompts(prompts).subset(torch.tensor([0, 1] * 200))
    assert finetune.drop_prompts(texts, 0.0, None) is texts.with_prompt  # no draw at rate 0
    dropped = finetune.drop_prompts(texts, 0.3, torch.Generator().manual_seed(0))
    for key, value in dropped.items():
        rows = value.flatten(1)
        empty = (rows == texts.without[key].flatten(1)).all(1)
        kept = (rows == texts.with_prompt[key].flatten(1)).all(1)
        assert (empty | kept).all()  # each row is its own prompt or the empty one
        assert 0.2 < empty.float().mean() < 0.4  # 400 rows at rate 0.3
    with pytest.raises(ValueError, match=r"prompt_dropout must be in \[0, 1\)"):
        finetune.FinetuneConfig(prompt_dropout=1.0).resolved(families.SDModel)


def test_bad_input_is_a_clear_error(models, tmp_path):
    root = models["sd"]
    pipe = loading.load_pipeline(root / "model")
    with pytest.raises(FileNotFoundError, match=r"no metadata\.jsonl"):
        dataset.read_dataset(tmp_path)
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "x.png"}\n')
    with pytest.raises(
        ValueError, match=r"metadata\.jsonl:1: need a JSON object with file_name and text"
    ):
        dataset.read_dataset(tmp_path)
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "x.png", "text": "a"}\n')
    with pytest.raises(FileNotFoundError, match="no image at"):
        dataset.read_dataset(tmp_path)
    (tmp_path / "metadata.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="lists no images"):
        dataset.read_dataset(tmp_path)
    bad = finetune.FinetuneConfig(target_modules=("to_nothing",), steps=1, **FAST)
    with pytest.raises(ValueError, match="cannot add the adapter to the sd model"):
        finetune.finetune(pipe, root / "set", tmp_path / "out", bad, progress=False)
    with pytest.raises(ValueError, match="adapter must be 'dora' or 'lora'"):
        finetune.FinetuneConfig(adapter="ia3").resolved(families.SDModel)
    with pytest.raises(ValueError, match="timestep_range"):
        finetune.FinetuneConfig(timestep_range=(800, 200)).resolved(families.SDModel)
    trained = tmp_path / "trained"
    finetune.finetune(
        loading.load_pipeline(models["sd3"] / "model"),
        models["sd3"] / "set",
        trained,
        finetune.FinetuneConfig(steps=1, **FAST),
        progress=False,
    )
    with pytest.raises(ValueError, match="trained for a sd3 model"):
        finetune.load_adapter(pipe, trained)
    with pytest.raises(FileNotFoundError, match="no adapter from t2i finetune"):
        finetune.load_adapter(pipe, tmp_path)
    info = json.loads((trained / finetune.INFO).read_text())
    assert info["family"] == "sd3"


def test_cli_finetune(models, tmp_path, capsys):
    from t2i.cli import main

    root = models["sdxl"]
    args = ["finetune", "--model", str(root / "model"), "--data", str(root / "set")]
    assert (
        main(
            [
                *args,
                "--out",
                str(tmp_path),
                "--steps",
                "1",
                "--batch-size",
                "1",
                "--accumulation",
                "1",
                "--adapter",
                "lora",
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out and (tmp_path / finetune.INFO).exists()
    assert main([*args[:3], "--data", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2
    assert "no metadata.jsonl" in capsys.readouterr().err


def test_tune_two_rounds_and_guidance_sweep_from_the_cli(models, tmp_path, capsys):
    from t2i.cli import main
    from t2i.rounds import load_rounds

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\na blue square\ntwo green triangles\n")
    model, out = str(models["sd"] / "model"), tmp_path / "runs"
    args = ["tune", "--model", model, "--prompts", str(prompts), "--out", str(out)]
    options = ["--rounds", "2", "-M", "2", "-k", "1", "--sampling-steps", "2", "--steps", "1"]
    options += ["--batch-size", "1", "--accumulation", "1", "--lr", "1e-3"]
    assert main([*args, *options]) == 0
    for number in (1, 2):
        rows = (out / f"round-{number}" / "set" / "metadata.jsonl").read_text().splitlines()
        assert len(rows) == 3
        assert (out / f"round-{number}" / "adapter" / finetune.INFO).exists()
    assert "round 2:" in capsys.readouterr().out
    # round 2 was generated by the round-1 model: its selected images differ from round 1's
    first, second = (
        [
            json.loads(r)["mi"]
            for r in (out / f"round-{n}" / "set" / "metadata.jsonl").read_text().splitlines()
        ]
        for n in (1, 2)
    )
    assert first != second
    pipe = loading.load_pipeline(model)
    base = seeded_image(pipe)
    load_rounds(pipe, out, 2)
    assert np.abs(seeded_image(pipe) - base).max() > 1e-4
    assert main([*args, *options]) == 0  # finished rounds are skipped

    grids = tmp_path / "grids"
    sweep = ["sweep", "--model", model, "--prompts", str(prompts), "--out", str(grids)]
    adapter = str(out / "round-1" / "adapter")
    assert (
        main(
            [
                *sweep,
                "--scales",
                "2",
                "5",
                "--seeds",
                "0",
                "1",
                "--steps",
                "2",
                "--adapter",
                adapter,
            ]
        )
        == 0
    )
    assert Image.open(grids / "guidance-5.png").size == (2 * 32, 3 * 32)
    frame = pd.read_csv(grids / "sweep.csv")
    assert len(frame) == 2 * 3 * 2 and (frame.mi > 0).all()


def test_merging_adapters_is_a_weighted_parameter_mean(models, tmp_path, capsys):
    from t2i.cli import main

    root, trained = models["sd"], []
    for seed in (0, 1):
        pipe = loading.load_pipeline(root / "model")
        config = finetune.FinetuneConfig(steps=1, seed=seed, **FAST)
        trained.append(
            finetune.finetune(pipe, root / "set", tmp_path / f"s{seed}", config, progress=False)
        )
    args = ["merge", "--adapters", *map(str, trained)]
    assert main([*args, "--out", str(tmp_path / "mean")]) == 0
    assert main([*args, "--out", str(tmp_path / "first"), "--weights", "1", "0"]) == 0
    a, b = (load_file(path / finetune.WEIGHTS) for path in trained)
    mean, first = (load_file(tmp_path / name / finetune.WEIGHTS) for name in ("mean", "first"))
    for key in a:
        torch.testing.assert_close(mean[key], (a[key] + b[key]) / 2)
        torch.testing.assert_close(first[key], a[key], rtol=0, atol=0)
    fresh, again = (loading.load_pipeline(root / "model") for _ in range(2))
    finetune.load_adapter(fresh, tmp_path / "first")
    finetune.load_adapter(again, trained[0])
    np.testing.assert_array_equal(seeded_image(fresh), seeded_image(again))
    assert main([*args, "--out", str(tmp_path / "x"), "--weights", "0.7", "0.7"]) == 2
    assert "summing to 1" in capsys.readouterr().err
    other = finetune.finetune(
        loading.load_pipeline(models["sd3"] / "model"),
        models["sd3"] / "set",
        tmp_path / "sd3",
        finetune.FinetuneConfig(steps=1, **FAST),
        progress=False,
    )
    assert (
        main(["merge", "--adapters", str(trained[0]), str(other), "--out", str(tmp_path / "y")])
        == 2
    )
    assert "cannot merge" in capsys.readouterr().err
