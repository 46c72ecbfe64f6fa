"""benchmarks/gpu.py --smoke: the GPU benchmark's whole path, at toy sizes on CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from .conftest import ROOT


def test_gpu_benchmark_smoke(shared_data: Path, tmp_path: Path) -> None:
    env = os.environ | {
        'SPECDM_SHARED_DATA': str(shared_data),
        'PYTHONPATH': os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get('PYTHONPATH')])]
        ),
    }
    out = tmp_path / 'results'
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / 'benchmarks' / 'gpu.py'),
            '--smoke',
            '--out',
            str(out),
        ],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, (
        completed.stdout[-3000:] + completed.stderr[-3000:]
    )
    check_smoke_results(out)


def check_smoke_results(out: Path) -> None:
    """Every figure of a smoke run is there, with sane values."""
    results = json.loads((out / 'gpu.json').read_text())
    assert results['smoke'] is True
    assert 'errors' not in results, results['errors']
    assert '--smoke' in results['command']
    machine = results['machine']
    assert machine['device'] == 'cpu'
    assert machine['torch'] == torch.__version__
    assert {'card', 'driver', 'lightning', 'diffusers', 'torchgeo'} <= set(machine)
    assert results['matmul']['dtype'] == 'bfloat16'
    assert results['matmul']['flops_per_second'] > 0

    training = results['training']
    datasets = {'oscd', 'salinas-a', 'simulated-segmentation'}
    plain = {(r['stage'], r['dataset']) for r in training if not r['compile']}
    assert plain >= {(stage, d) for stage in ('vae', 'diffusion') for d in datasets}
    variants = {
        (r['stage'], r['channels_last'], r['compile'])
        for r in training
        if r['dataset'] == 'oscd'
    }
    assert variants == {
        (stage, channels_last, compile)
        for stage in ('vae', 'diffusion')
        for channels_last in (False, True)
        for compile in (False, True)
    }
    for record in training:
        assert 'skipped' not in record, record
        assert record['precision'] == 'bf16-mixed'
        assert record['timed_steps'] >= 1
        assert record['steps_per_second'] > 0
        assert record['samples_per_second'] == (
            record['steps_per_second'] * record['batch_size']
        )
        # FlopCounterMode ran on a real step (copied to the compiled runs).
        assert record['flops_per_step'] > 1e6
        assert record['mfu'] > 0
        assert record['achieved_tflops'] > 0
        assert record['peak_memory_bytes'] is None  # CPU: no device memory
        assert record['parameters'] > 0
        if record['compile']:
            assert record['flops_from'] == 'eager'
            assert record['compile_stance'] == 'force_eager'
    oscd_vae = next(
        r for r in training if (r['stage'], r['dataset']) == ('vae', 'oscd')
    )
    assert (oscd_vae['bands'], oscd_vae['dates']) == (13, 2)
    salinas = next(r for r in training if r['dataset'] == 'salinas-a')
    assert salinas['bands'] == 204

    sampling = results['sampling']
    assert sampling['sampler'] == 'dpmpp'
    sweep = {(row['size'], row['batch_size']): row for row in sampling['sweep']}
    assert set(sweep) == {(16, 1), (16, 2), (32, 1), (32, 2)}
    assert all(row['pairs_per_second'] > 0 for row in sweep.values())
    e2e = sampling['end_to_end']
    assert [run['num_samples'] for run in e2e['runs']] == [2, 4]
    for run in e2e['runs']:
        assert 'torchgeo_specdm.cli sample' in run['command']
        assert run['wall_seconds'] > 0
        assert run['peak_rss_bytes'] > 0
        assert run['bytes_written'] > 0
    assert e2e['pipeline_pairs_per_second'] == sweep[(32, 2)]['pairs_per_second']
    # Two processes of ~20 s for 2 and 4 pairs: the difference can drown in noise.
    rate = e2e['marginal_pairs_per_second']
    assert rate is None or rate > 0
    # On CPU the same seed gives byte-identical files (images1, images2, masks).
    same = e2e['same_seed_twice']
    assert same['files'] == 6
    assert same['identical_files'] == 6
    assert same['max_abs_difference'] == 0
    assert same['mask_pixels_differing_share'] == 0
    report = (out / 'gpu.md').read_text()
    assert report.startswith('# SpecDM on one GPU (smoke run')
    assert '## Sampling' in report
