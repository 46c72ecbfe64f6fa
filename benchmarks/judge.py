"""Train the fixed judge of a dataset: one real-trained model that scores every generator.

Alignment (does a generated mask agree with its generated image?), KID, precision /
recall / density / coverage and the projected Fréchet distance all need a model
trained on real data. If each generator brought its own, two generators would be
measured with two yardsticks. The judge is trained once, on the real training split
only (never validation or test data), for longer than a downstream run and with its
own seed, then saved with its sha256 and its own score on the real test split, and
every result file names it (``judge: {path, sha256, real_score}``).

Example:
    python benchmarks/judge.py --dataset oscd --root ../shared/data/oscd_full \\
        --test-root outputs/oscd_full_test --out outputs/judges/oscd
"""

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from label_pool import LimitedDataModule, share_and_overrides
from lightning.pytorch import seed_everything

from torchgeo_specdm.datamodules.registry import DATASET_NAMES, demo_datamodule
from torchgeo_specdm.evaluation.judges import (
    ChangeModel,
    calibrate_change_threshold,
    downstream_task_for,
    load_downstream,
    score_downstream,
)
from torchgeo_specdm.sample import file_sha256
from torchgeo_specdm.tasks.utils import steps_trainer

#: Seed of every judge: no downstream run (seeds 0, 1, ...) shares its initialisation.
JUDGE_SEED = 1000
#: Seed and encoder of a guide (``--role guide``): a real-trained model that steers or
#: refines sampling must not be the judge that scores it.
GUIDE_SEED = 2000
ROLES = {'judge': (JUDGE_SEED, 'resnet18'), 'guide': (GUIDE_SEED, 'resnet34')}
#: Optimizer steps of the judge per dataset family (several downstream runs' worth).
JUDGE_STEPS = {'oscd': 900, 'simulated-segmentation': 900, 'salinas-a': 900}
#: TorchGeo change models a change judge or downstream detector can take.
CHANGE_MODELS = get_args(ChangeModel)
#: Share of OSCD training patches placed around a changed pixel.
CHANGE_PATCH_SHARE = 0.25
#: Held-out simulator scenes that generated pairs are scored against: the simulator's
#: validation split is small, so the reference gets as many scenes as there are pairs.
REFERENCE_SCENES = 256
IMAGES = 'Onera Satellite Change Detection dataset - Images'
TEST_LABELS = 'Onera Satellite Change Detection dataset - Test Labels'


def heldout_cities(test_root: str | None) -> list[str]:
    """The cities of an OSCD root's ``Test Labels`` folder (none without a root)."""
    if test_root is None:
        return []
    folder = Path(test_root) / TEST_LABELS
    if not folder.is_dir():
        raise SystemExit(f'--test-root {test_root}: no "{TEST_LABELS}" folder in it')
    return sorted(path.name for path in folder.iterdir())


