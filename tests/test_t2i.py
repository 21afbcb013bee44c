"""t2i on tiny pipelines built from configs: loading, family detection, point-wise MI and
MI during generation, checked against a closed-form Gaussian denoiser."""

import json

import numpy as np
import pytest
import torch

import miest
import t2i
from miest.gaussian import GaussianPair
from miest.integrate import POINTWISE_FORM
from miest.paths import to_eps
from miest.timesamplers import UniformTime
from t2i import tiny

VARIANTS = {"sd": ("sd", "epsilon"), "sd-v": ("sd", "v_prediction"), "sdxl": ("sdxl", "epsilon")}
VARIANTS["sd3"] = ("sd3", "epsilon")
SIZE = {"height": 8, "width": 8}  # latents (4, 4, 4): 64 dimensions


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each variant saved with ``save_pretrained``; reloaded by the tests."""
    folders = {}
    for name, (family, prediction) in VARIANTS.items():
        folder = tmp_path_factory.mktemp(name)
        tiny.build(family, prediction_type=prediction).save_pretrained(folder)
        folders[name] = folder
    return folders


@pytest.mark.parametrize("name", list(VARIANTS))
def test_reloaded_pipelines_are_detected_and_reproduce_the_denoiser(saved, name):
    family, prediction = VARIANTS[name]
    pipe = t2i.load_pipeline(saved[name], "cpu")  # compared with a fresh CPU build
    model = t2i.model_for(pipe)
    assert model.family == family and isinstance(model, t2i.FAMILIES[family])
    expected = {"sd3": "velocity", "v_prediction": "v", "epsilon": "eps"}
    assert model.parametrisation == expected["sd3" if family == "sd3" else prediction]
    fresh = tiny.build(family, prediction_type=prediction)
    x = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.3, 0.8], dtype=torch.float64)
    outputs = []
    for candidate in (t2i.model_for(fresh), model):
        conditions = candidate.encode_prompts(["a red circle", "a cat"])
        outputs.append(candidate.predict(conditions)(x, t, torch.arange(2)))
    for a, b in zip(*outputs, strict=True):
        torch.testing.assert_close(a, b)


def test_loading_errors_name_the_problem(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="no pipeline directory"):
        t2i.load_pipeline(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"no model_index\.json"):
        t2i.load_pipeline(tmp_path)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline"}))
    with pytest.raises(ValueError, match="unsupported pipeline class 'KandinskyPipeline'"):
        t2i.load_pipeline(tmp_path)
    index = json.loads((saved["sd"] / "model_index.json").read_text())
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(FileNotFoundError, match="lacks the component"):
        t2i.load_pipeline(partial)
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        t2i.load_pipeline(saved["sd"], "gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA GPU"):
            t2i.load_pipeline(saved["sd"], "cuda")


class ExactGaussian:
    """Replace a pipeline's denoiser by the optimal one of a Gaussian ``(latents, y)``.

    Each prompt stands for a value ``y_j``; the empty prompt for "no condition". Rows are
    told apart by their text embeddings, so the pipeline's own CFG batches work unchanged.
    """

    def __init__(self, pipe, prompts, seed=0):
        self.model = t2i.model_for(pipe.to("cpu"))  # the exact denoiser computes on the CPU
        self.pair = GaussianPair.from_correlations([0.9, 0.8, 0.7, 0.6], 64, 4, seed=seed)
        self.prompts = list(prompts)
        _, ys = self.pair.sample(len(prompts), seed=seed + 1)
        self.ys = torch.from_numpy(ys)
        conditions = self.model.encode_prompts(self.prompts)
        table = torch.cat(
            [
                conditions.with_prompt["encoder_hidden_states"],
                conditions.without["encoder_hidden_states"],
            ]
        )
        self.table = table.flatten(1)
        self.exact = self.pair.denoiser(self.model.path, self.model.parametrisation)
        self.model.denoiser.forward = self.forward

    def forward(self, *args, **kwargs):
        x = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states"))
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        hidden = kwargs["encoder_hidden_states"]
        which = torch.cdist(hidden.flatten(1).double(), self.table.double()).argmin(1)
        t = self.model.time(torch.as_tensor(timestep).reshape(-1).expand(len(x)))
        t = t.clamp(1e-6, 1 - 1e-6)  # the closed form divides by alpha, 0 at SD3's first step
        flat = x.flatten(1).double()
        out = torch.empty_like(flat)
        cond = which < len(self.prompts)
        for mask, condition in ((cond, self.ys[which[cond]]), (~cond, None)):
            if mask.any():
                out[mask] = self.exact(flat[mask], t[mask], condition)
        out = self.model.to_path_output(out)  # SD3 predicts -u: the map is an involution
        return (out.reshape(x.shape).to(x.dtype),)

    def latents(self, per_prompt, seed=5):
        """``per_prompt`` draws of x | y_j per prompt, and the exact PMI of each."""
        rng = np.random.default_rng(seed)
        pair, rows = self.pair, []
        for y in self.ys.numpy():
            mean = pair.x_given_y_mean @ y
            rows.append(rng.multivariate_normal(mean, pair.x_given_y_cov, per_prompt))
        x = np.concatenate(rows)
        y = np.repeat(self.ys.numpy(), per_prompt, axis=0)
        return torch.from_numpy(x).float().reshape(-1, 4, 4, 4), pair.pmi(x, y)

    def mean_kl(self) -> float:
        """Mean over the prompts of KL(p(x | y_j) || p(x)): the orthogonal form's target."""
        pair, d = self.pair, 64
        sx, sc = pair.cov[:d, :d], pair.x_given_y_cov
        inv = np.linalg.inv(sx)
        means = self.ys.numpy() @ pair.x_given_y_mean.T
        base = np.trace(inv @ sc) - d + np.linalg.slogdet(sx)[1] - np.linalg.slogdet(sc)[1]
        return float(np.mean(0.5 * (base + np.einsum("ni,ij,nj->n", means, inv, means))))


