"""What breaks the agreement between a generated mask and its generated image?

An ablation of SpecDM's alignment on one dataset, measured by the dataset's fixed judge
(benchmarks/judge.py): every variant starts from the same seed and gets the same
optimizer steps, and every figure comes from the same judge. The VAEs are trained once
per VAE setting and shared by the diffusion variants that use them.

Diagnostics (no diffusion model involved), on the real reference split:

  real pairs            the judge's own agreement with real masks (the ceiling)
  VAE reconstruction    decode(encode(pair)): what the autoencoder alone keeps
  rotated latent        decode(rot90(encode(pair))): the latent-space flips and
                        rotations the diffusion model trains on by default

Variants (each: a VAE, a diffusion training setting and a sampler):

  dihedral              cached latents flipped and rotated every step (the old default)
  no-augmentation       cached latents as they are (the default since this ablation)
  pixel-augmentation    4 flipped / rotated views of each image, encoded after the flip
  mask-weight-4         mask-stream channels weigh 4x in the denoising loss
  ddim-50, ddpm-1000    another sampler on the dihedral model (ddpm-1000: 64 pairs)
  single-stream         the paper's single-stream LDM baseline (its own VAE), dihedral
  single-stream-no-augmentation   the same without latent flips
  no-augmentation+mask-weight-4, no-augmentation-3x-steps, no-augmentation-6x-steps
                        (3x and 6x the diffusion steps)
  mask-channels-2       no-augmentation on a VAE whose mask stream has 2 latent
                        channels of 6 (the demo's: 4 of 8)
  mask-kl-1e-4          no-augmentation on a VAE whose mask-stream KL weight is 1e-4
                        (the demo's: 1e-6, as the image stream's)
  guided-1, guided-3    no-augmentation sampled with alignment guidance S = 1, 3
  refined-relabel       its masks relabelled where the guide is confident (>= 0.9)
  guided-1+relabel      both
  guided-1+relabel-3x-steps, guided-1+relabel-6x-steps   both, on the 3x / 6x model

With --unlabelled DIR (a benchmarks/pseudo_labels.py folder: real training images
outside the labelled pool, labelled by the guide), the VAEs and diffusion models learn
from the pool plus those pairs, at the same optimizer steps: a semi-supervised
generator, whose images come from every real training image while no true mask outside
the pool is read. It needs a --work-dir of its own.

Each variant samples --num-samples pairs and is scored by the judge: alignment (mean
IoU between each generated mask and the judge's prediction on its image), relative to
the judge on real pairs, KID and precision / recall / density / coverage in the
judge's features, and the per-class mean-spectrum angle. Reruns skip finished steps
(VAEs, models, samples and scores are kept under --work-dir), so variants can be run in
several invocations, or two processes side by side, and then tabulated with --report.

Example:
    python benchmarks/alignment.py --dataset simulated-segmentation \\
        --judge outputs/judges/simulated-segmentation --variants dihedral no-augmentation
    python benchmarks/alignment.py --dataset simulated-segmentation \\
        --judge outputs/judges/simulated-segmentation --report
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from common import machine
from judge import fit_steps, load_judge, real_datamodule, reference_datamodule
from label_pool import LimitedDataModule, share_and_overrides
from label_pool import check_guide_pool as check_pool_of_guide
from lightning.pytorch import seed_everything
from torch import Tensor

from torchgeo_specdm import metrics
from torchgeo_specdm.datamodules import SyntheticMixDataModule
from torchgeo_specdm.demo import DIFFUSION_SETTINGS, VAE_SETTINGS
from torchgeo_specdm.evaluation.judges import predict_labels
from torchgeo_specdm.evaluation.report import evaluate_synthetic
from torchgeo_specdm.sample import file_sha256, generate
from torchgeo_specdm.tasks import LatentDiffusion, TwoStreamVAE

RESULTS = Path(__file__).parent / 'results'
#: Default seed of every VAE, diffusion model and sampling run (--seed).
SEED = 0

#: VAE settings (TwoStreamVAE arguments on top of the demo's).
VAES: dict[str, dict[str, Any]] = {
    'two_stream': {},
    'single_stream': {'architecture': 'single_stream'},
    'two_stream_mask_channels_2': {'mask_latent_channels': 2, 'latent_channels': 6},
    'two_stream_mask_kl_1e-4': {'mask_kl_weight': 1e-4},
}

#: Variant name -> VAE, LatentDiffusion arguments, sampler and steps, and guide options.
VARIANTS: dict[str, dict[str, Any]] = {
    'dihedral': {'vae': 'two_stream', 'diffusion': {'latent_augmentation': 'dihedral'}},
    'no-augmentation': {
        'vae': 'two_stream',
        'diffusion': {'latent_augmentation': 'none'},
    },
    'pixel-augmentation': {
        'vae': 'two_stream',
        'diffusion': {'latent_augmentation': 'pixel', 'cache_passes': 4},
    },
    'mask-weight-4': {
        'vae': 'two_stream',
        'diffusion': {'latent_augmentation': 'dihedral', 'mask_loss_weight': 4.0},
    },
    'ddim-50': {
        'vae': 'two_stream',
        'diffusion': {'latent_augmentation': 'dihedral'},
        'model': 'dihedral',
        'sampler': 'ddim',
        'steps': 50,
    },
    'ddpm-1000': {
        'vae': 'two_stream',
        'diffusion': {'latent_augmentation': 'dihedral'},
        'model': 'dihedral',
        'sampler': 'ddpm',
        'steps': 1000,
        'num_samples': 64,
    },
    'no-augmentation+mask-weight-4': {
        'vae': 'two_stream',
        'diffusion': {'latent_augmentation': 'none', 'mask_loss_weight': 4.0},
    },
    'no-augmentation-3x-steps': {
        'vae': 'two_stream',
        'diffusion': {'latent_augmentation': 'none'},
        'diffusion_steps_factor': 3,
    },
    'no-augmentation-6x-steps': {
        'vae': 'two_stream',
        'diffusion': {'latent_augmentation': 'none'},
        'diffusion_steps_factor': 6,
    },
    'mask-channels-2': {
        'vae': 'two_stream_mask_channels_2',
        'diffusion': {'latent_augmentation': 'none'},
    },
    'mask-kl-1e-4': {
        'vae': 'two_stream_mask_kl_1e-4',
        'diffusion': {'latent_augmentation': 'none'},
    },
    'single-stream': {
        'vae': 'single_stream',
        'diffusion': {'latent_augmentation': 'dihedral'},
    },
    'single-stream-no-augmentation': {
        'vae': 'single_stream',
        'diffusion': {'latent_augmentation': 'none'},
    },
}
#: Variants that sample the --base model with the guide (--guide) of the dataset.
GUIDED: dict[str, dict[str, Any]] = {
    'guided-1': {'alignment_guidance': 1.0},
    'guided-3': {'alignment_guidance': 3.0},
    'refined-relabel': {'refine': 'relabel'},
    'guided-1+relabel': {'alignment_guidance': 1.0, 'refine': 'relabel'},
}
VARIANTS |= {
    name: {'vae': 'two_stream', 'diffusion': {}, 'model': None, 'sample': sample}
    for name, sample in GUIDED.items()
}
VARIANTS |= {
    f'guided-1+relabel-{factor}x-steps': {
        'vae': 'two_stream',
        'diffusion': {},
        'model': f'no-augmentation-{factor}x-steps',
        'sample': GUIDED['guided-1+relabel'],
    }
    for factor in (3, 6)
}


def log(message: str) -> None:
    print(f'[{time.strftime("%H:%M:%S")}] {message}', flush=True)


def data(options: argparse.Namespace, batch_size: int = 16) -> Any:
    """The generators' training data: the labelled pool (--fraction, --pool-seed).

    With --unlabelled, the pool's pseudo-labelled images are appended to it.
    """
    share, overrides = share_and_overrides(
        options.dataset, options.fraction, options.pool_seed
    )
    real = real_datamodule(options.dataset, options.root, None, batch_size, overrides)
    pool = LimitedDataModule(real, share, options.pool_seed)
    if options.unlabelled is None:
        return pool
    return SyntheticMixDataModule(pool, options.unlabelled, 'append')


def training_pool(options: argparse.Namespace) -> dict[str, Any]:
    pool: dict[str, Any] = {'fraction': options.fraction, 'seed': options.pool_seed}
    if options.unlabelled is not None:
        manifest = Path(options.unlabelled) / 'manifest.json'
        pool['unlabelled'] = {
            'root': options.unlabelled,
            'num_samples': len(json.loads(manifest.read_text())['samples']),
            'manifest_sha256': file_sha256(manifest),
        }
    return pool


def check_unlabelled(options: argparse.Namespace) -> None:
    """Refuse an --unlabelled folder that is not the pool's pseudo-labelled images.

    Raises:
        SystemExit: if it is no pseudo_labels.py folder of this pool, or comes from
            another guide than --guide.
    """
    if options.unlabelled is None:
        return
    manifest = Path(options.unlabelled) / 'manifest.json'
    fix = (
        f'write it with benchmarks/pseudo_labels.py --fraction {options.fraction} '
        f'--pool-seed {options.pool_seed} --guide GUIDE'
    )
    if not manifest.is_file():
        raise SystemExit(
            f'--unlabelled {options.unlabelled} has no manifest.json: {fix}'
        )
    generator = json.loads(manifest.read_text()).get('generator', {})
    pool = {'fraction': options.fraction, 'seed': options.pool_seed}
    if (
        generator.get('sampler') != 'guide-pseudo-label'
        or generator.get('training_pool') != pool
    ):
        raise SystemExit(
            f'--unlabelled {options.unlabelled} holds no pseudo-labels of the pool '
            f'{pool}: {fix}'
        )
    if options.guide is not None:
        _, guide = load_judge(Path(options.guide), change=False)
        if generator.get('checkpoint_sha256') != guide['sha256']:
            raise SystemExit(
                f'--unlabelled {options.unlabelled} was labelled by another guide '
                f'than --guide {options.guide}: {fix.replace("GUIDE", options.guide)}'
            )


def train_vae(options: argparse.Namespace, name: str) -> Path:
    """The VAE of one setting, trained for --vae-steps (or the saved one)."""
    path = Path(options.work_dir) / 'vae' / name / 'vae.ckpt'
    if saved(path, options):
        return path
    log(f'training VAE {name} for {options.vae_steps} steps')
    seed_everything(options.seed)
    # The demo's VAE (specdm demo), at its factor 2.
    vae = TwoStreamVAE(downsampling_factor=2, **VAE_SETTINGS | VAES[name])
    began = time.perf_counter()
    fit_steps(vae, data(options), options.vae_steps, path.parent, checkpoint=path)
    _record(path, began, options.vae_steps, options)
    return path


def train_diffusion(options: argparse.Namespace, name: str, vae: Path) -> Path:
    """A variant's diffusion model, trained for --diffusion-steps (or the saved one)."""
    path = Path(options.work_dir) / 'diffusion' / name / 'diffusion.ckpt'
    if saved(path, options):
        return path
    steps = options.diffusion_steps * VARIANTS[name].get('diffusion_steps_factor', 1)
    log(f'training diffusion model {name} for {steps} steps')
    seed_everything(options.seed)
    # The demo's diffusion model (specdm demo), with the variant's changes.
    settings = DIFFUSION_SETTINGS | VARIANTS[name]['diffusion']
    model = LatentDiffusion(vae_checkpoint=os.fspath(vae), **settings)
    began = time.perf_counter()
    fit_steps(model, data(options, batch_size=32), steps, path.parent, checkpoint=path)
    _record(path, began, steps, options)
    return path


