"""Does MI-selected fine-tuning improve alignment? The papers' experiment in the toy world.

An *arm* is one way of producing a model, evaluated on held-out prompts:

- ``base``: the trained toy model as is;
- ``random`` / ``mi`` / ``oracle``: R rounds of (generate M images for each of the
  category's training prompts, keep k of them, fine-tune a LoRA/DoRA on the kept ones),
  keeping k at random, by point-wise MI (MI-TUNE / RFMI-FT), or by the checker's score
  (an upper bound, like GORS).

Within a round all three selections choose from the *same* candidate pool (the same
images), so their comparison is paired. Every arm evaluates the same held-out prompts
with the same seeds. Arms that differ only in R share their first rounds. Results: one
CSV of per-image rows per arm in ``results/arms`` (committed), candidate pools with MI
and checker scores in ``results/pools``; generated images, pools and adapters live in a
work folder. Finished arms are never recomputed, and unfinished ones resume (pools and
fine-tunes are resumable).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from miest.files import job_key, write_atomically
from t2i.dataset import read_dataset, write_metadata
from t2i.families import FAMILIES
from t2i.finetune import INFO, FinetuneConfig, finetune
from t2i.generation import Generation, generate
from t2i.loading import load_pipeline
from t2i.rounds import load_rounds, round_folder
from t2i.selection import build_finetuning_set
from t2i.toy import models
from t2i.toy.checker import Check, check
from t2i.toy.world import CATEGORIES, split

SELECTIONS = ("base", "random", "mi", "oracle")
EVAL_SETTINGS = ("guidance_scale", "sampling_steps", "eval_prompts", "eval_seeds")
POOL_GENERATION = {"seed": 0, "weighting": "quadrature"}  # how pools are drawn and scored
#: settings added after the first arms were run, left out of an arm's key at these
#: defaults so that the committed arms keep their keys (arm and fine-tuning settings)
LATER_DEFAULTS = {"prompt_dropout": 0.0, "replicate": 0}


@dataclass(frozen=True)
class Arm:
    """One experimental arm (see the module docstring)."""

    family: str
    category: str
    selection: str = "base"
    images_per_prompt: int = 10  # M
    keep: int = 1  # k
    rounds: int = 1  # R
    adapter: str = "dora"
    guidance_scale: float = 4.0
    sampling_steps: int = 25
    finetune_steps: int = 200
    learning_rate: float = 1e-4
    rank: int = 8
    train_prompts: int = 24  # training prompts per round (their pool: M images each)
    eval_prompts: int = 32  # held-out prompts
    eval_seeds: int = 4
    prompt_dropout: float = 0.0  # fine-tuning rows trained on the empty prompt
    replicate: int = 0  # another random draw from the pool and another fine-tuning seed

    def __post_init__(self):
        if self.family not in models.FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; choose one of {models.FAMILIES}")
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown category {self.category!r}; choose one of {CATEGORIES}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"unknown selection {self.selection!r}; choose one of {SELECTIONS}")
        if not 1 <= self.keep <= self.images_per_prompt:
            raise ValueError(f"need 1 <= k <= M, got k={self.keep}, M={self.images_per_prompt}")

    @property
    def name(self) -> str:
        """A readable name: family, category, selection and every setting that differs
        from the defaults (and changes the arm)."""
        defaults = Arm(self.family, self.category)
        changed = [
            f"{name}={value}"
            for name, value in asdict(self).items()
            if name not in ("family", "category", "selection") and value != getattr(defaults, name)
        ]
        if self.selection == "base":  # fine-tuning settings do not change the base model
            changed = [c for c in changed if c.split("=")[0] in EVAL_SETTINGS]
        return "__".join([self.family, self.category, self.selection, *changed])

    @property
    def config(self) -> dict:
        """Everything the arm's result depends on, defaults resolved: its settings (a base
        arm: only the evaluation's) and, fine-tuned, the full fine-tuning configuration."""
        if self.selection == "base":
            settings = {name: getattr(self, name) for name in EVAL_SETTINGS}
            return {"family": self.family, "category": self.category, **settings}
        resolved = finetune_config(self).resolved(FAMILIES[self.family])
        return _without_later_defaults(asdict(self)) | {
            "finetune": _without_later_defaults(asdict(resolved))
        }

    @property
    def key(self) -> str:
        """The cache key (``miest.files.job_key``): the name and a hash of ``config``, so
        a changed default is a new arm, never a stale file."""
        return job_key(self.name, self.config)

    @property
    def lineage_key(self) -> str:
        """The key of the arm's fine-tuning lineage: arms that differ only in R share
        their first rounds (round r of an R = 3 arm is round r of the R = 2 arm)."""
        return replace(self, rounds=1).key

    def pool_key(self, round_number: int) -> str:
        """Round 1 pools are shared by every selection; later ones follow the lineage."""
        if round_number > 1:
            return f"{self.lineage_key}__round{round_number}"
        config = {
            "family": self.family,
            "category": self.category,
            "images_per_prompt": self.images_per_prompt,
            "guidance_scale": self.guidance_scale,
            "sampling_steps": self.sampling_steps,
            "train_prompts": self.train_prompts,
            **POOL_GENERATION,
        }
        prompts = "" if self.train_prompts == 24 else f"__p{self.train_prompts}"
        name = (
            f"{self.family}__{self.category}__M{self.images_per_prompt}"
            f"__g{self.guidance_scale}__n{self.sampling_steps}__round1__shared{prompts}"
        )
        return job_key(name, config)


