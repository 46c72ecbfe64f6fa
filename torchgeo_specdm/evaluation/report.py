"""Fidelity report of a generated dataset against real data (``specdm evaluate``)."""

import json
import math
import os
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor
from torchgeo.datamodules import NonGeoDataModule

from .. import metrics
from ..datasets import SyntheticDataset
from ..datasets.plotting import class_colormap, plot_sample_grid
from ..export import update_alignment
from ..tasks.utils import rgb_indices
from ..types import Path
from .judges import encoder_features, predict_labels

#: Central wavelengths (nm) of the Sentinel-2A MSI bands (ESA, Sentinel-2 spectral
#: response functions, S2-SRF document COPE-GSEG-EOPG-TN-15-0007, v3.0).
S2_CENTRES_NM: dict[str, float] = {
    'B01': 442.7,
    'B02': 492.4,
    'B03': 559.8,
    'B04': 664.6,
    'B05': 704.1,
    'B06': 740.5,
    'B07': 782.8,
    'B08': 832.8,
    'B8A': 864.7,
    'B09': 945.1,
    'B10': 1373.5,
    'B11': 1613.7,
    'B12': 2202.4,
}


#: Alignment quantile below which the filtered fidelity figures drop pairs.
FILTERED_QUANTILE = 0.25


def _stack(dataset: Any, limit: int) -> tuple[Tensor, Tensor]:
    count = min(limit, len(dataset))
    samples = [dataset[i] for i in range(count)]
    return torch.stack([s['image'] for s in samples]), torch.stack(
        [s['mask'] for s in samples]
    )


def _normalise(datamodule: NonGeoDataModule, image: Tensor, mask: Tensor) -> Tensor:
    batch = datamodule.aug({'image': image.clone(), 'mask': mask.clone()})
    normalised: Tensor = batch['image']
    return normalised


def _thumbnails(image: Tensor, std: Tensor) -> Tensor:
    """Images scaled per band and pooled to 16 x 16, as vectors for distances."""
    flat = image.reshape(-1, *image.shape[-3:]) / std.view(1, -1, 1, 1)
    pooled = F.adaptive_avg_pool2d(flat, 16)
    return pooled.reshape(len(image), -1)