def saved(checkpoint: Path, options: argparse.Namespace) -> bool:
    """Whether *checkpoint* is already trained, with this run's --seed and data.

    Raises:
        SystemExit: If it was trained with another seed (records without one are
            from seed 0, the only seed before --seed existed) or on other
            training data (another pool or --unlabelled folder).
    """
    if not checkpoint.is_file():
        return False
    path = checkpoint.parent / 'train.json'
    record = json.loads(path.read_text()) if path.is_file() else {}
    seed = record.get('seed', 0)
    if seed != options.seed:
        raise SystemExit(
            f'{checkpoint} was trained with seed {seed}, not --seed {options.seed}: '
            'pass a --work-dir of its own to each seed'
        )
    pool = record.get('training_pool')
    if pool is not None and pool != training_pool(options):
        raise SystemExit(
            f'{checkpoint} was trained on {pool}, not {training_pool(options)}: pass '
            'a --work-dir of its own to each training set'
        )
    return True


def _record(
    checkpoint: Path, began: float, steps: int, options: argparse.Namespace
) -> None:
    """Write the optimizer steps, seed and training time beside a checkpoint."""
    record = {
        'optimizer_steps': steps,
        'seed': options.seed,
        'training_pool': training_pool(options),
        'seconds': time.perf_counter() - began,
        'sha256': file_sha256(checkpoint),
    }
    (checkpoint.parent / 'train.json').write_text(json.dumps(record, indent=2) + '\n')


