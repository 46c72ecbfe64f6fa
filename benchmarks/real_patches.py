"""Real-data control: real OSCD training patches, written as a generated folder.

A generated change set that adds almost no change pixel can raise change F1 by
adding near-negative patches alone: the detector learns fewer false alarms and
trades recall for precision. A reviewer asks whether a generated folder adds more
than that. This control answers without a generator: random patches of the real
training cities (never a validation or test city), drawn from a seed, written in
the generated-dataset format with their true masks. ``--contents unchanged`` keeps
only patches without a changed pixel (the control of a folder whose masks hold
no change); ``--contents any`` draws them as the training loader does (the share
of patches placed on change included), i.e. more copies of the real distribution.
Then ``benchmarks/downstream.py --extra-synthetic real-unchanged=DIR`` trains on
them exactly as on generated pairs, with the same steps and seeds.

With ``--outside-pool FRACTION --pool-seed S`` the patches come from the training
cities that the labelled pool of ``downstream.py --fractions FRACTION --pool-seed S``
leaves out: an oracle, perfectly labelled extra data of other cities, whose gain
bounds what a generator trained on that pool could add.

The images are those the detectors see: with the same scene statistics
(matched, unless ``--raw-scene-statistics``) and patch size as
``downstream.py``'s defaults. The manifest's ``checkpoint_sha256`` is the sha256 of
the draw (cities, windows and settings): there is no checkpoint.

Example:
    python benchmarks/real_patches.py --root ../shared/data/oscd_full \\
        --test-root outputs/oscd_full_test --contents unchanged --num-samples 256 \\
        --out outputs/oscd_variants/real-unchanged
"""

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import torch
from judge import real_datamodule
from label_pool import pool_order, scene_subset
from tqdm import tqdm

from torchgeo_specdm import __version__
from torchgeo_specdm.datasets.patches import ScenePatches
from torchgeo_specdm.export import DatasetWriter

#: How many random windows to try per requested patch before giving up.
MAX_DRAWS_PER_PATCH = 100

Contents = Literal['unchanged', 'any']


def draw_windows(
    train: ScenePatches, contents: Contents, num_samples: int, seed: int
) -> list[tuple[int, int, int]]:
    """Random windows of the training scenes, in draw order.

    Args:
        train: the training patches: their scenes, patch size and (for 'any') share
            of patches placed around a changed pixel are used.
        contents: 'unchanged' keeps only windows without a changed pixel; 'any'
            keeps every window.
        num_samples: how many windows to return.
        seed: seed of the draw.

    Returns:
        ``num_samples`` windows (scene index, top, left).

    Raises:
        SystemExit: if ``contents='unchanged'`` finds too few windows without
            change.
    """
    unchanged = contents == 'unchanged'
    draws = num_samples * (MAX_DRAWS_PER_PATCH if unchanged else 1)
    candidates = ScenePatches(
        train.scenes,
        train.patch_size,
        num_patches=draws,
        seed=seed,
        positive_share=0.0 if unchanged else train.positive_share,
    )
    windows: list[tuple[int, int, int]] = []
    for index in range(draws):
        if unchanged and bool((candidates[index]['mask'] > 0).any()):
            continue
        windows.append(candidates.window(index))
        if len(windows) == num_samples:
            return windows
    raise SystemExit(
        f'--num-samples {num_samples}: only {len(windows)} of {draws} random windows '
        f'of {train.patch_size} px hold no changed pixel; pass a smaller '
        '--num-samples or a smaller patch size'
    )


def outside_pool(
    train: ScenePatches, cities: list[str], fraction: float, pool_seed: int
) -> tuple[ScenePatches, list[str]]:
    """The training scenes that a labelled pool leaves out.

    Args:
        train: the training patches of every training city.
        cities: their city names, in scene order.
        fraction: share of the training cities in the pool.
        pool_seed: seed of the pool's draw (``downstream.py --pool-seed``).

    Returns:
        the patches of the other cities, and their names.

    Raises:
        SystemExit: if the pool holds every training city.
    """
    _, rest = pool_order(len(train.scenes), fraction, pool_seed)
    if not rest:
        raise SystemExit(
            f'--outside-pool {fraction}: the pool holds all {len(cities)} training '
            'cities, so none is left to draw from; pass a smaller fraction'
        )
    return scene_subset(train, rest), [cities[i] for i in rest]


