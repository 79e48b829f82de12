"""Synthetic indoor scenes with exact metric depth: vectorised NumPy ray casting with the NYU Kinect camera.

A scene is a room (floor, ceiling and four walls; 2.5-8 m wide and deep, 2.4-3.2 m high) holding 3-12
boxes and slabs as furniture (cabinets, beds, tables on legs, shelves, pictures, rugs), each surface with
a procedural texture (checkers, stripes, value noise or wood-like grain), lit by one or two point lights
plus ambient light with Lambertian shading (no shadows), seen by a hand-held camera (1.0-1.8 m high,
looking slightly down, small roll) with the NYU Kinect colour intrinsics fx 518.86, fy 519.47, cx 325.58,
cy 253.74 at 640x480. Colour gets mild Gaussian sensor noise; depth is exact, optionally with Kinect-like
holes (projector shadows left of depth edges, grazing surfaces, far range, random dropouts).

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

from .constants import NYU_CX, NYU_CY, NYU_FX, NYU_FY, NYU_HEIGHT, NYU_WIDTH

CHECKERS, STRIPES, NOISE, WOOD = 0, 1, 2, 3
TEXTURES = ("checkers", "stripes", "noise", "wood")
ROOM_SURFACES = ("wall x=0", "wall x=W", "wall y=0", "wall y=D", "floor", "ceiling")
ROOM_SIZE_RANGE = (2.5, 8.0)     # rooms of 2.5-8 m
ROOM_HEIGHT_RANGE = (2.4, 3.2)
BOX_COUNT_RANGE = (3, 12)        # 3-12 boxes and slabs
KINECT_BASELINE_M = 0.075        # IR projector to IR camera, for the projector shadows of the holes
KINECT_MAX_RANGE_M = (7.0, 9.5)  # beyond this the synthetic Kinect returns no depth


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
    surface plane (radians), two RGB albedos in [0, 1], a noise seed and a sharpness parameter."""
    kind: int
    scale: float
    angle: float
    color_a: tuple
    color_b: tuple
    seed: int = 0
    sharpness: float = 1.0


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
        signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], np.float64)
        return self.center + (signs * self.half) @ self.axes().T

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
def _color(rng, base=None, spread=0.25, low=0.05, high=0.95):
    base = rng.uniform(0.15, 0.85, 3) if base is None else np.asarray(base)
    return tuple(np.clip(base + rng.uniform(-spread, spread, 3), low, high))


def random_material(rng, kinds=(CHECKERS, STRIPES, NOISE, WOOD)):
    """A random procedural material."""
    kind = int(rng.choice(kinds))
    if kind == WOOD:
        base = np.array([0.55, 0.35, 0.18]) * rng.uniform(0.6, 1.4)
        color_a, color_b = _color(rng, base, 0.08), _color(rng, base * 0.6, 0.05)
        scale = rng.uniform(0.05, 0.2)
    else:
        color_a = _color(rng)
        color_b = _color(rng, np.asarray(color_a) * rng.uniform(0.3, 1.0), 0.3)
        scale = {CHECKERS: rng.uniform(0.08, 0.6), STRIPES: rng.uniform(0.05, 0.4), NOISE: rng.uniform(0.1, 1.0)}[kind]
    return Material(kind, float(scale), float(rng.uniform(0, math.pi)), color_a, color_b,
                    int(rng.integers(1 << 30)), float(rng.uniform(0.6, 3.0)))


def _against_wall(rng, size, width, depth):
    """Centre (x, y) and yaw of a footprint width x depth standing against a random wall."""
    wall = int(rng.integers(4))
    yaw = [0.0, 0.0, math.pi / 2, math.pi / 2][wall] + rng.normal(0, 0.02)
    along = size[1] if wall < 2 else size[0]
    t = rng.uniform(width / 2 + 0.05, max(along - width / 2 - 0.05, width / 2 + 0.06))
    gap = rng.uniform(0.0, 0.05)
    # local x runs along the wall (width), local y away from it (depth)
    if wall == 0:
        return (depth / 2 + gap, t), yaw + math.pi / 2
    if wall == 1:
        return (size[0] - depth / 2 - gap, t), yaw + math.pi / 2
    if wall == 2:
        return (t, depth / 2 + gap), yaw - math.pi / 2
    return (t, size[1] - depth / 2 - gap), yaw - math.pi / 2