def check_guide_pool(options: argparse.Namespace, guide: dict[str, Any]) -> None:
    """Refuse a guide that learned from labels outside the generators' pool.

    Raises:
        SystemExit: if the generators learn from a labelled pool (--fraction < 1)
            and the guide's record names another one (or none).
    """
    if options.fraction < 1:
        check_pool_of_guide(guide, options.fraction, options.pool_seed, options.guide)


def run_variant(
    options: argparse.Namespace, name: str, judge: Any, record: dict[str, Any]
) -> dict[str, Any]:
    """Train (or reuse), sample and score one variant."""
    out = Path(options.work_dir) / 'variants' / name
    result_path = out / 'result.json'
    if result_path.is_file():
        result = dict(json.loads(result_path.read_text()))
        if result.get('seed', 0) != options.seed:
            raise SystemExit(
                f'{result_path} comes from seed {result.get("seed", 0)}, not --seed '
                f'{options.seed}: pass a --work-dir of its own to each seed'
            )
        return result
    spec = VARIANTS[name]
    vae = train_vae(options, spec['vae'])
    model_name = spec.get('model', name) or options.base
    checkpoint = train_diffusion(options, model_name, vae)
    sample = dict(spec.get('sample', {}))
    if sample:
        if options.guide is None:
            raise SystemExit(f'variant {name} samples with a guide: pass --guide DIR')
        _, guide_record = load_judge(Path(options.guide), change=False)
        if guide_record['sha256'] == record['sha256']:
            raise SystemExit(
                '--guide is the judge: train a guide with judge.py --role guide'
            )
        check_guide_pool(options, guide_record)
        sample['guide'] = Path(options.guide) / 'judge.ckpt'
    sampler, steps = spec.get('sampler', 'dpmpp'), spec.get('steps', options.steps)
    count = spec.get('num_samples', options.num_samples)
    log(f'sampling {count} pairs of {name} ({sampler}, {steps} steps)')
    timing = out / 'sampling.json'
    began = time.perf_counter()
    generate(
        checkpoint,
        out / 'generated',
        count,
        sampler=sampler,
        steps=steps,
        seed=options.seed,
        **sample,
    )
    if not timing.is_file():  # a rescoring run resumes the folder: keep the first time
        seconds = {'seconds': time.perf_counter() - began, 'pairs': count}
        timing.write_text(json.dumps(seconds) + '\n')
    sampling_seconds = json.loads(timing.read_text())['seconds']
    manifest = json.loads((out / 'generated' / 'manifest.json').read_text())
    shares = [
        pair['refined_share'] for pair in manifest['samples'] if 'refined_share' in pair
    ]
    log(f'scoring {name}')
    scores = evaluate_synthetic(
        out / 'generated', reference(options), out / 'fidelity', judge
    )
    trained = json.loads((checkpoint.parent / 'train.json').read_text())
    result = {
        'variant': name,
        'seed': options.seed,
        'vae': spec['vae'],
        'diffusion': (
            VARIANTS[model_name]['diffusion'] if model_name in VARIANTS else {}
        ),
        'model': model_name,
        'sampler': sampler,
        'steps': steps,
        'sample': spec.get('sample', {}),
        'guide_sha256': file_sha256(sample['guide']) if sample else None,
        'diffusion_checkpoint_sha256': file_sha256(checkpoint),
        'diffusion_train_seconds': trained['seconds'],
        'diffusion_optimizer_steps': trained.get(
            'optimizer_steps', options.diffusion_steps
        ),
        'sampling_seconds_per_pair': sampling_seconds / count,
        'refined_share_mean': sum(shares) / len(shares) if shares else None,
        'num_synthetic': scores['num_synthetic'],
        'num_real_reference': scores['num_real'],
        **{k: scores.get(k) for k in ('alignment', 'kid', 'prdc')},
        'mean_class_spectrum_sam_degrees': scores['mean_class_spectrum_sam_degrees'],
        'class_spectrum_sam_degrees': scores['class_spectrum_sam_degrees'],
        'class_histogram_tv': scores['class_histogram_tv'],
        'judge_sha256': record['sha256'],
    }
    result_path.write_text(json.dumps(result, indent=2) + '\n')
    return result


