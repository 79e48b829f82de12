"""Synthetic indoor scenes with exact metric depth: vectorised NumPy ray casting with the NYU Kinect camera.

A scene is a furnished room, built from upright boxes by rooms.py: floor, ceiling and four walls (2.5-8 m
wide and deep, 2.4-3.2 m high); 0-2 doors (a 0.8-1.0 x 2.0-2.1 m leaf in a frame, with a handle) and 0-2
windows (a glowing pane in a frame with a sill, sometimes curtains) and a few framed pictures on the walls;
furniture for a bedroom, living room, kitchen or office (beds with pillows and covers, nightstands,
wardrobes, cabinets with doors or drawers, bookcases with boards and rows of books, tables and desks on
legs or side panels, chairs with seat, back and legs, sofas with arms and cushions, TV stands, kitchen
counters with wall cabinets, fridges, plants, rugs), against the walls or free-standing, never overlapping
(their footprints are tested), with small objects on tables, desks, counters and cabinets. Every surface
has a procedural texture (checkers, stripes, value noise or wood-like grain; plain off-white walls, wooden,
tiled or carpeted floors); 1-3 glowing ceiling lamps each carry a point light, and shading is Lambertian
with ambient light and the lamps' and window panes' own glow (no shadows).

The camera is hand-held inside the room: 1.0-1.7 m high, pitched -25..+10 degrees (mostly slightly
down), rolled at most 5 degrees, any heading, at least 0.35 m from every box and wall, with the NYU Kinect
colour intrinsics fx 518.86, fy 519.47, cx 325.58, cy 253.74 at 640x480. Its pose is chosen by rejection:
candidate poses are probed with a 16 x 12 grid of rays, and a pose is kept when the median depth of the
image's central region (its middle half in each direction) is at least 1.5 m, few pixels are nearer than
0.5 m and some furniture is in view. Colour gets mild Gaussian sensor noise; depth is exact, optionally
with Kinect-like holes (projector shadows left of depth edges, grazing surfaces, far range, random
dropouts). depth_statistics() measures the depth over many scenes (tools/synthetic_stats.py).

Conventions: world z is up, the room spans [0, W] x [0, D] x [0, H]. Camera axes are OpenCV's (x right,
y down, z forward); pixel (column u, row v), 0-based, looks along ((u - cx) / fx, (v - cy) / fy, 1) in
camera axes, and depth is the camera-z distance (what the Kinect and NYU's depth maps give), not the
distance along the ray. Because each ray direction has camera-z 1, the ray parameter t of the hit point
o + t d is the depth itself.

Everything is deterministic under a seed: SceneSet(count, seed) gives the same scenes, images and train/test
split in make_synthetic.py and in the on-the-fly training source.
"""
import dataclasses
import math

import numpy as np

from ..atomic import make_folder
from .constants import NYU_CX, NYU_CY, NYU_FX, NYU_FY, NYU_HEIGHT, NYU_WIDTH

CHECKERS, STRIPES, NOISE, WOOD = 0, 1, 2, 3
TEXTURES = ("checkers", "stripes", "noise", "wood")
ROOM_SURFACES = ("wall x=0", "wall x=W", "wall y=0", "wall y=D", "floor", "ceiling")
ROOM_SIZE_RANGE = (2.5, 8.0)     # rooms of 2.5-8 m
ROOM_HEIGHT_RANGE = (2.4, 3.2)
KINECT_BASELINE_M = 0.075        # IR projector to IR camera, for the projector shadows of the holes
KINECT_MAX_RANGE_M = (7.0, 9.5)  # beyond this the synthetic Kinect returns no depth
_CORNER_SIGNS = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], np.float64)


# -- Camera ---------------------------------------------------------------------------------------------
def look_rotation(yaw, pitch=0.0, roll=0.0):
    """World-from-camera rotation (columns: camera x right, y down, z forward in world axes, z up) for a
    heading `yaw` (radians from +x towards +y), `pitch` (up positive) and `roll` (about the view axis)."""
    forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
    right0 = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    down0 = np.cross(forward, right0)
    right = math.cos(roll) * right0 + math.sin(roll) * down0
    down = -math.sin(roll) * right0 + math.cos(roll) * down0
    return np.stack([right, down, forward], axis=1)


@dataclasses.dataclass
class Camera:
    """A pinhole camera: intrinsics, image size, world-from-camera rotation (3x3) and position (3,)."""
    fx: float = NYU_FX
    fy: float = NYU_FY
    cx: float = NYU_CX
    cy: float = NYU_CY
    width: int = NYU_WIDTH
    height: int = NYU_HEIGHT
    rotation: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))
    position: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))

    def crop(self, left, top, width, height):
        """The camera seeing exactly the pixels [top:top+height, left:left+width] of this one."""
        return dataclasses.replace(self, cx=self.cx - left, cy=self.cy - top, width=width, height=height)

    def directions(self):
        """(H, W, 3) float32 world ray directions, camera-z component 1 (see the module docstring)."""
        x = ((np.arange(self.width, dtype=np.float64) - self.cx) / self.fx)
        y = ((np.arange(self.height, dtype=np.float64) - self.cy) / self.fy)
        rotation = np.asarray(self.rotation, np.float64)
        # d = R @ (x, y, 1): separable in x and y
        out = (x[None, :, None] * rotation[:, 0] + y[:, None, None] * rotation[:, 1] + rotation[:, 2])
        return out.astype(np.float32)

    def to_camera(self, points):
        """World points (..., 3) -> camera coordinates (..., 3)."""
        return (np.asarray(points, np.float64) - self.position) @ np.asarray(self.rotation, np.float64)


