"""Properties of the committed toy models in results/t2i_toy/models (skipped if absent)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from t2i.toy import checker, world
from t2i.toy.train import to_pixels

MODELS = Path(__file__).parents[1] / "results" / "t2i_toy" / "models"


@pytest.mark.skipif(not (MODELS / "vae").exists(), reason="no trained toy VAE committed")
def test_the_shared_vae_keeps_every_held_out_scene_checkable():
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(MODELS / "vae").eval()
    rng = np.random.default_rng(0)
    specs = [s for c in world.CATEGORIES for s in world.split(c)["held_out"]]
    chosen = [specs[i] for i in rng.choice(len(specs), 96, replace=False)]
    images = np.stack([world.sample(spec, rng) for spec in chosen])
    with torch.no_grad():
        latents = vae.encode(to_pixels(images)).latent_dist.mean
        decoded = vae.decode(latents).sample.clamp(-1, 1)
    decoded = ((decoded + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    correct = [checker.check(s.prompt, d).all_correct for s, d in zip(chosen, decoded, strict=True)]
    assert np.mean(correct) >= 0.95
    # the configured shift and scale give latents of about zero mean and unit variance
    scaled = (latents - vae.config.shift_factor) * vae.config.scaling_factor
    assert abs(scaled.mean().item()) < 0.2 and 0.8 < scaled.std().item() < 1.25


RESULTS = MODELS.parent


@pytest.mark.skipif(not (RESULTS / "REPORT.md").exists(), reason="no toy report committed")
def test_readme_shows_the_reports_summary_and_the_report_matches_the_arms():
    from t2i.toy import report

    begin, end = report.SUMMARY_BEGIN, report.SUMMARY_END
    text = (RESULTS / "REPORT.md").read_text()
    block = text[text.index(begin) : text.index(end)]
    readme = (RESULTS.parents[1] / "README.md").read_text()
    assert block in readme
    main, _, _ = report.split_main(report.load(RESULTS))
    assert report.summary(main).to_markdown(index=False) in block
