"""The ratio table, notes and Markdown report of benchmarks/speed.py."""

from typing import Any

#: Goals of the performance issue.
SPEEDUP_GOAL = 40.0
PARITY_GOAL = 0.10
OVERHEAD_GOAL = 0.95
THROUGHPUT_GOAL = 0.9
DATA_SHARE_GOAL = 0.10
RSS_GOAL = 1.10
#: Per-pair time counts as linear in N when the marginal time per pair of the second
#: interval is within this factor of the first (our tolerance, not the issue's).
LINEARITY_TOLERANCE = 1.25


#: How each benchmark clock is described in the report.
CLOCKS = {
    'cpu': 'Times are CPU seconds of the benchmark process (and of each `specdm '
    'sample` child): the other jobs sharing this machine do not inflate them, and '
    'with one thread they equal wall time on an idle machine (`--clock wall` '
    'times wall seconds). The `specdm sample` tables give wall time too.',
    'wall': 'Times are wall-clock seconds.',
}


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The ratio table: one row per headline figure, with its goal.

    Args:
        result: everything measured.

    Returns:
        rows of figure, value, goal and whether it is met.
    """
    rows = []
    default = result['default_sampler']
    for name, parity in result['parity'].items():
        row = next(r for r in parity['rows'] if r['label'] == default)
        rows.append(
            {
                'figure': f'{name}: default sampler {default}, end-to-end speed-up vs DDPM-1000',
                'value': f'{row["speedup_vs_ddpm_1000"]:.1f}x (denoising only '
                f'{row["denoise_speedup_vs_ddpm_1000"]:.1f}x)',
                'goal': f'>= {SPEEDUP_GOAL:.0f}x',
                'met': row['fast_enough'],
            }
        )
        worst = max(row['relative_difference'], key=row['relative_difference'].get)
        rows.append(
            {
                'figure': f'{name}: default sampler {default}, largest relative metric '
                f'difference vs DDPM-1000 ({worst})',
                'value': f'{row["relative_difference"][worst]:.3f}',
                'goal': f'<= {PARITY_GOAL:.2f}',
                'met': row['parity'],
            }
        )
        pick = parity['recommended']
        rows.append(
            {
                'figure': f'{name}: fastest fast sampler meeting parity',
                'value': f'{pick["label"]} ({pick["reason"]})',
                'goal': 'parity and >= 40x',
                'met': pick['reason'] == 'meets parity and the speed goal',
            }
        )
    overhead = result['pipeline_overhead']
    training = result['training']
    memory = result['memory']
    sharded = result['sharded']
    rows += [
        {
            'figure': 'pipeline overhead: DDIMPipeline time / SpecDMPipeline time',
            'value': f'{overhead["ratio"]:.3f}',
            'goal': f'>= {OVERHEAD_GOAL}',
            'met': overhead['ratio'] >= OVERHEAD_GOAL,
        },
        {
            'figure': 'training: Lightning task steps/s / bare loop steps/s',
            'value': f'{training["ratio"]:.3f}',
            'goal': f'>= {THROUGHPUT_GOAL}',
            'met': training['ratio'] >= THROUGHPUT_GOAL,
        },
        {
            'figure': 'training: between-batch (data-loader) share of a step',
            'value': f'{training["between_batch_share"]:.3f}',
            'goal': f'< {DATA_SHARE_GOAL}',
            'met': training['between_batch_share'] < DATA_SHARE_GOAL,
        },
        {
            'figure': 'sample: peak RSS at N={} / N={}'.format(
                memory['runs'][-1]['num_samples'], memory['runs'][0]['num_samples']
            ),
            'value': f'{memory["rss_ratio"]:.3f}',
            'goal': f'< {RSS_GOAL}',
            'met': memory['rss_ratio'] < RSS_GOAL,
        },
        {
            'figure': 'sample: marginal time per pair, 2nd interval / 1st',
            'value': f'{memory["linearity"]:.3f}',
            'goal': f'linear (within {LINEARITY_TOLERANCE}x)',
            'met': 1 / LINEARITY_TOLERANCE
            <= memory['linearity']
            <= LINEARITY_TOLERANCE,
        },
        {
            'figure': f'sharded: --devices 2 vs 1, {sharded["files"]} files',
            'value': 'identical' if sharded['identical'] else 'differ',
            'goal': 'identical sha256',
            'met': sharded['identical'] and sharded['no_duplicates_or_gaps'],
        },
    ]
    base = result['scaling']['rows'][0]
    for row in result['scaling']['rows'][1:]:
        rows.append(
            {
                'figure': f'one pair at {row["size"]} px, {row["bands"]} bands / '
                f'{base["size"]} px, {base["bands"]} bands: time, memory',
                'value': f'{row["time_ratio"]:.2f}x, '
                + (f'{row["memory_ratio"]:.2f}x' if 'memory_ratio' in row else 'n/a')
                + f' (pixels {row["pixel_ratio"]:.0f}x)',
                'goal': 'report',
                'met': None,
            }
        )
    rows.append(
        {
            'figure': 'U-Net training step on CPU: achieved TFLOP/s (bare loop)',
            'value': f'{training["achieved_tflops_bare"]:.4f} '
            f'({training["unet_flops_per_step"] / 1e9:.1f} GFLOP per step)',
            'goal': 'report (GPU: not measured)',
            'met': None,
        }
    )
    return rows


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _mark(met: bool | None) -> str:
    return {True: 'yes', False: 'NO', None: '-'}[met]


def table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown table of the summary rows.

    Args:
        rows: the summary.

    Returns:
        the table's lines.
    """
    lines = ['| figure | value | goal | met |', '| --- | --- | --- | --- |']
    lines += [
        f'| {r["figure"]} | {r["value"]} | {r["goal"]} | {_mark(r["met"])} |'
        for r in rows
    ]
    return lines


