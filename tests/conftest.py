import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use('Agg')

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / 'tests' / 'data'


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """The read-only real data folder (SPECDM_SHARED_DATA, default ../shared/data)."""
    path = Path(os.environ.get('SPECDM_SHARED_DATA', ROOT.parent / 'shared' / 'data'))
    if not path.is_dir():
        pytest.skip(f'real data folder {path} is absent; set SPECDM_SHARED_DATA')
    return path


@pytest.fixture(scope='session')
def oscd_root(shared_data: Path) -> Path:
    return shared_data / 'oscd'