def evaluate_synthetic(
    synthetic_root: Path,
    datamodule: NonGeoDataModule,
    out: Path,
    downstream: Any | None = None,
    max_real: int = 256,
) -> dict[str, Any]:
    """Compute every fidelity metric of a generated dataset and write the report.

    Args:
        synthetic_root: a folder written by ``specdm sample``.
        datamodule: the real data (its validation split is the reference, its
            training split the memorisation reference).
        out: folder for ``report.md``, ``metrics.json`` and the PNGs.
        downstream: a real-trained TorchGeo segmentation or change model; it
            scores alignment (stored in the manifest) and gives the features of
            the Fréchet distance. Without it those two are skipped.
        max_real: at most this many real samples per split.

    Returns:
        the metrics.
    """
    os.makedirs(out, exist_ok=True)
    synthetic = SyntheticDataset(synthetic_root)
    fake_image, fake_mask = _stack(synthetic, len(synthetic))
    datamodule.setup('fit')
    real_image, real_mask = _stack(datamodule.val_dataset, max_real)
    train_image, train_mask = _stack(datamodule.train_dataset, max_real)
    classes = synthetic.num_classes
    names = list(synthetic.classes)
    real_spectra = metrics.class_mean_spectra(real_image, real_mask, classes)
    train_spectra = metrics.class_mean_spectra(train_image, train_mask, classes)
    fake_spectra = metrics.class_mean_spectra(fake_image, fake_mask, classes)
    per_class = metrics.spectral_angle_degrees(fake_spectra, real_spectra)
    per_class_train = metrics.spectral_angle_degrees(fake_spectra, train_spectra)
    wasserstein = metrics.band_wasserstein(fake_image, real_image)
    std = (
        real_image.reshape(-1, *real_image.shape[-3:])
        .std(dim=(0, 2, 3))
        .clamp_min(1e-6)
    )
    fake_nn = metrics.nearest_neighbour_distances(
        _thumbnails(fake_image, std), _thumbnails(train_image, std)
    )
    real_nn = metrics.nearest_neighbour_distances(
        _thumbnails(train_image, std), _thumbnails(train_image, std), exclude_self=True
    )
    result: dict[str, Any] = {
        'synthetic_root': os.fspath(synthetic_root),
        'num_synthetic': len(synthetic),
        'num_real': len(real_image),
        'num_real_train': len(train_image),
        'class_names': names,
        'class_spectrum_sam_degrees': _by_class(names, per_class),
        'mean_class_spectrum_sam_degrees': _number(
            per_class[~per_class.isnan()].mean()
        ),
        'class_spectrum_sam_degrees_train': _by_class(names, per_class_train),
        'mean_class_spectrum_sam_degrees_train': _number(
            per_class_train[~per_class_train.isnan()].mean()
        ),
        'band_wasserstein': dict(zip(synthetic.bands, wasserstein.tolist())),
        'class_histogram_tv': float(
            metrics.class_histogram_tv(fake_mask, real_mask, classes)
        ),
        'synthetic_class_frequencies': metrics.class_histogram(
            fake_mask, classes
        ).tolist(),
        'real_class_frequencies': metrics.class_histogram(real_mask, classes).tolist(),
        'memorisation': {
            'median_synthetic_to_train': float(fake_nn.median()),
            'median_train_to_train': float(real_nn.median()),
            'share_closer_than_real_p5': float(
                (fake_nn < real_nn.quantile(0.05)).float().mean()
            ),
        },
    }
    scores = None
    if downstream is not None:
        normalised_fake = _normalise(datamodule, fake_image, fake_mask)
        normalised_real = _normalise(datamodule, real_image, real_mask)
        predicted = predict_labels(downstream, normalised_fake)
        ignore = downstream.hparams.get('ignore_index') if classes > 2 else None
        scores = metrics.alignment_scores(fake_mask, predicted, classes, ignore)
        ids = [sample['id'] for sample in synthetic.samples]
        update_alignment(synthetic_root, dict(zip(ids, scores.tolist())))
        real_scores = metrics.alignment_scores(
            real_mask, predict_labels(downstream, normalised_real), classes, ignore
        )
        result['alignment'] = {
            'metric': 'F1 of change' if classes == 2 else 'mean IoU',
            'mean': float(scores.mean()),
            'median': float(scores.median()),
            'p10': float(scores.quantile(0.1)),
            # The same judge on real pairs of the reference split: 1.0 means the
            # generated pairs are as consistent as real ones.
            'real_mean': float(real_scores.mean()),
            'relative': float(scores.mean() / real_scores.mean())
            if float(real_scores.mean()) > 0
            else None,
        }
        if classes == 2:
            result['alignment']['pooled_f1'] = metrics.pooled_change_f1(
                fake_mask, predicted
            )
            result['alignment']['real_pooled_f1'] = metrics.pooled_change_f1(
                real_mask, predict_labels(downstream, normalised_real)
            )
        # Pairs whose mask disagrees with their image blend other classes' spectra
        # into a class mean; the lower quartile of alignment is where they sit.
        min_alignment = float(scores.quantile(FILTERED_QUANTILE))
        keep = scores >= min_alignment
        kept_spectra = metrics.class_mean_spectra(
            fake_image[keep], fake_mask[keep], classes
        )
        result['filtered'] = {
            'min_alignment': min_alignment,
            'num_synthetic': int(keep.sum()),
            'class_spectrum_sam_degrees': _by_class(
                names, metrics.spectral_angle_degrees(kept_spectra, real_spectra)
            ),
            'class_spectrum_sam_degrees_train': _by_class(
                names, metrics.spectral_angle_degrees(kept_spectra, train_spectra)
            ),
        }
        real_features, fake_features = metrics.standardise_features(
            encoder_features(downstream, normalised_real),
            encoder_features(downstream, normalised_fake),
        )
        result['kid'] = metrics.kernel_inception_distance(real_features, fake_features)
        if len(real_features) >= 4:
            halves = metrics.kid_between_real_halves(real_features)
            result['kid']['real_halves'] = {k: halves[k] for k in ('mean', 'std')}
        result['prdc'] = metrics.precision_recall_density_coverage(
            real_features, fake_features
        )
        result['frechet'] = metrics.projected_frechet_distance(
            real_features, fake_features
        )
    wavelengths = band_wavelengths(synthetic.bands, datamodule)
    figures = _plots(
        out,
        synthetic,
        fake_image,
        fake_mask,
        real_image,
        real_mask,
        scores,
        wavelengths,
    )
    with open(os.path.join(out, 'metrics.json'), 'w') as f:
        json.dump(result, f, indent=2)
    _write_report(out, result, figures)
    return result