# -- Scene description ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Material:
    """A procedural texture: kind (CHECKERS, STRIPES, NOISE, WOOD), cell size in meters, rotation in the
    surface plane (radians), two RGB albedos in [0, 1], a noise seed, a sharpness parameter and an
    emission (0 for surfaces that only reflect)."""
    kind: int
    scale: float
    angle: float
    color_a: tuple
    color_b: tuple
    seed: int = 0
    sharpness: float = 1.0
    emission: float = 0.0  # light given off, in multiples of the albedo (lamps, window panes)


@dataclasses.dataclass
class Box:
    """A box standing upright: centre (3,), half sizes (3,) along its own axes, yaw about world z."""
    center: np.ndarray
    half: np.ndarray
    yaw: float
    material: Material
    kind: str = "box"

    def axes(self):
        """World directions of the box's local x, y, z axes (columns)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def corners(self):
        return self.center + (_CORNER_SIGNS * self.half) @ self.axes().T

    def contains(self, point, margin=0.0):
        local = (np.asarray(point, np.float64) - self.center) @ self.axes()
        return bool(np.all(np.abs(local) < self.half + margin))


@dataclasses.dataclass
class Light:
    position: np.ndarray
    color: np.ndarray  # RGB intensity


@dataclasses.dataclass
class Scene:
    """A room [0, size[0]] x [0, size[1]] x [0, size[2]], its six surfaces' materials (ROOM_SURFACES order),
    boxes, lights, ambient RGB light and the camera."""
    size: np.ndarray
    room_materials: list
    boxes: list
    lights: list
    ambient: np.ndarray
    camera: Camera
    noise_tile: object = None  # (NOISE_TILE, NOISE_TILE) float32 for the noise and wood textures; None: seed 0


# -- Random scenes --------------------------------------------------------------------------------------
def random_scene(rng, width=NYU_WIDTH, height=NYU_HEIGHT):
    """A random furnished room, its lights and a camera inside it (see the module docstring and rooms.py)
    from a numpy Generator."""
    from .rooms import random_room
    return random_room(rng, width, height)


def center_region(height, width):
    """(rows, cols) slices of an image's central region: the middle half in each direction."""
    return slice(height // 4, height - height // 4), slice(width // 4, width - width // 4)


# -- Ray casting ----------------------------------------------------------------------------------------
_BOX_NORMALS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], np.float64)
_ROOM_NORMALS = -_BOX_NORMALS  # room surfaces face inwards: the x=0 wall looks along +x, ...
_BOX_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
_FACE_AXES = ((1, 2), (1, 2), (0, 2), (0, 2), (0, 1), (0, 1))  # texture (u, v) axes of faces -x, +x, ... +z
_NEAR_M = 0.05  # near plane for box windows: random rooms keep the camera 0.35 m from boxes


def _pixel_coordinates(camera):
    """Normalised image coordinates: x (W,) = (u - cx) / fx and y (H,) = (v - cy) / fy, float64."""
    x = (np.arange(camera.width, dtype=np.float64) - camera.cx) / camera.fx
    y = (np.arange(camera.height, dtype=np.float64) - camera.cy) / camera.fy
    return x, y


def _planes(camera, coefficients, rows=slice(None), cols=slice(None)):
    """For each row c of `coefficients` (k, 3), the (H, W) float32 plane c . (x, y, 1) over the window."""
    x, y = _pixel_coordinates(camera)
    x, y = x[cols].astype(np.float32), y[rows].astype(np.float32)
    return [(np.float32(c[1]) * y)[:, None] + (np.float32(c[0]) * x + np.float32(c[2]))[None, :]
            for c in np.asarray(coefficients, np.float64)]


def cast(scene, camera=None):
    """(depth (H, W) float32 meters, surface ids (H, W) int16): room surfaces 0-5 (ROOM_SURFACES order),
    then 6 + 6 * box + face (faces -x, +x, -y, +y, -z, +z in the box's own axes)."""
    camera = camera or scene.camera
    origin = np.asarray(camera.position, np.float64)
    size = np.asarray(scene.size, np.float64)
    if np.any(origin <= 0) or np.any(origin >= size):
        raise ValueError(f"the camera {camera.position} is not inside the room {scene.size}")
    directions = _planes(camera, np.asarray(camera.rotation, np.float64))
    depth = np.empty(directions[0].shape, np.float32)
    ids = np.empty(directions[0].shape, np.int16)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse_z = np.reciprocal(directions[2])
        for rows in _row_blocks(0, depth.shape[0]):
            depth[rows], ids[rows] = _cast_room(size, origin, [np.reciprocal(directions[0][rows]),
                                                               np.reciprocal(directions[1][rows]), inverse_z[rows]])
        for index, window in enumerate(_box_windows(scene.boxes, camera)):
            if window is None:
                continue
            for rows in _row_blocks(window[0].start, window[0].stop):
                _cast_box(scene.boxes[index], 6 + 6 * index, origin, directions, inverse_z, (rows, window[1]),
                          depth, ids)
    return depth, ids


