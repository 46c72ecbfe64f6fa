from collections.abc import Sequence

import kornia.augmentation as K
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torch.utils.data import DataLoader
from torchgeo.datasets import NonGeoDataset, RGBBandsMissingError

from torchgeo_specdm.datasets.plotting import (
    class_colormap,
    false_colour,
    plot_change,
    plot_segmentation,
)
from torchgeo_specdm.datasets.simulated import (
    SEGMUNICH_BANDS,
    SimulatedChange,
    SimulatedSegmentation,
)
from torchgeo_specdm.datasets.spectra import (
    CLASS_MIXTURE_CONCENTRATION,
    CLASS_MIXTURES,
    CLASS_RELATIVE_STD,
    CLASS_SPECTRA,
    CLASSES,
    ENDMEMBERS,
    ESRI_L1C_PROFILES,
    ESRI_L2A_PROFILES,
    S2_BANDS,
    band_indices,
    class_spectra,
)
from torchgeo_specdm.datasets.validation import InvalidInputError

BAND_SETS = [SEGMUNICH_BANDS, S2_BANDS, ('B08',), ('B12', 'B02', 'B10')]


def neighbour_agreement(mask: Tensor) -> float:
    same = torch.cat(
        [(mask[1:] == mask[:-1]).flatten(), (mask[:, 1:] == mask[:, :-1]).flatten()]
    )
    return float(same.float().mean())


