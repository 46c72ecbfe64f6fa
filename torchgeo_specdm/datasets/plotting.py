"""Plotting helpers shared by the datasets of the package."""

import warnings
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, ListedColormap, hsv_to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import Tensor
from torchgeo.datasets import RGBBandsMissingError

#: Fixed palette of distinct colours (Okabe-Ito, then Tableau 10, then more).
_PALETTE: tuple[str, ...] = (
    '#e69f00',
    '#56b4e9',
    '#009e73',
    '#f0e442',
    '#0072b2',
    '#d55e00',
    '#cc79a7',
    '#000000',
    '#1f77b4',
    '#ff7f0e',
    '#2ca02c',
    '#d62728',
    '#9467bd',
    '#8c564b',
    '#e377c2',
    '#7f7f7f',
    '#bcbd22',
    '#17becf',
    '#aec7e8',
    '#ffbb78',
    '#98df8a',
    '#ff9896',
    '#c5b0d5',
    '#c49c94',
)


def _to_numpy(array: Tensor | np.ndarray) -> np.ndarray:
    """Convert a tensor or array to a float64 NumPy array on the CPU.

    Args:
        array: tensor or array.

    Returns:
        the values as a float64 NumPy array.
    """
    if isinstance(array, Tensor):
        array = array.detach().cpu().to(torch.float64).numpy()
    return np.asarray(array, dtype=np.float64)