def _row_blocks(start, stop, size=64):
    """Slices of at most `size` rows covering start..stop: image-wide work goes through the image a block
    of rows at a time, so that its temporaries stay small, cached and reused (several times faster)."""
    return [slice(top, min(top + size, stop)) for top in range(start, stop, size)]


def _cast_room(size, origin, inverse):
    """(depth, ids) of the room's surfaces for rays with inverse world directions (3 planes): a ray leaves
    the (convex) room through the nearest of the three walls it heads for."""
    depth = ids = None
    for axis, inverse_k in enumerate(inverse):
        low = inverse_k * np.float32(-origin[axis])              # to the wall at 0: ahead if the ray goes -
        high = inverse_k * np.float32(size[axis] - origin[axis])  # to the wall at size: ahead if it goes +
        positive = high > low
        distance = np.maximum(low, high, out=low)
        if depth is None:
            depth, ids = distance, positive.astype(np.int16)
            continue
        nearer = distance < depth
        np.copyto(depth, distance, where=nearer)
        np.copyto(ids, np.int16(2 * axis), where=nearer)
        nearer &= positive
        np.copyto(ids, np.int16(2 * axis + 1), where=nearer)
    return depth, ids


def _corner_arrays(boxes):
    """World corners (B, 8, 3) of boxes, in Box.corners' order."""
    centers = np.array([box.center for box in boxes], np.float64)
    halves = np.array([box.half for box in boxes], np.float64)
    yaws = np.array([box.yaw for box in boxes], np.float64)
    c, s = np.cos(yaws)[:, None], np.sin(yaws)[:, None]
    local = _CORNER_SIGNS[None] * halves[:, None, :]
    return centers[:, None, :] + np.stack([c * local[..., 0] - s * local[..., 1],
                                           s * local[..., 0] + c * local[..., 1], local[..., 2]], -1)


def _box_windows(boxes, camera):
    """For each box, the (rows, cols) slices of the image it can cover, or None: its silhouette clipped to
    the near plane, projected, plus a pixel of margin."""
    if not boxes:
        return []
    corners = (_corner_arrays(boxes) - np.asarray(camera.position, np.float64)) @ np.asarray(camera.rotation,
                                                                                              np.float64)
    front = corners[..., 2] >= _NEAR_M
    whole = front.all(axis=1)
    windows = [None] * len(boxes)
    if whole.any():
        seen = corners[whole]
        u = camera.fx * seen[..., 0] / seen[..., 2] + camera.cx
        v = camera.fy * seen[..., 1] / seen[..., 2] + camera.cy
        for index, u_range, v_range in zip(np.flatnonzero(whole), np.stack([u.min(1), u.max(1)], 1),
                                           np.stack([v.min(1), v.max(1)], 1)):
            windows[index] = _window(u_range, v_range, camera)
    for index in np.flatnonzero(front.any(axis=1) & ~whole):
        windows[index] = _clipped_window(corners[index], camera)
    return windows


def _clipped_window(corners, camera):
    """The window of a box whose camera-frame corners (8, 3) straddle the near plane."""
    z = corners[:, 2]
    points = [corners[z >= _NEAR_M]]
    for a, b in _BOX_EDGES:
        if (z[a] >= _NEAR_M) != (z[b] >= _NEAR_M):
            t = (_NEAR_M - z[a]) / (z[b] - z[a])
            points.append((corners[a] + t * (corners[b] - corners[a]))[None])
    points = np.concatenate(points)
    u = camera.fx * points[:, 0] / points[:, 2] + camera.cx
    v = camera.fy * points[:, 1] / points[:, 2] + camera.cy
    return _window((u.min(), u.max()), (v.min(), v.max()), camera)


def _window(u_range, v_range, camera):
    """(rows, cols) slices covering pixel columns u_range and rows v_range plus a pixel, or None if off
    the image."""
    c0, c1 = max(int(math.floor(u_range[0])) - 1, 0), min(int(math.ceil(u_range[1])) + 2, camera.width)
    r0, r1 = max(int(math.floor(v_range[0])) - 1, 0), min(int(math.ceil(v_range[1])) + 2, camera.height)
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _cast_box(box, first_id, origin, directions, inverse_z, window, depth, ids):
    """Slab test of one box over a window of rays (world directions: 3 planes; inverse_z: 1 / their z);
    updates depth and ids where the box is nearer."""
    rows, cols = window
    c, s = np.float32(math.cos(box.yaw)), np.float32(math.sin(box.yaw))
    local_origin = (origin - box.center) @ box.axes()
    world_x, world_y = directions[0][rows, cols], directions[1][rows, cols]
    inverse_x = world_x * c           # the ray directions in the box's axes, then inverted (the signs stay)
    inverse_x += world_y * s
    inverse_y = world_y * c
    inverse_y -= world_x * s
    local = [np.reciprocal(inverse_x, out=inverse_x), np.reciprocal(inverse_y, out=inverse_y), inverse_z[rows, cols]]
    best = entry = far = None
    for axis, inverse in enumerate(local):
        t1 = inverse * np.float32(-box.half[axis] - local_origin[axis])
        t2 = inverse * np.float32(box.half[axis] - local_origin[axis])
        near = np.minimum(t1, t2)
        out = np.maximum(t1, t2, out=t1)
        if best is None:
            best, entry, far = near, np.zeros(near.shape, np.int8), out
        else:
            later = near > best
            np.copyto(best, near, where=later)
            np.copyto(entry, np.int8(axis), where=later)
            np.minimum(far, out, out=far)
    depth_window, ids_window = depth[rows, cols], ids[rows, cols]
    hit = (best <= far) & (best > 0) & (best < depth_window)
    if not hit.any():
        return
    entry_axis = entry[hit]
    entering_from_positive = np.choose(entry_axis, [plane[hit] for plane in local]) < 0
    depth_window[hit] = best[hit]
    ids_window[hit] = first_id + 2 * entry_axis.astype(np.int16) + entering_from_positive


