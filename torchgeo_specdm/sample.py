"""``specdm sample``: generate a dataset folder from a trained diffusion checkpoint."""

import hashlib
import os
from collections.abc import Sequence
from typing import Any, Literal

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
from .generation.guidance import GuideSettings, ThresholdedChangeGuide, check_guidance
from .generation.loop import DrawnPair, draw_pairs, sample_blocks
from .generation.pipeline import DEFAULT_STEPS, Sampler, sample_seed
from .generation.refine import RefineMode, check_refine, refine_ignore_index
from .generation.request import OnMiss, SamplePlan, make_plan
from .types import Path

Accelerator = Literal['auto', 'gpu', 'cpu']


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


class SampleIndices(Dataset[Tensor]):
    """The index blocks still to generate: the data a prediction run shards.

    Each item is one whole batch (see
    :func:`~torchgeo_specdm.generation.loop.sample_blocks`); load it with
    ``DataLoader(..., batch_size=None)``.

    .. versionadded:: 0.1
    """

    def __init__(self, blocks: Sequence[Sequence[int]]) -> None:
        """Initialize a new SampleIndices instance.

        Args:
            blocks: index blocks to generate.
        """
        self.blocks = [list(block) for block in blocks]

    def __len__(self) -> int:
        """Return the number of blocks.

        Returns:
            length of the dataset
        """
        return len(self.blocks)

    def __getitem__(self, position: int) -> Tensor:
        """Return one block.

        Args:
            position: position in the list.

        Returns:
            the block's sample indices
        """
        return torch.tensor(self.blocks[position])


class GeneratedDatasetWriter(BasePredictionWriter):
    """Write each rank's predicted pairs into the generated-dataset folder.

    Every file is written atomically, so ranks never see each other's partial
    files; the folder's manifest is written once, after all ranks finish.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        out: Path,
        settings: dict[str, Any],
        seed: int,
        plan: SamplePlan | None = None,
        done: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        """Initialize a new GeneratedDatasetWriter instance.

        Args:
            out: output folder.
            settings: the :class:`~torchgeo_specdm.export.DatasetWriter` arguments.
            seed: run seed.
            plan: the request plan of a conditional run.
            done: samples an earlier run finished (generated again with their
                batch, not rewritten).
        """
        super().__init__(write_interval='batch')
        self.out = out
        self.settings = settings
        self.seed = seed
        self.plan = plan
        self.done = frozenset(done)
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
            prediction: the batch's :class:`DrawnPair` list.
            batch_indices: positions of the batch in the dataset.
            batch: the sample indices of the batch.
            batch_idx: the batch's index.
            dataloader_idx: the dataloader's index.
        """
        assert self.writer is not None
        for pair in prediction:
            if pair.index not in self.done:
                write_pair(self.writer, pair, self.seed, self.plan)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        """Wait for every rank to finish writing.

        Args:
            trainer: the trainer.
            pl_module: the model.
        """
        trainer.strategy.barrier()


def model_class_names(model: Any) -> list[str]:
    """The class names of a LatentDiffusion model (``class_<i>`` where unnamed).

    Args:
        model: the LatentDiffusion model.

    Returns:
        one name per class, in label order.
    """
    vae = model.vae.hparams
    names = vae['class_names']
    return list(names) if names else [f'class_{i}' for i in range(vae['num_classes'])]


def generation_settings(
    model: Any,
    checkpoint: Path,
    sampler: str,
    steps: int,
    seed: int,
    guidance_scale: float = 1.0,
    plan: SamplePlan | None = None,
    guide: Path | None = None,
    guidance: GuideSettings | None = None,
) -> dict[str, Any]:
    """The dataset-writer arguments that describe a generation run.

    Args:
        model: the LatentDiffusion model.
        checkpoint: its checkpoint file.
        sampler: sampler name.
        steps: denoising steps.
        seed: run seed.
        guidance_scale: classifier-free guidance scale.
        plan: the request plan of a conditional run.
        guide: the guide's checkpoint file.
        guidance: how sampling uses the guide.

    Returns:
        keyword arguments of :class:`~torchgeo_specdm.export.DatasetWriter`.
    """
    vae = model.vae.hparams
    return {
        'task': 'change' if vae['num_images'] == 2 else 'segmentation',
        'bands': vae['bands'] or [f'band_{i}' for i in range(vae['in_channels'])],
        'num_classes': vae['num_classes'],
        'class_names': model_class_names(model),
        'generator': {
            'checkpoint_sha256': file_sha256(checkpoint),
            'sampler': sampler,
            'steps': steps,
            'guidance_scale': float(guidance_scale),
            'request': None if plan is None else plan.record,
            'seed': seed,
            'package_version': torchgeo_specdm.__version__,
        }
        | guidance_record(guide, guidance),
    }