def _by_class(names: Sequence[str], values: Tensor) -> dict[str, float | None]:
    return {name: _number(value) for name, value in zip(names, values)}


def _number(value: Tensor) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def _plots(
    out: Path,
    synthetic: SyntheticDataset,
    fake_image: Tensor,
    fake_mask: Tensor,
    real_image: Tensor,
    real_mask: Tensor,
    scores: Tensor | None,
    wavelengths: Sequence[float] | None,
) -> dict[str, str]:
    classes, names = synthetic.num_classes, list(synthetic.classes)
    figures = {}

    figure = plot_class_spectra(
        real_image,
        real_mask,
        fake_image,
        fake_mask,
        synthetic.bands,
        names,
        wavelengths,
    )
    figures['spectra'] = _save(figure, out, 'spectra.png')

    figure, axis = plt.subplots(figsize=(7, 3.5))
    width = 0.4
    positions = torch.arange(classes)
    axis.bar(
        positions - width / 2,
        metrics.class_histogram(real_mask, classes),
        width,
        label='real',
    )
    axis.bar(
        positions + width / 2,
        metrics.class_histogram(fake_mask, classes),
        width,
        label='synthetic',
    )
    axis.set_xticks(positions.tolist(), names, rotation=30, ha='right')
    axis.set_ylabel('pixel share')
    axis.set_title('Class distribution')
    axis.legend()
    figures['classes'] = _save(figure, out, 'classes.png')

    rgb = rgb_indices(synthetic.bands, fake_image.shape[-3], wavelengths)
    figure = plot_sample_grid(
        fake_image[:8], fake_mask[:8], rgb, names, suptitle='Synthetic pairs'
    )
    figures['samples'] = _save(figure, out, 'samples.png')
    figure = plot_sample_grid(
        real_image[:8], real_mask[:8], rgb, names, suptitle='Real pairs'
    )
    figures['real_samples'] = _save(figure, out, 'real_samples.png')

    if scores is not None:
        figure, axis = plt.subplots(figsize=(6, 3.5))
        axis.hist(scores.numpy(), bins=20, range=(0, 1))
        axis.set_xlabel('alignment score')
        axis.set_ylabel('pairs')
        axis.set_title('Alignment of generated masks with a real-trained model')
        figures['alignment'] = _save(figure, out, 'alignment.png')
    return figures


def band_wavelengths(
    bands: Sequence[str], datamodule: Any | None = None
) -> list[float] | None:
    """Centre of each band in nanometres, where it is known.

    Args:
        bands: band names.
        datamodule: real data whose ``wavelengths`` attribute (one per band of
            its ``bands``, as the hyperspectral datamodules have) is used when its
            bands are ``bands``.

    Returns:
        the datamodule's wavelengths, else the Sentinel-2 centres when every band
        is a Sentinel-2 band, else ``None``.
    """
    wavelengths = getattr(datamodule, 'wavelengths', None)
    own_bands = getattr(datamodule, 'bands', None)
    if (
        wavelengths is not None
        and len(wavelengths) == len(bands)
        and (own_bands is None or tuple(own_bands) == tuple(bands))
    ):
        return [float(value) for value in wavelengths]
    if bands and all(band in S2_CENTRES_NM for band in bands):
        return [S2_CENTRES_NM[band] for band in bands]
    return None