def _furniture(rng, size, budget):
    """One piece of furniture as a list of boxes (at most `budget`)."""
    kind = rng.choice(["cabinet", "bed", "table", "shelf", "picture", "rug", "block"],
                      p=[0.22, 0.1, 0.16, 0.14, 0.16, 0.08, 0.14])
    material = random_material(rng)
    if kind == "table" and budget >= 5:
        width, depth = rng.uniform(0.6, 1.8), rng.uniform(0.5, 1.0)
        height, top = rng.uniform(0.65, 0.8), rng.uniform(0.025, 0.05)
        reach = math.hypot(width, depth) / 2 + 0.05
        if min(size[0], size[1]) < 2 * reach + 0.1:
            return []
        x, y = rng.uniform(reach, size[0] - reach), rng.uniform(reach, size[1] - reach)
        yaw = rng.uniform(0, math.pi)
        boxes = [Box(np.array([x, y, height - top / 2]), np.array([width / 2, depth / 2, top / 2]), yaw, material,
                     "table")]
        leg = rng.uniform(0.02, 0.04)
        c, s = math.cos(yaw), math.sin(yaw)
        for sx in (-1, 1):
            for sy in (-1, 1):
                lx, ly = sx * (width / 2 - leg), sy * (depth / 2 - leg)
                boxes.append(Box(np.array([x + c * lx - s * ly, y + s * lx + c * ly, (height - top) / 2]),
                                 np.array([leg, leg, (height - top) / 2]), yaw, material, "table leg"))
        return boxes
    if kind == "table":
        kind = "block"
    if kind == "shelf":
        width, depth, thick = rng.uniform(0.5, 1.6), rng.uniform(0.2, 0.35), rng.uniform(0.02, 0.04)
        (x, y), yaw = _against_wall(rng, size, width, depth)
        return [Box(np.array([x, y, rng.uniform(0.8, 2.0)]), np.array([width / 2, depth / 2, thick / 2]), yaw,
                    material, "shelf")]
    if kind == "picture":
        width, height, thick = rng.uniform(0.3, 1.2), rng.uniform(0.3, 0.9), rng.uniform(0.01, 0.03)
        (x, y), yaw = _against_wall(rng, size, width, thick)
        return [Box(np.array([x, y, rng.uniform(1.2, 1.8)]), np.array([width / 2, thick / 2, height / 2]), yaw,
                    material, "picture")]
    if kind == "rug":
        width, depth = rng.uniform(1.0, 2.5), rng.uniform(0.8, 2.0)
        x, y = rng.uniform(0.5, size[0] - 0.5), rng.uniform(0.5, size[1] - 0.5)
        return [Box(np.array([x, y, 0.005]), np.array([width / 2, depth / 2, 0.005]), rng.uniform(0, math.pi),
                    material, "rug")]
    if kind == "bed":
        width, depth, height = rng.uniform(1.4, 2.1), rng.uniform(0.9, 1.8), rng.uniform(0.4, 0.6)
    elif kind == "cabinet":
        width, depth, height = rng.uniform(0.4, 1.8), rng.uniform(0.3, 0.7), rng.uniform(0.5, 2.1)
    else:
        width, depth, height = rng.uniform(0.3, 1.2), rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.2)
    if kind == "block" and rng.random() < 0.5:
        x, y = rng.uniform(0.6, size[0] - 0.6), rng.uniform(0.6, size[1] - 0.6)
        yaw = rng.uniform(0, math.pi)
    else:
        (x, y), yaw = _against_wall(rng, size, width, depth)
    return [Box(np.array([x, y, height / 2]), np.array([width / 2, depth / 2, height / 2]), yaw, material, str(kind))]


def _fits(box, size):
    corners = box.corners()
    return bool(np.all(corners >= -1e-6) and np.all(corners <= np.asarray(size) + 1e-6))