def guidance_record(
    guide: Path | None, guidance: GuideSettings | None
) -> dict[str, Any]:
    """The manifest's record of the guide and how sampling used it.

    Args:
        guide: the guide's checkpoint file, or None.
        guidance: how sampling uses the guide.

    Returns:
        ``guide`` (its file's sha256 and name), ``alignment_guidance`` (0 when
        off), ``guidance_start`` (None when off), ``refine`` and
        ``refine_confidence`` (None without refinement); nothing without a guide,
        so folders written before guidance existed still resume.
    """
    if guide is None:
        return {}
    settings = guidance or GuideSettings(None)
    guided = settings.alignment_guidance > 0
    refined = settings.refine is not None
    return {
        'guide': {'sha256': file_sha256(guide), 'path': os.path.basename(guide)},
        'alignment_guidance': float(settings.alignment_guidance) if guided else 0.0,
        'guidance_start': float(settings.guidance_start) if guided else None,
        'refine': settings.refine if refined else None,
        'refine_confidence': float(settings.refine_confidence) if refined else None,
    } | (
        {}
        if settings.guide_threshold is None
        else {'guide_threshold': float(settings.guide_threshold)}
    )


def generate(
    checkpoint: Path,
    out: Path,
    num_samples: int,
    sampler: Sampler = 'dpmpp',
    steps: int = DEFAULT_STEPS,
    batch_size: int = 16,
    seed: int = 0,
    devices: int = 1,
    classes: str | None = None,
    min_fraction: float | None = None,
    change_fraction: str | None = None,
    guidance_scale: float = 1.0,
    on_miss: OnMiss = 'flag',
    max_attempts: int = 4,
    rebalance: bool = False,
    accelerator: Accelerator = 'auto',
    guide: Path | None = None,
    alignment_guidance: float = 0.0,
    guidance_start: float = 0.5,
    refine: RefineMode | None = None,
    refine_confidence: float = 0.9,
    guide_threshold: float | None = None,
) -> dict[str, Any]:
    """Sample pairs and write them as a generated-dataset folder, resuming if needed.

    Samples already complete in ``out`` are skipped; each new one is written
    atomically, so a killed run can be rerun to finish the job. With
    ``devices > 1`` Lightning shards the indices over processes
    (``trainer.predict`` with DDP); sample i depends on (seed, i) only, so the
    files are the same whatever the number of devices.

    With a request (``classes``, ``change_fraction`` or ``rebalance``, for a model
    trained with a ``condition``), each pair is sampled with classifier-free
    guidance towards its target; the manifest records the request, and per pair
    its target, whether its mask meets it and how many draws it took.

    With a ``guide`` (a downstream model trained on the real data), alignment
    guidance steers the last ``guidance_start`` share of the denoising steps
    towards pairs whose mask agrees with the guide's prediction on the image, and
    ``refine`` fixes the mask pixels the guide confidently disputes; the manifest
    records the guide's sha256 and these settings, and per pair its
    ``refined_share``. Both are deterministic, so resuming and sharding keep the
    files byte-identical.

    Args:
        checkpoint: a LatentDiffusion checkpoint.
        out: output folder.
        num_samples: total number of pairs in the dataset.
        sampler: 'ddpm', 'ddim' or 'dpmpp'.
        steps: denoising steps.
        batch_size: pairs denoised at once.
        seed: run seed.
        devices: processes (CPU) or GPUs to shard the work over.
        classes: comma-separated class names every pair must contain (matched
            case-insensitively; spaces and underscores alike).
        min_fraction: smallest pixel share of each requested class (default: any
            pixel).
        change_fraction: ``LO:HI`` range of the changed-pixel share (change
            models conditioned on 'change_fraction').
        guidance_scale: classifier-free guidance scale: 0 unconditional, 1
            conditional, above 1 guided (diffusers' convention).
        on_miss: 'flag' keeps a pair that misses its request and marks it;
            'redraw' samples it again with a new seed of (seed, index, attempt).
        max_attempts: draws per pair at most with 'redraw'.
        rebalance: give each pair one target class so that the training images
            plus the generated ones hold each class (among ``classes``, default
            all) as evenly as ``num_samples`` allows.
        accelerator: 'auto' (a GPU when there is one), 'gpu' or 'cpu'.
        guide: a SemanticSegmentation (segmentation) or binary ChangeDetection
            (change) checkpoint trained on the real data.
        alignment_guidance: alignment-guidance scale S: each guided step moves
            each sample's predicted clean latent by S * 0.1 latent RMS towards
            agreement with the guide (0: off, sampling exactly as without it).
        guidance_start: guided share of the steps, in [0, 1]: the last
            ``ceil(guidance_start * steps)`` ones.
        refine: 'ignore' sets the mask pixels the guide confidently gives another
            class to the ignore index (the guide's ``ignore_index``, else the
            class named 'Unlabelled'; segmentation only); 'relabel' gives them the
            guide's class.
        refine_confidence: the guide's smallest class probability that changes a
            pixel.
        guide_threshold: change guides only: the guide's change probability that
            guidance and refinement read as even odds (see
            :class:`~torchgeo_specdm.generation.guidance.ThresholdedChangeGuide`),
            e.g. the threshold it takes on validation data; None keeps 0.5.

    Returns:
        the manifest.

    Raises:
        InvalidInputError: for a non-positive sample count, batch size or device
            count, 'gpu' without a GPU, an output folder that cannot be written,
            a request that is malformed or that the model cannot honour, or a
            guide or guidance setting that does not fit.
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
    check_guidance(alignment_guidance, guidance_start, guide is not None)
    if guide_threshold is not None and guide is None:
        raise InvalidInputError(
            f'--guide-threshold {guide_threshold} needs a guide: pass --guide '
            'CKPT (a binary ChangeDetection checkpoint), or leave it out.'
        )
    device = sampling_device(accelerator)
    model = LatentDiffusion.from_checkpoint(checkpoint)
    guidance = None
    if guide is not None:
        guidance = load_guidance(
            model,
            guide,
            alignment_guidance,
            guidance_start,
            refine,
            refine_confidence,
            guide_threshold,
        )
        guidance.guide.to(device)
    else:
        check_refine(refine, refine_confidence, False, None)
    pipeline = model.pipeline(sampler)
    plan = make_plan(
        model.hparams['condition'],
        model_class_names(model),
        model.training_fractions,
        num_samples,
        guidance_scale,
        classes=classes,
        min_fraction=min_fraction,
        change_fraction=change_fraction,
        rebalance=rebalance,
        on_miss=on_miss,
        max_attempts=max_attempts,
    )
    settings = generation_settings(
        model, checkpoint, sampler, steps, seed, guidance_scale, plan, guide, guidance
    )
    writer = _make_writer(out, **settings)
    done = writer.completed()
    # Same batches (padded) and threads in every process: bit-identical files
    # whatever the number of devices, and when resuming.
    batch_size = min(batch_size, num_samples)
    blocks = sample_blocks(num_samples, batch_size, done)
    # A process per block at most: Lightning's sampler refuses ranks with no data.
    devices = min(devices, max(1, len(blocks)))
    if devices > 1:
        threads = os.environ.get('OMP_NUM_THREADS')
        os.environ['OMP_NUM_THREADS'] = threads or str(torch.get_num_threads())
        model.configure_prediction(
            sampler, steps, seed, batch_size, guidance_scale, plan, guidance
        )
        trainer = Trainer(
            accelerator=device.type,
            devices=devices,
            strategy='ddp_spawn',
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            callbacks=[GeneratedDatasetWriter(out, settings, seed, plan, done)],
        )
        loader = DataLoader(SampleIndices(blocks), batch_size=None)
        try:
            trainer.predict(model, dataloaders=loader, return_predictions=False)
        finally:
            if threads is None:
                del os.environ['OMP_NUM_THREADS']
        return writer.finalize(num_samples)
    model.to(device)
    pipeline.set_progress_bar_config(disable=True)
    progress = tqdm(total=num_samples, initial=len(done), desc='sampling', unit='pair')
    for block in blocks:
        pairs = draw_pairs(
            pipeline, block, seed, steps, batch_size, guidance_scale, plan, guidance
        )
        new = [pair for pair in pairs if pair.index not in done]
        for pair in new:
            write_pair(writer, pair, seed, plan)
        progress.update(len(new))
    progress.close()
    return writer.finalize(num_samples)


def load_guidance(
    model: Any,
    guide: Path,
    alignment_guidance: float,
    guidance_start: float,
    refine: RefineMode | None,
    refine_confidence: float,
    guide_threshold: float | None = None,
) -> GuideSettings:
    """Load a guide checked against a diffusion model, with its settings.

    Args:
        model: the LatentDiffusion model.
        guide: the guide's checkpoint.
        alignment_guidance: alignment-guidance scale.
        guidance_start: guided share of the steps.
        refine: refinement mode, or None.
        refine_confidence: the guide's smallest probability that changes a pixel.
        guide_threshold: change guides: the change probability read as even odds
            (None: 0.5).

    Returns:
        the settings, with the guide frozen and in eval mode (on the CPU).

    Raises:
        InvalidInputError: if the guide does not fit the model, the refinement
            settings are invalid (e.g. 'ignore' for masks without an ignore label),
            or a threshold is given for a segmentation guide.
    """
    from .evaluation.judges import load_guide

    vae = model.vae.hparams
    change = vae['num_images'] == 2
    task = load_guide(guide, vae['in_channels'], vae['num_classes'], change)
    ignore_index = (
        None if change else refine_ignore_index(task.hparams, model_class_names(model))
    )
    check_refine(refine, refine_confidence, True, ignore_index)
    if guide_threshold is not None and not change:
        raise InvalidInputError(
            f'--guide-threshold {guide_threshold}: only a change guide takes a '
            'threshold; a segmentation guide takes the most probable class. Leave '
            'it out.'
        )
    guide_model = (
        task
        if guide_threshold is None
        else ThresholdedChangeGuide(task, guide_threshold).eval()
    )
    return GuideSettings(
        guide_model,
        alignment_guidance,
        guidance_start,
        refine,
        refine_confidence,
        ignore_index,
        guide_threshold,
    )


def sampling_device(accelerator: Accelerator) -> torch.device:
    """The device that samples: the GPU when asked for or, with 'auto', when present.

    Args:
        accelerator: 'auto', 'gpu' or 'cpu'.

    Returns:
        the device (the first GPU when sampling on GPUs).

    Raises:
        InvalidInputError: for 'gpu' on a machine without one, or an unknown name.
    """
    if accelerator not in ('auto', 'gpu', 'cpu'):
        raise InvalidInputError(
            f'--accelerator {accelerator}: choose auto, gpu or cpu.'
        )
    if accelerator == 'gpu' and not torch.cuda.is_available():
        raise InvalidInputError(
            '--accelerator gpu: PyTorch sees no GPU here. Use --accelerator cpu, or '
            'install a CUDA build of PyTorch.'
        )
    if accelerator != 'cpu' and torch.cuda.is_available():
        return torch.device('cuda')
    return torch.device('cpu')


def _make_writer(out: Path, **kwargs: Any) -> DatasetWriter:
    # The writer creates missing parent folders, so check the nearest existing one.
    existing = os.path.abspath(out)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK):
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
    writer: DatasetWriter, pair: DrawnPair, seed: int, plan: SamplePlan | None = None
) -> None:
    """Write one generated pair, turning I/O failures into a clear error.

    Args:
        writer: the dataset writer.
        pair: the pair.
        seed: the run seed.
        plan: the request plan of a conditional run (adds the pair's target,
            ``meets_request`` and ``attempts`` to its record). A refined pair's
            record also gets its ``refined_share``.

    Raises:
        InvalidInputError: if the disk is full or the file cannot be written.
    """
    index = pair.index
    extra: dict[str, Any] = {}
    if plan is not None:
        extra = {
            'target': plan.target_record(index),
            'meets_request': bool(pair.meets),
            'attempts': pair.attempt + 1,
        }
    if pair.refined_share is not None:
        extra['refined_share'] = pair.refined_share
    try:
        writer.write(
            index,
            pair.image,
            pair.mask,
            seed=sample_seed(seed, index, pair.attempt),
            extra=extra,
        )
    except (OSError, RasterioIOError) as error:
        reason = getattr(error, 'strerror', None) or str(error)
        finished = len(writer.completed())
        raise InvalidInputError(
            f'{writer.root}: writing sample {index} failed ({reason}). Free disk '
            'space or pick another --out, then rerun the same command: the '
            f'{finished} finished samples are kept and no partial file was left.'
        ) from None
