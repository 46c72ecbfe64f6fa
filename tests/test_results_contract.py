"""Every committed downstream result follows the equal-steps JSON contract."""

import json
from collections import defaultdict
from pathlib import Path

import pytest

from .conftest import ROOT

RESULTS = sorted((ROOT / 'benchmarks' / 'results').glob('downstream_*.json'))


def test_there_are_downstream_results() -> None:
    assert RESULTS


@pytest.mark.parametrize('path', RESULTS, ids=[path.stem for path in RESULTS])
def test_downstream_result_follows_the_contract(path: Path) -> None:
    result = json.loads(path.read_text())
    protocol = result['protocol']
    assert protocol['name'] == 'equal-steps'
    steps = protocol['max_steps']
    assert isinstance(steps, int)
    assert steps > 0
    judge = result['judge']
    assert set(judge) >= {'path', 'sha256', 'real_score'}
    runs = result['runs']
    assert runs
    taken: dict[tuple[float, int], set[int]] = defaultdict(set)
    for run in runs:
        assert set(run) >= {
            'regime',
            'fraction',
            'seed',
            'optimizer_steps',
            'split',
            'metrics',
        }
        assert run['split'] == 'test'
        assert run.get('judge_sha256', judge['sha256']) == judge['sha256']
        taken[(run['fraction'], run['seed'])].add(run['optimizer_steps'])
    # Within one (fraction, seed), every regime takes the same optimizer steps.
    assert all(len(values) == 1 for values in taken.values()), dict(taken)
    assert {value for values in taken.values() for value in values} == {steps}
    for comparison in result['comparisons']:
        assert set(comparison) >= {
            'regime',
            'fraction',
            'metric',
            'mean_difference',
            'ci95',
            'seeds',
        }
        interval = comparison['ci95']
        if interval is None:
            assert len(comparison['seeds']) < 2
            continue
        low, high = interval
        assert low <= comparison['mean_difference'] <= high
        reading = comparison.get('reading', '')
        assert ('helps' in reading) == (low > 0)
        assert ('hurts' in reading) == (high < 0)
