"""DINOv2 ViT/14 encoder built on timm, matching the official encoder's outputs.

timm's own `dynamic_img_size` path resamples the position embedding with
`size=` and antialiasing; the official DINOv2 code calls bicubic interpolation
with `scale_factor=((h + 0.1) / 37, (w + 0.1) / 37)` and no antialiasing, which
samples a different grid. Any resolution but 518 x 518 then gives different
features, so the position embedding is replaced here by the official formula.

Parameter names are timm's, which are also the official DINOv2 names, so both
timm DINOv2 weights and the `pretrained.*` part of official checkpoints load
directly (timm weights lack `mask_token`; the checkpoint adapter allows that).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from .config import PATCH_SIZE, PRETRAIN_GRID, EncoderSpec

# The offset the official code adds to the patch counts before computing the
# scale factor ("to avoid floating point error in the interpolation").
INTERPOLATE_OFFSET = 0.1


def interpolate_pos_embed(pos_embed: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """Resample a (1, 1 + N*N, C) position embedding to a grid_h x grid_w patch grid.

    Exactly the official DINOv2 formula: computed in float32, bicubic, no
    antialiasing, `scale_factor` rather than `size`. The square pre-training
    grid is returned unchanged, as the official code does.
    """
    num_patches = pos_embed.shape[1] - 1
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"position embedding with {num_patches} patch tokens is not square")
    if grid_h == grid_w == side:
        return pos_embed
    dtype = pos_embed.dtype
    pos = pos_embed.float()
    cls_pos, patch_pos = pos[:, :1], pos[:, 1:]
    dim = pos.shape[-1]
    scale = ((grid_h + INTERPOLATE_OFFSET) / side, (grid_w + INTERPOLATE_OFFSET) / side)
    grid = patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
    if grid.shape[-2:] != (grid_h, grid_w):
        raise RuntimeError(
            f"position-embedding interpolation gave {tuple(grid.shape[-2:])}, "
            f"expected {(grid_h, grid_w)}"
        )
    patch_pos = grid.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
    return torch.cat([cls_pos, patch_pos], dim=1).to(dtype)


class DinoV2Encoder(VisionTransformer):
    """A timm VisionTransformer with DINOv2's shape and the official pos-embed resampling."""

    def __init__(self, spec: EncoderSpec) -> None:
        super().__init__(
            img_size=PATCH_SIZE * PRETRAIN_GRID,
            patch_size=PATCH_SIZE,
            embed_dim=spec.embed_dim,
            depth=spec.depth,
            num_heads=spec.num_heads,
            mlp_ratio=4.0,
            qkv_bias=True,
            init_values=1e-5,  # LayerScale, as DINOv2
            num_classes=0,
            global_pool="token",
            dynamic_img_size=True,
        )
        self.spec = spec
        # DINOv2's masked-image-modelling token: unused for depth, but the
        # official checkpoints carry it (384 elements for vits), so it is kept
        # as a buffer to make the official layout this module's own layout.
        self.register_buffer("mask_token", torch.zeros(1, spec.embed_dim), persistent=True)

    def forward_taps(self, images: torch.Tensor, taps: tuple[int, ...]) -> list[torch.Tensor]:
        """Patch tokens (B, h*w, C) of the tapped blocks, final norm applied, class token dropped.

        `images` is (B, 3, H, W) with H and W multiples of 14.
        """
        height, width = images.shape[-2:]
        if height % PATCH_SIZE or width % PATCH_SIZE:
            raise ValueError(
                f"input size {height}x{width} is not a multiple of the patch size {PATCH_SIZE}"
            )
        grid_h, grid_w = height // PATCH_SIZE, width // PATCH_SIZE
        tokens = self.patch_embed(images)  # (B, h, w, C) with dynamic_img_size
        tokens = tokens.reshape(tokens.shape[0], grid_h * grid_w, tokens.shape[-1])
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1)
        tokens = tokens + interpolate_pos_embed(self.pos_embed, grid_h, grid_w).to(tokens.dtype)
        tokens = self.norm_pre(tokens)
        wanted = set(taps)
        outputs: dict[int, torch.Tensor] = {}
        for index, block in enumerate(self.blocks):
            tokens = block(tokens)
            if index in wanted:
                outputs[index] = self.norm(tokens)[:, 1:]
            if len(outputs) == len(wanted):
                break
        return [outputs[i] for i in taps]
