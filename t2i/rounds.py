"""MI-TUNE / RFMI-FT end to end (Algorithm 1): R rounds of build-set then fine-tune.

Round ``r`` generates its fine-tuning set with the model of round ``r - 1`` (the base
model with the adapters of the earlier rounds fused in), then trains a new adapter on
it. Every round keeps its folders::

    out/round-1/set/  out/round-1/adapter/  out/round-2/set/ ...

A rerun skips finished rounds (and resumes an unfinished one). ``load_rounds`` puts the
adapters of the first ``r`` rounds into a base pipeline for inference.
"""

from __future__ import annotations

from pathlib import Path

from t2i.finetune import INFO, FinetuneConfig, finetune, load_adapter
from t2i.loading import load_pipeline
from t2i.selection import build_finetuning_set


def round_folder(out: str | Path, number: int) -> Path:
    return Path(out) / f"round-{number}"


def load_rounds(pipe, out: str | Path, rounds: int) -> None:
    """Fuse the adapters of rounds ``1..rounds`` from ``out`` into ``pipe``, in order."""
    for number in range(1, rounds + 1):
        load_adapter(pipe, round_folder(out, number) / "adapter")
        pipe.fuse_lora()
        pipe.unload_lora_weights()


def tune(
    model_dir: str | Path,
    prompts: list[str],
    out: str | Path,
    rounds: int = 1,
    images_per_prompt: int = 50,
    keep: int = 1,
    config: FinetuneConfig | None = None,
    progress: bool = True,
    **generation,
) -> list[Path]:
    """Run ``rounds`` rounds; returns each round's adapter folder. ``generation`` options
    (guidance_scale, num_inference_steps, batch_size, height, ...) go to the set builder."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    adapters = []
    for number in range(1, rounds + 1):
        folder = round_folder(out, number)
        adapter = folder / "adapter"
        adapters.append(adapter)
        if (adapter / INFO).exists():
            continue
        pipe = load_pipeline(model_dir)
        load_rounds(pipe, out, number - 1)
        build_finetuning_set(
            pipe, prompts, folder / "set", images_per_prompt, keep, progress=progress, **generation
        )
        finetune(pipe, folder / "set", adapter, config, progress=progress)
        del pipe  # free this round's model before the next round loads its own
    return adapters