def plot_class_spectra(
    real_image: Tensor,
    real_mask: Tensor,
    fake_image: Tensor,
    fake_mask: Tensor,
    bands: Sequence[str],
    class_names: Sequence[str],
    wavelengths: Sequence[float] | None = None,
) -> Figure:
    """Per-class mean spectra +- one standard deviation, real and synthetic overlaid.

    With ``wavelengths`` the x-axis is the wavelength in nanometres and, for
    hyperspectral data, the lines break over the bands a scene leaves out (water
    vapour absorption); without it, the x-axis is the band, in the given order.

    Args:
        real_image: real images, band axis at -3.
        real_mask: their masks.
        fake_image: synthetic images, band axis at -3.
        fake_mask: their masks.
        bands: band names.
        class_names: class names; one line pair per class present.
        wavelengths: centre of each band in nanometres, if known.

    Returns:
        the figure.
    """
    cmap = class_colormap(len(class_names))
    order = list(range(len(bands)))
    if wavelengths is not None:
        order.sort(key=lambda i: wavelengths[i])
    x = (
        torch.tensor([float(wavelengths[i]) for i in order])
        if wavelengths is not None
        else torch.arange(len(order), dtype=torch.float32)
    )
    many = len(order) > 20
    gaps = (
        _gaps(x)
        if wavelengths is not None and many
        else torch.zeros(0, dtype=torch.long)
    )
    x = _break(x, gaps)
    figure, axis = plt.subplots(figsize=(10 if many else 8, 4.5))
    sorted_real, sorted_fake = (
        real_image[..., order, :, :],
        fake_image[..., order, :, :],
    )
    for label, name in enumerate(class_names):
        for image, mask, style, kind in (
            (sorted_real, real_mask, '-', 'real'),
            (sorted_fake, fake_mask, '--', 'synthetic'),
        ):
            pixels = _class_pixels(image, mask, label)
            if len(pixels) == 0:
                continue
            mean = pixels.mean(0)
            std = pixels.std(0) if len(pixels) > 1 else torch.zeros_like(mean)
            mean, std = _break(mean, gaps), _break(std, gaps)
            axis.plot(
                x,
                mean,
                style,
                marker=None if many else 'o',
                markersize=3,
                color=cmap(label),
                label=f'{name} ({kind})',
            )
            axis.fill_between(
                x, mean - std, mean + std, color=cmap(label), alpha=0.12, lw=0
            )
    if wavelengths is not None:
        axis.set_xlabel('wavelength (nm)')
    else:
        step = max(1, len(order) // 20)  # at most ~20 labels: hyperspectral has 200+
        axis.set_xticks(
            x.tolist()[::step],
            [bands[i] for i in order][::step],
            rotation=90 if many else 0,
        )
        axis.set_xlabel('band')
    axis.set_ylabel('value (native units)')
    axis.set_title('Per-class mean spectra: real (solid), synthetic (dashed), +- 1 std')
    axis.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1))
    axis.grid(alpha=0.3)
    return figure


def _gaps(x: Tensor) -> Tensor:
    """Positions after which the spacing of sorted wavelengths jumps (left-out bands)."""
    if len(x) < 3:
        return torch.zeros(0, dtype=torch.long)
    steps = x.diff()
    return (steps > 2 * steps.median()).nonzero().flatten()


def _break(values: Tensor, gaps: Tensor) -> Tensor:
    """Insert NaN after each gap position, so lines and shading break there."""
    if len(gaps) == 0:
        return values
    pieces, start = [], 0
    for gap in gaps.tolist():
        pieces += [values[start : gap + 1], torch.full((1,), float('nan'))]
        start = gap + 1
    return torch.cat([*pieces, values[start:]])


def _class_pixels(image: Tensor, mask: Tensor, label: int) -> Tensor:
    channels = image.shape[-3]
    pixels = (
        image.reshape(-1, channels, *image.shape[-2:])
        .permute(0, 2, 3, 1)
        .reshape(-1, channels)
    )
    dates = image.shape[1] if image.ndim == 5 else 1
    labels = (
        mask.reshape(mask.shape[0], 1, *mask.shape[-2:])
        .expand(-1, dates, -1, -1)
        .reshape(-1)
    )
    return pixels[labels == label]


def _save(figure: Any, out: Path, name: str) -> str:
    figure.savefig(os.path.join(out, name), dpi=80, bbox_inches='tight')
    plt.close(figure)
    return name