class TestSimulatedSegmentation:
    def test_is_torchgeo_dataset(self) -> None:
        dataset = SimulatedSegmentation()
        assert isinstance(dataset, NonGeoDataset)
        assert len(dataset) == 64
        assert dataset.bands == SEGMUNICH_BANDS == dataset.default_bands
        assert dataset.all_bands == S2_BANDS
        assert dataset.rgb_bands == ('B04', 'B03', 'B02')
        assert dataset.classes == CLASSES

    @pytest.mark.parametrize('size', [8, 33, 64, 128])
    @pytest.mark.parametrize('bands', BAND_SETS)
    def test_getitem(self, size: int, bands: tuple[str, ...]) -> None:
        dataset = SimulatedSegmentation(num_samples=3, size=size, bands=bands)
        sample = dataset[2]
        assert set(sample) == {'image', 'mask'}
        image, mask = sample['image'], sample['mask']
        assert image.dtype == torch.float32
        assert image.shape == (len(bands), size, size)
        assert mask.dtype == torch.int64
        assert mask.shape == (size, size)
        assert bool(torch.isfinite(image).all())
        assert 0 <= float(image.min())
        assert float(image.max()) <= 10000
        assert 0 <= int(mask.min())
        assert int(mask.max()) < len(CLASSES)

    def test_native_units(self) -> None:
        image = SimulatedSegmentation(num_samples=4, bands=S2_BANDS)[0]['image']
        means = image.mean(dim=(1, 2))
        assert 200 < float(means[S2_BANDS.index('B08')]) < 6000
        assert float(means[S2_BANDS.index('B10')]) < 40

    def test_band_subset_picks_the_named_bands(self) -> None:
        full = SimulatedSegmentation(num_samples=2, bands=S2_BANDS)[1]['image']
        subset = SimulatedSegmentation(num_samples=2, bands=('B12', 'B02'))[1]['image']
        assert torch.equal(subset[0], full[S2_BANDS.index('B12')])
        assert torch.equal(subset[1], full[S2_BANDS.index('B02')])

    def test_determinism(self) -> None:
        first = SimulatedSegmentation(num_samples=8, seed=5)
        second = SimulatedSegmentation(num_samples=8, seed=5)
        for index in range(4):
            first[index]
        a, b = first[6], second[6]
        assert torch.equal(a['image'], b['image'])
        assert torch.equal(a['mask'], b['mask'])
        assert torch.equal(first[6]['image'], a['image'])
        # the dataset length does not change a sample either
        assert torch.equal(SimulatedSegmentation(100, seed=5)[6]['image'], a['image'])

    def test_seeds_and_indices_differ(self) -> None:
        base = SimulatedSegmentation(num_samples=2, seed=0)
        other = SimulatedSegmentation(num_samples=2, seed=1)
        assert not torch.equal(base[0]['image'], other[0]['image'])
        assert not torch.equal(base[0]['image'], base[1]['image'])

    def test_index_errors(self) -> None:
        dataset = SimulatedSegmentation(num_samples=3)
        assert torch.equal(dataset[-1]['image'], dataset[2]['image'])
        assert torch.equal(dataset[np.int64(1)]['mask'], dataset[1]['mask'])  # type: ignore[index]
        with pytest.raises(IndexError, match='out of range'):
            dataset[3]
        with pytest.raises(IndexError):
            dataset[-4]
        with pytest.raises(IndexError):
            SimulatedSegmentation(num_samples=0)[0]

    def test_bad_band(self) -> None:
        with pytest.raises(ValueError, match="'B13'") as info:
            SimulatedSegmentation(bands=('B02', 'B13'))
        assert isinstance(info.value, InvalidInputError)
        assert 'B8A' in str(info.value)
        assert 'B01' in str(info.value)
        with pytest.raises(ValueError, match='empty'):
            SimulatedSegmentation(bands=())

    @pytest.mark.parametrize(
        ('argument', 'value'),
        [('num_samples', -1), ('size', 4), ('seed', -2), ('size', 32.5)],
    )
    def test_bad_arguments(self, argument: str, value: float) -> None:
        with pytest.raises(ValueError, match=argument):
            SimulatedSegmentation(**{argument: value})  # type: ignore[arg-type]

    def test_classes_form_patches(self) -> None:
        dataset = SimulatedSegmentation(num_samples=8, size=64, seed=11)
        masks = [dataset[index]['mask'] for index in range(len(dataset))]
        for mask in masks:
            assert neighbour_agreement(mask) > 0.8
        assert len(torch.unique(torch.stack(masks))) >= 3
        # a random label map would agree only by chance
        noise = torch.randint(
            len(CLASSES), (64, 64), generator=torch.Generator().manual_seed(0)
        )
        assert neighbour_agreement(noise) < 0.3

    def test_class_means_follow_the_table(self) -> None:
        dataset = SimulatedSegmentation(num_samples=40, size=64, seed=2, bands=S2_BANDS)
        images, masks = [], []
        for index in range(len(dataset)):
            sample = dataset[index]
            images.append(sample['image'].flatten(1))
            masks.append(sample['mask'].flatten())
        pixels = torch.cat(images, dim=1).double()
        labels = torch.cat(masks)
        table = torch.from_numpy(class_spectra(CLASSES, S2_BANDS))
        seen = 0
        for k in range(len(CLASSES)):
            chosen = labels == k
            if int(chosen.sum()) < 500:
                continue
            seen += 1
            mean = pixels[:, chosen].mean(dim=1)
            bright = table[k] > 100
            relative = (mean[bright] - table[k][bright]).abs() / table[k][bright]
            assert float(relative.max()) < 0.15, CLASSES[k]
            # intra-class variation is visible
            spread = pixels[:, chosen].std(dim=1)[bright] / mean[bright]
            assert float(spread.median()) > 0.04, CLASSES[k]
        assert seen >= 6

    def test_classes_are_separable(self) -> None:
        dataset = SimulatedSegmentation(num_samples=8, size=64, seed=4, bands=S2_BANDS)
        table = torch.from_numpy(np.log1p(class_spectra(CLASSES, S2_BANDS)))
        correct = total = 0
        for index in range(len(dataset)):
            sample = dataset[index]
            pixels = torch.log1p(sample['image'].flatten(1).double()).T
            nearest = torch.cdist(pixels, table).argmin(dim=1)
            correct += int((nearest == sample['mask'].flatten()).sum())
            total += nearest.numel()
        assert correct / total > 0.7

    def test_transforms(self) -> None:
        def double(sample: dict[str, Tensor]) -> dict[str, Tensor]:
            return {'image': sample['image'] * 2, 'mask': sample['mask']}

        plain = SimulatedSegmentation(num_samples=2)[0]
        transformed = SimulatedSegmentation(num_samples=2, transforms=double)[0]
        assert torch.equal(transformed['image'], plain['image'] * 2)
        assert torch.equal(transformed['mask'], plain['mask'])

    def test_dataloader(self) -> None:
        loader = DataLoader(SimulatedSegmentation(num_samples=4, size=32), batch_size=2)
        batch = next(iter(loader))
        assert batch['image'].shape == (2, 10, 32, 32)
        assert batch['mask'].shape == (2, 32, 32)

    def test_plot(self) -> None:
        dataset = SimulatedSegmentation(num_samples=2, size=32)
        sample = dataset[0]
        figure = dataset.plot(sample, suptitle='test')
        assert isinstance(figure, Figure)
        plt.close(figure)
        sample['prediction'] = dataset[1]['mask']
        figure = dataset.plot(sample, show_titles=False)
        assert len(figure.axes) == 3
        plt.close(figure)

    def test_plot_without_rgb(self) -> None:
        dataset = SimulatedSegmentation(num_samples=1, size=16, bands=('B08', 'B02'))
        with pytest.raises(RGBBandsMissingError):
            dataset.plot(dataset[0])


