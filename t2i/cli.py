"""``t2i``: prompt-image MI and the MI-selected fine-tuning set from the command line.

t2i score --model DIR --prompt "a red cube" image1.png [image2.png ...]
t2i build-set --model DIR --prompts prompts.txt --out set/ -M 50 -k 1 [--dry-run]
accelerate launch -m t2i build-set ...      # prompts sharded over GPUs
t2i finetune --model DIR --data set/ --out adapter/ [--adapter lora] [--steps 300]
t2i tune --model DIR --prompts prompts.txt --out runs/ --rounds 2 -M 50 -k 1
t2i sweep --model DIR --prompts prompts.txt --out grids/ --scales 1.5 3 7.5 [--adapter DIR]
t2i merge --adapters color/ shape/ --out merged/ [--weights 0.5 0.5]
t2i generate --model DIR --prompts prompts.txt --out images/ [--adapter DIR] [--seeds 0 1]
t2i evaluate --data images/ --model DIR [--adapter DIR] [--clip clip-folder/]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from miest.integrate import FORMS, POINTWISE_FORM


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="t2i", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    precision = argparse.ArgumentParser(add_help=False)
    precision.add_argument(
        "--dtype",
        default="float32",
        help="weights: float32, float16 or bfloat16 (faster; rounding biases MI upward)",
    )
    placement = argparse.ArgumentParser(add_help=False, parents=[precision])
    placement.add_argument("--device", help="torch device (default: a GPU when there is one)")
    score = commands.add_parser(
        "score", parents=[placement], help="point-wise MI (nats) of a prompt and images"
    )
    score.add_argument("--model", required=True, type=Path, help="diffusers pipeline folder")
    score.add_argument("--prompt", required=True)
    score.add_argument("images", nargs="+", type=Path)
    score.add_argument("--draws", type=int, default=32, help="Monte Carlo draws per image")
    score.add_argument("--form", default=POINTWISE_FORM, choices=FORMS)
    score.add_argument("--seed", type=int, default=0)

    build = commands.add_parser(
        "build-set",
        parents=[precision],
        help="generate M images per prompt, keep top-k MI (on accelerate's device)",
    )
    build.add_argument("--model", required=True, type=Path, help="diffusers pipeline folder")
    build.add_argument("--prompts", required=True, type=Path, help="one prompt per line")
    build.add_argument("--out", required=True, type=Path, help="dataset folder (resumable)")
    build.add_argument("-M", "--images-per-prompt", type=int, default=50)
    build.add_argument("-k", "--keep", type=int, default=1)
    build.add_argument("--guidance-scale", type=float, default=7.5)
    build.add_argument("--steps", type=int, default=50, help="sampling steps")
    build.add_argument("--seed", type=int, default=0, help="first seed")
    build.add_argument("--batch-size", type=int, default=8)
    build.add_argument("--weighting", default="quadrature", choices=["quadrature", "reference"])
    build.add_argument("--height", type=int)
    build.add_argument("--width", type=int)
    build.add_argument("--dry-run", action="store_true", help="print the plan and its cost")
    train = commands.add_parser("finetune", help="train a DoRA/LoRA adapter on a fine-tuning set")
    train.add_argument("--data", required=True, type=Path, help="fine-tuning set folder")
    rounds = commands.add_parser("tune", help="R rounds of build-set + finetune (Algorithm 1)")
    rounds.add_argument("--prompts", required=True, type=Path, help="one prompt per line")
    rounds.add_argument("--rounds", type=int, default=1)
    rounds.add_argument("-M", "--images-per-prompt", type=int, default=50)
    rounds.add_argument("-k", "--keep", type=int, default=1)
    rounds.add_argument("--guidance-scale", type=float, default=7.5)
    rounds.add_argument("--sampling-steps", type=int, default=50)
    for tune in (train, rounds):
        _training_options(tune)
    sweep = commands.add_parser(
        "sweep", parents=[placement], help="image grids over guidance scales, with MI"
    )
    sweep.add_argument("--model", required=True, type=Path, help="diffusers pipeline folder")
    sweep.add_argument("--prompts", required=True, type=Path, help="one prompt per line")
    sweep.add_argument("--out", required=True, type=Path)
    sweep.add_argument("--scales", type=float, nargs="+", default=[1.5, 3.0, 5.0, 7.5, 10.0])
    sweep.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    sweep.add_argument("--adapter", type=Path, help="adapter folder from t2i finetune")
    sweep.add_argument("--steps", type=int, default=50, help="sampling steps")
    sweep.add_argument("--batch-size", type=int, default=8, help="images per pipeline call")
    merge = commands.add_parser("merge", help="parameter mean of adapters (appendix E.3)")
    merge.add_argument("--adapters", required=True, type=Path, nargs="+")
    merge.add_argument("--out", required=True, type=Path)
    merge.add_argument("--weights", type=float, nargs="+", help="default: equal")
    rate = commands.add_parser(
        "evaluate", parents=[placement], help="score an image folder (MI, CLIP score)"
    )
    rate.add_argument("--data", required=True, type=Path, help="folder with metadata.jsonl")
    rate.add_argument("--model", type=Path, help="pipeline folder for the MI scorer")
    rate.add_argument("--adapter", type=Path, help="adapter folder for the MI scorer's model")
    rate.add_argument("--clip", type=Path, help="local CLIP model folder for CLIP score")
    rate.add_argument("--draws", type=int, default=32)
    rate.add_argument(
        "--reference", type=Path, help="folder of reference images for CMMD and FD-CLIP (--clip)"
    )
    make = commands.add_parser(
        "generate", parents=[placement], help="images with their MI, as an image folder"
    )
    make.add_argument("--model", required=True, type=Path, help="diffusers pipeline folder")
    make.add_argument("--prompts", required=True, type=Path, help="one prompt per line")
    make.add_argument("--out", required=True, type=Path)
    make.add_argument("--adapter", type=Path, help="adapter folder from t2i finetune")
    make.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds per prompt")
    make.add_argument("--guidance-scale", type=float, default=7.5)
    make.add_argument("--steps", type=int, default=50, help="sampling steps")
    args = parser.parse_args(argv)
    commands_run = {
        "generate": _generate,
        "evaluate": _evaluate,
        "merge": _merge,
        "score": _score,
        "build-set": _build,
        "finetune": _finetune,
        "tune": _tune,
        "sweep": _sweep,
    }
    try:
        return commands_run[args.command](args)
    except (ValueError, FileNotFoundError, TypeError) as error:
        print(f"t2i: error: {error}", file=sys.stderr)
        return 2


def _training_options(tune) -> None:
    tune.add_argument("--model", required=True, type=Path, help="diffusers pipeline folder")
    tune.add_argument("--out", required=True, type=Path, help="output folder (resumable)")
    tune.add_argument("--adapter", default="dora", choices=["dora", "lora"])
    tune.add_argument("--rank", type=int, default=32)
    tune.add_argument("--alpha", type=float, default=32.0)
    tune.add_argument("--steps", type=int, help="optimizer steps (default: the paper's)")
    tune.add_argument("--lr", type=float, help="learning rate (default: the paper's)")
    tune.add_argument("--batch-size", type=int, default=8)
    tune.add_argument("--accumulation", type=int, default=50, help="gradient accumulation")
    tune.add_argument("--checkpoint-every", type=int, default=50)
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--mixed-precision", default="no", choices=["no", "fp16", "bf16"])
    tune.add_argument("--train-text-encoder", action="store_true", help="LoRA on CLIP encoders")
    tune.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute the denoiser's activations in the backward pass (less memory)",
    )


def _score(args) -> int:
    from t2i.loading import load_pipeline
    from t2i.score import score

    missing = [str(path) for path in args.images if not path.is_file()]
    if missing:  # before the minutes a large model takes to load
        raise FileNotFoundError(f"no image file at {', '.join(missing)}")
    result = score(
        load_pipeline(args.model, args.device, args.dtype),
        args.prompt,
        args.images,
        n_draws=args.draws,
        seed=args.seed,
    )
    for path, value, se in zip(
        args.images, result.values(args.form), result.standard_errors(args.form), strict=True
    ):
        print(f"{path}\t{value:.4f}\t± {se:.4f} nats")
    return 0


def _build(args) -> int:
    from t2i import selection

    prompts = selection.read_prompts(args.prompts)
    settings = selection.plan(
        prompts, args.out, args.images_per_prompt, args.keep, args.steps, args.batch_size
    )
    print(settings)
    if args.dry_run:
        return 0
    from t2i.loading import load_pipeline

    size = {key: value for key in ("height", "width") if (value := getattr(args, key))}
    metadata = selection.build_finetuning_set(
        load_pipeline(args.model, dtype=args.dtype),
        prompts,
        args.out,
        args.images_per_prompt,
        args.keep,
        guidance_scale=args.guidance_scale,
        num_inference_steps=args.steps,
        seed=args.seed,
        batch_size=args.batch_size,
        weighting=args.weighting,
        **size,
    )
    print(f"wrote {metadata}")
    return 0


def _config(args):
    from t2i.finetune import FinetuneConfig

    return FinetuneConfig(
        adapter=args.adapter,
        rank=args.rank,
        alpha=args.alpha,
        steps=args.steps,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        gradient_accumulation=args.accumulation,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        mixed_precision=args.mixed_precision,
        train_text_encoder=args.train_text_encoder,
        gradient_checkpointing=args.gradient_checkpointing,
    )


def _finetune(args) -> int:
    from t2i.finetune import finetune
    from t2i.loading import load_pipeline

    out = finetune(load_pipeline(args.model), args.data, args.out, _config(args))
    print(f"wrote {out} (load with t2i.finetune.load_adapter(pipe, folder))")
    return 0


def _tune(args) -> int:
    from t2i.rounds import tune
    from t2i.selection import read_prompts

    adapters = tune(
        args.model,
        read_prompts(args.prompts),
        args.out,
        args.rounds,
        args.images_per_prompt,
        args.keep,
        _config(args),
        guidance_scale=args.guidance_scale,
        num_inference_steps=args.sampling_steps,
    )
    print("\n".join(f"round {i}: {path}" for i, path in enumerate(adapters, 1)))
    return 0


def _sweep(args) -> int:
    from t2i.finetune import load_adapter
    from t2i.loading import load_pipeline
    from t2i.selection import read_prompts
    from t2i.sweep import guidance_sweep

    pipe = load_pipeline(args.model, args.device, args.dtype)
    if args.adapter:
        load_adapter(pipe, args.adapter)
    frame = guidance_sweep(
        pipe,
        read_prompts(args.prompts),
        args.scales,
        args.seeds,
        args.out,
        num_inference_steps=args.steps,
        batch_size=args.batch_size,
    )
    print(frame.groupby("guidance_scale").mi.describe().to_string())
    return 0


def _merge(args) -> int:
    from t2i.finetune import merge_adapters

    print(f"wrote {merge_adapters(args.adapters, args.out, args.weights)}")
    return 0


def _generate(args) -> int:
    from miest.files import save_image_atomically
    from t2i.dataset import write_metadata
    from t2i.finetune import load_adapter
    from t2i.generation import generate
    from t2i.loading import load_pipeline
    from t2i.selection import read_prompts

    pipe = load_pipeline(args.model, args.device, args.dtype)
    if args.adapter:
        load_adapter(pipe, args.adapter)
    rows = []
    for index, prompt in enumerate(read_prompts(args.prompts)):
        result = generate(
            pipe,
            [prompt] * len(args.seeds),
            args.seeds,
            guidance_scale=args.guidance_scale,
            num_inference_steps=args.steps,
        )
        for seed, image, mi in zip(args.seeds, result.images, result.mi, strict=True):
            name = f"images/{index:05d}_s{seed}.png"
            save_image_atomically(args.out / name, image)
            rows.append({"file_name": name, "text": prompt, "seed": seed, "mi": float(mi)})
    print(f"wrote {len(rows)} images and {write_metadata(args.out, rows)}")
    return 0


def _evaluate(args) -> int:
    from t2i.evaluate import CLIPScorer, MIScorer, evaluate

    scorers = []
    if args.model:
        from t2i.finetune import load_adapter
        from t2i.loading import load_pipeline

        pipe = load_pipeline(args.model, args.device, args.dtype)
        if args.adapter:
            load_adapter(pipe, args.adapter)
        scorers.append(MIScorer(pipe, n_draws=args.draws))
    if args.clip:
        scorers.append(CLIPScorer(args.clip, args.device))
    if args.reference:
        import json

        from miest.files import write_atomically
        from t2i.dataset import read_dataset
        from t2i.evaluate import set_metrics

        if not args.clip:
            raise ValueError("--reference needs --clip (CMMD and FD-CLIP use CLIP features)")
        reference = sorted(p for p in args.reference.iterdir() if p.suffix in (".png", ".jpg"))
        metrics = set_metrics(reference, read_dataset(args.data)[0], args.clip)
        write_atomically(args.data / "set_metrics.json", json.dumps(metrics, indent=1))
        print(json.dumps(metrics))
    if scorers:
        frame = evaluate(args.data, scorers)
        print(frame.drop(columns=["file_name"]).groupby("text").mean().to_string())
        print(f"wrote {args.data / 'scores.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