def guidance_cost(options: argparse.Namespace, pairs: int = 32) -> dict[str, Any]:
    """Seconds per pair unguided, guided (S = 1) and guided + relabelled, one process.

    The three settings are timed back to back, twice in alternating order, on the
    --base model, so that they share the machine's load; the ratio is the figure.
    """
    path = Path(options.work_dir) / 'guidance_cost.json'
    if path.is_file():
        return dict(json.loads(path.read_text()))
    import tempfile

    log(f'timing guidance on {pairs} pairs')
    checkpoint = Path(options.work_dir) / 'diffusion' / options.base / 'diffusion.ckpt'
    guide = Path(options.guide) / 'judge.ckpt'
    settings: dict[str, dict[str, Any]] = {
        'unguided': {},
        'guided-1': {'guide': guide, 'alignment_guidance': 1.0},
        'guided-1+relabel': {
            'guide': guide,
            'alignment_guidance': 1.0,
            'refine': 'relabel',
        },
    }
    seconds: dict[str, list[float]] = {name: [] for name in settings}
    for order in (list(settings), list(reversed(settings))):
        for name in order:
            with tempfile.TemporaryDirectory() as folder:
                began = time.perf_counter()
                generate(
                    checkpoint,
                    Path(folder) / 'out',
                    pairs,
                    steps=options.steps,
                    seed=options.seed,
                    **settings[name],
                )
                seconds[name].append((time.perf_counter() - began) / pairs)
    per_pair = {name: min(values) for name, values in seconds.items()}
    result = {
        'pairs': pairs,
        'model': options.base,
        'sampler': f'dpmpp {options.steps}',
        'seconds_per_pair': per_pair,
        'ratio_to_unguided': {
            name: value / per_pair['unguided'] for name, value in per_pair.items()
        },
    }
    path.write_text(json.dumps(result, indent=2) + '\n')
    return result