def _stretch(rgb: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Stretch channels linearly from [low, high] to [0, 1].

    Args:
        rgb: [..., 3, H, W] values.
        low: [3] lower limits, mapped to 0.
        high: [3] upper limits, mapped to 1.

    Returns:
        [..., H, W, 3] values clipped to [0, 1]; flat or empty channels give 0.
    """
    low = low[:, None, None]
    span = high[:, None, None] - low
    out = np.zeros(np.broadcast_shapes(rgb.shape, span.shape))
    np.divide(rgb - low, span, out=out, where=span > 0)
    out = np.clip(np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0), 0, 1)
    return np.moveaxis(out, -3, -1)


def _limits(
    rgb: np.ndarray, percentiles: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel percentiles over every axis but the channel axis, ignoring NaN.

    Args:
        rgb: [..., 3, H, W] values.
        percentiles: lower and upper percentile, in [0, 100].

    Returns:
        lower and upper limits, each [3] (NaN for a channel with no finite value).
    """
    channels = np.moveaxis(rgb, -3, 0).reshape(3, -1)
    channels = np.where(np.isfinite(channels), channels, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # all-NaN channel
        low, high = np.nanpercentile(channels, percentiles, axis=1)
    return low, high


def false_colour(
    image: Tensor | np.ndarray,
    rgb_indices: Sequence[int],
    percentiles: tuple[float, float] = (2, 98),
) -> np.ndarray:
    """Render three bands of an image as a percentile-stretched colour picture.

    Args:
        image: [C, H, W] image, in any units.
        rgb_indices: the bands shown as red, green and blue.
        percentiles: lower and upper percentile of each band mapped to 0 and 1.

    Returns:
        [H, W, 3] float64 in [0, 1].

    Raises:
        ValueError: if ``image`` is not [C, H, W] or ``rgb_indices`` is not 3 bands.
    """
    array = _to_numpy(image)
    if array.ndim != 3:
        raise ValueError(f'image must be [C, H, W], got shape {tuple(array.shape)}')
    if len(rgb_indices) != 3:
        raise ValueError(f'rgb_indices must name 3 bands, got {list(rgb_indices)}')
    rgb = array[list(rgb_indices)]
    low, high = _limits(rgb, percentiles)
    return _stretch(rgb, low, high)


def class_colormap(num_classes: int) -> ListedColormap:
    """A fixed colour map of distinct colours, one per class.

    The same ``num_classes`` always gives the same colours, and class ``i`` keeps its
    colour whatever ``num_classes`` is.

    Args:
        num_classes: number of classes.

    Returns:
        a colour map with ``num_classes`` entries.

    Raises:
        ValueError: if ``num_classes`` is below 1.
    """
    if num_classes < 1:
        raise ValueError(f'num_classes must be at least 1, got {num_classes}')
    colours: list[str | tuple[float, float, float]] = list(_PALETTE[:num_classes])
    for index in range(len(colours), num_classes):
        # golden-ratio hue steps: deterministic, well spread
        hue = (index * 0.618033988749895) % 1.0
        value = 0.95 if index % 2 else 0.7
        colours.append(tuple(hsv_to_rgb((hue, 0.65, value))))
    return ListedColormap(colours, name=f'classes_{num_classes}')


def _show_labels(ax: Axes, labels: Tensor | np.ndarray, cmap: Colormap) -> None:
    """Draw a label map with one colour per class; out-of-range labels are black.

    Args:
        ax: axes to draw into.
        labels: [H, W] integer labels.
        cmap: colour map with one entry per class.
    """
    array = _to_numpy(labels)
    valid = (array >= 0) & (array < cmap.N)
    shown = np.ma.masked_array(array, mask=~valid)
    ax.imshow(
        shown,
        cmap=cmap.with_extremes(bad='black'),
        vmin=-0.5,
        vmax=cmap.N - 0.5,
        interpolation='none',
    )


def _squeeze_mask(mask: Tensor | np.ndarray, name: str) -> np.ndarray:
    """Turn a [1, H, W] or [H, W] mask into [H, W].

    Args:
        mask: mask tensor or array.
        name: argument name, for the error message.

    Returns:
        the [H, W] mask.

    Raises:
        ValueError: if the mask is neither [1, H, W] nor [H, W].
    """
    array = _to_numpy(mask)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f'{name} must be [1, H, W] or [H, W], got {array.shape}')
    return array


def plot_segmentation(
    image: Tensor,
    mask: Tensor,
    rgb_indices: Sequence[int],
    class_names: Sequence[str],
    prediction: Tensor | None = None,
    show_titles: bool = True,
    suptitle: str | None = None,
    cmap: Colormap | None = None,
) -> Figure:
    """Plot an image, its label mask and optionally a prediction, with a legend.

    Args:
        image: [C, H, W] image.
        mask: [H, W] (or [1, H, W]) class labels.
        rgb_indices: the bands shown as red, green and blue.
        class_names: name of each class, in label order.
        prediction: optional [H, W] (or [1, H, W]) predicted labels.
        show_titles: flag indicating whether to show titles above each panel.
        suptitle: optional string to use as a suptitle.
        cmap: colour map with one entry per class; defaults to
            :func:`class_colormap`.

    Returns:
        a matplotlib Figure with the rendered sample.
    """
    if cmap is None:
        cmap = class_colormap(len(class_names))
    rgb = false_colour(image, rgb_indices)
    labels = [('Mask', _squeeze_mask(mask, 'mask'))]
    if prediction is not None:
        labels.append(('Prediction', _squeeze_mask(prediction, 'prediction')))

    ncols = 1 + len(labels)
    fig, axs = plt.subplots(
        1, ncols, figsize=(4 * ncols + 2, 4), layout='constrained', squeeze=False
    )
    axs[0, 0].imshow(rgb)
    for ax, (_, label_map) in zip(axs[0, 1:], labels, strict=True):
        _show_labels(ax, label_map, cmap)
    titles = ['Image'] + [title for title, _ in labels]
    for ax, title in zip(axs[0], titles, strict=True):
        ax.axis('off')
        if show_titles:
            ax.set_title(title)

    handles = [
        Patch(facecolor=cmap(index), edgecolor='black', linewidth=0.5, label=name)
        for index, name in enumerate(class_names)
    ]
    fig.legend(handles=handles, loc='outside right center', frameon=False)
    if suptitle is not None:
        fig.suptitle(suptitle)
    return fig


def plot_change(
    image: Tensor,
    mask: Tensor,
    rgb_indices: Sequence[int],
    prediction: Tensor | None = None,
    show_titles: bool = True,
    suptitle: str | None = None,
) -> Figure:
    """Plot a bi-temporal image pair, its change mask and optionally a prediction.

    Both dates share one stretch, computed over both, so that a brightness or colour
    drift between the dates stays visible.

    Args:
        image: [2, C, H, W] image pair.
        mask: [1, H, W] or [H, W] change mask (0: no change, 1: change).
        rgb_indices: the bands shown as red, green and blue.
        prediction: optional [1, H, W] or [H, W] predicted change (labels or
            probabilities in [0, 1]).
        show_titles: flag indicating whether to show titles above each panel.
        suptitle: optional string to use as a suptitle.

    Returns:
        a matplotlib Figure with the rendered sample.

    Raises:
        ValueError: if ``image`` is not [2, C, H, W].
    """
    array = _to_numpy(image)
    if array.ndim != 4 or array.shape[0] != 2:
        raise ValueError(f'image must be [2, C, H, W], got shape {array.shape}')
    rgb = array[:, list(rgb_indices)]
    low, high = _limits(rgb, (2, 98))
    dates = _stretch(rgb, low, high)

    panels: list[tuple[str, np.ndarray]] = [
        ('Date 1', dates[0]),
        ('Date 2', dates[1]),
        ('Change mask', _squeeze_mask(mask, 'mask')),
    ]
    if prediction is not None:
        panels.append(('Prediction', _squeeze_mask(prediction, 'prediction')))

    ncols = len(panels)
    fig, axs = plt.subplots(
        1, ncols, figsize=(4 * ncols, 4), layout='constrained', squeeze=False
    )
    for index, (ax, (title, data)) in enumerate(zip(axs[0], panels, strict=True)):
        if index < 2:
            ax.imshow(data)
        else:
            ax.imshow(data, cmap='gray', vmin=0, vmax=1, interpolation='none')
        ax.axis('off')
        if show_titles:
            ax.set_title(title)
    if suptitle is not None:
        fig.suptitle(suptitle)
    return fig


def plot_sample_grid(
    images: Tensor,
    masks: Tensor,
    rgb_indices: Sequence[int],
    class_names: Sequence[str],
    titles: Sequence[str] | None = None,
    columns: int = 4,
    suptitle: str | None = None,
) -> Figure:
    """A grid of image-mask pairs: each pair shows its image(s) above its mask.

    Args:
        images: [N, C, H, W] or [N, 2, C, H, W] images (change pairs show both dates).
        masks: [N, H, W] or [N, 1, H, W] labels.
        rgb_indices: bands shown as red, green and blue.
        class_names: class names, for the colours and the legend.
        titles: optional title of each pair.
        columns: pairs per row.
        suptitle: optional figure title.

    Returns:
        the figure.
    """
    count = len(images)
    dates = images.shape[1] if images.ndim == 5 else 1
    panel_rows = dates + 1
    rows = -(-count // columns)
    figure, axes = plt.subplots(
        rows * panel_rows,
        columns,
        figsize=(2.2 * columns, 2.2 * rows * panel_rows),
        squeeze=False,
    )
    cmap = class_colormap(len(class_names))
    for ax in axes.flat:
        ax.axis('off')
    for index in range(count):
        row, column = divmod(index, columns)
        stack = images[index].reshape(dates, *images.shape[-3:])
        for date in range(dates):
            ax = axes[row * panel_rows + date, column]
            ax.imshow(false_colour(stack[date], rgb_indices))
            if date == 0 and titles is not None:
                ax.set_title(titles[index], fontsize=8)
        _show_labels(
            axes[row * panel_rows + dates, column],
            _squeeze_mask(masks[index], 'mask'),
            cmap,
        )
    handles = [
        Patch(facecolor=cmap(i), edgecolor='black', label=name)
        for i, name in enumerate(class_names)
    ]
    figure.legend(
        handles=handles, loc='lower center', ncol=min(4, len(handles)), fontsize=8
    )
    if suptitle is not None:
        figure.suptitle(suptitle)
    figure.tight_layout(rect=(0, 0.06, 1, 0.97))
    return figure


def rgb_band_indices(bands: Sequence[str], rgb_bands: Sequence[str]) -> list[int]:
    """Positions of the red, green and blue bands among a dataset's bands.

    Args:
        bands: the dataset's bands.
        rgb_bands: names of the red, green and blue bands.

    Returns:
        their indices in ``bands``.

    Raises:
        RGBBandsMissingError: if a RGB band is not in ``bands``.
    """
    if not all(band in bands for band in rgb_bands):
        raise RGBBandsMissingError()
    return [list(bands).index(band) for band in rgb_bands]
