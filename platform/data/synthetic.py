"""Procedural video-depth sequences with exact ground truth.

A camera moves through a room (floor, ceiling, walls, optionally an open far
side showing sky) furnished with boxes and spheres, some of which move on
their own. Every pixel's ray is cast analytically against every object in
vectorised NumPy. Rays are scaled so that their z component in camera
coordinates is 1; the ray parameter of the nearest hit is then the z-depth
itself, exact to float precision rather than estimated. Textures are
procedural (checkers and sinusoids in world coordinates), shading is Lambert
plus ambient, and distance fog adds the monocular cue that far is hazy.

Conventions (the clip shards store the same): OpenCV camera (x right, y down,
z forward), camera-to-world 4x4 poses, depth in metres, sky = invalid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SKY_COLOUR = np.array([0.55, 0.7, 0.9])
FOG_COLOUR = np.array([0.75, 0.75, 0.78])


@dataclass
class SyntheticConfig:
    frames: int = 48
    height: int = 96
    width: int = 128
    fov_deg: float = 60.0
    boxes: int = 4
    spheres: int = 3
    moving: int = 2  # how many spheres move on their own
    speed: float = 0.08  # metres per frame along the path
    room: tuple[float, float, float] = (8.0, 3.0, 24.0)  # width, height, depth
    open_far_side: bool = False  # True: the far wall is sky (invalid depth)
    fog_distance: float = 18.0


@dataclass
class Frame:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres, 0 where invalid
    valid: np.ndarray  # (H, W) bool
    intrinsics: np.ndarray  # (3, 3)
    c2w: np.ndarray  # (4, 4)


@dataclass
class _Plane:
    normal: np.ndarray
    offset: float  # normal . x = offset
    albedo: np.ndarray
    tile: float


@dataclass
class _Box:
    low: np.ndarray
    high: np.ndarray
    albedo: np.ndarray
    tile: float


@dataclass
class _Sphere:
    centre: np.ndarray
    radius: float
    albedo: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    period: float = 90.0  # frames: moving objects swing back and forth, staying in the room

    def position(self, t: int) -> np.ndarray:
        """Starts moving at `velocity`, oscillates with `period` (bounded for any length)."""
        omega = 2 * np.pi / self.period
        return self.centre + self.velocity * np.sin(omega * t) / omega


def intrinsics_for(height: int, width: int, fov_deg: float) -> np.ndarray:
    focal = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
    return np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1.0]])


def look_rotation(yaw: float, pitch: float) -> np.ndarray:
    """Camera-to-world rotation: yaw about the world y axis, then pitch about x."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return r_yaw @ r_pitch


