"""``t2i-toy``: train the toy world's models, run the fine-tuning experiment, report.

t2i-toy train [--family sd sd3]                  # about 25 min per family on 2 cores
t2i-toy run [--family sd] [--category colour] [--selection base mi] [-M 10 -k 1 ...]
t2i-toy run --study                              # the main comparison and every variant
t2i-toy run --control [--replicates 3]           # the positive control: oracle vs random
t2i-toy report                                   # results/t2i_toy/REPORT.md
t2i-toy forms                                    # point-wise forms vs -log p(prompt)
t2i-toy selectors                                # MI rules on candidate pools, no fine-tuning

Every step is cached: rerunning skips finished models and arms and resumes the rest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from t2i.toy.world import CATEGORIES

MODELS = Path("results/t2i_toy/models")
RESULTS = Path("results/t2i_toy")
WORK = Path("results/t2i_toy/work")  # pools, adapters, images: not committed
FAMILIES = ("sd", "sd3")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="t2i-toy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train the VAE and the toy models")
    train.add_argument("--family", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    train.add_argument("--models", type=Path, default=MODELS)
    train.add_argument("--steps", type=int, help="denoiser steps (default 5000)")
    train.add_argument("--vae-steps", type=int, help="VAE steps (default 1000)")
    train.add_argument("--scenes", type=int, help="training scenes per category (default 6000)")

    run = commands.add_parser("run", help="run experiment arms (cached)")
    run.add_argument("--family", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    run.add_argument("--category", nargs="+", default=list(CATEGORIES), choices=CATEGORIES)
    run.add_argument("--selection", nargs="+", default=["base", "random", "mi", "oracle"])
    run.add_argument("-M", "--images-per-prompt", type=int, default=10)
    run.add_argument("-k", "--keep", type=int, default=1)
    run.add_argument("--rounds", type=int, default=1)
    run.add_argument("--adapter", default="dora", choices=["dora", "lora"])
    run.add_argument("--guidance-scale", type=float, default=4.0)
    run.add_argument("--sampling-steps", type=int, default=25)
    run.add_argument("--finetune-steps", type=int, default=200)
    run.add_argument("--learning-rate", type=float, default=1e-4)
    run.add_argument("--prompt-dropout", type=float, default=0.0)
    run.add_argument("--replicate", type=int, default=0, help="another random draw and FT seed")
    run.add_argument("--train-prompts", type=int, default=24)
    run.add_argument("--eval-prompts", type=int, default=32)
    run.add_argument("--eval-seeds", type=int, default=4)
    run.add_argument(
        "--study",
        action="store_true",
        help="run the whole study (main comparison, then one varied setting at a time) "
        "for the chosen families and categories; other settings are ignored",
    )
    run.add_argument(
        "--control",
        action="store_true",
        help="run the positive control (oracle against random selection, replicated; results "
        "in RESULTS/control) for the chosen families and categories; other settings are ignored",
    )
    run.add_argument("--replicates", type=int, default=3, help="with --control: fine-tunes per arm")
    report = commands.add_parser("report", help="write REPORT.md (and image grids)")
    forms = commands.add_parser(
        "forms", help="each point-wise form against the bound -log p(prompt) (forms/*.csv)"
    )
    forms.add_argument("--family", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    forms.add_argument("--prompts", type=int, default=8, help="prompts per category")
    forms.add_argument("--images", type=int, default=4, help="images per prompt")
    forms.add_argument("--n-draws", type=int, default=64, help="(t, eps) draws per image")
    forms.add_argument("--seed", type=int, default=0)
    forms.add_argument("--models", type=Path, default=MODELS)
    forms.add_argument("--results", type=Path, default=RESULTS)
    selectors = commands.add_parser(
        "selectors",
        help="MI as a selector on candidate pools alone, rule chosen on half the prompts "
        "(selectors/*)",
    )
    selectors.add_argument("--family", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    selectors.add_argument("--category", nargs="+", default=list(CATEGORIES), choices=CATEGORIES)
    selectors.add_argument("--prompts", type=int, default=32, help="prompts per category")
    selectors.add_argument("--images", type=int, default=10, help="images per prompt (M)")
    selectors.add_argument("--n-draws", type=int, default=16, help="(t, eps) draws per image")
    selectors.add_argument("--steps", type=int, default=25, help="sampling steps")
    selectors.add_argument("--seed", type=int, default=0)
    selectors.add_argument("--models", type=Path, default=MODELS)
    selectors.add_argument("--results", type=Path, default=RESULTS)
    for command in (run, report):
        command.add_argument("--models", type=Path, default=MODELS)
        command.add_argument("--results", type=Path, default=RESULTS)
        command.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args(argv)
    try:
        commands = {
            "train": _train,
            "run": _run,
            "report": _report,
            "forms": _forms,
            "selectors": _selectors,
        }
        return commands[args.command](args)
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"t2i-toy: error: {error}", file=sys.stderr)
        return 2


def _train(args) -> int:
    from t2i.toy.train import TrainConfig, train

    overrides = {"steps": args.steps, "vae_steps": args.vae_steps}
    overrides["scenes_per_category"] = args.scenes
    config = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    for family in args.family:
        print(f"{family}: {train(family, args.models, config)}")
    return 0


def _run(args) -> int:
    from tqdm.auto import tqdm

    from t2i.toy.experiment import Arm, Experiment, control_arms, study_arms

    if args.study and args.control:
        raise ValueError("choose --study or --control, not both")
    if args.replicates < 1:
        raise ValueError(f"--replicates must be at least 1, got {args.replicates}")
    results = args.results / "control" if args.control else args.results
    experiment = Experiment(args.models, args.work, results)
    settings = {
        "images_per_prompt": args.images_per_prompt,
        "keep": args.keep,
        "rounds": args.rounds,
        "adapter": args.adapter,
        "guidance_scale": args.guidance_scale,
        "sampling_steps": args.sampling_steps,
        "finetune_steps": args.finetune_steps,
        "learning_rate": args.learning_rate,
        "prompt_dropout": args.prompt_dropout,
        "replicate": args.replicate,
        "train_prompts": args.train_prompts,
        "eval_prompts": args.eval_prompts,
        "eval_seeds": args.eval_seeds,
    }
    arms = (
        control_arms(args.family, args.category, args.replicates)
        if args.control
        else study_arms(args.family, args.category)
        if args.study
        else [
            Arm(family, category, selection, **settings)
            for family in args.family
            for category in args.category
            for selection in args.selection
        ]
    )
    for arm in (bar := tqdm(arms, desc="arms")):
        bar.set_postfix_str(arm.key)
        rows = experiment.run(arm, progress=False)
        tqdm.write(f"{arm.key}: all-correct {rows['all_correct'].mean():.3f}")
    return 0


def _report(args) -> int:
    from t2i.toy.experiment import Experiment
    from t2i.toy.report import write_grids, write_report

    grids = write_grids(Experiment(args.models, args.work, args.results))
    print(f"wrote {write_report(args.results, grids)}")
    return 0


def _forms(args) -> int:
    from miest.files import write_atomically
    from t2i.toy.forms import run, summary

    rows = run(
        args.models,
        args.family,
        prompts=args.prompts,
        images=args.images,
        n_draws=args.n_draws,
        seed=args.seed,
    )
    table = summary(rows)
    write_atomically(args.results / "forms" / "images.csv", rows.to_csv(index=False))
    write_atomically(args.results / "forms" / "summary.csv", table.to_csv(index=False))
    print(table.round(3).to_string(index=False))
    return 0


def _selectors(args) -> int:
    from miest.files import write_atomically
    from t2i.toy import selectors

    out = args.results / "selectors"
    options = {"prompts": args.prompts, "images": args.images, "n_draws": args.n_draws}
    options |= {"steps": args.steps, "seed": args.seed}
    rows = selectors.run(args.models, out, args.family, args.category, **options)
    values = selectors.halves(rows, seed=args.seed)
    table, verdict = selectors.summary(values), selectors.verdict(values, seed=args.seed)
    write_atomically(out / "images.csv", rows.to_csv(index=False))
    write_atomically(out / "summary.csv", table.to_csv(index=False))
    write_atomically(out / "verdict.csv", verdict.to_csv(index=False))
    selectors.plot(table, out / "selectors")
    print(verdict.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
