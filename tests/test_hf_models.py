"""Real models as tests: every transformers Flax model class, built offline from a tiny config with
abstract parameters, plus models written here with flax.linen and flax.nnx (no Flash ops).

For each: perfjax's FLOPs within 1% of XLA's own count of the same (unoptimized) module, and a finite,
positive predicted time on a GPU, a TPU and this CPU; for some, a training step (grad + optax AdamW).

The default run covers a representative set (``hf_models.DEFAULT`` and the local linen/nnx models);
the other transformers models are marked ``slow`` and run only when asked for:

    pytest tests/test_hf_models.py -m slow              # only the others
    pytest tests/test_hf_models.py -m "slow or not slow" # all of them

``python benchmarks/hf_models.py`` runs the whole sweep and writes benchmarks/results/hf_models.json.
"""

from __future__ import annotations

import functools
import math
import os
import sys

import pytest

pytest.importorskip("transformers")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import hf_models as H

import perfjax

DEVICES = ("h100", "tpu-v5e", "host")


def _param(name):
    if name in H.CASES and name not in H.DEFAULT:
        return pytest.param(name, marks=pytest.mark.slow)
    return name


MODELS = [_param(n) for n in [*H.CASES, *H.LOCAL]]
TRAINING = [*H.TRAINING, *H.LOCAL]


@pytest.fixture(autouse=True)
def _slow_only_when_selected(request):
    """``slow`` models run only when ``-m`` names the marker (the project's default run keeps them)."""
    if request.node.get_closest_marker("slow") and "slow" not in (
        request.config.getoption("markexpr") or ""
    ):
        pytest.skip("transformers model outside the default set: run with -m slow")


@functools.cache
def _model(name):
    """``(fn, inputs)``, built once per module (the same function each time: traces are cached)."""
    return H.LOCAL[name]() if name in H.LOCAL else H.build(name)


_xla_cache: dict = {}


def _xla(name, train=False):
    """``(fn, inputs, lowered)``: XLA's count of the unoptimized module."""
    key = (name, train)
    if key not in _xla_cache:
        fn, inputs = _model(name)
        if train:
            fn, inputs = H.training_step(fn, inputs)
        _xla_cache[key] = (fn, inputs, H.xla_flops(fn, inputs))
    return _xla_cache[key]


def _check_flops(fn, inputs, lowered):
    """Within 1% of XLA's count of the unoptimized module; or, where perfjax counts less, within 1%
    of XLA's count after compilation: perfjax folds ops on compile-time constants as XLA's
    HloConstantFolding does (e.g. the cumulative sum of a default all-ones attention mask), which
    the unoptimized count still includes. Returns perfjax's count."""
    assert lowered > 0
    flops = perfjax.analyze(fn, inputs).flops
    if abs(flops - lowered) <= 0.01 * lowered:
        return flops
    compiled = H.xla_flops(fn, inputs, compiled=True)
    assert flops < lowered and abs(flops - compiled) <= 0.01 * compiled, (
        f"perfjax {flops:.6g} vs XLA unoptimized {lowered:.6g} ({flops / lowered:.4f}), "
        f"compiled {compiled:.6g} ({flops / compiled:.4f})"
    )
    return flops


def test_every_flax_model_class_has_a_case():
    covered = {c.model_class for c in H.CASES.values()}
    missing = [c for c in H.flax_classes() if c not in covered]
    assert not missing, f"transformers Flax model classes without a case in hf_models.py: {missing}"
    for needed in ("bert", "gpt2", "vit", "t5", "whisper", "bart", "llama"):
        assert needed in H.DEFAULT


def test_parameters_are_abstract():
    # Nothing is allocated: the whole parameter tree is shapes and dtypes.
    import jax

    for name in ("bert", "linen-cnn", "nnx-mlp"):
        params, *_ = _model(name)[1]
        leaves = jax.tree.leaves(params)
        assert leaves and all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves), name


@pytest.mark.parametrize("name", MODELS)
def test_flops_match_xla(name):
    _check_flops(*_xla(name))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", MODELS)
def test_predicts(name, device):
    fn, inputs = _model(name)
    p = perfjax.predict(fn, inputs, device=device)
    assert math.isfinite(p.time_s) and p.time_s > 0, p.time_s
    assert math.isfinite(p.energy_j) and p.energy_j >= 0, p.energy_j


@pytest.mark.parametrize("name", TRAINING)
def test_training_step(name):
    step, inputs, xla = _xla(name, train=True)
    flops = _check_flops(step, inputs, xla)
    # A training step does more work than inference (backward pass, optimizer).
    assert flops > 2 * perfjax.analyze(*_model(name)).flops
    p = perfjax.predict(step, inputs, device="h100")
    assert math.isfinite(p.time_s) and p.time_s > 0, p.time_s
