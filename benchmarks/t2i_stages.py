"""Wall time of each t2i stage on tiny pipelines (build-set, finetune, generate, evaluate).

python -m benchmarks.t2i_stages [--family sd sdxl sd3]

Each family: a tiny random pipeline saved to a temporary folder, then the four CLI
commands a user runs (3 prompts, M = 4, k = 1, 10 sampling steps, 10 DoRA steps of
batch 2 x 2, 2 seeds per prompt, MI with 8 draws). Prints seconds per stage.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from t2i import tiny
from t2i.cli import main as t2i

PROMPTS = ["a red circle and a blue square", "three green triangles", "a cat left of a dog"]


def stages(family: str, root: Path) -> dict[str, float]:
    model, prompts = root / "model", root / "prompts.txt"
    tiny.build(family).save_pretrained(model)
    prompts.write_text("\n".join(PROMPTS) + "\n")
    commands = {
        "build-set": [
            "build-set",
            "--model",
            model,
            "--prompts",
            prompts,
            "--out",
            root / "set",
            "-M",
            "4",
            "-k",
            "1",
            "--steps",
            "10",
            "--batch-size",
            "4",
        ],
        "finetune": [
            "finetune",
            "--model",
            model,
            "--data",
            root / "set",
            "--out",
            root / "ad",
            "--steps",
            "10",
            "--batch-size",
            "2",
            "--accumulation",
            "2",
        ],
        "generate": [
            "generate",
            "--model",
            model,
            "--adapter",
            root / "ad",
            "--prompts",
            prompts,
            "--out",
            root / "images",
            "--seeds",
            "0",
            "1",
            "--steps",
            "10",
        ],
        "evaluate": ["evaluate", "--data", root / "images", "--model", model, "--draws", "8"],
    }
    seconds = {}
    for stage, command in commands.items():
        start = time.perf_counter()
        if t2i([str(part) for part in command]) != 0:
            raise RuntimeError(f"{stage} failed")
        seconds[stage] = time.perf_counter() - start
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--family", nargs="+", default=list(tiny.FAMILIES))
    args = parser.parse_args(argv)
    rows = {}
    for family in args.family:
        with tempfile.TemporaryDirectory() as folder:
            rows[family] = stages(family, Path(folder))
    print("family  " + "  ".join(f"{stage:>9s}" for stage in next(iter(rows.values()))))
    for family, seconds in rows.items():
        print(f"{family:6s}  " + "  ".join(f"{value:8.1f}s" for value in seconds.values()))


if __name__ == "__main__":
    main()
