"""gpu.md: the tables of benchmarks/gpu.py's results."""

from typing import Any


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.{digits}g}'
    return str(value)


def _gib(value: Any) -> str:
    return '-' if value is None else f'{value / 2**30:.2f}'


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)]
    return lines + ['| ' + ' | '.join(row) + ' |' for row in rows]


def _training(records: list[dict[str, Any]]) -> list[str]:
    header = [
        'stage', 'dataset', 'channels_last', 'compile', 'batch', 'input',
        'steps/s', 'samples/s', 'GFLOP/step', 'TFLOP/s', 'MFU', 'peak GiB',
        'first step s', 'timed steps',
    ]  # fmt: skip
    rows = []
    for r in records:
        head = [r['stage'], r['dataset'], str(r['channels_last']), str(r['compile'])]
        if 'skipped' in r:
            rows.append([*head, '-', r['skipped'], *['-'] * 8])
            continue
        flops = r.get('flops_per_step')
        rows.append(
            [
                *head,
                str(r['batch_size']),
                'x'.join(str(v) for v in r['input_shape'])
                + (f', {r["dates"]} dates' if r['stage'] == 'vae' else ' latent'),
                _number(r['steps_per_second']),
                _number(r['samples_per_second']),
                _number(None if flops is None else flops / 1e9),
                _number(r.get('achieved_tflops')),
                '-' if r.get('mfu') is None else f'{100 * r["mfu"]:.1f} %',
                _gib(r['peak_memory_bytes']),
                _number(r['first_step_seconds']),
                str(r['timed_steps']),
            ]
        )
    return _table(header, rows)


def _sampling(sampling: dict[str, Any]) -> list[str]:
    if 'sweep' not in sampling:
        return [f'Sampling skipped: {sampling.get("skipped")}']
    lines = [
        (
            f'Sampler {sampling["sampler"]}, {sampling["steps"]} steps, '
            f'{sampling["precision"]}, the {sampling["dataset"]} model:'
        ),
        '',
    ]
    rows = [
        [
            str(r['size']),
            str(r['batch_size']),
            _number(r.get('pairs_per_second')),
            _gib(r.get('peak_memory_bytes')),
            r.get('error', ''),
        ]
        for r in sampling['sweep']
    ]
    lines += _table(['px', 'batch', 'pairs/s', 'peak GiB', 'note'], rows)
    e2e = sampling.get('end_to_end')
    if e2e:
        runs = e2e['runs']
        same = e2e['same_seed_twice']
        lines += [
            '',
            f'`specdm sample` end to end ({e2e["size"]} px, batch {e2e["batch_size"]}):',
            '',
            *_table(
                ['pairs', 'wall s', 'peak RSS GiB', 'device memory GiB', 'written GiB'],
                [
                    [
                        str(run['num_samples']),
                        _number(run['wall_seconds']),
                        _gib(run['peak_rss_bytes']),
                        _gib(run['device_memory_peak_bytes']),
                        _gib(run['bytes_written']),
                    ]
                    for run in runs
                ],
            ),
            '',
            (
                f'- written rate (marginal, N2 - N1 over t2 - t1): '
                f'{_number(e2e["marginal_pairs_per_second"])} pairs/s; pipeline alone: '
                f'{_number(e2e["pipeline_pairs_per_second"])} pairs/s; ratio '
                f'{_number(e2e["written_over_pipeline"])}'
            ),
            (
                f'- peak RSS N2/N1: {_number(e2e["peak_rss_ratio_n2_over_n1"])}; device '
                f'memory N2/N1: {_number(e2e.get("device_memory_ratio_n2_over_n1"))}'
            ),
            (
                f'- same seed, two processes: {same["identical_files"]} of {same["files"]} '
                f'files byte-identical; max abs image difference '
                f'{_number(same["max_abs_difference"])}; mask pixels differing '
                f'{_number(same["mask_pixels_differing_share"])}'
            ),
        ]
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown."""
    info = results.get('machine', {})
    lines = [
        '# SpecDM on one GPU'
        + (' (smoke run: toy sizes, CPU)' if results.get('smoke') else ''),
        '',
        (
            f'- card: {info.get("card")}, driver {info.get("driver")}, CUDA '
            f'{info.get("cuda")}; torch {info.get("torch")}, Lightning '
            f'{info.get("lightning")}, diffusers {info.get("diffusers")}, torchgeo '
            f'{info.get("torchgeo")}; {info.get("cpu_count")} CPUs'
        ),
        f'- command: `{results["command"]}`',
        f'- wall time: {results.get("wall_seconds", 0):.0f} s',
    ]
    matmul = results.get('matmul')
    if matmul:
        lines.append(
            f'- bf16 matrix rate: {matmul["tflops"]:.1f} TFLOP/s '
            f'({matmul["size"]}^3 torch.matmul, mean of {len(matmul["seconds"])}); '
            'MFU below is against it'
        )
    lines += ['', '## Training', '', *_training(results['training'])]
    if 'sampling' in results:
        lines += ['', '## Sampling', '', *_sampling(results['sampling'])]
    for error in results.get('errors', []):
        lines += ['', f'- error in {error["what"]}: `{error["error"].splitlines()[0]}`']
    return '\n'.join(lines) + '\n'
