"""One generated-dataset folder holding the samples of several, in order.

``benchmarks/downstream.py`` mixes one folder into the real training data per regime.
To train on two sources at once (the self-training control's pseudo-labelled real
images and a generator's pairs), merge them first: the samples of each source, in
source order, renumbered from 0, each keeping its seed and optional fields. The
manifest names every source folder with its manifest's sha256. Reruns skip the
samples already written.

Example:
    python benchmarks/merge_synthetic.py --sources outputs/pseudo-labels-pool10-all \\
        outputs/alignment-pool10-semi/variants/guided-1+relabel-3x-steps/generated \\
        --out outputs/pseudo-and-specdm-semi-pool10
"""

import argparse
import hashlib
from pathlib import Path
from typing import Any

from tqdm import tqdm

from torchgeo_specdm import __version__
from torchgeo_specdm.datasets import SyntheticDataset
from torchgeo_specdm.datasets.manifest import EXTRA_KEYS
from torchgeo_specdm.export import DatasetWriter
from torchgeo_specdm.sample import file_sha256

#: The manifest keys every source must share.
SHARED = ('task', 'bands', 'num_classes', 'class_names')


def merge(sources: list[Path], out: Path) -> dict[str, Any]:
    """Write the samples of every source folder into one folder.

    Args:
        sources: generated-dataset folders with the same task, bands and classes.
        out: the folder to write.

    Returns:
        the merged folder's manifest.

    Raises:
        SystemExit: if fewer than two sources are given or they do not match.
    """
    if len(sources) < 2:
        raise SystemExit('--sources: give at least two generated-dataset folders')
    datasets = [SyntheticDataset(source) for source in sources]
    first = datasets[0].manifest
    for source, dataset in zip(sources[1:], datasets[1:], strict=True):
        for key in SHARED:
            if dataset.manifest[key] != first[key]:
                raise SystemExit(
                    f'--sources {source}: its {key} {dataset.manifest[key]!r} differs '
                    f"from {sources[0]}'s {first[key]!r}; merge folders of one "
                    'dataset only'
                )
    records = [
        {
            'root': str(source),
            'manifest_sha256': file_sha256(source / 'manifest.json'),
            'num_samples': len(dataset),
            'generator': dataset.manifest['generator'],
        }
        for source, dataset in zip(sources, datasets, strict=True)
    ]
    digest = hashlib.sha256(
        ''.join(record['manifest_sha256'] for record in records).encode()
    ).hexdigest()
    writer = DatasetWriter(
        out,
        task=first['task'],
        bands=first['bands'],
        num_classes=first['num_classes'],
        class_names=first['class_names'],
        generator={
            'checkpoint_sha256': digest,
            'sampler': 'merged',
            'steps': 1,
            'guidance_scale': 0.0,
            'request': None,
            'seed': 0,
            'package_version': __version__,
            'sources': records,
        },
    )
    done = writer.completed()
    entries = [
        (dataset, position) for dataset in datasets for position in range(len(dataset))
    ]
    for number, (dataset, position) in enumerate(tqdm(entries, desc='merging')):
        if number in done:
            continue
        sample = dataset[position]
        record = dataset.samples[position]
        extra = {key: record[key] for key in EXTRA_KEYS if key in record}
        mask = sample['mask'][0] if dataset.task == 'change' else sample['mask']
        writer.write(number, sample['image'], mask, seed=record['seed'], extra=extra)
    return writer.finalize(len(entries))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        '--sources', nargs='+', required=True, help='generated-dataset folders'
    )
    parser.add_argument('--out', required=True, help='the merged folder')
    options = parser.parse_args()
    manifest = merge([Path(source) for source in options.sources], Path(options.out))
    print(f'{len(manifest["samples"])} samples in {options.out}')


if __name__ == '__main__':
    main()