class TestSimulatedChange:
    def test_is_torchgeo_dataset(self) -> None:
        dataset = SimulatedChange()
        assert isinstance(dataset, NonGeoDataset)
        assert len(dataset) == 64
        assert dataset.bands == S2_BANDS == dataset.all_bands == dataset.default_bands
        assert dataset.classes == ('No change', 'Change')

    @pytest.mark.parametrize('size', [8, 64, 128])
    @pytest.mark.parametrize('bands', BAND_SETS)
    def test_getitem(self, size: int, bands: tuple[str, ...]) -> None:
        dataset = SimulatedChange(num_samples=2, size=size, bands=bands)
        sample = dataset[1]
        assert set(sample) == {'image', 'mask'}
        image, mask = sample['image'], sample['mask']
        assert image.dtype == torch.float32
        assert image.shape == (2, len(bands), size, size)
        assert mask.dtype == torch.int64
        assert mask.shape == (1, size, size)
        assert set(torch.unique(mask).tolist()) <= {0, 1}
        assert bool(torch.isfinite(image).all())
        assert 0 <= float(image.min())
        assert float(image.max()) <= 10000

    def test_determinism(self) -> None:
        first = SimulatedChange(num_samples=6, seed=9)
        first[0], first[1]
        a, b = first[4], SimulatedChange(num_samples=6, seed=9)[4]
        assert torch.equal(a['image'], b['image'])
        assert torch.equal(a['mask'], b['mask'])
        other = SimulatedChange(num_samples=6, seed=10)[4]
        assert not torch.equal(a['image'], other['image'])

    def test_band_subset_picks_the_named_bands(self) -> None:
        full = SimulatedChange(num_samples=1)[0]['image']
        subset = SimulatedChange(num_samples=1, bands=('B8A',))[0]['image']
        assert torch.equal(subset[:, 0], full[:, S2_BANDS.index('B8A')])

    def test_mask_marks_land_cover_changes(self) -> None:
        dataset = SimulatedChange(num_samples=4, size=64, seed=3)
        for index in range(len(dataset)):
            _, before, after = dataset._simulate(index)
            mask = dataset[index]['mask'][0].numpy()
            assert np.array_equal(mask, before != after)

    def test_change_statistics(self) -> None:
        dataset = SimulatedChange(num_samples=24, size=64, seed=1)
        fractions, changed, unchanged = [], [], []
        for index in range(len(dataset)):
            sample = dataset[index]
            mask = sample['mask'][0].bool()
            fractions.append(float(mask.float().mean()))
            image = sample['image'].double()
            # relative spectral change per pixel, over all bands
            difference = (image[1] - image[0]).abs().sum(0) / (
                image[0].sum(0) + image[1].sum(0) + 1
            )
            changed.append(difference[mask])
            unchanged.append(difference[~mask])
        share = np.array(fractions)
        assert 0.02 < share.mean() < 0.15
        assert share.max() < 0.3
        assert share.min() < share.max()
        assert (share > 0).sum() >= 20
        moved = float(torch.cat(changed).mean())
        drifted = float(torch.cat(unchanged).mean())
        assert moved > 3 * drifted
        # dates differ outside the changes too (seasonal and illumination drift)
        assert drifted > 0.01

    def test_transforms_get_a_batch_dimension(self) -> None:
        shapes = []

        def record(sample: dict[str, Tensor]) -> dict[str, Tensor]:
            shapes.append((sample['image'].shape, sample['mask'].shape))
            return {'image': sample['image'] + 1, 'mask': sample['mask']}

        plain = SimulatedChange(num_samples=1, size=16, bands=('B02',))[0]
        sample = SimulatedChange(
            num_samples=1, size=16, bands=('B02',), transforms=record
        )[0]
        assert shapes == [((1, 2, 1, 16, 16), (1, 1, 16, 16))]
        assert sample['image'].shape == (2, 1, 16, 16)
        assert sample['mask'].shape == (1, 16, 16)
        assert torch.equal(sample['image'], plain['image'] + 1)

    def test_kornia_video_augmentation(self) -> None:
        # the transforms torchgeo's OSCDDataModule gives OSCD
        augment = K.AugmentationSequential(
            K.VideoSequential(K.RandomHorizontalFlip(p=1.0)),
            data_keys=None,
            keepdim=True,
        )
        plain = SimulatedChange(num_samples=1, size=16)[0]
        sample = SimulatedChange(num_samples=1, size=16, transforms=augment)[0]
        assert sample['image'].shape == plain['image'].shape
        assert torch.allclose(sample['image'], plain['image'].flip(-1))
        assert sample['mask'].shape == (1, 16, 16)
        assert torch.equal(sample['mask'].long(), plain['mask'].flip(-1))
        crop = K.AugmentationSequential(
            K.VideoSequential(K.RandomCrop((8, 8))), data_keys=None, keepdim=True
        )
        cropped = SimulatedChange(num_samples=1, size=16, transforms=crop)[0]
        assert cropped['image'].shape == (2, 13, 8, 8)
        assert cropped['mask'].shape == (1, 8, 8)

    def test_plot(self) -> None:
        dataset = SimulatedChange(num_samples=2, size=32)
        sample = dataset[0]
        figure = dataset.plot(sample, suptitle='test')
        assert isinstance(figure, Figure)
        plt.close(figure)
        sample['prediction'] = dataset[1]['mask']
        figure = dataset.plot(sample, show_titles=False)
        assert len(figure.axes) == 4
        plt.close(figure)

    def test_plot_without_rgb(self) -> None:
        dataset = SimulatedChange(num_samples=1, size=16, bands=('B04', 'B03'))
        with pytest.raises(RGBBandsMissingError):
            dataset.plot(dataset[0])

    def test_bad_band(self) -> None:
        with pytest.raises(ValueError, match="'B8'"):
            SimulatedChange(bands=('B8',))


