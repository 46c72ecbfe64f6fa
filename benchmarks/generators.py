"""Train the generators of a downstream comparison on its real training split only.

``specdm demo`` trains a VAE, a diffusion model (and, for segmentation, a guide) and
samples a generated folder; this script runs it with the benchmark's training data,
so that no generator sees a test city or scene: on OSCD the cities of ``--test-root``
are left out of training and validation, as in ``benchmarks/downstream.py``. Each
architecture writes ``OUT/ARCHITECTURE/`` (``generated/`` is the folder to pass to
``downstream.py --specdm-synthetic`` / ``--baseline-synthetic``).

With ``--fraction`` below 1 the generators learn from the labelled pool that
``downstream.py --fractions F --pool-seed S`` gives real only: the same draw of
OSCD training cities, or of Salinas-A labelled pixels, so that the mixed regimes get
no label that real only never saw.

Example:
    python benchmarks/generators.py --dataset oscd --root ../shared/data/oscd_full \\
        --test-root outputs/oscd_full_test --budget-minutes 9 --out outputs/generators
    python benchmarks/generators.py --dataset oscd --root ../shared/data/oscd_full \\
        --test-root outputs/oscd_full_test --fraction 0.25 --pool-seed 0 \\
        --out outputs/generators_pool25
"""

import argparse
from pathlib import Path
from typing import Any

from judge import heldout_cities, kept_cities, real_datamodule
from label_pool import LABEL_FRACTION_DATASETS, LimitedDataModule, share_and_overrides

from torchgeo_specdm.datamodules.registry import DATASET_NAMES
from torchgeo_specdm.demo import run_demo


def training_split(dataset: str, test_root: str | None) -> dict[str, Any]:
    """The datamodule arguments that keep a comparison's test data from the generators.

    Raises:
        SystemExit: for OSCD without a held-out root.
    """
    if dataset != 'oscd':
        return {}
    if test_root is None:
        raise SystemExit('--dataset oscd needs --test-root (its cities stay unseen)')
    return {'exclude_cities': heldout_cities(test_root)}


def labelled_pool(
    dataset: str, root: str | None, test_root: str | None, fraction: float, seed: int
) -> dict[str, Any]:
    """The datamodule arguments that restrict the generators to one labelled pool.

    Args:
        dataset: dataset family.
        root: real dataset root.
        test_root: OSCD root whose cities stay unseen.
        fraction: share of the real training labels in the pool.
        seed: seed of the draw (``downstream.py --pool-seed``).

    Returns:
        OSCD: the pool's cities (``city_pool``); Salinas-A: its label fraction.

    Raises:
        SystemExit: for a dataset whose pool is a share of samples (the simulator:
            use ``benchmarks/alignment.py --fraction``).
    """
    if fraction >= 1:
        return {}
    share, overrides = share_and_overrides(dataset, fraction, seed)
    if dataset in LABEL_FRACTION_DATASETS:
        return overrides
    if dataset != 'oscd':
        raise SystemExit(
            f'--fraction {fraction}: not supported for {dataset}; '
            'benchmarks/alignment.py --fraction trains generators on its pool'
        )
    pool = LimitedDataModule(real_datamodule(dataset, root, test_root, 16), share, seed)
    pool.setup('fit')
    return {'city_pool': kept_cities(pool)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--dataset', choices=DATASET_NAMES, required=True)
    parser.add_argument('--root', help='real dataset root')
    parser.add_argument(
        '--test-root', help='OSCD: held-out root whose cities no generator may see'
    )
    parser.add_argument(
        '--architectures',
        nargs='+',
        choices=['two_stream', 'single_stream'],
        default=['two_stream', 'single_stream'],
    )
    parser.add_argument('--budget-minutes', type=float, default=9.0)
    parser.add_argument('--num-samples', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--fraction',
        type=float,
        default=1.0,
        help='share of the real training labels the generators learn from, drawn '
        'as downstream.py --fractions F --pool-seed S draws it (default: all)',
    )
    parser.add_argument(
        '--pool-seed', type=int, default=0, help='seed of that draw (default: 0)'
    )
    parser.add_argument('--out', default='outputs/generators')
    options = parser.parse_args()
    data_kwargs = training_split(options.dataset, options.test_root) | labelled_pool(
        options.dataset,
        options.root,
        options.test_root,
        options.fraction,
        options.pool_seed,
    )
    if data_kwargs.get('city_pool'):
        print(f'labelled pool: {", ".join(data_kwargs["city_pool"])}', flush=True)
    for architecture in options.architectures:
        run_demo(
            Path(options.out) / architecture,
            options.dataset,
            options.root,
            options.budget_minutes,
            options.num_samples,
            seed=options.seed,
            data_kwargs=data_kwargs,
            architecture=architecture,
        )


if __name__ == '__main__':
    main()
