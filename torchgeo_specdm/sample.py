"""``specdm sample``: generate a dataset folder from a trained diffusion checkpoint."""

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from rasterio.errors import RasterioIOError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
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


class SampleIndices(Dataset[int]):
    """The sample indices still to generate: the data a prediction run shards.

    .. versionadded:: 0.1
    """

    def __init__(self, indices: Sequence[int]) -> None:
        """Initialize a new SampleIndices instance.

        Args:
            indices: indices to generate.
        """
        self.indices = list(indices)

    def __len__(self) -> int:
        """Return the number of indices.

        Returns:
            length of the dataset
        """
        return len(self.indices)

    def __getitem__(self, position: int) -> int:
        """Return one index.

        Args:
            position: position in the list.

        Returns:
            the sample index
        """
        return self.indices[position]


class GeneratedDatasetWriter(BasePredictionWriter):
    """Write each rank's predicted pairs into the generated-dataset folder.

    Every file is written atomically, so ranks never see each other's partial
    files; the folder's manifest is written once, after all ranks finish.

    .. versionadded:: 0.1
    """

    def __init__(self, out: Path, settings: dict[str, Any], seed: int) -> None:
        """Initialize a new GeneratedDatasetWriter instance.

        Args:
            out: output folder.
            settings: the :class:`~torchgeo_specdm.export.DatasetWriter` arguments.
            seed: run seed.
        """
        super().__init__(write_interval='batch')
        self.out = out
        self.settings = settings
        self.seed = seed
        self.writer: DatasetWriter | None = None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Open the folder on this rank.

        Args:
            trainer: the trainer.
            pl_module: the model.
            stage: the stage.
        """
        self.writer = DatasetWriter(self.out, **self.settings)

    def write_on_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Write the pairs of one batch.

        Args:
            trainer: the trainer.
            pl_module: the model.
            prediction: the batch's :class:`SpecDMPipelineOutput`.
            batch_indices: positions of the batch in the dataset.
            batch: the sample indices of the batch.
            batch_idx: the batch's index.
            dataloader_idx: the dataloader's index.
        """
        assert self.writer is not None
        for position, index in enumerate(batch.tolist()):
            write_pair(
                self.writer,
                index,
                prediction.image[position],
                prediction.mask[position],
                self.seed,
            )

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        """Wait for every rank to finish writing.

        Args:
            trainer: the trainer.
            pl_module: the model.
        """
        trainer.strategy.barrier()


def generation_settings(
    model: Any, checkpoint: Path, sampler: str, steps: int, seed: int
) -> dict[str, Any]:
    """The dataset-writer arguments that describe a generation run.

    Args:
        model: the LatentDiffusion model.
        checkpoint: its checkpoint file.
        sampler: sampler name.
        steps: denoising steps.
        seed: run seed.

    Returns:
        keyword arguments of :class:`~torchgeo_specdm.export.DatasetWriter`.
    """
    vae = model.vae.hparams
    classes = vae['num_classes']
    return {
        'task': 'change' if vae['num_images'] == 2 else 'segmentation',
        'bands': vae['bands'] or [f'band_{i}' for i in range(vae['in_channels'])],
        'num_classes': classes,
        'class_names': vae['class_names'] or [f'class_{i}' for i in range(classes)],
        'generator': {
            'checkpoint_sha256': file_sha256(checkpoint),
            'sampler': sampler,
            'steps': steps,
            'guidance_scale': 1.0,
            'request': None,
            'seed': seed,
            'package_version': torchgeo_specdm.__version__,
        },
    }