def camera_rays(intrinsics: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H*W, 3) camera-space ray directions with z = 1 (so hit distance = depth)."""
    v, u = np.mgrid[0:height, 0:width]
    pixels = np.stack([u.ravel(), v.ravel(), np.ones(height * width)])
    return (np.linalg.inv(intrinsics) @ pixels).T


def _texture(points: np.ndarray, tile: np.ndarray) -> np.ndarray:
    """Checkers of per-point size `tile` (N, 1) plus a smooth wave, in world coordinates."""
    cells = np.floor(points / tile).astype(np.int64).sum(axis=1) % 2
    waves = 0.5 + 0.5 * np.sin(points[:, 0] * 3.1 + points[:, 2] * 1.7) * np.cos(points[:, 1] * 2.3)
    return 0.55 + 0.3 * cells + 0.15 * waves


class SyntheticScene:
    """One procedural sequence, deterministic from its seed."""

    def __init__(self, config: SyntheticConfig, seed: int) -> None:
        self.config = config
        rng = np.random.default_rng(seed)
        width, height, depth = config.room
        half = width / 2
        self.planes = [
            _Plane(np.array([0.0, -1.0, 0.0]), -height / 2, np.array([0.8, 0.7, 0.55]), 0.5),
            _Plane(np.array([0.0, 1.0, 0.0]), -height / 2, np.array([0.9, 0.9, 0.92]), 1.0),
            _Plane(np.array([1.0, 0.0, 0.0]), -half, np.array([0.6, 0.75, 0.65]), 0.7),
            _Plane(np.array([-1.0, 0.0, 0.0]), -half, np.array([0.75, 0.6, 0.6]), 0.7),
            _Plane(np.array([0.0, 0.0, 1.0]), -1.0, np.array([0.7, 0.7, 0.8]), 0.8),
        ]
        if not config.open_far_side:
            self.planes.append(
                _Plane(np.array([0.0, 0.0, -1.0]), -depth, np.array([0.5, 0.6, 0.8]), 1.2)
            )
        floor_y = height / 2
        self.boxes = []
        for _ in range(config.boxes):
            size = rng.uniform(0.4, 1.2, size=3)
            centre = np.array(
                [_aside(rng, half, size[0]), floor_y - size[1] / 2, rng.uniform(2, depth - 2)]
            )
            self.boxes.append(
                _Box(
                    centre - size / 2,
                    centre + size / 2,
                    rng.uniform(0.3, 1.0, 3),
                    rng.uniform(0.2, 0.5),
                )
            )
        self.spheres = []
        for i in range(config.spheres):
            radius = rng.uniform(0.3, 0.7)
            centre = np.array(
                [
                    _aside(rng, half, 2 * radius),
                    rng.uniform(-0.5, floor_y - radius),
                    rng.uniform(2, depth - 2),
                ]
            )
            velocity = np.zeros(3)
            if i < config.moving:
                velocity = rng.uniform(-0.05, 0.05, 3) * np.array([1.0, 0.3, 1.0])
            self.spheres.append(_Sphere(centre, radius, rng.uniform(0.3, 1.0, 3), velocity))
        self.phase = rng.uniform(0, 2 * np.pi, size=3)
        self._room_box = (np.array([-half, -height / 2, -1.0]), np.array([half, height / 2, depth]))
        self.light = np.array([0.4, -1.0, 0.3]) / np.linalg.norm([0.4, -1.0, 0.3])
        self.intrinsics = intrinsics_for(config.height, config.width, config.fov_deg)
        self._rays = camera_rays(self.intrinsics, config.height, config.width)

    def pose(self, t: int) -> np.ndarray:
        """Camera-to-world pose at frame t: forward and back along the room, swaying.

        z = z0 + A sin(speed t / A) starts at `speed` m/frame and stays inside
        the room for any sequence length; |x| stays below 0.8 m, the corridor
        kept free of objects.
        """
        c = self.config
        p = self.phase
        amplitude = (c.room[2] - 5.5) / 2
        position = np.array(
            [
                0.8 * np.sin(0.05 * t + p[0]),
                -0.2 + 0.1 * np.sin(0.07 * t + p[1]),
                amplitude + 0.5 + amplitude * np.sin(c.speed * t / amplitude),
            ]
        )
        c2w = np.eye(4)
        c2w[:3, :3] = look_rotation(0.15 * np.sin(0.04 * t + p[2]), 0.05 * np.sin(0.03 * t))
        c2w[:3, 3] = position
        return c2w

    def render(self, t: int) -> Frame:
        c = self.config
        c2w = self.pose(t)
        rotation, origin = c2w[:3, :3], c2w[:3, 3]
        directions = self._rays @ rotation.T  # world-space, camera-z component 1
        count = directions.shape[0]
        best = np.full(count, np.inf)
        normal = np.zeros((count, 3))
        albedo = np.zeros((count, 3))
        tile = np.ones(count)

        def take(hit: np.ndarray, n: np.ndarray, colour: np.ndarray, tile_size: float) -> None:
            closer = hit < best
            best[closer] = hit[closer]
            normal[closer] = n[closer] if n.ndim == 2 else n
            albedo[closer] = colour
            tile[closer] = tile_size

        low, high = self._room_box
        for plane in self.planes:
            denominator = directions @ plane.normal
            with np.errstate(divide="ignore", invalid="ignore"):
                hit = (plane.offset - origin @ plane.normal) / denominator
            hit = np.where((denominator < -1e-9) & (hit > 1e-6), hit, np.inf)
            # faces are bounded by the room: a ray leaving through an open side escapes
            with np.errstate(invalid="ignore"):
                points = origin + directions * hit[:, None]
            inside = np.all((points >= low - 1e-6) & (points <= high + 1e-6), axis=1)
            take(np.where(inside, hit, np.inf), plane.normal, plane.albedo, plane.tile)
        for box in self.boxes:
            hit, n = _ray_box(origin, directions, box.low, box.high)
            take(hit, n, box.albedo, box.tile)
        for sphere in self.spheres:
            centre = sphere.position(t)
            hit = _ray_sphere(origin, directions, centre, sphere.radius)
            points = origin + directions * np.where(np.isfinite(hit), hit, 0)[:, None]
            n = (points - centre) / sphere.radius
            take(hit, n, sphere.albedo, 0.25)

        valid = np.isfinite(best)
        depth = np.where(valid, best, 0.0)
        points = origin + directions * depth[:, None]
        lambert = np.clip(-(normal @ self.light), 0, 1)
        colour = (
            albedo * _texture(points, tile[:, None])[:, None] * (0.35 + 0.65 * lambert)[:, None]
        )
        fog = 1 - np.exp(-depth / c.fog_distance)
        colour = colour * (1 - fog[:, None]) + FOG_COLOUR * fog[:, None]
        colour[~valid] = SKY_COLOUR
        shape = (c.height, c.width)
        return Frame(
            rgb=(np.clip(colour, 0, 1) * 255).round().astype(np.uint8).reshape(*shape, 3),
            depth=depth.reshape(shape).astype(np.float32),
            valid=valid.reshape(shape),
            intrinsics=self.intrinsics.copy(),
            c2w=c2w,
        )

    def frames(self):
        for t in range(self.config.frames):
            yield self.render(t)

    @property
    def max_depth(self) -> float:
        """An upper bound of any depth in the scene (the room's diagonal), for the manifest."""
        return float(np.ceil(np.linalg.norm(self.config.room) + 1))


def _aside(rng: np.random.Generator, half: float, size: float) -> float:
    """An x position left or right of the camera corridor (|x| < 1.3), inside the walls."""
    side = rng.choice([-1.0, 1.0])
    return side * rng.uniform(1.3 + size / 2, max(half - size / 2, 1.3 + size / 2 + 0.01))


def _ray_box(origin, directions, low, high):
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / directions
        t0 = (low - origin) * inverse
        t1 = (high - origin) * inverse
    near = np.nanmax(np.minimum(t0, t1), axis=1)
    far = np.nanmin(np.maximum(t0, t1), axis=1)
    hit = np.where((far >= near) & (near > 1e-6), near, np.inf)
    # the face entered is the axis whose slab bound `near`
    axis = np.nanargmax(np.minimum(t0, t1), axis=1)
    normal = np.zeros_like(directions)
    normal[np.arange(len(axis)), axis] = -np.sign(directions[np.arange(len(axis)), axis])
    return hit, normal


def _ray_sphere(origin, directions, centre, radius):
    offset = origin - centre
    a = (directions * directions).sum(axis=1)
    b = 2 * (directions @ offset)
    c = offset @ offset - radius * radius
    disc = b * b - 4 * a * c
    root = np.sqrt(np.maximum(disc, 0))
    near = (-b - root) / (2 * a)
    return np.where((disc >= 0) & (near > 1e-6), near, np.inf)
