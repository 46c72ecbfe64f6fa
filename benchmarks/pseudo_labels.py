"""Self-training control: the pool's unlabelled real images, labelled by the guide.

SpecDM's guided and relabelled pairs carry the guide's knowledge twice: guidance steers
each generated mask towards the guide's prediction, and relabelling copies the guide's
confident labels into it. A reviewer asks what the generator adds beyond the guide. The
control answers it without a generator: the real training images that the labelled pool
leaves out (nothing trains on their true masks), labelled by the same guide's
predictions (every pixel, its most probable class), written in the generated-dataset
format, each sample's seed being its index in the training split. Then
``benchmarks/downstream.py --extra-synthetic pseudo-labels=DIR`` trains on them exactly
as on generated pairs, with the same steps, seeds and pool. The script then prints how
well the labels match the true masks, which a simulator knows.

Example:
    python benchmarks/pseudo_labels.py --dataset simulated-segmentation \\
        --guide outputs/guides/simulated-segmentation-pool10 --fraction 0.1 \\
        --pool-seed 0 --num-samples 256 --out outputs/pseudo-labels-pool10
"""

import argparse
from pathlib import Path
from typing import Any

import rasterio
import torch
from judge import load_judge, real_datamodule
from label_pool import check_guide_pool, pool_order
from torchmetrics.classification import MulticlassJaccardIndex
from tqdm import tqdm

from torchgeo_specdm import __version__
from torchgeo_specdm.evaluation.judges import predict_labels
from torchgeo_specdm.export import DatasetWriter, load_manifest

#: Datasets whose training split is a list of samples the pool draws from.
DATASETS = ('simulated-segmentation',)


def unlabelled_indices(
    size: int, fraction: float, pool_seed: int, num_samples: int
) -> list[int]:
    """Training samples outside the labelled pool, in the pool's draw order.

    Args:
        size: number of training samples.
        fraction: share of them in the labelled pool.
        pool_seed: seed of the pool's draw (``downstream.py --pool-seed``).
        num_samples: how many to return.

    Returns:
        ``num_samples`` indices, none of them in the pool.

    Raises:
        SystemExit: if fewer than ``num_samples`` samples lie outside the pool.
    """
    _, rest = pool_order(size, fraction, pool_seed)
    if num_samples > len(rest):
        raise SystemExit(
            f'--num-samples {num_samples}: only {len(rest)} of the {size} training '
            f'samples lie outside the {fraction:.0%} pool; pass at most {len(rest)}'
        )
    return rest[:num_samples]


@torch.inference_mode()
def write_pseudo_labels(
    datamodule: Any,
    guide_dir: Path,
    fraction: float,
    pool_seed: int,
    num_samples: int,
    out: Path,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Label the pool's unlabelled training images with the guide and write them.

    Reruns skip the samples already written.

    Args:
        datamodule: the real datamodule of a dataset of :data:`DATASETS`, set up
            for 'fit'.
        guide_dir: folder of ``benchmarks/judge.py --role guide``.
        fraction: share of the training split in the labelled pool.
        pool_seed: seed of the pool's draw.
        num_samples: images to label.
        out: the generated-dataset folder to write.
        batch_size: images per forward pass.

    Returns:
        the folder's manifest.
    """
    guide, record = load_judge(guide_dir, change=False)
    check_guide_pool(record, fraction, pool_seed, str(guide_dir))
    guide.eval()
    train = datamodule.train_dataset
    indices = unlabelled_indices(len(train), fraction, pool_seed, num_samples)
    writer = DatasetWriter(
        out,
        task='segmentation',
        bands=datamodule.bands,
        num_classes=datamodule.num_classes,
        class_names=datamodule.class_names,
        generator={
            'checkpoint_sha256': record['sha256'],
            'sampler': 'guide-pseudo-label',
            'steps': 1,
            'guidance_scale': 0.0,
            'request': None,
            'seed': pool_seed,
            'package_version': __version__,
            'source': 'real training images outside the labelled pool',
            'training_pool': {'fraction': fraction, 'seed': pool_seed},
            'train_indices': indices,
        },
    )
    done = writer.completed()
    todo = [number for number in range(num_samples) if number not in done]
    for start in tqdm(range(0, len(todo), batch_size), desc='pseudo-labels'):
        numbers = todo[start : start + batch_size]
        samples = [train[indices[number]] for number in numbers]
        image = torch.stack([sample['image'] for sample in samples])
        mask = torch.stack([sample['mask'] for sample in samples])
        normalised = datamodule.aug({'image': image.clone(), 'mask': mask})['image']
        labels = predict_labels(guide, normalised)
        for number, raw, label in zip(numbers, image, labels, strict=True):
            writer.write(number, raw, label.to(torch.uint8), seed=indices[number])
    return writer.finalize(num_samples)


def agreement_with_truth(out: Path, datamodule: Any) -> dict[str, float]:
    """How well the written labels match the true masks (simulators know them).

    The true masks are read for this report only; nothing trains on them.

    Args:
        out: a folder written by :func:`write_pseudo_labels`.
        datamodule: the datamodule it was written from.

    Returns:
        ``miou`` and ``pixel_accuracy`` of the written masks against the truth.
    """
    manifest = load_manifest(out)
    train = datamodule.train_dataset
    indices = manifest['generator']['train_indices']
    miou = MulticlassJaccardIndex(datamodule.num_classes, average='macro')
    correct = total = 0
    for sample in manifest['samples']:
        with rasterio.open(out / sample['mask']) as source:
            label = torch.from_numpy(source.read(1)).long()
        truth = train[indices[int(sample['id'])]]['mask'].long()
        miou.update(label[None], truth[None])
        correct += int((label == truth).sum())
        total += truth.numel()
    return {'miou': float(miou.compute()), 'pixel_accuracy': correct / total}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--dataset', choices=DATASETS, required=True)
    parser.add_argument(
        '--guide', required=True, help='folder of benchmarks/judge.py --role guide'
    )
    parser.add_argument('--fraction', type=float, required=True)
    parser.add_argument('--pool-seed', type=int, default=0)
    parser.add_argument('--num-samples', type=int, default=256)
    parser.add_argument('--out', required=True, help='generated-dataset folder')
    options = parser.parse_args()
    datamodule = real_datamodule(options.dataset, None, None, 16)
    datamodule.setup('fit')
    manifest = write_pseudo_labels(
        datamodule,
        Path(options.guide),
        options.fraction,
        options.pool_seed,
        options.num_samples,
        Path(options.out),
    )
    print(f'{len(manifest["samples"])} pseudo-labelled images in {options.out}')
    scores = agreement_with_truth(Path(options.out), datamodule)
    print(
        f'against the true masks (read for this line only): mIoU {scores["miou"]:.3f}, '
        f'pixel accuracy {scores["pixel_accuracy"]:.3f}'
    )


if __name__ == '__main__':
    main()