def write_real_patches(
    datamodule: Any,
    contents: Contents,
    num_samples: int,
    seed: int,
    out: Path,
    pool: tuple[float, int] | None = None,
) -> dict[str, Any]:
    """Write random real training patches with their true masks.

    Reruns skip the samples already written; a folder of another draw is refused.

    Args:
        datamodule: an OSCD patch datamodule, set up for 'fit'.
        contents: which patches to keep (see :func:`draw_windows`).
        num_samples: patches to write.
        seed: seed of the draw.
        out: the generated-dataset folder to write.
        pool: (fraction, seed) of a labelled pool whose cities are left out;
            None draws from every training city.

    Returns:
        the folder's manifest.
    """
    train = datamodule.train_dataset
    cities = list(datamodule.train_cities)
    if pool is not None:
        train, cities = outside_pool(train, cities, *pool)
    windows = draw_windows(train, contents, num_samples, seed)
    draw = {
        'source': 'real training patches of benchmarks/real_patches.py',
        'contents': contents,
        'train_cities': cities,
        'outside_pool': None
        if pool is None
        else {'fraction': pool[0], 'seed': pool[1]},
        'patch_size': train.patch_size,
        'match_scene_statistics': datamodule.match_scene_statistics,
        'windows': [[cities[scene], top, left] for scene, top, left in windows],
    }
    digest = hashlib.sha256(json.dumps(draw, sort_keys=True).encode()).hexdigest()
    writer = DatasetWriter(
        out,
        task='change',
        bands=datamodule.bands,
        num_classes=datamodule.num_classes,
        class_names=datamodule.class_names,
        generator={
            'checkpoint_sha256': digest,
            'sampler': 'real-patches',
            'steps': 1,
            'guidance_scale': 0.0,
            'request': None,
            'seed': seed,
            'package_version': __version__,
        }
        | draw,
    )
    done = writer.completed()
    patches = ScenePatches(train.scenes, train.patch_size, windows=windows)
    for number in tqdm(range(num_samples), desc='real patches'):
        if number in done:
            continue
        patch = patches[number]
        writer.write(
            number, patch['image'].float(), patch['mask'].to(torch.uint8), seed=number
        )
    return writer.finalize(num_samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--root', required=True, help='OSCD root')
    parser.add_argument(
        '--test-root',
        help='held-out OSCD root (benchmarks/heldout_oscd.py): its cities are left '
        'out, as in downstream.py',
    )
    parser.add_argument('--contents', choices=['unchanged', 'any'], required=True)
    parser.add_argument('--num-samples', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--outside-pool',
        type=float,
        metavar='FRACTION',
        help='draw only from the training cities that the labelled pool of this '
        'fraction (downstream.py --fractions) leaves out',
    )
    parser.add_argument(
        '--pool-seed', type=int, default=0, help='seed of that pool (default 0)'
    )
    parser.add_argument(
        '--raw-scene-statistics',
        action='store_true',
        help='keep the raw values of each city and date (as downstream.py)',
    )
    parser.add_argument('--out', required=True, help='generated-dataset folder')
    options = parser.parse_args()
    if options.num_samples < 1:
        parser.error(f'--num-samples {options.num_samples}: must be at least 1')
    if options.outside_pool is not None and not 0 < options.outside_pool < 1:
        parser.error(f'--outside-pool {options.outside_pool}: must lie in (0, 1)')
    overrides = (
        {'match_scene_statistics': False} if options.raw_scene_statistics else {}
    )
    datamodule = real_datamodule('oscd', options.root, options.test_root, 16, overrides)
    datamodule.setup('fit')
    manifest = write_real_patches(
        datamodule,
        options.contents,
        options.num_samples,
        options.seed,
        Path(options.out),
        None
        if options.outside_pool is None
        else (options.outside_pool, options.pool_seed),
    )
    changed = sum(sample['class_fractions'][1] for sample in manifest['samples'])
    print(
        f'{len(manifest["samples"])} real patches ({options.contents}) from '
        f'{", ".join(manifest["generator"]["train_cities"])} in {options.out}; '
        'change share '
        f'{changed / len(manifest["samples"]):.2%}'
    )


if __name__ == '__main__':
    main()
