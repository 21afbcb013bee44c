"""The fine-tuning set of MI-TUNE / RFMI-FT (Algorithm 1, selection part).

For every prompt, generate ``M`` images with their point-wise MI (``t2i.generate``, no
extra network evaluation), keep the ``k`` with the highest MI, and write a folder that
diffusers' training scripts and ``datasets`` read as an image folder::

    out/images/00003_0.png ...        # prompt 3, rank 0 (highest MI)
    out/metadata.jsonl                # file_name, text, seed, mi, rank, guidance_scale, ...
    out/progress/00003.json           # per prompt: every seed and MI (for resuming)
    out/run.json                      # the settings (and their key) that a resume must match

Image ``j`` of prompt ``i`` uses seed ``seed + i * M + j``, so any image can be
regenerated. A rerun with the same settings (model, prompts, M, k, guidance, steps, seed,
weighting) skips prompts whose progress file exists, and one with other settings stops
with an error naming them; every file is written atomically. Prompts are sharded over
``accelerate`` processes when launched with ``accelerate launch``; a single process (CPU
included) does them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from miest.files import config_key, save_image_atomically, write_atomically
from t2i.dataset import write_metadata
from t2i.families import DiffusersModel
from t2i.generation import generate
from t2i.loading import as_model


@dataclass(frozen=True)
class SelectionPlan:
    """What ``build_finetuning_set`` will do, and what it costs."""

    prompts: int
    done: int
    images_per_prompt: int
    keep: int
    num_inference_steps: int
    batch_size: int

    @property
    def images(self) -> int:
        return (self.prompts - self.done) * self.images_per_prompt

    @property
    def network_evaluations(self) -> int:
        """Denoiser rows still to evaluate: 2 per image and step (CFG), nothing for MI."""
        return 2 * self.images * self.num_inference_steps

    def __str__(self) -> str:
        return (
            f"{self.prompts} prompts ({self.done} done), {self.images_per_prompt} images each, "
            f"keep top {self.keep}: {self.images} images to generate in batches of "
            f"{self.batch_size}, {self.num_inference_steps} steps, "
            f"{self.network_evaluations:,} denoiser rows (MI adds none)"
        )


def read_prompts(path: str | Path) -> list[str]:
    """Non-empty, stripped lines of a prompt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no prompt file at {path}")
    prompts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"prompt file {path} has no prompts")
    return prompts


def _start_or_resume(out: Path, run: dict) -> None:
    """Record the run's settings in ``out/run.json``, or check that a run being resumed
    there had the same ones (its finished prompts are reused)."""
    path = out / "run.json"
    if path.exists():
        before = json.loads(path.read_text())
        if before["key"] != config_key(run):
            changed = sorted(k for k in run if before["settings"].get(k) != run[k])
            raise ValueError(
                f"{out} holds a fine-tuning set built with other settings ({', '.join(changed)});"
                " use a new folder, or the same settings to resume"
            )
        return
    if any(out.glob("progress/*.json")):
        raise ValueError(f"{out} holds progress files but no run.json; use a new folder")
    write_atomically(path, json.dumps({"key": config_key(run), "settings": run}, default=str))


def _progress_file(out: Path, index: int) -> Path:
    return out / "progress" / f"{index:05d}.json"


def plan(prompts, out, images_per_prompt, keep, num_inference_steps, batch_size) -> SelectionPlan:
    """The plan for these settings, counting prompts already finished in ``out``."""
    if not prompts:
        raise ValueError("no prompts given")
    if not 1 <= keep <= images_per_prompt:
        raise ValueError(f"need 1 <= k <= M, got k={keep}, M={images_per_prompt}")
    if batch_size < 1 or num_inference_steps < 1:
        raise ValueError("batch_size and num_inference_steps must be >= 1")
    done = sum(_progress_file(Path(out), i).exists() for i in range(len(prompts)))
    return SelectionPlan(
        len(prompts), done, images_per_prompt, keep, num_inference_steps, batch_size
    )


