"""``specdm sample``: generate a dataset folder from a trained diffusion checkpoint."""

import hashlib
import os
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

import torchgeo_specdm

from .datasets.validation import InvalidInputError
from .export import DatasetWriter
from .pipeline import Sampler, SpecDMPipelineOutput, sample_seed
from .types import Path


def file_sha256(path: Path) -> str:
    """SHA-256 of a file.

    Args:
        path: the file.

    Returns:
        its hex digest.
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def generate(
    checkpoint: Path,
    out: Path,
    num_samples: int,
    sampler: Sampler = 'dpmpp',
    steps: int = 25,
    batch_size: int = 16,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    finalize: bool = True,
) -> dict[str, Any] | None:
    """Sample pairs and write them as a generated-dataset folder, resuming if needed.

    Samples already complete in ``out`` are skipped; each new one is written
    atomically, so a killed run can be rerun to finish the job.

    Args:
        checkpoint: a LatentDiffusion checkpoint.
        out: output folder.
        num_samples: total number of pairs in the dataset.
        sampler: 'ddpm', 'ddim' or 'dpmpp'.
        steps: denoising steps.
        batch_size: pairs denoised at once.
        seed: run seed; sample i depends on (seed, i) only.
        indices: the subset of indices this process writes (default: all).
        finalize: write ``manifest.json`` at the end.

    Returns:
        the manifest, or ``None`` when not finalizing.

    Raises:
        InvalidInputError: for a non-positive sample count or batch size, or an
            output folder that cannot be written.
    """
    from .tasks import LatentDiffusion

    if num_samples < 1:
        raise InvalidInputError(
            f'--num-samples {num_samples}: ask for at least one sample.'
        )
    if batch_size < 1:
        raise InvalidInputError(f'--batch-size {batch_size}: must be at least 1.')
    model = LatentDiffusion.from_checkpoint(checkpoint)
    pipeline = model.pipeline(sampler)
    pipeline.set_progress_bar_config(disable=True)
    vae = model.vae.hparams
    change = vae['num_images'] == 2
    generator = {
        'checkpoint_sha256': file_sha256(checkpoint),
        'sampler': sampler,
        'steps': steps,
        'guidance_scale': 1.0,
        'request': None,
        'seed': seed,
        'package_version': torchgeo_specdm.__version__,
    }
    channels = vae['in_channels']
    writer = _make_writer(
        out,
        task='change' if change else 'segmentation',
        bands=vae['bands'] or [f'band_{i}' for i in range(channels)],
        num_classes=vae['num_classes'],
        class_names=vae['class_names']
        or [f'class_{i}' for i in range(vae['num_classes'])],
        generator=generator,
    )
    wanted = range(num_samples) if indices is None else indices
    done = writer.completed()
    todo = [index for index in wanted if index not in done]
    progress = tqdm(
        total=len(wanted), initial=len(wanted) - len(todo), desc='sampling', unit='pair'
    )
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        output = pipeline(
            indices=chunk, batch_size=batch_size, seed=seed, num_inference_steps=steps
        )
        assert isinstance(output, SpecDMPipelineOutput)
        for position, index in enumerate(chunk):
            writer.write(
                index,
                output.image[position],
                output.mask[position],
                seed=sample_seed(seed, index),
            )
        progress.update(len(chunk))
    progress.close()
    return writer.finalize(num_samples) if finalize else None


def _make_writer(out: Path, **kwargs: Any) -> DatasetWriter:
    parent = os.path.dirname(os.path.abspath(out))
    if not os.access(parent if not os.path.exists(out) else out, os.W_OK):
        raise InvalidInputError(
            f'--out {out}: the folder is not writable. Pick a folder you can write to.'
        )
    try:
        return DatasetWriter(out, **kwargs)
    except PermissionError as error:
        raise InvalidInputError(
            f'--out {out}: cannot write there ({error.strerror}). Pick a folder you '
            'can write to.'
        ) from None