# -- Surfaces, textures, shading ------------------------------------------------------------------------
NOISE_TILE = 128          # texels of the periodic noise tile per side
NOISE_TILE_CELLS = 4.0    # texture cells one tile spans


def noise_tile(rng, size=NOISE_TILE):
    """A periodic, smooth 1/f noise tile (size x size float32 in [0, 1]) from random Fourier phases."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    amplitude = np.where(radius > 0, 1.0 / np.maximum(radius, 1.0 / size) ** 1.5, 0.0)
    amplitude[radius > 0.25] = 0.0
    spectrum = amplitude * np.exp(2j * math.pi * rng.random(radius.shape))
    tile = np.fft.irfft2(spectrum, s=(size, size))
    tile -= tile.min()
    return (tile / max(tile.max(), 1e-12)).astype(np.float32)


def _tile_lookup(tile, u, v):
    """Bilinear, wrapping lookup of the noise tile at texture coordinates (u, v) in cells."""
    size = tile.shape[0]
    padded = np.pad(tile, ((0, 1), (0, 1)), mode="wrap").reshape(-1)  # texel (i + 1) needs no wrapping
    scale = np.float32(size / NOISE_TILE_CELLS)
    tu, tv = u * scale, v * scale
    fu, fv = np.floor(tu), np.floor(tv)
    tu -= fu
    tv -= fv
    corner = (fv.astype(np.intp) & (size - 1)) * (size + 1)
    corner += fu.astype(np.intp) & (size - 1)
    top = np.take(padded, corner, mode="clip")
    top += (np.take(padded, corner + 1, mode="clip") - top) * tu
    corner += size + 1
    bottom = np.take(padded, corner, mode="clip")
    bottom += (np.take(padded, corner + 1, mode="clip") - bottom) * tu
    bottom -= top
    bottom *= tv
    bottom += top
    return bottom


def _surface_tables(scene):
    """Per surface id: normals (n, 3), plane offsets (n,) (normal . point for the surface's points),
    texture maps (n, 2, 4) world point -> texture coordinates, and materials."""
    size = np.asarray(scene.size, np.float64)
    materials = list(scene.room_materials) + [box.material for box in scene.boxes for _ in range(6)]
    normals = [_ROOM_NORMALS]
    offsets = [np.array([0.0, -size[0], 0.0, -size[1], 0.0, -size[2]])]
    room_u = np.stack([np.eye(3)[a] for a, _ in _FACE_AXES])
    room_v = np.stack([np.eye(3)[b] for _, b in _FACE_AXES])
    maps = [_texture_maps(room_u, room_v, np.zeros((6, 3)), scene.room_materials)]
    if scene.boxes:
        yaws = np.array([box.yaw for box in scene.boxes], np.float64)
        c, s = np.cos(yaws), np.sin(yaws)
        zero, one = np.zeros_like(c), np.ones_like(c)
        axes = np.stack([np.stack([c, -s, zero], 1), np.stack([s, c, zero], 1), np.stack([zero, zero, one], 1)],
                        1)                                                          # (B, 3, 3), columns: axes
        centers = np.array([box.center for box in scene.boxes], np.float64)
        halves = np.array([box.half for box in scene.boxes], np.float64)
        box_normals = np.einsum("bij,fj->bfi", axes, _BOX_NORMALS)                  # (B, 6, 3)
        normals.append(box_normals.reshape(-1, 3))
        half_along = halves[:, [0, 0, 1, 1, 2, 2]]
        offsets.append((np.einsum("bfi,bi->bf", box_normals, centers) + half_along).reshape(-1))
        u_axes = axes[:, :, [a for a, _ in _FACE_AXES]].transpose(0, 2, 1).reshape(-1, 3)
        v_axes = axes[:, :, [b for _, b in _FACE_AXES]].transpose(0, 2, 1).reshape(-1, 3)
        origins = np.repeat(centers - np.einsum("bij,bj->bi", axes, halves), 6, axis=0)
        maps.append(_texture_maps(u_axes, v_axes, origins, materials[6:]))
    return np.concatenate(normals), np.concatenate(offsets), np.concatenate(maps), materials


def _texture_maps(u_axes, v_axes, origins, materials):
    """(n, 2, 4) affine maps world point -> texture coordinates in cells for n surfaces with texture axes
    (n, 3) and origins (n, 3): rotated by each material's angle and shifted by its seed (so surfaces sharing
    the noise tile look different)."""
    angle = np.array([m.angle for m in materials], np.float64)[:, None]
    scale = np.array([m.scale for m in materials], np.float64)[:, None]
    seed = np.array([m.seed for m in materials], np.int64)
    c, s = np.cos(angle), np.sin(angle)
    rows = np.stack([c * u_axes - s * v_axes, s * u_axes + c * v_axes], 1) / scale[:, :, None]    # (n, 2, 3)
    shift = np.stack([(seed % 1009) / 1009.0, (seed % 1013) / 1013.0], 1) * NOISE_TILE_CELLS
    return np.concatenate([rows, (shift - np.einsum("nrk,nk->nr", rows, origins))[:, :, None]], axis=2)


def _mix_factor(kind, u, v, tile, sharpness):
    """How much of colour b each pixel of a texture kind shows (0..1)."""
    if kind == CHECKERS:
        return ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
    if kind == STRIPES:
        return np.clip(np.float32(0.5) + sharpness * np.sin(np.float32(2 * math.pi) * u), 0, 1)
    if kind == NOISE:
        return _tile_lookup(tile, u, v)
    grain = v + np.float32(1.5) * _tile_lookup(tile, u * np.float32(0.15), v * np.float32(0.6))
    rings = np.float32(0.5) + np.float32(0.5) * np.sin(np.float32(2 * math.pi) * grain)
    return rings * rings * rings


@dataclasses.dataclass
class _Shading:
    """What shading needs per surface id, as float32 tables. A pixel at normalised image coordinates
    (x, y) with depth t sees the world point p = o + t R (x, y, 1), so an affine function a . p + b of it is
    (a . o + b) + t (R^T a) . (x, y, 1): `texture` holds, per id, those 4 numbers for u and for v."""
    texture: np.ndarray       # (n, 2, 4): constant, then the x, y and 1 coefficients, for u and v
    facing: list              # per light: n . (L - p) per id (n . p is the surface's plane offset)
    kinds: np.ndarray
    sharpness: np.ndarray
    color_a: np.ndarray
    color_step: np.ndarray    # color_b - color_a
    emission: np.ndarray
    tile: np.ndarray

    @classmethod
    def of(cls, scene, camera):
        normals, offsets, maps, materials = _surface_tables(scene)
        origin, rotation = np.asarray(camera.position, np.float64), np.asarray(camera.rotation, np.float64)
        texture = np.concatenate([(maps[:, :, :3] @ origin + maps[:, :, 3])[:, :, None], maps[:, :, :3] @ rotation],
                                 axis=2)
        facing = [(normals @ np.asarray(light.position, np.float64) - offsets).astype(np.float32)
                  for light in scene.lights]
        color_a = np.array([m.color_a for m in materials], np.float32)
        tile = scene.noise_tile if scene.noise_tile is not None else noise_tile(np.random.default_rng(0))
        return cls(texture.astype(np.float32), facing, np.array([m.kind for m in materials], np.int8),
                   np.array([m.sharpness for m in materials], np.float32), color_a,
                   np.array([m.color_b for m in materials], np.float32) - color_a,
                   np.array([m.emission for m in materials], np.float32), tile)


def shade(scene, depth, ids, camera=None):
    """Linear RGB radiance (H, W, 3) float32 of the cast surfaces: textured albedo times (ambient + each
    light's Lambertian term with a soft 1 / (1 + d^2 / 4 m^2) falloff + the material's emission); no
    shadows."""
    camera = camera or scene.camera
    tables = _Shading.of(scene, camera)
    radiance = np.empty(depth.shape + (3,), np.float32)
    for rows in _row_blocks(0, depth.shape[0]):
        _shade_rows(scene, tables, camera, rows, depth[rows], ids[rows], radiance[rows])
    return radiance


def _shade_rows(scene, tables, camera, rows, depth, ids, radiance):
    """shade() for the image rows `rows` (depth and ids of those rows), into radiance (rows, W, 3)."""
    x, y = _pixel_coordinates(camera)
    x, y = x.astype(np.float32)[None, :], y[rows].astype(np.float32)[:, None]
    index = ids.astype(np.intp)
    u, v = (_along_rays(tables.texture[:, k], index, x, y, depth) for k in (0, 1))
    mix = _texture_mix(tables, index, u, v)
    depth2 = depth * depth
    depth2 *= x * x + (y * y + np.float32(1))   # |p - o|^2
    strengths = [_lambert(light, facing, camera, x, y, depth, depth2, index)
                 for light, facing in zip(scene.lights, tables.facing)]
    albedo, light, scratch = (np.empty(depth.shape, np.float32) for _ in range(3))
    for channel in range(3):
        np.take(tables.color_a[:, channel], index, out=albedo, mode="clip")
        np.take(tables.color_step[:, channel], index, out=scratch, mode="clip")
        scratch *= mix
        albedo += scratch
        if tables.emission.any():
            np.take(tables.emission, index, out=light, mode="clip")
            light += np.float32(scene.ambient[channel])
        else:
            light.fill(scene.ambient[channel])
        for strength, source in zip(strengths, scene.lights):
            np.multiply(strength, np.float32(source.color[channel]), out=scratch)
            light += scratch
        np.multiply(albedo, light, out=radiance[:, :, channel])


def _along_rays(coefficients, index, x, y, depth):
    """Per pixel, an affine function of the world point given per id as (constant, x, y, 1 coefficients)
    (see _Shading)."""
    out = np.take(coefficients[:, 1], index, mode="clip")
    out *= x
    term = np.take(coefficients[:, 2], index, mode="clip")
    term *= y
    out += term
    out += np.take(coefficients[:, 3], index, out=term, mode="clip")
    out *= depth
    out += np.take(coefficients[:, 0], index, out=term, mode="clip")
    return out


def _texture_mix(tables, index, u, v):
    """How much of colour b each pixel shows, by its material's texture kind."""
    kinds = np.take(tables.kinds, index, mode="clip")
    present = np.unique(tables.kinds)
    if len(present) == 1:
        return _mix_factor(int(present[0]), u, v, tables.tile, np.take(tables.sharpness, index, mode="clip"))
    mix = np.empty(u.shape, np.float32)
    for kind in present:
        chosen = kinds == kind
        if chosen.any():
            mix[chosen] = _mix_factor(int(kind), u[chosen], v[chosen], tables.tile,
                                      np.take(tables.sharpness, index[chosen], mode="clip"))
    return mix