def _without_later_defaults(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in LATER_DEFAULTS or v != LATER_DEFAULTS[k]}


def finetune_config(arm: Arm) -> FinetuneConfig:
    """The fine-tuning configuration of a selected arm's rounds."""
    return FinetuneConfig(
        adapter=arm.adapter,
        rank=arm.rank,
        alpha=float(arm.rank),
        learning_rate=arm.learning_rate,
        steps=arm.finetune_steps,
        batch_size=16,
        gradient_accumulation=1,
        timestep_range=(0, 1000),
        checkpoint_every=50,
        prompt_dropout=arm.prompt_dropout,
        seed=arm.replicate,
    )


#: The whole study: (selections, settings that differ from :class:`Arm`'s defaults), run
#: for every family and category. The first entry is the main comparison; the others
#: vary one setting each (guidance sweep, R, M, k, LoRA vs DoRA).
STUDY: tuple[tuple[tuple[str, ...], dict], ...] = (
    (SELECTIONS, {}),
    (("base", "mi"), {"guidance_scale": 2.0}),
    (("base", "mi"), {"guidance_scale": 7.5}),
    (("random", "mi"), {"rounds": 2}),
    (("random", "mi"), {"rounds": 3}),
    (("random", "mi", "oracle"), {"images_per_prompt": 50}),
    (("random", "mi", "oracle"), {"keep": 5}),
    (("mi",), {"adapter": "lora"}),
)


#: The positive control: oracle against random selection where fine-tuning has room to
#: carry a selection over to held-out prompts. Every training prompt of the category (at
#: most ``CONTROL_TRAIN_PROMPTS``), 600 steps, ``CONTROL_REPLICATES`` fine-tunes per arm (another
#: random draw and another fine-tuning seed each), and up to ``CONTROL_PROMPTS`` held-out
#: prompts x 4 seeds; the settings come from a pilot on SD colour (results/README.md).
CONTROL = {"finetune_steps": 600, "learning_rate": 1e-4}
CONTROL_TRAIN_PROMPTS = 135  # all of colour's; spatial's 810 would take an hour per pool
CONTROL_PROMPTS = 128
CONTROL_REPLICATES = 3


def control_arms(
    families=models.FAMILIES, categories=CATEGORIES, replicates: int = CONTROL_REPLICATES
) -> list[Arm]:
    """Per family and category: the base model and ``replicates`` oracle and random arms
    (replicate-major, so a shorter run still pairs its arms), with :data:`CONTROL`."""
    arms = []
    for family in families:
        for category in categories:
            parts = split(category)
            prompts = {
                "train_prompts": min(len(parts["train"]), CONTROL_TRAIN_PROMPTS),
                "eval_prompts": min(len(parts["held_out"]), CONTROL_PROMPTS),
            }
            arms.append(Arm(family, category, "base", eval_prompts=prompts["eval_prompts"]))
            arms += [
                Arm(family, category, selection, replicate=r, **CONTROL, **prompts)
                for r in range(replicates)
                for selection in ("oracle", "random")
            ]
    return arms