def notes(result: dict[str, Any]) -> list[str]:
    """Plain statements about the goals missed, by how much, and why.

    Args:
        result: everything measured.

    Returns:
        bullet lines.
    """
    lines = []
    default = result['default_sampler']
    if result.get('quick_model'):
        lines.append(
            '- Parity was measured on a tiny model trained for '
            f'{result["quick_model"]["diffusion_minutes"]} min '
            f'({result["quick_model"]["diffusion_steps"]} steps): it is only indicative.'
        )
    for name, parity in result['parity'].items():
        row = next(r for r in parity['rows'] if r['label'] == default)
        decode = parity['decode_in_unet_steps']
        if not row['fast_enough']:
            bound = (1000 + decode) / (row['steps'] + decode)
            lines.append(
                f'- {name}: {default} is {row["speedup_vs_ddpm_1000"]:.1f}x faster '
                f'than DDPM-1000 end to end, {SPEEDUP_GOAL - row["speedup_vs_ddpm_1000"]:.1f}x '
                f'short of {SPEEDUP_GOAL:.0f}x. Decoding a batch with the VAE costs as '
                f'much as {decode:.1f} U-Net steps and both samplers pay it once: at '
                f'equal step costs {row["steps"]} steps come to (1000 + {decode:.1f}) / '
                f'({row["steps"]} + {decode:.1f}) = {bound:.1f}x. The denoising loop '
                f'alone is {row["denoise_speedup_vs_ddpm_1000"]:.1f}x faster.'
            )
        for key, value in row['relative_difference'].items():
            if value > PARITY_GOAL:
                se = parity['reference_bootstrap_se'].get(key, float('nan'))
                reference = parity['reference_metrics'][key]
                lines.append(
                    f'- {name}: {default} differs from DDPM-1000 by {value:.1%} in '
                    f'{key} ({row["metrics"][key]:.3g} against {reference:.3g}), '
                    f'{value - PARITY_GOAL:.1%} over the 10% goal. For scale: '
                    f'DDPM-1000 with seed 1 differs from seed 0 by '
                    f'{parity["noise_floor"][key]:.1%}, and the bootstrap standard '
                    f'error of the DDPM-1000 value over its {parity["pairs"]} pairs is '
                    f'{se / abs(reference):.1%}.'
                )
        starts = {r['label']: r['first_timestep'] for r in parity['rows']}
        if len(set(starts.values())) > 1:
            listed = ', '.join(f'{label} {t}' for label, t in starts.items())
            lines.append(
                f'- {name}: the samplers start denoising at different timesteps '
                f'({listed}). The last step of the training schedule has beta = '
                f'{parity["last_training_beta"]:.3g}, so samplers that start there '
                'and samplers that skip it need not sample the same distribution'
                + (
                    ' (an epsilon model on this schedule amplifies its error there; '
                    "see LatentDiffusion's prediction_type)."
                    if parity['prediction_type'] == 'epsilon'
                    else '.'
                )
            )
    overhead = result['pipeline_overhead']
    if overhead['ratio'] < OVERHEAD_GOAL:
        lines.append(
            f'- Pipeline overhead: ratio {overhead["ratio"]:.3f}, '
            f'{OVERHEAD_GOAL - overhead["ratio"]:.3f} under the goal '
            f'({overhead["ours_ms_per_step"]:.2f} against '
            f'{overhead["peer_ms_per_step"]:.2f} ms per step).'
        )
    training = result['training']
    if training['ratio'] < THROUGHPUT_GOAL:
        lines.append(
            f'- Training: the Lightning task runs at {training["ratio"]:.3f} of the '
            f'bare loop, {THROUGHPUT_GOAL - training["ratio"]:.3f} under the goal '
            f'({training["lightning_overhead_ms_per_step"]:.1f} ms more per step).'
        )
    if training['between_batch_share'] >= DATA_SHARE_GOAL:
        lines.append(
            f'- Training: {training["between_batch_share"]:.1%} of a step passes between '
            'batches (data loading, transfer, augmentation, loop bookkeeping).'
        )
    memory = result['memory']
    if memory['rss_ratio'] >= RSS_GOAL:
        lines.append(
            f'- Memory: peak RSS grows {memory["rss_ratio"] - 1:.1%} from the '
            'smallest to the largest N.'
        )
    if not 1 / LINEARITY_TOLERANCE <= memory['linearity'] <= LINEARITY_TOLERANCE:
        lines.append(
            f'- Scaling in N: the marginal time per pair changes by a factor '
            f'{memory["linearity"]:.2f} between the two intervals.'
        )
    if not result['sharded']['identical']:
        lines.append(
            f'- Sharded generation: files differ: {result["sharded"]["differing_files"]}.'
        )
    return lines or ['- Every goal with a threshold is met.']