def random_scene(rng, width=NYU_WIDTH, height=NYU_HEIGHT):
    """A random room, furniture, lights and camera (see the module docstring) from a numpy Generator."""
    size = np.array([rng.uniform(*ROOM_SIZE_RANGE), rng.uniform(*ROOM_SIZE_RANGE), rng.uniform(*ROOM_HEIGHT_RANGE)])
    floor = random_material(rng, (WOOD, CHECKERS, NOISE))
    wall = random_material(rng, (STRIPES, NOISE, CHECKERS))
    walls = [wall if rng.random() < 0.7 else random_material(rng, (STRIPES, NOISE)) for _ in range(4)]
    ceiling = Material(NOISE, float(rng.uniform(0.3, 1.0)), 0.0, _color(rng, [0.85, 0.85, 0.82], 0.05),
                       _color(rng, [0.75, 0.75, 0.72], 0.05), int(rng.integers(1 << 30)), 1.0)
    camera_xy = np.array([rng.uniform(0.5, size[0] - 0.5), rng.uniform(0.5, size[1] - 0.5)])
    camera_position = np.array([camera_xy[0], camera_xy[1], rng.uniform(1.0, 1.8)])
    target = int(rng.integers(BOX_COUNT_RANGE[0], BOX_COUNT_RANGE[1] + 1))
    boxes, attempts = [], 0
    while len(boxes) < target and attempts < 200:
        attempts += 1
        pieces = _furniture(rng, size, target - len(boxes))
        if not pieces or len(pieces) > target - len(boxes):
            continue
        if all(_fits(b, size) and not b.contains(camera_position, 0.4) for b in pieces):
            boxes.extend(pieces)
    yaw = rng.uniform(0, 2 * math.pi)
    pitch = math.radians(float(np.clip(rng.normal(-10, 8), -35, 15)))
    roll = math.radians(float(rng.normal(0, 3)))
    camera = Camera(width=width, height=height, cx=NYU_CX * width / NYU_WIDTH, cy=NYU_CY * height / NYU_HEIGHT,
                    fx=NYU_FX * width / NYU_WIDTH, fy=NYU_FY * height / NYU_HEIGHT,
                    rotation=look_rotation(yaw, pitch, roll), position=camera_position)
    lights = []
    for _ in range(int(rng.integers(1, 3))):
        tint = np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.75, 1.0)])
        where = np.array([rng.uniform(0.3, size[0] - 0.3), rng.uniform(0.3, size[1] - 0.3), size[2] - 0.15])
        lights.append(Light(where, tint * rng.uniform(0.8, 1.4)))
    ambient = np.full(3, rng.uniform(0.12, 0.3))
    return Scene(size, walls + [floor, ceiling], boxes, lights, ambient, camera, noise_tile(rng))


# -- Ray casting ----------------------------------------------------------------------------------------
_BOX_NORMALS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], np.float64)
_ROOM_NORMALS = -_BOX_NORMALS  # room surfaces face inwards: the x=0 wall looks along +x, ...
_BOX_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
_NEAR_M = 0.05  # near plane for box windows: the camera keeps 0.4 m from boxes, so nothing visible is nearer


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
    rotation = np.asarray(camera.rotation, np.float64)
    depth = ids = None
    # the ray leaves the (convex) room through the nearest of the three walls it heads for
    for axis, direction in enumerate(_planes(camera, rotation)):
        positive = direction > 0
        with np.errstate(divide="ignore"):
            distance = np.where(positive, np.float32(size[axis] - origin[axis]), np.float32(origin[axis]))
            distance /= np.abs(direction)
        surface = (2 * axis + positive).astype(np.int16)
        if depth is None:
            depth, ids = distance, surface
        else:
            nearer = distance < depth
            np.copyto(depth, distance, where=nearer)
            np.copyto(ids, surface, where=nearer)
    for index, box in enumerate(scene.boxes):
        window = _box_window(box, camera)
        if window is not None:
            _cast_box(box, 6 + 6 * index, camera, window, depth, ids)
    return depth, ids