def reference(options: argparse.Namespace) -> Any:
    return reference_datamodule(options.dataset, options.root)


def judge_ignore_index(judge: Any) -> int | None:
    """The label the judge was trained to ignore (Salinas-A: unlabelled), if any."""
    return judge.hparams.get('ignore_index')


@torch.no_grad()
def diagnostics(
    options: argparse.Namespace, judge: Any, vae_names: list[str]
) -> dict[str, Any]:
    """Judge agreement of real pairs, VAE reconstructions and rotated latents.

    Args:
        options: the command-line options.
        judge: the fixed judge.
        vae_names: the VAEs to diagnose (those of the finished variants); entries
            already saved in the work dir are kept, missing ones are added.
    """
    path = Path(options.work_dir) / 'diagnostics.json'
    saved = dict(json.loads(path.read_text())) if path.is_file() else {}
    missing = [name for name in vae_names if f'vae_{name}' not in saved]
    if saved and not missing:
        return saved
    log('diagnostics: real pairs, VAE reconstructions, rotated latents')
    datamodule = reference(options)
    datamodule.setup('validate')
    dataset = datamodule.val_dataset
    samples = [dataset[i] for i in range(len(dataset))]
    batch = datamodule.aug(
        {
            'image': torch.stack([s['image'] for s in samples]),
            'mask': torch.stack([s['mask'] for s in samples]),
        }
    )
    image, mask = batch['image'], batch['mask'].long()
    if mask.ndim == 4:
        mask = mask[:, 0]
    classes = int(judge.hparams['num_classes'])
    result: dict[str, Any] = {'num_pairs': len(image)}
    result['real'] = _agreement(judge, image, mask, mask, classes)
    result |= {key: entry for key, entry in saved.items() if key.startswith('vae_')}
    for name in missing:
        vae = TwoStreamVAE.from_checkpoint(train_vae(options, name)).eval()
        autoencoder = vae.autoencoder
        latents = autoencoder.join(autoencoder.encode_latents(image, mask))
        entry: dict[str, Any] = {}
        decoded, logits = autoencoder.decode_joint(latents)
        entry['reconstruction'] = _agreement(
            judge, decoded, logits.argmax(1), mask, classes
        )
        turned = torch.rot90(latents, 1, dims=(-2, -1))
        decoded, logits = autoencoder.decode_joint(turned)
        entry['rotated_latent'] = _agreement(
            judge,
            decoded,
            logits.argmax(1),
            torch.rot90(mask, 1, dims=(-2, -1)),
            classes,
        )
        result[f'vae_{name}'] = entry
    path.write_text(json.dumps(result, indent=2) + '\n')
    return result