def real_datamodule(
    dataset: str,
    root: str | None,
    test_root: str | None,
    batch_size: int,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """The real training data of the protocol: the test root's cities left out.

    Args:
        dataset: dataset family.
        root: real dataset root.
        test_root: OSCD root whose ``Test Labels`` cities are the test split.
        batch_size: mini-batch size.
        overrides: more datamodule arguments.

    Returns:
        the datamodule; for OSCD its training and validation cities exclude
        every test city.
    """
    kwargs = dict(overrides or {})
    if dataset == 'oscd':
        kwargs |= {
            'exclude_cities': heldout_cities(test_root),
            'change_patch_share': CHANGE_PATCH_SHARE,
        }
    return demo_datamodule(dataset, root, batch_size, kwargs)


def reference_datamodule(
    dataset: str,
    root: str | None,
    test_root: str | None = None,
    batch_size: int = 16,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """The real data that generated pairs are scored against (its validation split).

    Args:
        dataset: dataset family.
        root: real dataset root.
        test_root: OSCD root whose ``Test Labels`` cities are left out.
        batch_size: mini-batch size.
        overrides: more datamodule arguments.

    Returns:
        :func:`real_datamodule`, with :data:`REFERENCE_SCENES` validation scenes
        for the simulators.
    """
    extra = {'num_val': REFERENCE_SCENES} if dataset.startswith('simulated') else {}
    return real_datamodule(
        dataset, root, test_root, batch_size, (overrides or {}) | extra
    )


def heldout_datamodule(
    dataset: str,
    root: str | None,
    test_root: str | None,
    batch_size: int,
    overrides: dict[str, Any] | None = None,
) -> tuple[Any, Literal['val', 'test']]:
    """The real test data, and the name of its split.

    Raises:
        SystemExit: for OSCD without a held-out root, whose only labelled
            cities are the training and validation ones.
    """
    if dataset == 'oscd':
        if test_root is None:
            raise SystemExit(
                '--dataset oscd needs --test-root: a root with a "Test Labels" folder '
                '(benchmarks/heldout_oscd.py makes one); validation cities never test'
            )
        return demo_datamodule(dataset, test_root, batch_size, overrides), 'test'
    return demo_datamodule(dataset, root, batch_size, overrides), 'test'


def fit_steps(
    task: Any, datamodule: Any, steps: int, work: Path, checkpoint: Path | None = None
) -> int:
    """Train for exactly ``steps`` optimizer steps, with no validation pass.

    Args:
        task: the LightningModule.
        datamodule: its data.
        steps: optimizer steps.
        work: Lightning's root folder.
        checkpoint: where to save the trained weights (written atomically), if set.

    Returns:
        the optimizer steps taken.
    """
    trainer = steps_trainer(steps, work)
    trainer.fit(task, datamodule=datamodule)
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        temporary = checkpoint.with_name(f'.{checkpoint.name}.tmp')
        trainer.save_checkpoint(temporary, weights_only=True)
        os.replace(temporary, checkpoint)
    return int(trainer.global_step)


def train_judge(
    dataset: str,
    root: str | None,
    test_root: str | None,
    out: Path,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    role: str = 'judge',
    fraction: float = 1.0,
    pool_seed: int = 0,
    change_model: ChangeModel = 'unet',
) -> dict[str, Any]:
    """Train, save and score the judge (or a guide) of a dataset.

    Args:
        dataset: dataset family.
        root: real dataset root.
        test_root: OSCD root whose ``Test Labels`` cities are the test split.
        out: folder of ``judge.ckpt`` and ``judge.json``.
        steps: optimizer steps.
        batch_size: mini-batch size.
        lr: learning rate.
        role: judge or guide (seed and encoder).
        fraction: share of the real training labels it learns from (a guide of a
            leak-free comparison learns from its labelled pool only).
        pool_seed: seed of that draw (``benchmarks/downstream.py --pool-seed``).
        change_model: TorchGeo change model of a change detector.

    Returns:
        the judge record: ``path``, ``sha256``, ``real_score`` (on the real test
        split), ``split``, ``optimizer_steps``, ``seed``, ``backbone``, ``role``,
        the training cities (OSCD) and ``seconds``.
    """
    began = time.perf_counter()
    seed, backbone = ROLES[role]
    seed_everything(seed)
    share, overrides = share_and_overrides(dataset, fraction, pool_seed)
    datamodule = LimitedDataModule(
        real_datamodule(dataset, root, test_root, batch_size, overrides),
        share,
        pool_seed,
    )
    task = downstream_task_for(
        datamodule,
        lr=lr,
        schedule='steps',
        backbone=backbone,
        change_model=change_model,
    )
    out.mkdir(parents=True, exist_ok=True)
    taken = fit_steps(task, datamodule, steps, out / 'lightning')
    path = out / 'judge.ckpt'
    temporary = out / '.judge.ckpt.tmp'
    torch.save(
        {'hyper_parameters': dict(task.hparams), 'state_dict': task.state_dict()},
        temporary,
    )
    os.replace(temporary, path)
    record = {
        'path': os.fspath(path),
        'sha256': file_sha256(path),
        'optimizer_steps': taken,
        'seed': seed,
        'backbone': backbone,
        'role': role,
        'training_pool': {'fraction': fraction, 'seed': pool_seed},
        'train_samples': datamodule.train_samples,
        'train_cities': kept_cities(datamodule),
        'val_cities': getattr(datamodule.real, 'val_cities', None),
        'seconds': time.perf_counter() - began,
    }
    return score_judge(task, record, dataset, root, test_root, out, batch_size)


def kept_cities(datamodule: LimitedDataModule) -> list[str] | None:
    """The training cities a (possibly thinned) OSCD datamodule trained on."""
    cities = getattr(datamodule.real, 'train_cities', None)
    kept = getattr(datamodule.train_dataset, 'scene_indices', None)
    if cities is None or kept is None:
        return cities
    return [cities[i] for i in kept]


def score_judge(
    task: Any,
    record: dict[str, Any],
    dataset: str,
    root: str | None,
    test_root: str | None,
    out: Path,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Calibrate a change judge on validation data, score it on test, save the record."""
    test_module, split = heldout_datamodule(dataset, root, test_root, batch_size)
    if dataset in ('oscd', 'simulated-change'):
        task.change_threshold = 0.5
        record['real_score_at_0.5'] = score_downstream(task, test_module, split)
        record['change_threshold'] = calibrate_change_threshold(
            task, real_datamodule(dataset, root, test_root, batch_size)
        )
    record['real_score'] = score_downstream(task, test_module, split)
    record['split'] = split
    (out / 'judge.json').write_text(json.dumps(record, indent=2) + '\n')
    return record


def load_judge(out: Path, change: bool) -> tuple[Any, dict[str, Any]]:
    """Load a saved judge and check it is the file its record names.

    Raises:
        SystemExit: if the checkpoint's sha256 differs from its record's.
    """
    record = json.loads((out / 'judge.json').read_text())
    digest = file_sha256(out / 'judge.ckpt')
    if digest != record['sha256']:
        raise SystemExit(
            f'{out / "judge.ckpt"}: sha256 {digest} differs from judge.json '
            f'({record["sha256"]}); retrain the judge (delete {out})'
        )
    judge = load_downstream(out / 'judge.ckpt', change)
    if 'change_threshold' in record:
        judge.change_threshold = record['change_threshold']
    return judge, record


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--dataset', choices=DATASET_NAMES, required=True)
    parser.add_argument('--root', help='real dataset root')
    parser.add_argument('--test-root', help='OSCD root with a "Test Labels" folder')
    parser.add_argument(
        '--steps', type=int, help='optimizer steps (default: per dataset)'
    )
    parser.add_argument(
        '--role',
        choices=list(ROLES),
        default='judge',
        help='judge (seed 1000, ResNet-18) or guide (seed 2000, ResNet-34), never '
        'the same model',
    )
    parser.add_argument(
        '--fraction',
        type=float,
        default=1.0,
        help='share of the real training labels to learn from (a guide of a '
        'leak-free comparison: its labelled pool; default: all)',
    )
    parser.add_argument(
        '--pool-seed',
        type=int,
        default=0,
        help='seed of that draw, as benchmarks/downstream.py --pool-seed',
    )
    parser.add_argument(
        '--change-model',
        choices=CHANGE_MODELS,
        default='unet',
        help='change detectors: TorchGeo model (default: %(default)s)',
    )
    parser.add_argument(
        '--out', help='folder (default: outputs/judges/DATASET, or outputs/guides/)'
    )
    parser.add_argument(
        '--rescore',
        action='store_true',
        help='keep the saved judge; recalibrate its change threshold and rescore it',
    )
    options = parser.parse_args()
    folder = 'judges' if options.role == 'judge' else 'guides'
    out = Path(options.out or f'outputs/{folder}/{options.dataset}')
    if options.rescore:
        judge, record = load_judge(out, options.dataset in ('oscd', 'simulated-change'))
        record = score_judge(
            judge, record, options.dataset, options.root, options.test_root, out
        )
    else:
        steps = options.steps or JUDGE_STEPS.get(options.dataset, 900)
        record = train_judge(
            options.dataset,
            options.root,
            options.test_root,
            out,
            steps,
            role=options.role,
            fraction=options.fraction,
            pool_seed=options.pool_seed,
            change_model=options.change_model,
        )
    print(json.dumps(record, indent=2))


if __name__ == '__main__':
    main()