def _box_window(box, camera):
    """(rows, cols) slices of the image a box can cover, or None: its silhouette clipped to the near plane,
    projected, plus a pixel of margin."""
    corners = camera.to_camera(box.corners())
    z = corners[:, 2]
    points = [corners[z >= _NEAR_M]]
    for a, b in _BOX_EDGES:
        if (z[a] >= _NEAR_M) != (z[b] >= _NEAR_M):
            t = (_NEAR_M - z[a]) / (z[b] - z[a])
            points.append((corners[a] + t * (corners[b] - corners[a]))[None])
    points = np.concatenate(points)
    if not len(points):
        return None
    u = camera.fx * points[:, 0] / points[:, 2] + camera.cx
    v = camera.fy * points[:, 1] / points[:, 2] + camera.cy
    c0, c1 = max(int(math.floor(u.min())) - 1, 0), min(int(math.ceil(u.max())) + 2, camera.width)
    r0, r1 = max(int(math.floor(v.min())) - 1, 0), min(int(math.ceil(v.max())) + 2, camera.height)
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _cast_box(box, first_id, camera, window, depth, ids):
    """Slab test of one box over a window of rays; updates depth and ids where the box is nearer."""
    rows, cols = window
    axes = box.axes()
    local_origin = (np.asarray(camera.position, np.float64) - box.center) @ axes
    # ray directions in the box's axes: axes^T R (x, y, 1)
    local = _planes(camera, axes.T @ np.asarray(camera.rotation, np.float64), rows, cols)
    best = entry = far = None
    for axis in range(3):
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = np.float32(1) / local[axis]
            t1 = np.float32(-box.half[axis] - local_origin[axis]) * inverse
            t2 = np.float32(box.half[axis] - local_origin[axis]) * inverse
        near, out = np.minimum(t1, t2), np.maximum(t1, t2)
        if best is None:
            best, entry, far = near, np.zeros(near.shape, np.int8), out
        else:
            later = near > best
            best = np.where(later, near, best)
            entry[later] = axis
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
    scale = np.float32(size / NOISE_TILE_CELLS)
    tu, tv = u * scale, v * scale
    fu, fv = np.floor(tu), np.floor(tv)
    wu, wv = tu - fu, tv - fv
    iu = fu.astype(np.int64) & (size - 1)
    iv = fv.astype(np.int64) & (size - 1)
    iu1, iv1 = (iu + 1) & (size - 1), (iv + 1) & (size - 1)
    flat = tile.reshape(-1)
    top = flat[iv * size + iu]
    top += (flat[iv * size + iu1] - top) * wu
    bottom = flat[iv1 * size + iu]
    bottom += (flat[iv1 * size + iu1] - bottom) * wu
    return top + (bottom - top) * wv


def _surface_tables(scene):
    """Per surface id: normals (n, 3), texture maps (n, 2, 4) world point -> texture coordinates, materials."""
    normals, maps, materials = [], [], []
    room_axes = [(1, 2), (1, 2), (0, 2), (0, 2), (0, 1), (0, 1)]
    for index, (material, (a, b)) in enumerate(zip(scene.room_materials, room_axes)):
        normals.append(_ROOM_NORMALS[index])
        maps.append(_texture_map(np.eye(3)[a], np.eye(3)[b], np.zeros(3), material))
        materials.append(material)
    for box in scene.boxes:
        axes = box.axes()
        for face, (a, b) in enumerate(room_axes):
            normals.append(axes @ _BOX_NORMALS[face])
            maps.append(_texture_map(axes[:, a], axes[:, b], box.center - axes @ box.half, box.material))
            materials.append(box.material)
    return np.asarray(normals, np.float64), np.asarray(maps, np.float64), materials


def _texture_map(u_axis, v_axis, origin, material):
    """2x4 affine map world point -> texture coordinates in cells, rotated by the material's angle and
    shifted by its seed (so surfaces sharing the noise tile look different)."""
    c, s = math.cos(material.angle), math.sin(material.angle)
    rows = np.stack([c * u_axis - s * v_axis, s * u_axis + c * v_axis]) / material.scale
    shift = np.array([(material.seed % 1009) / 1009.0, (material.seed % 1013) / 1013.0]) * NOISE_TILE_CELLS
    return np.concatenate([rows, (shift - rows @ origin)[:, None]], axis=1)


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


def _points(scene, depth, camera):
    """World coordinates (3 planes (H, W)) of the cast points."""
    origin = np.asarray(camera.position, np.float64)
    return [np.float32(origin[k]) + depth * plane
            for k, plane in enumerate(_planes(camera, np.asarray(camera.rotation, np.float64)))]