def build_finetuning_set(
    model,
    prompts: list[str],
    out: str | Path,
    images_per_prompt: int = 50,
    keep: int = 1,
    *,
    guidance_scale: float = 7.5,
    num_inference_steps: int = 50,
    seed: int = 0,
    batch_size: int = 8,
    weighting: str = "quadrature",
    progress: bool = True,
    **pipeline_kwargs,
) -> Path:
    """Generate ``images_per_prompt`` (M) images per prompt, keep the ``keep`` (k) with the
    highest point-wise MI, and write the dataset folder ``out``; returns its metadata path.
    """
    from accelerate import PartialState

    out = Path(out)
    settings = plan(prompts, out, images_per_prompt, keep, num_inference_steps, batch_size)
    model = as_model(model)
    state = PartialState()
    model.to(state.device)
    run = {
        "model": model.name,
        "prompts": config_key({"prompts": list(prompts)}),
        "images_per_prompt": images_per_prompt,
        "keep": keep,
        "guidance_scale": guidance_scale,
        "num_inference_steps": num_inference_steps,
        "seed": seed,
        "weighting": weighting,
        "pipeline_kwargs": pipeline_kwargs,
    }
    if state.is_main_process:
        _start_or_resume(out, run)
    # deal out the unfinished prompts, so that a resumed run keeps processes evenly loaded;
    # the barriers make every process list the same finished set
    state.wait_for_everyone()
    todo = [i for i in range(len(prompts)) if not _progress_file(out, i).exists()]
    todo = todo[state.process_index :: state.num_processes]
    state.wait_for_everyone()
    bar = tqdm(todo, desc="prompts", disable=not progress or not state.is_local_main_process)
    for index in bar:
        record = _select(
            model,
            prompts[index],
            index,
            settings,
            seed,
            guidance_scale,
            weighting,
            pipeline_kwargs,
            out,
        )
        record |= {
            "guidance_scale": guidance_scale,
            "model": model.name,
            "weighting": weighting,
        }
        write_atomically(_progress_file(out, index), json.dumps(record).encode())
    state.wait_for_everyone()
    metadata = out / "metadata.jsonl"
    if state.is_main_process:
        _collect_metadata(out, len(prompts))
    state.wait_for_everyone()
    return metadata


def _select(
    model: DiffusersModel, prompt, index, settings, seed, guidance_scale, weighting, kwargs, out
):
    m = settings.images_per_prompt
    seeds = [seed + index * m + j for j in range(m)]
    images, mi = [], []
    for start in range(0, m, settings.batch_size):
        chunk = seeds[start : start + settings.batch_size]
        result = generate(
            model,
            [prompt] * len(chunk),
            chunk,
            guidance_scale=guidance_scale,
            num_inference_steps=settings.num_inference_steps,
            weighting=weighting,
            output_type="pil",
            **kwargs,
        )
        images += result.images
        mi += result.mi.tolist()
    order = np.argsort(mi)[::-1][: settings.keep]
    kept = []
    for rank, j in enumerate(order):
        name = f"images/{index:05d}_{rank}.png"
        save_image_atomically(out / name, images[j])
        kept.append({"file_name": name, "seed": seeds[j], "mi": mi[j], "rank": rank})
    return {"index": index, "text": prompt, "seeds": seeds, "mi": mi, "kept": kept}


def _collect_metadata(out: Path, n_prompts: int) -> None:
    """``metadata.jsonl`` from every prompt's progress record."""
    rows = []
    for index in range(n_prompts):
        path = _progress_file(out, index)
        if not path.exists():
            continue  # another process failed or was interrupted: a rerun completes it
        record = json.loads(path.read_text())
        for kept in record["kept"]:
            rows.append(
                {
                    **kept,
                    "text": record["text"],
                    "prompt_index": index,
                    "guidance_scale": record["guidance_scale"],
                    "weighting": record["weighting"],
                    "model": record["model"],
                }
            )
    write_metadata(out, rows)