def study_arms(families=models.FAMILIES, categories=CATEGORIES) -> list[Arm]:
    """Every arm of :data:`STUDY` for these families and categories, main comparison first."""
    return [
        Arm(family, category, selection, **settings)
        for selections, settings in STUDY
        for family in families
        for category in categories
        for selection in selections
    ]


def prompts_for(arm: Arm) -> tuple[list[str], list[str]]:
    """(training prompts for the pools, held-out evaluation prompts), seeded subsets."""
    parts = split(arm.category)
    rng = np.random.default_rng(CATEGORIES.index(arm.category))
    train = [parts["train"][i].prompt for i in rng.permutation(len(parts["train"]))]
    held = [parts["held_out"][i].prompt for i in rng.permutation(len(parts["held_out"]))]
    return train[: arm.train_prompts], held[: arm.eval_prompts]


def choose(pool: pd.DataFrame, selection: str, keep: int, seed: int = 0) -> pd.DataFrame:
    """The ``keep`` rows per prompt chosen by ``selection`` from a pool table (columns
    prompt, mi, score); ties in the checker's score are broken at random."""
    rng = np.random.default_rng(seed)
    noise = pd.Series(rng.random(len(pool)), index=pool.index)
    key = {"random": noise, "mi": pool["mi"], "oracle": pool["score"] + 1e-6 * noise}[selection]
    ranked = pool.assign(_key=key).sort_values("_key", ascending=False)
    return ranked.groupby("prompt", sort=False).head(keep).drop(columns="_key")