def _lambert(light, facing, camera, x, y, depth, depth2, index):
    """A point light's Lambertian term with falloff, max(n . (L - p), 0) / |L - p| / (1 + |L - p|^2 / 4),
    for pixels at normalised coordinates x (1, W), y (R, 1) with depth and |p - o|^2 = depth2:
    |L - p|^2 = |L - o|^2 - 2 t (R^T (L - o)) . (x, y, 1) + |p - o|^2."""
    to_light = np.asarray(light.position, np.float64) - np.asarray(camera.position, np.float64)
    q = np.float32(-2) * (np.asarray(camera.rotation, np.float64).T @ to_light).astype(np.float32)
    distance2 = (q[0] * x) + (q[1] * y + q[2])
    distance2 *= depth
    distance2 += np.float32(to_light @ to_light)
    distance2 += depth2
    np.maximum(distance2, np.float32(1e-12), out=distance2)
    strength = np.take(facing, index, mode="clip")
    np.maximum(strength, 0, out=strength)
    scratch = np.sqrt(distance2)
    distance2 *= np.float32(0.25)
    distance2 += np.float32(1)
    scratch *= distance2
    strength /= scratch
    return strength


_SENSOR_NOISE = []  # one table of standard normal values per process (see _sensor_noise)


def _sensor_noise(count, rng):
    """`count` standard normal float32 values: a window at a random start into a fixed table twice as long
    (drawing fresh values for every image costs more than the rest of the colour conversion)."""
    if not _SENSOR_NOISE or len(_SENSOR_NOISE[0]) < 2 * count:
        _SENSOR_NOISE[:] = [np.random.default_rng(0x5E45).standard_normal(2 * count, dtype=np.float32)]
    start = int(rng.integers(count + 1))
    return _SENSOR_NOISE[0][start:start + count]