def generate(
    checkpoint: Path,
    out: Path,
    num_samples: int,
    sampler: Sampler = 'dpmpp',
    steps: int = 25,
    batch_size: int = 16,
    seed: int = 0,
    devices: int = 1,
) -> dict[str, Any]:
    """Sample pairs and write them as a generated-dataset folder, resuming if needed.

    Samples already complete in ``out`` are skipped; each new one is written
    atomically, so a killed run can be rerun to finish the job. With
    ``devices > 1`` Lightning shards the indices over processes
    (``trainer.predict`` with DDP); sample i depends on (seed, i) only, so the
    files are the same whatever the number of devices.

    Args:
        checkpoint: a LatentDiffusion checkpoint.
        out: output folder.
        num_samples: total number of pairs in the dataset.
        sampler: 'ddpm', 'ddim' or 'dpmpp'.
        steps: denoising steps.
        batch_size: pairs denoised at once.
        seed: run seed.
        devices: processes (CPU) or GPUs to shard the work over.

    Returns:
        the manifest.

    Raises:
        InvalidInputError: for a non-positive sample count, batch size or device
            count, or an output folder that cannot be written.
    """
    from .tasks import LatentDiffusion

    if num_samples < 1:
        raise InvalidInputError(
            f'--num-samples {num_samples}: ask for at least one sample.'
        )
    if batch_size < 1:
        raise InvalidInputError(f'--batch-size {batch_size}: must be at least 1.')
    if devices < 1:
        raise InvalidInputError(f'--devices {devices}: must be at least 1.')
    model = LatentDiffusion.from_checkpoint(checkpoint)
    pipeline = model.pipeline(sampler)
    settings = generation_settings(model, checkpoint, sampler, steps, seed)
    writer = _make_writer(out, **settings)
    done = writer.completed()
    todo = [index for index in range(num_samples) if index not in done]
    # Same batch size (padded) and threads in every process: bit-identical files
    # whatever the number of devices.
    batch_size = min(batch_size, num_samples)
    if devices > 1:
        threads = os.environ.get('OMP_NUM_THREADS')
        os.environ['OMP_NUM_THREADS'] = threads or str(torch.get_num_threads())
        model.configure_prediction(sampler, steps, seed, batch_size)
        trainer = Trainer(
            devices=devices,
            strategy='ddp_spawn',
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            callbacks=[GeneratedDatasetWriter(out, settings, seed)],
        )
        loader = DataLoader(SampleIndices(todo), batch_size=batch_size)
        try:
            trainer.predict(model, dataloaders=loader, return_predictions=False)
        finally:
            if threads is None:
                del os.environ['OMP_NUM_THREADS']
        return writer.finalize(num_samples)
    pipeline.set_progress_bar_config(disable=True)
    progress = tqdm(total=num_samples, initial=len(done), desc='sampling', unit='pair')
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        output = pipeline(
            indices=chunk,
            batch_size=batch_size,
            seed=seed,
            num_inference_steps=steps,
            pad_batches=True,
        )
        assert isinstance(output, SpecDMPipelineOutput)
        for position, index in enumerate(chunk):
            write_pair(
                writer, index, output.image[position], output.mask[position], seed
            )
        progress.update(len(chunk))
    progress.close()
    return writer.finalize(num_samples)


def _make_writer(out: Path, **kwargs: Any) -> DatasetWriter:
    parent = os.path.dirname(os.path.abspath(out))
    if not os.access(parent if not os.path.exists(out) else out, os.W_OK):
        raise InvalidInputError(
            f'--out {out}: the folder is not writable. Pick a folder you can write to.'
        )
    try:
        return DatasetWriter(out, **kwargs)
    except OSError as error:
        raise InvalidInputError(
            f'--out {out}: cannot write there ({error.strerror or error}). Pick a '
            'folder you can write to.'
        ) from None


def write_pair(
    writer: DatasetWriter, index: int, image: Tensor, mask: Tensor, seed: int
) -> None:
    """Write one generated pair, turning I/O failures into a clear error.

    Args:
        writer: the dataset writer.
        index: sample index.
        image: its image(s).
        mask: its mask.
        seed: the run seed.

    Raises:
        InvalidInputError: if the disk is full or the file cannot be written.
    """
    try:
        writer.write(index, image, mask, seed=sample_seed(seed, index))
    except (OSError, RasterioIOError) as error:
        reason = getattr(error, 'strerror', None) or str(error)
        finished = len(writer.completed())
        raise InvalidInputError(
            f'{writer.root}: writing sample {index} failed ({reason}). Free disk '
            'space or pick another --out, then rerun the same command: the '
            f'{finished} finished samples are kept and no partial file was left.'
        ) from None