class TestSpectra:
    def test_tables(self) -> None:
        assert len(S2_BANDS) == 13
        assert len(CLASSES) >= 7
        for profile in ESRI_L2A_PROFILES.values():
            assert len(profile) == 12
        for profile in ESRI_L1C_PROFILES.values():
            assert len(profile) == 13
        b10 = S2_BANDS.index('B10')
        for spectrum in [*ENDMEMBERS.values(), *CLASS_SPECTRA.values()]:
            assert spectrum.shape == (13,)
            assert (spectrum >= 0).all()
            assert (spectrum <= 10000).all()
            assert spectrum[b10] <= 30
        for name in CLASSES:
            assert sum(CLASS_MIXTURES[name].values()) == pytest.approx(1)
            assert 0.05 <= CLASS_RELATIVE_STD[name] <= 0.15
            assert CLASS_MIXTURE_CONCENTRATION[name] > 0

    def test_physical_sanity(self) -> None:
        def index(name: str) -> int:
            return S2_BANDS.index(name)

        forest, water = CLASS_SPECTRA['Forests'], CLASS_SPECTRA['Surface water']
        # vegetation: red edge, NIR plateau far above red
        assert forest[index('B08')] > 5 * forest[index('B04')]
        # water: dark in NIR and SWIR
        assert water[index('B08')] < water[index('B03')]
        assert water[index('B11')] < 100
        # built-up: flat and bright
        buildings = CLASS_SPECTRA['Buildings']
        assert buildings[index('B04')] > 1500

    def test_class_spectra_and_band_indices(self) -> None:
        table = class_spectra(('Forests', 'Buildings'), ('B08', 'B04'))
        assert table.shape == (2, 2)
        assert table[0, 0] == CLASS_SPECTRA['Forests'][7]
        assert band_indices(('B8A', 'B01')) == [8, 0]
        with pytest.raises(ValueError, match='B99'):
            band_indices(('B99',))