def to_uint8(radiance, rng, noise_std=None):
    """Auto-exposed, gamma-2 encoded uint8 RGB with mild Gaussian sensor noise (std 1-3 levels)."""
    luminance = radiance[::7, ::7].mean(axis=2)
    exposure = np.float32(0.85 / max(float(np.percentile(luminance, 97)), 1e-6) * 255 * 255)
    std = rng.uniform(1.0, 3.0) if noise_std is None else noise_std
    noise = _sensor_noise(radiance.size, rng).reshape(radiance.shape) if std else None
    out = np.empty(radiance.shape, np.uint8)
    for rows in _row_blocks(0, radiance.shape[0]):
        # sqrt(clip(r * exposure, 0, 1)) * 255 = sqrt(clip(r * exposure * 255^2, 0, 255^2))
        image = np.multiply(radiance[rows], exposure)
        np.clip(image, 0, 255 * 255, out=image)
        np.sqrt(image, out=image)
        if std:
            image += noise[rows] * np.float32(std)
        image += np.float32(0.5)
        np.clip(image, 0, 255, out=image)
        out[rows] = image
    return out


def kinect_holes(depth, ids, scene, rng, camera=None):
    """A copy of depth with Kinect-like holes (0): projector shadows left of nearer surfaces, grazing
    surfaces, beyond a far range, and sparse dropout blobs."""
    import cv2
    camera = camera or scene.camera
    height, width = depth.shape
    # IR projector to the right of the camera: background just left of a nearer surface is in its shadow
    shifted = np.arange(width, dtype=np.float32)[None, :] - np.float32(camera.fx * KINECT_BASELINE_M) / depth
    right_min = np.minimum.accumulate(shifted[:, ::-1], axis=1)[:, ::-1]
    holes = np.zeros(depth.shape, bool)
    holes[:, :-1] = right_min[:, 1:] < shifted[:, :-1] - 0.5
    normals = _surface_tables(scene)[0]
    index = ids.astype(np.intp)
    directions = _planes(camera, np.asarray(camera.rotation, np.float64))
    dot = sum(np.take(normals[:, k].astype(np.float32), index) * directions[k] for k in range(3))
    length = np.sqrt(sum(plane * plane for plane in directions))
    holes |= np.abs(dot) < np.float32(0.12) * length
    holes |= depth > rng.uniform(*KINECT_MAX_RANGE_M)
    coarse = rng.random((height // 24 + 2, width // 24 + 2)).astype(np.float32)
    holes |= cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) > rng.uniform(0.97, 1.0)
    out = depth.copy()
    out[holes] = 0
    return out


def render(scene, camera=None, rng=None, holes=False, noise_std=None):
    """(rgb (H, W, 3) uint8, depth (H, W) float32 meters) of a scene; with holes=True a third array, the
    depth with Kinect-like holes. rng draws the sensor noise and the holes (default: seed 0)."""
    rng = np.random.default_rng(0) if rng is None else rng
    depth, ids = cast(scene, camera)
    rgb = to_uint8(shade(scene, depth, ids, camera), rng, noise_std)
    if holes:
        return rgb, depth, kinect_holes(depth, ids, scene, rng, camera)
    return rgb, depth


# -- Scene sets -----------------------------------------------------------------------------------------
def split_indices(count, seed=0, test_fraction=654 / 1449):
    """(test indices, train indices), sorted, of `count` scenes: a seeded NYU-like split."""
    if count < 1:
        raise ValueError("need at least one scene")
    permutation = np.random.default_rng([seed, 0x5B1175]).permutation(count)
    tests = 0 if count == 1 else min(max(int(round(count * test_fraction)), 1), count - 1)
    return np.sort(permutation[:tests]), np.sort(permutation[tests:])


class SceneSet:
    """`count` deterministic scenes (scene i from seed (seed, i)); with split "train" or "test" the set
    holds only that split's scenes (split_indices), indexed 0..len-1."""

    def __init__(self, count, seed=0, holes=False, test_fraction=654 / 1449, split=None):
        self.count, self.seed, self.holes = int(count), int(seed), bool(holes)
        tests, trains = split_indices(self.count, self.seed, test_fraction)
        self.indices = {"test": tests, "train": trains, None: np.arange(self.count)}.get(split)
        if self.indices is None:
            raise ValueError(f"split must be 'train', 'test' or None, not {split!r}")

    def __len__(self):
        return len(self.indices)

    def global_index(self, index):
        return int(self.indices[index])

    def scene(self, index):
        return random_scene(np.random.default_rng([self.seed, self.global_index(index)]))

    def render_full(self, index, holes=None):
        """(rgb 640x480 uint8, exact depth in meters[, depth with holes]) of scene `index`; the holed depth
        is added when holes (default: the set's holes setting) is true. The holes never change the colour."""
        holes = self.holes if holes is None else holes
        rng = np.random.default_rng([self.seed, self.global_index(index), 1])
        return render(self.scene(index), rng=rng, holes=holes)

    def pair_png8_bgr(self, index):
        """The thesis-format pair of scene `index`: the 420x320 centre crop as BGR uint8 and png8 depth
        (with holes when the set has them): what make_synthetic.py writes and convert_nyu.py reads back."""
        from .nyu import center_crop
        from .pairs import encode_depth_png8
        rendered = self.render_full(index)
        return (np.ascontiguousarray(center_crop(rendered[0])[:, :, ::-1]),
                encode_depth_png8(center_crop(rendered[-1])))


# -- Depth statistics -----------------------------------------------------------------------------------
STATISTICS_PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
_HISTOGRAM_BIN_M = 0.01
_HISTOGRAM_TOP_M = 20.0


class _DepthJob:
    """Per scene: a 1 cm histogram of the exact depth, its sum and the median of the central region."""

    def __init__(self, scenes):
        self.scenes = scenes

    def __call__(self, index):
        depth_m, _ = cast(self.scenes.scene(index))
        bins = int(_HISTOGRAM_TOP_M / _HISTOGRAM_BIN_M)
        counts = np.bincount(np.minimum(depth_m / np.float32(_HISTOGRAM_BIN_M), bins - 1).astype(np.int64).ravel(),
                             minlength=bins)
        rows, cols = center_region(*depth_m.shape)
        return counts, float(depth_m.sum(dtype=np.float64)), float(np.median(depth_m[rows, cols]))


def depth_statistics(count=1000, seed=0, workers=None, progress=False):
    """Statistics of the exact depth of scenes 0..count-1 of SceneSet(count, seed) at 640x480: mean and
    percentiles (from 1 cm bins) in meters, the fractions of pixels beyond 5 m, below 0.5 m and beyond
    10 m, and the fraction of scenes whose central region (center_region) has a median depth below 1.5 m."""
    from .jobs import run_jobs
    scenes = SceneSet(count, seed)
    counts, total_m, medians = 0, 0.0, []
    for histogram, depth_sum, center_median in run_jobs(_DepthJob(scenes), range(count), workers, progress,
                                                        desc="depth statistics", unit="scene"):
        counts, total_m = counts + histogram, total_m + depth_sum
        medians.append(center_median)
    pixels = int(counts.sum())
    cumulative = np.cumsum(counts) / pixels
    edges = np.arange(1, len(counts) + 1) * _HISTOGRAM_BIN_M   # upper edge of each bin

    def below_m(meters):
        return float(cumulative[int(round(meters / _HISTOGRAM_BIN_M)) - 1])

    def percentile_m(q):  # linear within the bin
        k = int(np.searchsorted(cumulative, q / 100))
        before = cumulative[k - 1] if k else 0.0
        return float(edges[k] - _HISTOGRAM_BIN_M * (cumulative[k] - q / 100) / max(cumulative[k] - before, 1e-12))

    return {"scenes": count, "seed": seed, "pixels": pixels, "mean_m": total_m / pixels,
            "percentiles_m": {str(q): percentile_m(q) for q in STATISTICS_PERCENTILES},
            "fraction_beyond_5m": 1 - below_m(5.0), "fraction_below_0.5m": below_m(0.5),
            "fraction_beyond_10m": 1 - below_m(10.0),
            "fraction_scenes_center_median_below_1.5m": float(np.mean(np.asarray(medians) < 1.5))}


# -- Files ----------------------------------------------------------------------------------------------
FORMATS = ("pairs", "nyu-mat")
LABELED_NAME, SPLITS_NAME = "nyu_depth_v2_labeled.mat", "splits.mat"


class _PairJob:
    def __init__(self, scenes, full, depth_format, overwrite):
        self.scenes, self.full, self.depth_format, self.overwrite = scenes, full, depth_format, overwrite

    def __call__(self, job):
        from . import pairs as pairs_io
        from .nyu import center_crop
        index, folder = job
        stem = f"{index:05d}"
        if not self.overwrite and pairs_io.pair_done(folder, stem):
            return False
        rendered = self.scenes.render_full(index)
        color, depth = rendered[0], rendered[-1]
        if not self.full:
            color, depth = center_crop(color), center_crop(depth)
        pairs_io.write_pair(folder, stem, color, depth_m=depth, depth_format=self.depth_format)
        return True


class _MatJob:
    def __init__(self, scenes):
        self.scenes = scenes

    def __call__(self, index):
        return self.scenes.render_full(index, holes=True)


def make_synthetic(count, out, seed=0, file_format="pairs", holes=False, full=False, depth_format="png8",
                   test_fraction=654 / 1449, workers=None, overwrite=False, progress=True, log=print):
    """Renders `count` scenes into `out`:
    - "pairs": out/{train,test}/NNNNN_colors.png + NNNNN_depth.png, exactly what convert_nyu.py writes for
      the nyu-mat version of the same scenes (420x320 crops, or 640x480 with full; exact depth, or with
      Kinect-like holes); existing pairs are skipped, so a rerun resumes;
    - "nyu-mat": out/nyu_depth_v2_labeled.mat in NYU's v7.3 layout (images, depths = exact depth,
      rawDepths = depth with holes) and out/splits.mat (testNdxs, trainNdxs, one-based).
    NNNNN is the scene's index; the split is split_indices(count, seed, test_fraction). The settings are
    recorded in `out` (eigen_depth.outputs.SETTINGS): a rerun with others is refused, or with overwrite
    first removes the scenes the earlier settings wrote. Returns the paths."""
    import os

    from ..errors import OutputError
    from ..outputs import SETTINGS, earlier_settings, forget_settings, record_settings
    from .jobs import run_jobs
    if file_format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {file_format!r}")
    out = os.fspath(out)
    make_folder(out)
    settings = {"format": file_format, "count": int(count), "seed": int(seed), "test_fraction": float(test_fraction),
                "holes": bool(holes), "full": bool(full), "depth_format": depth_format}
    earlier = earlier_settings(out, "make_synthetic", settings, overwrite)
    tests, trains = split_indices(count, seed, test_fraction)
    scenes = SceneSet(count, seed, holes)
    if file_format == "pairs":
        _remove_scenes(out, earlier)
        record_settings(out, "make_synthetic", settings)
        jobs = []
        for name, indices in (("train", trains), ("test", tests)):
            folder = os.path.join(out, name)
            make_folder(folder)
            jobs.extend((int(i), folder) for i in indices)
        written = sum(run_jobs(_PairJob(scenes, full, depth_format, overwrite), jobs, workers, progress,
                               desc="synthetic pairs", unit="scene"))
        log(f"wrote {written} pairs ({len(jobs) - written} already there): {len(trains)} train, {len(tests)} test "
            f"under {out}")
        return [os.path.join(out, "train"), os.path.join(out, "test")]
    from .nyu import write_labeled_mat, write_splits_mat
    labeled, splits = os.path.join(out, LABELED_NAME), os.path.join(out, SPLITS_NAME)
    if not overwrite and os.path.exists(labeled) and os.path.exists(splits):
        if not os.path.exists(os.path.join(out, SETTINGS)):
            raise OutputError(f"{out}: {LABELED_NAME} and {SPLITS_NAME} without the record of the run that wrote "
                              f"them both (one stopped between them, or an earlier version), so they may not "
                              f"agree; pass --overwrite to write them again")
        log(f"{labeled} and {splits} exist already; skipped (--overwrite rewrites them)")
        return [labeled, splits]
    _remove_scenes(out, earlier)
    forget_settings(out)  # until both files are written: the two must agree
    items = run_jobs(_MatJob(scenes), range(count), workers, progress, desc="synthetic scenes", unit="scene")
    write_labeled_mat(labeled, items, count, NYU_WIDTH, NYU_HEIGHT, raw=True)
    write_splits_mat(splits, tests, trains)
    record_settings(out, "make_synthetic", settings)
    log(f"wrote {count} scenes to {labeled} ({len(tests)} test, {len(trains)} train in {splits})")
    return [labeled, splits]


def _remove_scenes(out, earlier):
    """Removes what make_synthetic wrote in `out` with the `earlier` settings (its record; None: nothing)."""
    import os

    from . import pairs as pairs_io
    if not earlier or earlier.get("tool") != "make_synthetic":
        return
    if earlier.get("format") == "nyu-mat":
        for path in (os.path.join(out, LABELED_NAME), os.path.join(out, SPLITS_NAME)):
            if os.path.isfile(path):
                os.unlink(path)
        return
    tests, trains = split_indices(earlier["count"], earlier["seed"], earlier["test_fraction"])
    for name, indices in (("train", trains), ("test", tests)):
        for index in indices:
            pairs_io.remove_pair(os.path.join(out, name), f"{index:05d}")
