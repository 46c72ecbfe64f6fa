from pathlib import Path
from typing import Literal

import pytest
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from torch import Tensor

from torchgeo_specdm.models import (
    AutoencoderOutput,
    JointAutoencoder,
    SingleStreamAutoencoder,
    TwoStreamAutoencoder,
    build_autoencoder,
)
from torchgeo_specdm.models.autoencoder_kl import encode_posterior

SIZE = 16


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def make_batch(
    bands: int, num_classes: int, num_images: int, size: int = SIZE, batch: int = 2
) -> tuple[Tensor, Tensor]:
    if num_images == 1:
        image = torch.randn(batch, bands, size, size)
        mask = torch.randint(0, num_classes, (batch, size, size))
    else:
        image = torch.randn(batch, num_images, bands, size, size)
        mask = torch.randint(0, num_classes, (batch, 1, size, size))
    return image, mask


def two_stream(
    bands: int = 4,
    num_classes: int = 3,
    num_images: Literal[1, 2] = 1,
    factor: Literal[2, 4, 8] = 4,
) -> TwoStreamAutoencoder:
    return TwoStreamAutoencoder(
        bands,
        num_classes,
        num_images=num_images,
        downsampling_factor=factor,
        base_channels=8,
        mask_base_channels=8,
    )


class TestBuildAutoencoder:
    @pytest.mark.parametrize(
        ('factor', 'widths'), [(2, (8, 16)), (4, (8, 16, 32)), (8, (8, 16, 32, 32))]
    )
    def test_blocks(self, factor: Literal[2, 4, 8], widths: tuple[int, ...]) -> None:
        vae = build_autoencoder(5, 7, 3, downsampling_factor=factor, base_channels=8)
        assert isinstance(vae, AutoencoderKL)
        assert tuple(vae.config['block_out_channels']) == widths
        assert vae.config['norm_num_groups'] == 8
        x = torch.randn(1, 5, 16, 16)
        posterior = encode_posterior(vae, x)
        assert posterior.mean.shape == (1, 3, 16 // factor, 16 // factor)

    @pytest.mark.parametrize(('base', 'groups'), [(8, 8), (32, 32), (48, 24), (64, 32)])
    def test_norm_groups(self, base: int, groups: int) -> None:
        vae = build_autoencoder(3, 3, 4, downsampling_factor=2, base_channels=base)
        assert vae.config['norm_num_groups'] == groups

    @pytest.mark.parametrize(
        ('kwargs', 'match'),
        [
            ({'in_channels': 0}, 'in_channels must be >= 1'),
            ({'out_channels': 0}, 'out_channels must be >= 1'),
            ({'latent_channels': 0}, 'latent_channels must be >= 1'),
            ({'base_channels': 0}, 'base_channels must be >= 1'),
            ({'downsampling_factor': 16}, 'downsampling_factor must be one of'),
        ],
    )
    def test_invalid(self, kwargs: dict[str, int], match: str) -> None:
        args = {'in_channels': 3, 'out_channels': 3, 'latent_channels': 4}
        args.update(kwargs)
        with pytest.raises(ValueError, match=match):
            build_autoencoder(**args)  # type: ignore[arg-type]


class TestTwoStreamAutoencoder:
    @pytest.mark.parametrize('bands', [4, 10, 13, 204])
    @pytest.mark.parametrize('num_images', [1, 2])
    @pytest.mark.parametrize('factor', [4, 8])
    def test_shapes(
        self, bands: int, num_images: Literal[1, 2], factor: Literal[4, 8]
    ) -> None:
        model = two_stream(bands, 3, num_images, factor)
        image, mask = make_batch(bands, 3, num_images)
        h = SIZE // factor

        posteriors = model.encode(image, mask)
        assert set(posteriors) == {'image', 'mask'}
        assert posteriors['image'].mean.shape == (2, 4 * num_images, h, h)
        assert posteriors['mask'].mean.shape == (2, 2, h, h)

        assert model.latent_channels == 4 * num_images + 2
        assert model.latent_shape(SIZE, SIZE) == (4 * num_images + 2, h, h)
        z = model.encode_joint(image, mask)
        assert z.shape == (2, *model.latent_shape(SIZE, SIZE))

        rec, logits = model.decode_joint(z)
        assert rec.shape == image.shape
        assert logits.shape == (2, 3, SIZE, SIZE)

        out = model(image, mask)
        assert isinstance(out, AutoencoderOutput)
        assert out.image.shape == image.shape
        assert out.mask_logits.shape == (2, 3, SIZE, SIZE)
        assert set(out.posteriors) == {'image', 'mask'}

    def test_mask_with_channel_dim(self) -> None:
        model = two_stream()
        image, mask = make_batch(4, 3, 1)
        a = model.encode_joint(image, mask)
        b = model.encode_joint(image, mask.unsqueeze(1))
        torch.testing.assert_close(a, b)

    def test_bitemporal_shared_weights(self) -> None:
        model = two_stream(num_images=2)
        image, mask = make_batch(4, 2, 2)
        posterior = model.encode(image, mask)['image']
        for t in range(2):
            single = encode_posterior(model.image_autoencoder, image[:, t])
            torch.testing.assert_close(
                posterior.mean[:, 4 * t : 4 * (t + 1)], single.mean
            )
            torch.testing.assert_close(
                posterior.std[:, 4 * t : 4 * (t + 1)], single.std
            )

    def test_forward_mean_is_deterministic(self) -> None:
        model = two_stream()
        image, mask = make_batch(4, 3, 1)
        a = model(image, mask, sample_posterior=False)
        b = model(image, mask, sample_posterior=False)
        torch.testing.assert_close(a.image, b.image)
        torch.testing.assert_close(a.mask_logits, b.mask_logits)

    def test_backward(self) -> None:
        model = two_stream(num_images=2)
        image, mask = make_batch(4, 2, 2)
        out = model(image, mask)
        loss = out.image.square().mean() + out.mask_logits.square().mean()
        loss = loss + sum(p.kl().mean() for p in out.posteriors.values())
        loss.backward()
        for vae in (model.image_autoencoder, model.mask_autoencoder):
            grad = vae.encoder.conv_in.weight.grad
            assert grad is not None
            assert grad.abs().sum() > 0

    @pytest.mark.parametrize('num_images', [1, 2])
    def test_scale_factors(self, num_images: Literal[1, 2]) -> None:
        model = two_stream(num_images=num_images)
        assert model.get_scale_factors() == {'image': 1.0, 'mask': 1.0}
        image, mask = make_batch(4, 3, num_images, batch=4)
        latents = model.encode_latents(image, mask)
        factors = model.estimate_scale_factors(latents)
        assert set(factors) == {'image', 'mask'}
        for name in ('image', 'mask'):
            assert factors[name] == pytest.approx(
                1 / latents[name].std().item(), rel=1e-5
            )
        z = model.join(latents)
        scaled = model.split(z)  # unscaled again
        channels = model.stream_channels['image']
        assert z[:, :channels].std().item() == pytest.approx(1, abs=1e-3)
        assert z[:, channels:].std().item() == pytest.approx(1, abs=1e-3)
        torch.testing.assert_close(model.encode_joint(image, mask), z)
        assert model.get_scale_factors() == factors
        for name in ('image', 'mask'):
            torch.testing.assert_close(scaled[name], latents[name])

    def test_join_split_roundtrip(self) -> None:
        model = two_stream(num_images=2)
        model.set_scale_factors({'image': 0.5, 'mask': 3.0})
        latents = {'image': torch.randn(2, 8, 4, 4), 'mask': torch.randn(2, 2, 4, 4)}
        z = model.join(latents)
        assert z.shape == (2, 10, 4, 4)
        torch.testing.assert_close(z[:, :8], latents['image'] * 0.5)
        torch.testing.assert_close(z[:, 8:], latents['mask'] * 3.0)
        back = model.split(z)
        for name in ('image', 'mask'):
            torch.testing.assert_close(back[name], latents[name])
        torch.testing.assert_close(model.join(back), z)

    def test_decode_joint_matches_decode(self) -> None:
        model = two_stream(num_images=2)
        model.set_scale_factors({'image': 0.5, 'mask': 3.0})
        latents = {'image': torch.randn(1, 8, 4, 4), 'mask': torch.randn(1, 2, 4, 4)}
        a = model.decode(latents)
        b = model.decode_joint(model.join(latents))
        torch.testing.assert_close(a[0], b[0])
        torch.testing.assert_close(a[1], b[1])

    def test_state_dict_roundtrip(self, tmp_path: Path) -> None:
        model = two_stream()
        model.set_scale_factors({'image': 0.25, 'mask': 4.0})
        assert 'scale_factors' in model.state_dict()
        path = tmp_path / 'model.pt'
        torch.save(model.state_dict(), path)
        fresh = two_stream()
        assert fresh.get_scale_factors() == {'image': 1.0, 'mask': 1.0}
        fresh.load_state_dict(torch.load(path, weights_only=True))
        assert fresh.get_scale_factors() == {'image': 0.25, 'mask': 4.0}
        image, mask = make_batch(4, 3, 1)
        torch.testing.assert_close(
            fresh.encode_joint(image, mask), model.encode_joint(image, mask)
        )

    @pytest.mark.parametrize(
        ('num_images', 'image_shape', 'mask_shape', 'match'),
        [
            (1, (2, 4, 18, 16), (2, 18, 16), r'divisible by downsampling_factor=4.*'),
            (1, (2, 5, 16, 16), (2, 16, 16), r'in_channels=4 bands, got 5'),
            (
                1,
                (2, 2, 4, 16, 16),
                (2, 16, 16),
                r'image must have shape \[B, 4, H, W\]',
            ),
            (2, (2, 4, 16, 16), (2, 1, 16, 16), r'shape \[B, 2, 4, H, W\]'),
            (2, (2, 2, 3, 16, 16), (2, 1, 16, 16), r'in_channels=4 bands, got 3'),
            (1, (2, 4, 16, 16), (2, 8, 8), r'mask must have shape \[2, 16, 16\]'),
            (2, (2, 2, 4, 16, 16), (2, 2, 16, 16), r'mask must have shape'),
        ],
    )
    def test_invalid_shapes(
        self,
        num_images: Literal[1, 2],
        image_shape: tuple[int, ...],
        mask_shape: tuple[int, ...],
        match: str,
    ) -> None:
        model = two_stream(num_images=num_images)
        image = torch.randn(image_shape)
        mask = torch.zeros(mask_shape, dtype=torch.long)
        with pytest.raises(ValueError, match=match):
            model.encode(image, mask)

    @pytest.mark.parametrize(('value', 'shown'), [(3, r'\[0, 3\]'), (-1, r'\[-1, 0\]')])
    def test_invalid_labels(self, value: int, shown: str) -> None:
        model = two_stream(num_classes=3)
        image, mask = make_batch(4, 3, 1)
        mask.zero_()
        mask[0, 0, 0] = value
        with pytest.raises(ValueError, match=r'\[0, num_classes=3\).*' + shown):
            model(image, mask)

    def test_invalid_change_labels(self) -> None:
        model = two_stream(num_classes=2, num_images=2)
        image, mask = make_batch(4, 2, 2)
        mask[0, 0, 0, 0] = 2
        with pytest.raises(ValueError, match=r'num_classes=2'):
            model.encode(image, mask)

    def test_fractional_float_mask(self) -> None:
        model = two_stream()
        image, _ = make_batch(4, 3, 1)
        with pytest.raises(ValueError, match='integer class indices'):
            model.encode(image, torch.full((2, SIZE, SIZE), 0.5))
        # integral float masks are accepted
        model.encode(image, torch.ones(2, SIZE, SIZE))

    def test_invalid_latents(self) -> None:
        model = two_stream()
        with pytest.raises(ValueError, match=r"streams \('image', 'mask'\)"):
            model.join({'image': torch.randn(1, 4, 4, 4)})
        with pytest.raises(ValueError, match=r"'mask' must have shape \[B, 2, h, w\]"):
            model.decode(
                {'image': torch.randn(1, 4, 4, 4), 'mask': torch.randn(1, 3, 4, 4)}
            )
        with pytest.raises(
            ValueError, match=r'shape \[B, 6, h, w\], got \(1, 5, 4, 4\)'
        ):
            model.split(torch.randn(1, 5, 4, 4))
        with pytest.raises(ValueError, match='downsampling_factor=4, got 18x16'):
            model.latent_shape(18, 16)

    def test_invalid_scale_factors(self) -> None:
        model = two_stream()
        with pytest.raises(ValueError, match="unknown stream 'joint'"):
            model.set_scale_factors({'joint': 1.0})
        with pytest.raises(ValueError, match='must be > 0'):
            model.set_scale_factors({'image': 0.0})
        latents = {'image': torch.zeros(1, 4, 4, 4), 'mask': torch.randn(1, 2, 4, 4)}
        with pytest.raises(ValueError, match="stream 'image' have invalid std"):
            model.estimate_scale_factors(latents)
        assert model.get_scale_factors() == {'image': 1.0, 'mask': 1.0}

    @pytest.mark.parametrize(
        ('kwargs', 'match'),
        [
            ({'in_channels': 0}, 'in_channels must be >= 1'),
            ({'num_classes': 1}, 'num_classes must be >= 2'),
            ({'num_images': 3}, 'num_images must be 1 or 2'),
            ({'downsampling_factor': 3}, 'downsampling_factor must be one of'),
            ({'image_latent_channels': 0}, 'latent channel'),
        ],
    )
    def test_invalid_arguments(self, kwargs: dict[str, int], match: str) -> None:
        args = {'in_channels': 4, 'num_classes': 3}
        args.update(kwargs)
        with pytest.raises(ValueError, match=match):
            TwoStreamAutoencoder(**args)  # type: ignore[arg-type]


class TestSingleStreamAutoencoder:
    @pytest.mark.parametrize('bands', [4, 13])
    @pytest.mark.parametrize('num_images', [1, 2])
    @pytest.mark.parametrize('factor', [4, 8])
    def test_shapes(
        self, bands: int, num_images: Literal[1, 2], factor: Literal[4, 8]
    ) -> None:
        model = SingleStreamAutoencoder(
            bands, 3, num_images=num_images, downsampling_factor=factor, base_channels=8
        )
        assert isinstance(model, JointAutoencoder)
        assert model.autoencoder.config['in_channels'] == num_images * bands + 3
        assert model.autoencoder.config['out_channels'] == num_images * bands + 3
        image, mask = make_batch(bands, 3, num_images)
        h = SIZE // factor
        assert model.latent_channels == 6
        assert model.latent_shape(SIZE, SIZE) == (6, h, h)
        posteriors = model.encode(image, mask)
        assert set(posteriors) == {'joint'}
        assert posteriors['joint'].mean.shape == (2, 6, h, h)
        z = model.encode_joint(image, mask, sample=True)
        assert z.shape == (2, 6, h, h)
        rec, logits = model.decode_joint(z)
        assert rec.shape == image.shape
        assert logits.shape == (2, 3, SIZE, SIZE)
        out = model(image, mask)
        assert out.image.shape == image.shape
        assert out.mask_logits.shape == (2, 3, SIZE, SIZE)

    def test_channel_split(self) -> None:
        model = SingleStreamAutoencoder(3, 4, num_images=2, base_channels=8)
        z = torch.randn(1, 6, 4, 4)
        raw = model.autoencoder.decode(z).sample
        assert raw.shape == (1, 2 * 3 + 4, SIZE, SIZE)
        image, logits = model.decode({'joint': z})
        torch.testing.assert_close(image[:, 0], raw[:, 0:3])
        torch.testing.assert_close(image[:, 1], raw[:, 3:6])
        torch.testing.assert_close(logits, raw[:, 6:])

    def test_input_stacking(self) -> None:
        model = SingleStreamAutoencoder(3, 4, num_images=2, base_channels=8)
        image, mask = make_batch(3, 4, 2)
        one_hot = torch.nn.functional.one_hot(mask[:, 0], 4).permute(0, 3, 1, 2)
        x = torch.cat([image[:, 0], image[:, 1], one_hot.float()], dim=1)
        expected = encode_posterior(model.autoencoder, x).mean
        torch.testing.assert_close(model.encode(image, mask)['joint'].mean, expected)

    def test_scale_factor_and_state_dict(self, tmp_path: Path) -> None:
        model = SingleStreamAutoencoder(4, 3, base_channels=8)
        image, mask = make_batch(4, 3, 1, batch=4)
        factors = model.estimate_scale_factors(model.encode_latents(image, mask))
        assert set(factors) == {'joint'}
        assert model.encode_joint(image, mask).std().item() == pytest.approx(
            1, abs=1e-3
        )
        path = tmp_path / 'single.pt'
        torch.save(model.state_dict(), path)
        fresh = SingleStreamAutoencoder(4, 3, base_channels=8)
        fresh.load_state_dict(torch.load(path, weights_only=True))
        assert fresh.get_scale_factors() == factors

    def test_invalid_labels(self) -> None:
        model = SingleStreamAutoencoder(4, 3, base_channels=8)
        image, mask = make_batch(4, 3, 1)
        mask[1, 2, 3] = 7
        with pytest.raises(
            ValueError, match=r'mask values must be in \[0, num_classes=3\)'
        ):
            model.encode(image, mask)