class Experiment:
    """Runs arms with the models in ``models_dir``; work files in ``work``, results in
    ``results`` (``arms/``, ``pools/``)."""

    def __init__(self, models_dir: str | Path, work: str | Path, results: str | Path):
        self.models_dir, self.work, self.results = Path(models_dir), Path(work), Path(results)

    def model_dir(self, family: str) -> Path:
        return models.complete(self.models_dir / family)

    def arm_csv(self, arm: Arm) -> Path:
        return self.results / "arms" / f"{arm.key}.csv"

    def run(self, arm: Arm, progress: bool = True) -> pd.DataFrame:
        """The arm's per-image evaluation rows (cached)."""
        path = self.arm_csv(arm)
        if path.exists():
            return pd.read_csv(path)
        pipe = load_pipeline(self.model_dir(arm.family))
        pipe.set_progress_bar_config(disable=True)
        if arm.selection != "base":
            self._tune(arm, progress)
            load_rounds(pipe, self._arm_work(arm), arm.rounds)
        rows, images = self._evaluate(pipe, arm)
        self.eval_images_path(arm).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(self.eval_images_path(arm), images=images)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, rows.to_csv(index=False).encode())
        return rows

    def eval_images_path(self, arm: Arm) -> Path:
        """Where ``run`` keeps the arm's evaluation images ((n, 32, 32, 3) uint8, in its
        CSV's row order)."""
        return self.work / "eval" / f"{arm.key}.npz"

    # --- fine-tuning rounds ------------------------------------------------------------
    def _arm_work(self, arm: Arm) -> Path:
        folder = self.work / "arms" / arm.lineage_key
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _tune(self, arm: Arm, progress: bool) -> None:
        out = self._arm_work(arm)
        train_prompts, _ = prompts_for(arm)
        config = finetune_config(arm)
        for number in range(1, arm.rounds + 1):
            folder = round_folder(out, number)
            if (folder / "adapter" / INFO).exists():
                continue
            pool = self.pool(arm, number, train_prompts)
            chosen = choose(pool, arm.selection, arm.keep, seed=number + 1000 * arm.replicate)
            pool_dir = (self.work / "pools" / arm.pool_key(number)).resolve()
            rows = [
                {"file_name": str(pool_dir / f), "text": t, "mi": m, "score": s}
                for f, t, m, s in zip(
                    chosen.file_name, chosen.prompt, chosen.mi, chosen.score, strict=True
                )
            ]
            write_metadata(folder / "set", rows)
            pipe = load_pipeline(self.model_dir(arm.family))
            load_rounds(pipe, out, number - 1)
            finetune(pipe, folder / "set", folder / "adapter", config, progress=progress)

    def pool(self, arm: Arm, number: int, prompts: list[str]) -> pd.DataFrame:
        """Round ``number``'s candidates: M images per training prompt from the model of
        round ``number - 1``, with their point-wise MI and checker score (cached)."""
        key = arm.pool_key(number)
        table = self.results / "pools" / f"{key}.csv"
        if table.exists():
            return pd.read_csv(table)
        pipe = load_pipeline(self.model_dir(arm.family))
        load_rounds(pipe, self._arm_work(arm), number - 1)
        folder = self.work / "pools" / key
        build_finetuning_set(
            pipe,
            prompts,
            folder,
            images_per_prompt=arm.images_per_prompt,
            keep=arm.images_per_prompt,
            guidance_scale=arm.guidance_scale,
            num_inference_steps=arm.sampling_steps,
            batch_size=arm.images_per_prompt,
            progress=False,
            **POOL_GENERATION,
        )
        rows = read_dataset(folder)[2]
        frame = pd.DataFrame(
            {
                "prompt": [r["text"] for r in rows],
                "seed": [r["seed"] for r in rows],
                "mi": [r["mi"] for r in rows],
                "file_name": [r["file_name"] for r in rows],
            }
        )
        verdicts = [
            check(p, np.asarray(Image.open(folder / f).convert("RGB")))
            for p, f in zip(frame.prompt, frame.file_name, strict=True)
        ]
        frame["score"] = [v.score for v in verdicts]
        frame["all_correct"] = [v.all_correct for v in verdicts]
        table.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(table, frame.to_csv(index=False).encode())
        return frame

    # --- evaluation ----------------------------------------------------------------------
    def _evaluate(self, pipe, arm: Arm) -> tuple[pd.DataFrame, np.ndarray]:
        _, held = prompts_for(arm)
        prompts = [p for p in held for _ in range(arm.eval_seeds)]
        seeds = [10_000 + s for _ in held for s in range(arm.eval_seeds)]
        result, images, verdicts = generate_checked(
            pipe, prompts, seeds, arm.guidance_scale, arm.sampling_steps
        )
        rows = pd.DataFrame(
            {
                "prompt": prompts,
                "seed": seeds,
                "score": [v.score for v in verdicts],
                "all_correct": [v.all_correct for v in verdicts],
                "mi": result.mi,
                "diversity": np.repeat(diversity(images, arm.eval_seeds), arm.eval_seeds),
            }
        ).assign(**{name: value for name, value in asdict(arm).items()})
        return rows, images


def generate_checked(
    pipe, prompts: list[str], seeds: list[int], guidance_scale: float, steps: int
) -> tuple[Generation, np.ndarray, list[Check]]:
    """Images for ``prompts`` (one seed each) with their MI during generation, as uint8
    arrays (n, h, w, 3), and the checker's verdict on each."""
    result = generate(
        pipe,
        prompts,
        seeds,
        guidance_scale=guidance_scale,
        num_inference_steps=steps,
        output_type="np",
    )
    images = (np.clip(result.images, 0, 1) * 255).round().astype(np.uint8)
    return result, images, [check(p, image) for p, image in zip(prompts, images, strict=True)]


def diversity(images: np.ndarray, per_prompt: int) -> np.ndarray:
    """Per prompt, the mean pixel distance (RMS over pixels, in [0, 1] units) between its
    ``per_prompt`` consecutive images: 0 when a model draws the same image every time."""
    flat = images.reshape(-1, per_prompt, images[0].size).astype(np.float64) / 255.0
    gaps = flat[:, :, None, :] - flat[:, None, :, :]
    rms = np.sqrt((gaps**2).mean(-1))
    pairs = per_prompt * (per_prompt - 1)
    return rms.sum((1, 2)) / max(pairs, 1)


def main_arms(families=models.FAMILIES, categories=CATEGORIES, **settings) -> list[Arm]:
    """The headline comparison: every selection, for every family and category."""
    return [
        Arm(family, category, selection, **settings)
        for family in families
        for category in categories
        for selection in SELECTIONS
    ]