def _agreement(
    judge: Any, image: Tensor, mask: Tensor, truth: Tensor, classes: int
) -> dict[str, float]:
    """Judge alignment of (image, mask) pairs, and the masks' accuracy against truth."""
    predicted = predict_labels(judge, image)
    ignore = judge_ignore_index(judge)
    alignment = metrics.alignment_scores(mask, predicted, classes, ignore_index=ignore)
    labelled = truth != ignore if ignore is not None else torch.ones_like(truth).bool()
    return {
        'alignment': float(alignment.mean()),
        'mask_accuracy': float((mask == truth)[labelled].float().mean()),
    }


def report(options: argparse.Namespace, record: dict[str, Any], seconds: float) -> None:
    """Collect every finished variant into benchmarks/results/alignment_<dataset>.*."""
    folder = Path(options.work_dir) / 'variants'
    variants = [
        json.loads((folder / name / 'result.json').read_text())
        for name in VARIANTS
        if (folder / name / 'result.json').is_file()
    ]
    vae_names = list(dict.fromkeys(VARIANTS[v['variant']]['vae'] for v in variants))
    diagnostic = diagnostics(
        options, load_judge(Path(options.judge), False)[0], vae_names
    )
    summary = {
        'dataset': options.dataset,
        'command': ' '.join(sys.argv),
        'machine': machine(),
        'protocol': {
            'seed': options.seed,
            'vae_steps': options.vae_steps,
            'diffusion_steps': options.diffusion_steps,
            'num_samples': options.num_samples,
            'training_pool': training_pool(options),
        },
        'judge': {
            'path': options.judge,
            'sha256': record['sha256'],
            'real_score': record['real_score'],
        },
        'diagnostics': diagnostic,
        'guidance_cost': guidance_cost(options) if options.guide else None,
        'variants': variants,
    }
    name = f'alignment_{options.dataset}' + (f'_{options.name}' if options.name else '')
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f'{name}.json').write_text(json.dumps(summary, indent=2) + '\n')
    (RESULTS / f'{name}.md').write_text(markdown(summary) + '\n')
    log(f'wrote {RESULTS / name}.json and .md')