def _write_report(out: Path, result: dict[str, Any], figures: dict[str, str]) -> None:
    lines = [
        '# SpecDM fidelity report',
        '',
        (
            f'Generated dataset: `{result["synthetic_root"]}` ({result["num_synthetic"]} pairs), '
            f'against {result["num_real"]} real validation pairs '
            f'({result.get("num_real_train", "?")} training pairs for the memorisation '
            'check and the training-split spectral angles).'
        ),
        '',
        '| metric | value |',
        '| --- | --- |',
        f'| mean per-class mean-spectrum SAM (degrees) | {_fmt(result["mean_class_spectrum_sam_degrees"])} |',
        f'| class-histogram total variation | {result["class_histogram_tv"]:.3f} |',
        f'| mean per-band Wasserstein-1 (native units) | {sum(result["band_wasserstein"].values()) / len(result["band_wasserstein"]):.1f} |',
    ]
    if 'alignment' in result:
        alignment = result['alignment']
        lines.append(
            f'| alignment ({alignment["metric"]}): mean / median / p10 | {alignment["mean"]:.3f} / {alignment["median"]:.3f} / {alignment["p10"]:.3f} |'
        )
        if alignment.get('relative') is not None:
            lines.append(
                f'| alignment relative to real pairs (same judge: {alignment["real_mean"]:.3f}) | {alignment["relative"]:.3f} |'
            )
        kid, prdc, frechet = result['kid'], result['prdc'], result['frechet']
        lines.append(
            f'| KID, judge encoder features standardised (real mean, pooled std; N real {kid["n_real"]}, synthetic {kid["n_fake"]}) | {kid["mean"]:.4f} +- {kid["std"]:.4f}{_real_halves(kid)} |'
        )
        lines.append(
            '| precision / recall / density / coverage (k = '
            f'{prdc["nearest_k"]}) | {" / ".join(_fmt(prdc[key]) for key in ("precision", "recall", "density", "coverage"))} |'
        )
        lines.append(
            f'| Fréchet distance on {frechet["dimensions"]} principal axes (N {frechet["n_real"]} / {frechet["n_fake"]}) | {_fmt(frechet["value"])} |'
        )
    memo = result['memorisation']
    lines += [
        f'| memorisation: median distance synthetic -> nearest train | {memo["median_synthetic_to_train"]:.2f} |',
        f'| memorisation: median distance train -> nearest other train | {memo["median_train_to_train"]:.2f} |',
        f'| share of synthetic closer to train than 95 % of real pairs are | {memo["share_closer_than_real_p5"]:.3f} |',
        '',
        '## Per-class spectral angle (degrees)',
        '',
        (
            'Angle between the mean spectrum of each class in the synthetic pairs and '
            'in the real pairs: the validation split (the reference of every other '
            'figure) and the training split (the data the generator learned from; '
            'it also holds classes a spatial validation split may lack).'
        ),
        '',
    ]
    columns = {
        'SAM vs validation': result['class_spectrum_sam_degrees'],
        'SAM vs training': result['class_spectrum_sam_degrees_train'],
    }
    if 'filtered' in result:
        filtered = result['filtered']
        lines += [
            (
                f'The last two columns keep the {filtered["num_synthetic"]} pairs whose '
                f'alignment is at least {filtered["min_alignment"]:.3f} (its lower '
                'quartile): `SyntheticDataset(root, min_alignment=...)` loads them.'
            ),
            '',
        ]
        columns['filtered, vs validation'] = filtered['class_spectrum_sam_degrees']
        columns['filtered, vs training'] = filtered['class_spectrum_sam_degrees_train']
    lines += [
        '| class | ' + ' | '.join(columns) + ' |',
        '| --- |' + ' --- |' * len(columns),
    ]
    lines += [
        f'| {name} | '
        + ' | '.join(_fmt(values[name]) for values in columns.values())
        + ' |'
        for name in result['class_names']
    ]
    titles = {
        'spectra': 'Per-class spectra',
        'classes': 'Class distribution',
        'samples': 'Synthetic pairs',
        'real_samples': 'Real pairs',
        'alignment': 'Alignment scores',
    }
    for key, name in figures.items():
        lines += ['', f'## {titles[key]}', '', f'![{titles[key]}]({name})']
    with open(os.path.join(out, 'report.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def _real_halves(kid: dict[str, Any]) -> str:
    halves = kid.get('real_halves')
    if halves is None:
        return ''
    return f' (two halves of the real set: {halves["mean"]:.4f} +- {halves["std"]:.4f})'


def _fmt(value: float | None) -> str:
    return 'n/a' if value is None else f'{value:.2f}'


def summary_lines(result: dict[str, Any]) -> Sequence[str]:
    """Headline figures of a report, for the terminal.

    Args:
        result: the metrics returned by :func:`evaluate_synthetic`.

    Returns:
        lines to print.
    """
    lines = [
        f'mean class-spectrum SAM: {_fmt(result["mean_class_spectrum_sam_degrees"])} deg',
        f'class-histogram TV: {result["class_histogram_tv"]:.3f}',
    ]
    if 'alignment' in result:
        lines.append(
            f'alignment ({result["alignment"]["metric"]}): mean {result["alignment"]["mean"]:.3f}'
        )
        if result['alignment'].get('relative') is not None:
            lines.append(
                f'alignment relative to real pairs: {result["alignment"]["relative"]:.3f}'
            )
        lines.append(
            f'KID: {result["kid"]["mean"]:.4f} +- {result["kid"]["std"]:.4f}'
            f' (N {result["kid"]["n_real"]} real, {result["kid"]["n_fake"]} synthetic)'
        )
    return lines
