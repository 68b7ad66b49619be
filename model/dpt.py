"""DPT head (Depth Anything V2 layout) and its spatio-temporal variant (VDA).

The plain head is kept as its own class because Depth Anything V2 image
checkpoints initialise training with it; the temporal head adds the four
temporal modules at the places the official VDA head has them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import PATCH_SIZE, HeadSpec
from .temporal import TemporalModule


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(x))
        out = self.conv2(F.relu(out))
        return out + x


class FeatureFusionBlock(nn.Module):
    """Fuse a coarser path with a skip feature map, refine, and upsample.

    The deepest block (refinenet4) has no skip input, so its `resConfUnit1` is
    never used; it stays because the official checkpoints carry it.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(
        self,
        path: torch.Tensor,
        skip: torch.Tensor | None = None,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        if size is None:
            path = F.interpolate(path, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            path = F.interpolate(path, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(path)


class Scratch(nn.Module):
    """Container named `scratch` in the official layout."""

    def __init__(self, spec: HeadSpec) -> None:
        super().__init__()
        f = spec.features
        oc = spec.out_channels
        self.layer1_rn = nn.Conv2d(oc[0], f, 3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(oc[1], f, 3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(oc[2], f, 3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(oc[3], f, 3, padding=1, bias=False)
        self.refinenet1 = FeatureFusionBlock(f)
        self.refinenet2 = FeatureFusionBlock(f)
        self.refinenet3 = FeatureFusionBlock(f)
        self.refinenet4 = FeatureFusionBlock(f)
        self.output_conv1 = nn.Conv2d(f, f // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(f // 2, 32, 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(32, 1, 1),
            nn.ReLU(True),
            nn.Identity(),
        )


def tokens_to_map(tokens: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """(N, h*w, C) patch tokens -> (N, C, h, w) feature map."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[-1], grid_h, grid_w)


class DPTHead(nn.Module):
    """Plain DPT head: per-frame, no temporal mixing (Depth Anything V2)."""

    def __init__(self, in_channels: int, spec: HeadSpec) -> None:
        super().__init__()
        oc = spec.out_channels
        self.projects = nn.ModuleList([nn.Conv2d(in_channels, c, 1) for c in oc])
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = Scratch(spec)
        # The head ends in a ReLU. With PyTorch's default init its input is
        # negative almost everywhere, so a head trained from scratch would output
        # zeros and get no gradient at all. A positive bias keeps it alive;
        # loaded checkpoints overwrite it.
        nn.init.constant_(self.scratch.output_conv2[2].bias, 1.0)

    def _pyramid(
        self, features: list[torch.Tensor], grid_h: int, grid_w: int
    ) -> list[torch.Tensor]:
        return [
            resize(project(tokens_to_map(tokens, grid_h, grid_w)))
            for tokens, project, resize in zip(features, self.projects, self.resize_layers)
        ]

    def _decode_fine(
        self,
        path_3: torch.Tensor,
        layer_1_rn: torch.Tensor,
        layer_2_rn: torch.Tensor,
        out_size: tuple[int, int],
    ) -> torch.Tensor:
        """The high-resolution stages: refinenet2, refinenet1 and the output convs."""
        s = self.scratch
        path_2 = s.refinenet2(path_3, layer_2_rn, size=tuple(layer_1_rn.shape[-2:]))
        path_1 = s.refinenet1(path_2, layer_1_rn)
        out = s.output_conv1(path_1)
        out = F.interpolate(out, size=out_size, mode="bilinear", align_corners=True)
        # The final convs run in fp32 even under autocast, as the official head
        # does: the ReLU output is the depth and fp16 loses its fine range.
        with torch.autocast(device_type=out.device.type, enabled=False):
            out = s.output_conv2(out.float())
        return out

    def decode_fine_batched(
        self,
        path_3: torch.Tensor,
        layer_1_rn: torch.Tensor,
        layer_2_rn: torch.Tensor,
        out_size: tuple[int, int],
        micro_batch: int | None,
        frames: int = 1,
        keep: int | None = None,
    ) -> torch.Tensor:
        """Run the high-resolution stages in micro-batches of frames to cap memory.

        `keep`: only the first `keep` frames of each clip of `frames` get
        them (the stages are per frame, so the others' outputs are unchanged);
        the streaming engine skips a window's padding slots that way.
        """
        if keep is not None and keep < frames:
            clips = path_3.shape[0] // frames
            wanted = torch.tensor(
                [c * frames + i for c in range(clips) for i in range(keep)], device=path_3.device
            )
            path_3, layer_1_rn, layer_2_rn = (
                t.index_select(0, wanted) for t in (path_3, layer_1_rn, layer_2_rn)
            )
        n = path_3.shape[0]
        if not micro_batch or n <= micro_batch:
            return self._decode_fine(path_3, layer_1_rn, layer_2_rn, out_size)
        chunks = [
            self._decode_fine(
                path_3[i : i + micro_batch],
                layer_1_rn[i : i + micro_batch],
                layer_2_rn[i : i + micro_batch],
                out_size,
            )
            for i in range(0, n, micro_batch)
        ]
        return torch.cat(chunks, dim=0)

    def forward(
        self,
        features: list[torch.Tensor],
        grid_h: int,
        grid_w: int,
        frames: int = 1,
        micro_batch: int | None = None,
        keep: int | None = None,
    ) -> torch.Tensor:
        """features: four (N, h*w, C) token maps -> (N, 1, 14h, 14w) disparity
        (N / frames * keep maps with `keep`, see `decode_fine_batched`)."""
        layer_1, layer_2, layer_3, layer_4 = self._pyramid(features, grid_h, grid_w)
        s = self.scratch
        l1, l2, l3, l4 = (
            s.layer1_rn(layer_1),
            s.layer2_rn(layer_2),
            s.layer3_rn(layer_3),
            s.layer4_rn(layer_4),
        )
        path_4 = s.refinenet4(l4, size=tuple(l3.shape[-2:]))
        path_3 = s.refinenet3(path_4, l3, size=tuple(l2.shape[-2:]))
        out_size = (grid_h * PATCH_SIZE, grid_w * PATCH_SIZE)
        return self.decode_fine_batched(path_3, l1, l2, out_size, micro_batch, frames, keep)


class TemporalDPTHead(DPTHead):
    """DPT head with the four temporal modules of Video Depth Anything.

    Placement (official): on layer_3 after its projection, on layer_4 after its
    stride-2 conv, and on the outputs of refinenet4 and refinenet3. The
    high-resolution stages after them are per-frame, so they can run in
    micro-batches without changing the result.
    """

    def __init__(self, in_channels: int, spec: HeadSpec, max_frames: int) -> None:
        super().__init__(in_channels, spec)
        oc = spec.out_channels
        self.motion_modules = nn.ModuleList(
            [
                TemporalModule(oc[2], max_frames),
                TemporalModule(oc[3], max_frames),
                TemporalModule(spec.features, max_frames),
                TemporalModule(spec.features, max_frames),
            ]
        )

    def forward(
        self,
        features: list[torch.Tensor],
        grid_h: int,
        grid_w: int,
        frames: int = 1,
        micro_batch: int | None = None,
        keep: int | None = None,
        memory: list[list[torch.Tensor]] | None = None,
        record: list[list[torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """features: four (B*T, h*w, C) token maps, frame-major -> (B*T, 1, 14h, 14w)
        (B*keep maps with `keep`).

        Online mode: `memory[m]` is motion module m's cache of earlier frames and
        `record`, four empty lists, receives this call's (see `TemporalModule`).
        """
        layer_1, layer_2, layer_3, layer_4 = self._pyramid(features, grid_h, grid_w)

        def temporal(m: int, x: torch.Tensor) -> torch.Tensor:
            return self.motion_modules[m](
                x,
                frames,
                None if memory is None else memory[m],
                None if record is None else record[m],
            )

        layer_3 = temporal(0, layer_3)
        layer_4 = temporal(1, layer_4)
        s = self.scratch
        l1, l2, l3, l4 = (
            s.layer1_rn(layer_1),
            s.layer2_rn(layer_2),
            s.layer3_rn(layer_3),
            s.layer4_rn(layer_4),
        )
        path_4 = temporal(2, s.refinenet4(l4, size=tuple(l3.shape[-2:])))
        path_3 = temporal(3, s.refinenet3(path_4, l3, size=tuple(l2.shape[-2:])))
        out_size = (grid_h * PATCH_SIZE, grid_w * PATCH_SIZE)
        return self.decode_fine_batched(path_3, l1, l2, out_size, micro_batch, frames, keep)