def shade(scene, depth, ids, camera=None):
    """Linear RGB radiance (H, W, 3) float32 of the cast surfaces: textured albedo times (ambient + each
    light's Lambertian term with a soft 1 / (1 + d^2 / 4 m^2) falloff); no shadows."""
    camera = camera or scene.camera
    normals, maps, materials = _surface_tables(scene)
    tile = scene.noise_tile if scene.noise_tile is not None else noise_tile(np.random.default_rng(0))
    points = _points(scene, depth, camera)
    maps = maps.astype(np.float32)
    u = np.take(maps[:, 0, 3], ids)
    v = np.take(maps[:, 1, 3], ids)
    for k in range(3):
        u += np.take(maps[:, 0, k], ids) * points[k]
        v += np.take(maps[:, 1, k], ids) * points[k]
    kinds = np.take(np.array([m.kind for m in materials], np.int8), ids)
    sharpness = np.array([m.sharpness for m in materials], np.float32)
    mix = np.empty(depth.shape, np.float32)
    for kind in (CHECKERS, STRIPES, NOISE, WOOD):
        chosen = kinds == kind
        if chosen.any():
            mix[chosen] = _mix_factor(kind, u[chosen], v[chosen], tile, np.take(sharpness, ids[chosen]))
    normal = [np.take(normals[:, k].astype(np.float32), ids) for k in range(3)]
    strengths = []
    for light in scene.lights:
        to_light = [np.float32(light.position[k]) - points[k] for k in range(3)]
        distance2 = to_light[0] * to_light[0] + to_light[1] * to_light[1] + to_light[2] * to_light[2]
        cosine = (normal[0] * to_light[0] + normal[1] * to_light[1] + normal[2] * to_light[2]) / np.sqrt(distance2)
        strengths.append(np.maximum(cosine, 0) / (1 + np.float32(0.25) * distance2))
    color_a = np.array([m.color_a for m in materials], np.float32)
    color_b = np.array([m.color_b for m in materials], np.float32)
    radiance = np.empty(depth.shape + (3,), np.float32)
    for channel in range(3):
        albedo = np.take(color_a[:, channel], ids)
        albedo += (np.take(color_b[:, channel], ids) - albedo) * mix
        light = np.full(depth.shape, np.float32(scene.ambient[channel]), np.float32)
        for strength, source in zip(strengths, scene.lights):
            light += strength * np.float32(source.color[channel])
        np.multiply(albedo, light, out=radiance[:, :, channel])
    return radiance


def to_uint8(radiance, rng, noise_std=None):
    """Auto-exposed, gamma-2 encoded uint8 RGB with mild Gaussian sensor noise (std 1-3 levels)."""
    luminance = radiance[::7, ::7].mean(axis=2)
    exposure = np.float32(0.85 / max(float(np.percentile(luminance, 97)), 1e-6))
    image = np.sqrt(np.clip(radiance * exposure, 0, 1)) * np.float32(255)
    std = rng.uniform(1.0, 3.0) if noise_std is None else noise_std
    if std:
        image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(std)
    image += np.float32(0.5)
    return np.clip(image, 0, 255).astype(np.uint8)


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
    normals, _, _ = _surface_tables(scene)
    directions = _planes(camera, np.asarray(camera.rotation, np.float64))
    dot = sum(np.take(normals[:, k].astype(np.float32), ids) * directions[k] for k in range(3))
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
      Kinect-like holes); existing pairs are skipped;
    - "nyu-mat": out/nyu_depth_v2_labeled.mat in NYU's v7.3 layout (images, depths = exact depth,
      rawDepths = depth with holes) and out/splits.mat (testNdxs, trainNdxs, one-based).
    NNNNN is the scene's index; the split is split_indices(count, seed, test_fraction). Returns the paths."""
    import os
    from .jobs import run_jobs
    if file_format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {file_format!r}")
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    tests, trains = split_indices(count, seed, test_fraction)
    scenes = SceneSet(count, seed, holes)
    if file_format == "pairs":
        jobs = []
        for name, indices in (("train", trains), ("test", tests)):
            folder = os.path.join(out, name)
            os.makedirs(folder, exist_ok=True)
            jobs.extend((int(i), folder) for i in indices)
        written = sum(run_jobs(_PairJob(scenes, full, depth_format, overwrite), jobs, workers, progress,
                               desc="synthetic pairs", unit="scene"))
        log(f"wrote {written} pairs ({len(jobs) - written} already there): {len(trains)} train, {len(tests)} test "
            f"under {out}")
        return [os.path.join(out, "train"), os.path.join(out, "test")]
    from .nyu import write_labeled_mat, write_splits_mat
    labeled, splits = os.path.join(out, LABELED_NAME), os.path.join(out, SPLITS_NAME)
    if not overwrite and os.path.exists(labeled) and os.path.exists(splits):
        log(f"{labeled} and {splits} exist already; skipped (--overwrite rewrites them)")
        return [labeled, splits]
    items = run_jobs(_MatJob(scenes), range(count), workers, progress, desc="synthetic scenes", unit="scene")
    write_labeled_mat(labeled, items, count, NYU_WIDTH, NYU_HEIGHT, raw=True)
    write_splits_mat(splits, tests, trains)
    log(f"wrote {count} scenes to {labeled} ({len(tests)} test, {len(trains)} train in {splits})")
    return [labeled, splits]