def markdown(result: dict[str, Any]) -> str:
    """The Markdown report.

    Args:
        result: everything measured.

    Returns:
        the report.
    """
    lines = [
        '# SpecDM speed, memory and scaling',
        '',
        f'Command: `{result["command"]}`',
        '',
        (
            f'Machine: {result["machine"]}; torch threads: {result["threads"]}; torch '
            f'{result["torch"]}, diffusers {result["diffusers"]}, lightning '
            f'{result["lightning"]}. Code: commit {result["code"]["commit"][:12]}'
            + (
                f' with uncommitted changes to {len(result["code"]["modified_package_files"])} '
                'package files'
                if result['code']['modified_package_files']
                else ''
            )
            + '. Wall time of the run: '
            f'{result["wall_seconds"] / 60:.1f} min.'
        ),
        '',
        *(
            [
                (
                    f'Re-rendered from the same measurements at commit '
                    f'{result["rerendered"]["commit"][:12]}, whose default sampler is '
                    f'{result["default_sampler"]} (the run measured every sampler; its '
                    f'code defaulted to {result["rerendered"]["measured_default"]}).'
                ),
                '',
            ]
            if 'rerendered' in result
            else []
        ),
        (
            'Every figure is a ratio of two timings taken in this run on this machine, '
            'with a warm-up and the median of repeats, the two sides alternating. '
            + CLOCKS[result['clock']]
            + f' {_sentence(result["gpu_options"]["gpu_measurements"])}.'
        ),
        '',
        '## Ratios and goals',
        '',
        *table(result['summary']),
        '',
        '## Goals missed, by how much and why',
        '',
        *notes(result),
        '',
        '## 1. Sampler parity',
        '',
    ]
    for name, parity in result['parity'].items():
        keys = list(parity['reference_metrics'])
        lines += [
            f'### {name}',
            '',
            (
                f'`{parity["checkpoint"]}`: latent {parity["latent_shape"]}, U-Net '
                f'{parity["unet_block_out_channels"]}, {parity["prediction_type"]} '
                f'prediction, {parity["beta_schedule"]} schedule; '
                f'{parity["pairs"]} pairs in one batch, '
                f'seed 0, against {parity["num_real"]} real validation pairs. The VAE '
                f'decode takes {parity["decode_seconds_per_pair"] * 1000:.1f} ms per pair '
                f'({parity["decode_in_unet_steps"]:.1f} U-Net steps). Speed-ups: '
                f'{parity["speedup_reference"]} (single run: '
                f'{parity["ddpm_1000_seconds_per_pair_single_run"]:.3f} s per pair, '
                f'interleaved: {parity["ddpm_1000_seconds_per_pair_interleaved"]:.3f}). '
                'Alignment: '
                f'{parity["alignment"]}.'
            ),
            '',
            '| sampler | first t | s / pair | speed-up (denoise only) | '
            + ' | '.join(keys)
            + ' | max rel. diff | parity |',
            '| --- | --- | --- | --- | '
            + ' | '.join('---' for _ in keys)
            + ' | --- | --- |',
        ]
        for row in parity['rows']:
            values = ' | '.join(f'{row["metrics"][key]:.4g}' for key in keys)
            lines.append(
                f'| {row["label"]} | {row["first_timestep"]} | '
                f'{row["seconds_per_pair"]:.4f} | '
                f'{row["speedup_vs_ddpm_1000"]:.1f}x '
                f'({row["denoise_speedup_vs_ddpm_1000"]:.1f}x) | {values} | '
                f'{max(row["relative_difference"].values()):.3f} | '
                f'{_mark(row["parity"])} |'
            )
        se = ', '.join(
            f'{key} {value:.3g}'
            for key, value in parity['reference_bootstrap_se'].items()
        )
        lines += [
            '',
            (
                f'Bootstrap standard error of the DDPM-1000 metrics over its pairs: {se}. '
                'DDPM-1000 with seed 1 against seed 0 (the noise floor): '
                + ', '.join(f'{k} {v:.1%}' for k, v in parity['noise_floor'].items())
                + '. '
                f'Fastest fast sampler meeting parity: {parity["recommended"]["label"]} '
                f'({parity["recommended"]["reason"]}).'
            ),
            '',
        ]
    overhead = result['pipeline_overhead']
    training = result['training']
    lines += [
        '## 2. Pipeline overhead',
        '',
        (
            f'{overhead["peer"]} and SpecDMPipeline drive the same U-Net '
            f'{overhead["unet_block_out_channels"]} over latents {overhead["latent_shape"]}, '
            f'batch {overhead["batch_size"]}, {overhead["steps"]} DDIM steps, same '
            f'per-sample noise; VAE decode {overhead["vae_decode"]}. Ours '
            f'{overhead["ours_seconds"]:.3f} s, theirs {overhead["peer_seconds"]:.3f} s: '
            f'ratio {overhead["ratio"]:.3f} (median of {overhead["repeats"]} paired '
            'ratios). Largest difference between the two outputs: '
            f'{overhead["max_abs_output_difference"]:.2e}.'
        ),
        '',
        '## 3. Training throughput',
        '',
        (
            f'U-Net {training["unet_block_out_channels"]} on {training["cached_latents"]} '
            f'cached latents {training["latent_shape"]}, batch {training["batch_size"]}, '
            f'{training["runs_each"]} alternating runs of each with {training["timed_steps_per_run"]} '
            f'timed steps after {training["warmup_steps"]} warm-up steps. Lightning: '
            f'{training["lightning_steps_per_second"]:.2f} steps/s; bare loop '
            f'({training["bare_loop"]}): {training["bare_steps_per_second"]:.2f} steps/s; '
            f'ratio {training["ratio"]:.3f} (median of the per-repeat ratios '
            + ', '.join(f'{r:.3f}' for r in training['ratio_each_repeat'])
            + '). Share of a Lightning step between batches '
            f'(on_train_batch_end to the next on_train_batch_start: loading, transfer, '
            f'augmentation, bookkeeping): {training["between_batch_share"]:.1%} (median), '
            f'{training["between_batch_share_mean"]:.1%} (mean, with epoch boundaries); '
            f'data share of a bare-loop step {training["bare_data_share"]:.1%}. '
            f'channels_last on CPU: {training["channels_last_speedup_cpu"]:.2f}x. '
            f'U-Net forward + backward: {training["unet_flops_per_step"] / 1e9:.2f} GFLOP '
            f'per step, {training["achieved_tflops_bare"]:.4f} TFLOP/s achieved (bare), '
            f'{training["achieved_tflops_lightning"]:.4f} (Lightning).'
        ),
        '',
        '## 4. Memory and scaling',
        '',
        (
            f'{result["memory"]["command"]}; peak RSS from '
            f'{result["memory"]["runs"][0]["rss_source"]}.'
        ),
        '',
        '| N | wall s | CPU s | s / pair | peak RSS MiB |',
        '| --- | --- | --- | --- | --- |',
    ]
    for run in result['memory']['runs']:
        lines.append(
            f'| {run["num_samples"]} | {run["wall_seconds"]:.1f} | '
            f'{run["cpu_seconds"]:.1f} | '
            f'{run["seconds_per_pair"]:.3f} | {run["peak_rss_mib"]:.0f} |'
        )
    slopes = result['memory']['marginal_seconds_per_pair']
    lines += [
        '',
        (
            f'Marginal time per pair: {slopes[0]:.4f} s then {slopes[1]:.4f} s; fixed cost '
            f'(start-up, loading) about {result["memory"]["fixed_seconds"]:.1f} s.'
        ),
        '',
        result['scaling']['models'] + '. The joint latent has the same channels '
        'whatever the band count, so bands change only the VAE; the U-Net step is '
        'the same computation in the three band rows, and their differences show '
        'the timing noise.',
        '',
        (
            '| size px | bands | latent | U-Net step s | decode s | pair s (25 steps) | '
            'time ratio | pixel ratio | peak RSS added MiB | memory ratio |'
        ),
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ]
    for row in result['scaling']['rows']:
        memory = row['sampling_peak_rss_increase_mib']
        lines.append(
            f'| {row["size"]} | {row["bands"]} | {row["latent_shape"]} | '
            f'{row["unet_step_seconds"]:.4f} | {row["decode_seconds"]:.4f} | '
            f'{row["pair_seconds_25_steps"]:.3f} | {row["time_ratio"]:.2f} | '
            f'{row["pixel_ratio"]:.0f} | '
            + (f'{memory:.0f}' if memory is not None else 'n/a')
            + f' | {row.get("memory_ratio", float("nan")):.2f} |'
        )
    sharded = result['sharded']
    options = result['gpu_options']
    lines += [
        '',
        '## 5. Sharded generation',
        '',
        f'`{sharded["command"]}`: {sharded["files"]} files, '
        + (
            'identical SHA-256 for every file'
            if sharded['identical']
            else 'files differ'
        )
        + (
            '; sample ids complete, no duplicates or gaps'
            if sharded['no_duplicates_or_gaps']
            else '; ids incomplete'
        )
        + f'. Wall time {sharded["wall_seconds"]["devices_1"]:.1f} s (1 device), '
        f'{sharded["wall_seconds"]["devices_2"]:.1f} s (2 devices). Digests are in the JSON.',
        '',
        '## 6. GPU path',
        '',
        (
            f'LatentDiffusion options: channels_last={options["channels_last"]}, '
            f'compile_unet={options["compile_unet"]}; bf16: {options["bf16_mixed"]}. '
            f'{_sentence(options["gpu_measurements"])}.'
        ),
        '',
    ]
    return '\n'.join(lines)