PROMPTS = [f"prompt {i}" for i in range(8)]


@pytest.mark.parametrize("name", ["sd", "sd-v", "sd3"])
def test_pointwise_with_the_exact_denoiser_matches_the_closed_form(saved, name):
    exact = ExactGaussian(t2i.load_pipeline(saved[name]), PROMPTS)
    latents, pmi = exact.latents(per_prompt=12)
    prompts = [p for p in PROMPTS for _ in range(12)]
    result = t2i.score(
        exact.model,
        prompts,
        latents=latents,
        n_draws=48,
        batch_size=96,
        sampler=UniformTime(t_eps=1e-3),
    )
    orthogonal = result.values("orthogonal")
    se = orthogonal.std(ddof=1) / np.sqrt(len(orthogonal))
    # the sample of x's and the Monte Carlo draws both count in the spread of the values
    assert orthogonal.mean() == pytest.approx(exact.mean_kl(), abs=4 * se + 0.05)
    # the MMSE-gap form is the exact PMI per sample up to its own Monte Carlo error:
    # standardised errors with mean 0 (+- 0.1 for 96 samples) and spread 1
    gap = result.values("mmse-gap")
    z = (gap - pmi) / result.standard_errors("mmse-gap")
    assert abs(z.mean()) < 0.4 and 0.7 < z.std() < 1.4
    assert np.corrcoef(gap, pmi)[0, 1] > 0.8
    assert (orthogonal >= 0).all()


def test_same_seed_same_score_and_miest_pointwise_routes_pipelines(saved):
    pipe = t2i.load_pipeline(saved["sdxl"])
    image = np.random.default_rng(0).uniform(size=(8, 8, 3))
    result = t2i.score(pipe, "a red circle", image, n_draws=4, seed=3)
    a = result.mmse_gap  # the one per-sample default of estimators and pipelines
    assert result.values() is result.mmse_gap and POINTWISE_FORM == "mmse-gap"
    assert result.mi_form == miest.estimator("rfmi").form == "cross"  # the MI estimate's
    b = miest.pointwise(pipe, "a red circle", image, n_draws=4, seed=3)
    c = miest.pointwise(str(saved["sdxl"]), ["a red circle"], [image], n_draws=4, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, c, rtol=1e-6)
    d = miest.pointwise(pipe, "a red circle", image, form="orthogonal", n_draws=4, seed=3)
    np.testing.assert_array_equal(d, result.orthogonal)
    assert t2i.score(pipe, "a red circle", image, n_draws=4, seed=4).mmse_gap[0] != a[0]


def test_score_rejects_bad_input(saved):
    pipe = t2i.load_pipeline(saved["sd"])
    image = np.zeros((8, 8, 3))
    with pytest.raises(ValueError, match="2 prompts for 1 images"):
        t2i.score(pipe, ["a", "b"], image)
    with pytest.raises(ValueError, match=r"must be \(height, width, 3\)"):
        t2i.score(pipe, "a", np.zeros((8, 8)))
    with pytest.raises(ValueError, match="within \\[0, 1\\]"):
        t2i.score(pipe, "a", image + 2)
    with pytest.raises(FileNotFoundError, match="no image at"):
        t2i.score(pipe, "a", "missing.png")
    with pytest.raises(ValueError, match="exactly one of images or latents"):
        t2i.score(pipe, "a")
    with pytest.raises(ValueError, match="unknown time sampler"):
        t2i.score(pipe, "a", image, sampler="sobol")