class TestPlotting:
    def test_false_colour(self) -> None:
        image = torch.stack(
            [
                torch.arange(100.0).reshape(10, 10),
                torch.full((10, 10), 7.0),
                torch.rand(10, 10, generator=torch.Generator().manual_seed(0)) * 1e4,
            ]
        )
        rgb = false_colour(image, [2, 0, 1])
        assert rgb.shape == (10, 10, 3)
        assert rgb.min() >= 0
        assert rgb.max() <= 1
        assert np.all(rgb[..., 2] == 0)  # a flat band gives zeros, not NaN
        assert rgb[0, 0, 1] == 0
        assert rgb[-1, -1, 1] == 1
        full = false_colour(image, [0, 0, 0], percentiles=(0, 100))
        assert full[0, 0, 0] == 0
        assert full[-1, -1, 0] == 1
        with pytest.raises(ValueError, match='3 bands'):
            false_colour(image, [0, 1])

    def test_class_colormap(self) -> None:
        cmap = class_colormap(8)
        assert cmap.N == 8
        colours = {tuple(cmap(index)) for index in range(8)}
        assert len(colours) == 8
        assert [cmap(i) for i in range(8)] == [class_colormap(8)(i) for i in range(8)]
        big = class_colormap(40)
        assert len({tuple(big(index)) for index in range(40)}) == 40
        assert big(3) == cmap(3)
        with pytest.raises(ValueError, match='at least 1'):
            class_colormap(0)

    @pytest.mark.parametrize('mask_shape', [(16, 16), (1, 16, 16)])
    def test_plot_segmentation(self, mask_shape: Sequence[int]) -> None:
        image = torch.rand(4, 16, 16)
        mask = torch.randint(0, 3, mask_shape)
        mask.view(-1)[0] = 255  # an ignore value is drawn, not an error
        names = ('a', 'b', 'c')
        figure = plot_segmentation(image, mask, [2, 1, 0], names, prediction=mask)
        assert len(figure.axes) == 3
        legend = figure.legends[0]
        assert [text.get_text() for text in legend.get_texts()] == list(names)
        plt.close(figure)
        figure = plot_segmentation(image, mask, [0, 1, 2], names, show_titles=False)
        assert figure.axes[0].get_title() == ''
        plt.close(figure)

    def test_plot_change_shares_the_stretch(self) -> None:
        date1 = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
        image = torch.stack([date1, date1 * 2])
        mask = torch.zeros(16, 16, dtype=torch.long)
        figure = plot_change(image, mask, [0, 1, 2], prediction=mask.float()[None])
        assert len(figure.axes) == 4
        first = figure.axes[0].images[0].get_array()
        second = figure.axes[1].images[0].get_array()
        assert first is not None
        assert second is not None
        assert float(np.mean(second)) > float(np.mean(first)) + 0.2
        plt.close(figure)
        with pytest.raises(ValueError, match=r'\[2, C, H, W\]'):
            plot_change(date1, mask, [0, 1, 2])
