"""The variant tables of benchmarks/alignment.py build and document what they run."""

import json
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from torchgeo_specdm.tasks import TwoStreamVAE


def test_every_variant_has_a_vae_and_a_trained_model(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    alignment = load_benchmark('alignment')
    for name, spec in alignment.VARIANTS.items():
        assert spec['vae'] in alignment.VAES, name
        model = spec.get('model')
        if model is not None:
            assert 'model' not in alignment.VARIANTS[model], (name, model)
            assert alignment.VARIANTS[model]['vae'] == spec['vae'], (name, model)


def test_every_vae_setting_builds_with_its_latent_split(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    alignment = load_benchmark('alignment')
    for name, settings in alignment.VAES.items():
        vae = TwoStreamVAE(
            in_channels=10,
            num_classes=8,
            num_images=1,
            downsampling_factor=2,
            **alignment.VAE_SETTINGS | settings,
        )
        vae.configure_models()
        latents = vae.autoencoder.latent_channels
        assert latents == (alignment.VAE_SETTINGS | settings)['latent_channels'], name


def test_the_module_docstring_names_every_variant(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    alignment = load_benchmark('alignment')
    for name in alignment.VARIANTS:
        assert name in alignment.__doc__, name


def test_a_checkpoint_of_another_seed_is_refused(
    load_benchmark: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    alignment = load_benchmark('alignment')
    checkpoint = tmp_path / 'vae' / 'two_stream' / 'vae.ckpt'
    assert not alignment.saved(checkpoint, Namespace(seed=0))
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b'trained')
    assert alignment.saved(checkpoint, Namespace(seed=0))  # no record: seed 0
    (checkpoint.parent / 'train.json').write_text(json.dumps({'seed': 1}))
    assert alignment.saved(checkpoint, Namespace(seed=1))
    with pytest.raises(SystemExit, match='trained with seed 1, not --seed 0'):
        alignment.saved(checkpoint, Namespace(seed=0))
