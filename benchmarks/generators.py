"""Train the generators of a downstream comparison on its real training split only.

``specdm demo`` trains a VAE, a diffusion model (and, for segmentation, a guide) and
samples a generated folder; this script runs it with the benchmark's training data,
so that no generator sees a test city or scene: on OSCD the cities of ``--test-root``
are left out of training and validation, as in ``benchmarks/downstream.py``. Each
architecture writes ``OUT/ARCHITECTURE/`` (``generated/`` is the folder to pass to
``downstream.py --specdm-synthetic`` / ``--baseline-synthetic``).

Example:
    python benchmarks/generators.py --dataset oscd --root ../shared/data/oscd_full \\
        --test-root outputs/oscd_full_test --budget-minutes 9 --out outputs/generators
"""

import argparse
from pathlib import Path
from typing import Any

from judge import heldout_cities

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
    parser.add_argument('--out', default='outputs/generators')
    options = parser.parse_args()
    data_kwargs = training_split(options.dataset, options.test_root)
    for architecture in options.architectures:
        run_demo(
            Path(options.out) / architecture,
            options.dataset,
            options.root,
            options.budget_minutes,
            options.num_samples,
            seed=options.seed,
            data_kwargs=data_kwargs,
            architecture=architecture,  # type: ignore[arg-type]
        )


if __name__ == '__main__':
    main()