def markdown(summary: dict[str, Any]) -> str:
    judge = summary['judge']
    protocol = summary['protocol']
    diagnostic = summary['diagnostics']
    real = diagnostic['real']['alignment']
    lines = [
        f'# Alignment ablation: {summary["dataset"]}',
        '',
        f'Command: `{summary["command"]}`',
        '',
        f'Machine: {summary["machine"]}.',
        '',
        f'Same seed ({protocol["seed"]}) for every variant; VAEs {protocol["vae_steps"]} '
        f'optimizer steps, diffusion models {protocol["diffusion_steps"]} steps, '
        f'{protocol["num_samples"]} pairs each; '
        + _pool_text(protocol.get('training_pool'))
        + ' One judge for every figure '
        f'(`{judge["path"]}`, sha256 `{judge["sha256"][:12]}`; its test score: '
        + ', '.join(
            f'{k} {v:.3f}' for k, v in judge['real_score'].items() if '/' not in k
        )
        + ').',
        '',
        f'## Diagnostics on real reference pairs ({diagnostic["num_pairs"]} pairs)',
        '',
        '| pairs | judge alignment | relative to real | mask accuracy against truth |',
        '| --- | --- | --- | --- |',
        f'| real | {real:.3f} | 1.00 | 1.000 |',
    ]
    for key, entry in diagnostic.items():
        if not key.startswith('vae_'):
            continue
        for kind, label in (
            ('reconstruction', 'reconstruction'),
            ('rotated_latent', 'rot90 of the latent'),
        ):
            value = entry[kind]
            lines.append(
                f'| {key[4:]} VAE, {label} | {value["alignment"]:.3f} | '
                f'{value["alignment"] / real:.2f} | {value["mask_accuracy"]:.3f} |'
            )
    lines += [
        '',
        '## Variants',
        '',
        (
            '| variant | VAE | training change | diffusion steps | sampler | pairs '
            '| alignment mean '
            '| relative to real | KID (+- std; two halves of the real set) | precision | recall | density '
            '| coverage | class-spectrum SAM (deg) | s / pair |'
        ),
        '| ' + ' | '.join(['---'] * 15) + ' |',
    ]
    for variant in summary['variants']:
        alignment = variant['alignment'] or {}
        kid = variant['kid'] or {}
        prdc = variant['prdc'] or {}
        change = ', '.join(f'{k}={v}' for k, v in variant['diffusion'].items()) or '-'
        if variant['sample']:
            change += '; sampled with ' + ', '.join(
                f'{k}={v}' for k, v in variant['sample'].items()
            )
            if variant.get('refined_share_mean') is not None:
                change += f' (refined share {variant["refined_share_mean"]:.3f})'
        lines.append(
            f'| {variant["variant"]} | {variant["vae"]} | {change} | '
            f'{variant["diffusion_optimizer_steps"]} | '
            f'{variant["sampler"]} {variant["steps"]} | {variant["num_synthetic"]} | '
            f'{alignment.get("mean", float("nan")):.3f} | '
            f'{alignment.get("relative", float("nan")):.2f} | '
            f'{kid.get("mean", float("nan")):.3f} +- {kid.get("std", float("nan")):.3f}'
            + (
                f' ({halves["mean"]:.3f} +- {halves["std"]:.3f})'
                if (halves := kid.get('real_halves'))
                else ''
            )
            + ' | '
            + ' | '.join(
                f'{prdc.get(k, float("nan")):.3f}'
                for k in ('precision', 'recall', 'density', 'coverage')
            )
            + f' | {variant["mean_class_spectrum_sam_degrees"]:.2f} | '
            f'{variant["sampling_seconds_per_pair"]:.3f} |'
        )
    cost = summary.get('guidance_cost')
    if cost is not None:
        lines += [
            '',
            f'Cost of guidance ({cost["pairs"]} pairs of the {cost["model"]} model, '
            f'{cost["sampler"]}, timed back to back in one process, best of two): '
            + ', '.join(
                f'{name} {seconds:.3f} s per pair ({cost["ratio_to_unguided"][name]:.1f}x)'
                for name, seconds in cost['seconds_per_pair'].items()
            )
            + '. The s / pair column above was timed while other jobs shared the CPU.',
        ]
    return '\n'.join(lines)