@pytest.mark.parametrize("name", ["sd", "sd3"])
def test_mi_during_generation_with_the_exact_denoiser_matches_the_mi(saved, name):
    pipe = t2i.load_pipeline(saved[name])
    exact = ExactGaussian(pipe, PROMPTS)
    prompts = [p for p in PROMPTS for _ in range(6)]
    generation = t2i.generate(
        exact.model,
        prompts,
        seeds=0,
        guidance_scale=1.0001,
        num_inference_steps=100,
        truncation=0.01,
        output_type="latent",
        **SIZE,
    )
    mi = generation.mi
    se = mi.std(ddof=1) / np.sqrt(len(mi))
    assert mi.mean() == pytest.approx(exact.mean_kl(), abs=4 * se + 0.1)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_generation_with_mi_leaves_images_unchanged_and_matches_recomputation(saved, name):
    pipe = t2i.load_pipeline(saved[name])
    prompts = ["a red circle", "two blue squares"]
    options = {"guidance_scale": 4.0, "num_inference_steps": 6, "output_type": "np", **SIZE}
    generation = t2i.generate(pipe, prompts, seeds=[7, 8], keep_trajectory=True, **options)
    plain = pipe(
        prompts, generator=[torch.Generator().manual_seed(s) for s in (7, 8)], **options
    ).images
    np.testing.assert_array_equal(np.asarray(generation.images), plain)
    model = t2i.model_for(pipe)
    predict = model.predict(model.encode_prompts(prompts))
    for (x_t, timestep), terms in zip(generation.trajectory, generation.terms, strict=True):
        t = model.time(timestep).expand(len(prompts))
        with_prompt, without = predict(x_t, t, torch.arange(len(prompts)))
        x64 = x_t.double()
        gap = to_eps(with_prompt.double(), x64, t, model.path, model.parametrisation)
        gap -= to_eps(without.double(), x64, t, model.path, model.parametrisation)
        np.testing.assert_allclose(gap.flatten(1).pow(2).sum(1).numpy(), terms, rtol=1e-4)
    assert (generation.mi > 0).all()
    assert not np.allclose(generation.mi_with("reference"), generation.mi)


def test_generation_rejects_bad_input(saved):
    pipe = t2i.load_pipeline(saved["sd"])
    with pytest.raises(ValueError, match="needs classifier-free guidance"):
        t2i.generate(pipe, "a", guidance_scale=1.0)
    with pytest.raises(ValueError, match="unknown weighting"):
        t2i.generate(pipe, "a", weighting="simpson")
    with pytest.raises(ValueError, match="2 seeds for 1 prompts"):
        t2i.generate(pipe, "a", seeds=[1, 2])
    with pytest.raises(ValueError, match="no prompts"):
        t2i.generate(pipe, [])


def test_full_size_denoisers_have_the_published_parameter_counts():
    """UNets of stable-diffusion-2-1 and stable-diffusion-xl-base-1.0, built without memory."""
    with torch.device("meta"):
        pipes = {family: tiny.full_size(family) for family in tiny.FAMILIES}
    counts = {f: sum(p.numel() for p in pipes[f].unet.parameters()) for f in ("sd", "sdxl")}
    assert counts == {"sd": 865_910_724, "sdxl": 2_567_463_684}
    assert pipes["sd3"].transformer.config.num_layers == 24


@pytest.mark.parametrize("name", ["sd", "sd3"])
def test_half_precision_models_see_float32_timesteps(saved, name):
    """bfloat16 has 8 significant bits: timestep 777.3 would reach the model as 776."""
    from t2i.finetune import FinetuneConfig, loss_on_batch

    model = t2i.model_for(t2i.load_pipeline(saved[name], "cpu", "bfloat16"))
    seen = []
    model.denoiser.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(args[1] if len(args) > 1 else kwargs["timestep"]),
        with_kwargs=True,
    )
    conditions = model.encode_prompts(["a cat"])
    t = model.time(torch.tensor([777.3]))
    model.predict(conditions)(torch.zeros(1, 4, 4, 4), t, torch.tensor([0]))
    config = FinetuneConfig().resolved(model)
    generator = torch.Generator().manual_seed(0)
    loss_on_batch(model, torch.zeros(1, 4, 4, 4), conditions.with_prompt, config, generator)
    assert [s.dtype for s in seen] == [torch.float32, torch.float32]
    assert seen[0][0].item() == pytest.approx(777.3, abs=1e-3)


def test_images_are_encoded_in_batches_with_the_same_latents(saved):
    model = t2i.model_for(t2i.load_pipeline(saved["sd"], "cpu"))
    images = np.random.default_rng(0).uniform(size=(5, 8, 8, 3))
    one_by_one, together = model.encode_images(images, 1), model.encode_images(images, 8)
    assert one_by_one.shape == (5, 4, 4, 4)
    torch.testing.assert_close(one_by_one, together, rtol=1e-5, atol=1e-6)


def test_batched_prompt_encoding_and_sweeps_give_the_same_values(saved, tmp_path):
    from t2i.sweep import guidance_sweep

    model = t2i.model_for(t2i.load_pipeline(saved["sdxl"], "cpu"))
    prompts = ["a red circle", "two blue squares", "a cat"]
    apart, together = model.encode_prompts(prompts, batch_size=2), model.encode_prompts(prompts)
    for key, value in together.with_prompt.items():
        torch.testing.assert_close(apart.with_prompt[key], value)
    with pytest.raises(ValueError, match="no prompts"):
        model.encode_prompts([])
    options = {"num_inference_steps": 2, **SIZE}
    one = guidance_sweep(model, prompts[:2], [3.0], [0, 1], tmp_path / "a", 1, **options)
    three = guidance_sweep(model, prompts[:2], [3.0], [0, 1], tmp_path / "b", 3, **options)
    np.testing.assert_allclose(one.mi, three.mi, rtol=1e-4)
    assert list(one.seed) == [0, 1, 0, 1]