def _pool_text(pool: dict[str, Any] | None) -> str:
    if pool is None or pool['fraction'] >= 1:
        return 'the generators learned from the whole real training split.'
    text = (
        f'the generators (and the guide) learned from {pool["fraction"]:.0%} of the '
        f'real training split only (labelled pool drawn with seed {pool["seed"]})'
    )
    unlabelled = pool.get('unlabelled')
    if unlabelled is None:
        return text + '.'
    return (
        text + f', plus {unlabelled["num_samples"]} real training images outside the '
        f'pool labelled by the guide (`{unlabelled["root"]}`; no true mask outside '
        'the pool is read).'
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        '--dataset',
        default='simulated-segmentation',
        choices=['simulated-segmentation', 'salinas-a'],
    )
    parser.add_argument('--root', help='real dataset root (real datasets)')
    parser.add_argument('--judge', required=True, help='folder of benchmarks/judge.py')
    parser.add_argument('--variants', nargs='+', choices=list(VARIANTS), default=[])
    parser.add_argument(
        '--base',
        default='dihedral',
        choices=[name for name, spec in VARIANTS.items() if 'model' not in spec],
        help='the trained variant that the guided variants sample (default: %(default)s)',
    )
    parser.add_argument(
        '--guide', help='folder of a guide (benchmarks/judge.py --role guide)'
    )
    parser.add_argument('--vae-steps', type=int, default=1500)
    parser.add_argument('--diffusion-steps', type=int, default=1500)
    parser.add_argument('--num-samples', type=int, default=256)
    parser.add_argument('--steps', type=int, default=25, help='DPM-Solver++ steps')
    parser.add_argument(
        '--fraction',
        type=float,
        default=1.0,
        help='share of the real training labels the generators learn from (the '
        'labelled pool of a leak-free downstream comparison; default: all)',
    )
    parser.add_argument(
        '--pool-seed',
        type=int,
        default=0,
        help='seed of that draw, as benchmarks/downstream.py --pool-seed',
    )
    parser.add_argument(
        '--seed',
        type=int,
        default=SEED,
        help='seed of the VAEs, diffusion models and sampling, to repeat the '
        'ablation with other generators (a --work-dir of its own per seed; '
        'default: %(default)s)',
    )
    parser.add_argument(
        '--unlabelled',
        help='a benchmarks/pseudo_labels.py folder of this pool, added to the '
        "generators' training data (semi-supervised generators)",
    )
    parser.add_argument('--work-dir', default='outputs/alignment')
    parser.add_argument(
        '--name', help='suffix of the results files (alignment_DATASET_NAME.*)'
    )
    parser.add_argument(
        '--report', action='store_true', help='tabulate the finished variants'
    )
    options = parser.parse_args()
    check_unlabelled(options)
    began = time.perf_counter()
    judge, record = load_judge(Path(options.judge), change=False)
    if options.report:
        report(options, record, time.perf_counter() - began)
        return
    for name in options.variants:
        result = run_variant(options, name, judge, record)
        alignment = result['alignment'] or {}
        log(
            f'{name}: alignment {alignment.get("mean"):.3f} '
            f'(relative {alignment.get("relative"):.2f})'
        )


if __name__ == '__main__':
    main()
