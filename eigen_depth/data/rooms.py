"""Furnished rooms for the synthetic scenes (synthetic.random_scene): materials, furniture built from boxes,
a layout whose pieces do not overlap, and a camera pose chosen by probing depth with a few rays.

Every builder returns boxes in the piece's own frame: the footprint centred on the origin, standing on the
floor (z = 0), its front towards local +y. A chair's seat faces +y and its back is at -y; a bed's headboard,
a bookcase's back and a door's or window's wall side are at -y, the side that goes against a wall.
place() turns such a piece by a yaw and moves it into the room.
"""
import dataclasses
import math

import numpy as np

from .constants import NYU_CX, NYU_CY, NYU_FX, NYU_FY, NYU_HEIGHT, NYU_WIDTH
from .synthetic import (CHECKERS, NOISE, ROOM_HEIGHT_RANGE, ROOM_SIZE_RANGE, STRIPES, WOOD, Box, Camera, Light,
                        Material, Scene, center_region, look_rotation, noise_tile)

ROOM_TYPES = ("bedroom", "living room", "kitchen", "office")
CAMERA_HEIGHT_RANGE_M = (1.0, 1.7)
CAMERA_PITCH_RANGE_DEG = (-25.0, 10.0)
CAMERA_ROLL_LIMIT_DEG = 5.0
CAMERA_CLEARANCE_M = 0.35             # the camera keeps this far from every box (and the walls)
MAX_FLOOR_SHARE = 0.45                # furniture footprints cover at most this share of the floor
# a camera pose is probed with PROBE_GRID rays (columns, rows) over the whole image; it is kept if
MIN_CENTER_DEPTH_M = 1.5              # the median depth of the image's central region is at least this,
NEAR_DEPTH_M, NEAR_FRACTION = 0.5, 0.02  # at most this share of the rays is nearer than NEAR_DEPTH_M,
MIN_FURNITURE_SHARE = 0.15            # and at least this share meets furniture (not these OPENING_KINDS)
OPENING_KINDS = ("door", "window", "picture", "ceiling", "curtain", "handle")  # first words of Box.kind
PROBE_GRID = (16, 12)
PROBE_TRIES = 48                      # candidate poses before falling back to the best one seen


# -- Materials ------------------------------------------------------------------------------------------
WALL_COLORS = ((0.88, 0.87, 0.84), (0.85, 0.80, 0.70), (0.80, 0.80, 0.80), (0.78, 0.84, 0.86),
               (0.84, 0.86, 0.76), (0.90, 0.84, 0.76), (0.72, 0.70, 0.66), (0.86, 0.78, 0.78))
FABRIC_COLORS = ((0.55, 0.20, 0.18), (0.20, 0.28, 0.45), (0.35, 0.40, 0.30), (0.55, 0.50, 0.42),
                 (0.30, 0.30, 0.32), (0.70, 0.62, 0.45), (0.45, 0.30, 0.40), (0.80, 0.80, 0.78))


def _tint(rng, base, spread=0.04):
    """A colour near `base`: each channel scaled by 1 +- spread, kept within 0.02..0.98."""
    scales = rng.uniform(1 - spread, 1 + spread, 3)
    return tuple(min(max(float(c) * float(k), 0.02), 0.98) for c, k in zip(base, scales))


def _seed(rng):
    return int(rng.integers(1 << 30))


def plain(rng, base, contrast=0.12, scale=(0.2, 1.0)):
    """A nearly uniform surface: value noise between a colour and a slightly darker one."""
    color = _tint(rng, base)
    darker = _tint(rng, np.asarray(color) * (1 - contrast), 0.02)
    return Material(NOISE, float(rng.uniform(*scale)), float(rng.uniform(0, math.pi)), color, darker, _seed(rng))


def wood(rng):
    """Wood grain in a random brown."""
    base = np.array([0.58, 0.38, 0.20]) * rng.uniform(0.45, 1.4)
    return Material(WOOD, float(rng.uniform(0.08, 0.25)), float(rng.choice([0.0, math.pi / 2])),
                    _tint(rng, base, 0.08), _tint(rng, base * 0.7, 0.05), _seed(rng), 1.0)


def fabric(rng):
    """Upholstery or bedding: mostly plain, sometimes checked or striped."""
    base = np.asarray(FABRIC_COLORS[int(rng.integers(len(FABRIC_COLORS)))])
    kind = int(rng.choice([NOISE, NOISE, CHECKERS, STRIPES]))
    contrast = 0.15 if kind == NOISE else rng.uniform(0.15, 0.4)
    scale = {NOISE: rng.uniform(0.1, 0.4), CHECKERS: rng.uniform(0.05, 0.2), STRIPES: rng.uniform(0.05, 0.2)}[kind]
    return Material(kind, float(scale), float(rng.choice([0.0, math.pi / 2])), _tint(rng, base, 0.1),
                    _tint(rng, base * (1 - contrast), 0.05), _seed(rng), float(rng.uniform(0.8, 2.0)))


def painted(rng):
    """White, grey, black or coloured paint."""
    base = [(0.9, 0.9, 0.88), (0.55, 0.55, 0.55), (0.12, 0.12, 0.13), (0.75, 0.70, 0.60),
            (0.35, 0.45, 0.55)][int(rng.integers(5))]
    return plain(rng, base, 0.08)


def books(rng):
    """Rows of book spines: sharp vertical stripes in two random colours."""
    color_a, color_b = (tuple(float(c) for c in rng.uniform(0.1, 0.85, 3)) for _ in range(2))
    return Material(STRIPES, float(rng.uniform(0.03, 0.07)), 0.0, color_a, color_b, _seed(rng),
                    float(rng.uniform(2.0, 6.0)))


def glowing(rng, base, emission):
    """A light source's or a window's surface: nearly uniform and emitting `emission` times its albedo."""
    return dataclasses.replace(plain(rng, base, 0.06), emission=float(emission))


def room_materials(rng):
    """Materials of the four walls (one colour, sometimes an accent wall), the floor and the ceiling."""
    if rng.random() < 0.2:
        color = _tint(rng, WALL_COLORS[int(rng.integers(len(WALL_COLORS)))])
        wall = Material(STRIPES, float(rng.uniform(0.05, 0.3)), 0.0, color, _tint(rng, np.asarray(color) * 0.88),
                        _seed(rng), float(rng.uniform(0.5, 1.5)))
    else:
        wall = plain(rng, WALL_COLORS[int(rng.integers(len(WALL_COLORS)))], rng.uniform(0.04, 0.14), (0.3, 1.5))
    walls = [wall] * 4
    if rng.random() < 0.2:
        walls[int(rng.integers(4))] = plain(rng, WALL_COLORS[int(rng.integers(len(WALL_COLORS)))], 0.1)
    choice = rng.random()
    if choice < 0.45:
        floor = wood(rng)
    elif choice < 0.7:
        tile = _tint(rng, [(0.8, 0.78, 0.74), (0.6, 0.6, 0.6), (0.75, 0.65, 0.5)][int(rng.integers(3))])
        floor = Material(CHECKERS, float(rng.uniform(0.3, 0.6)), float(rng.choice([0.0, math.pi / 4])), tile,
                         _tint(rng, np.asarray(tile) * rng.uniform(0.75, 0.95)), _seed(rng))
    else:
        floor = plain(rng, FABRIC_COLORS[int(rng.integers(len(FABRIC_COLORS)))], 0.2, (0.05, 0.3))
    ceiling = plain(rng, (0.9, 0.9, 0.88), 0.05, (0.5, 2.0))
    return walls + [floor, ceiling]


# -- Furniture: boxes in the piece's own frame ----------------------------------------------------------
def _part(center, size, material, kind):
    return Box(np.asarray(center, np.float64), np.asarray(size, np.float64) / 2, 0.0, material, kind)


def place(boxes, x_m, y_m, yaw=0.0):
    """The boxes of a piece built in its own frame, turned by yaw (radians) about z and moved to (x_m, y_m)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return [dataclasses.replace(box, center=np.array([x_m + c * box.center[0] - s * box.center[1],
                                                      y_m + s * box.center[0] + c * box.center[1], box.center[2]]),
                                yaw=box.yaw + yaw) for box in boxes]


def table(material, width_m, depth_m, height_m, top_m=0.04, leg_m=0.05, kind="table"):
    """A top on four legs inset 3 cm from its corners."""
    leg_x, leg_y = width_m / 2 - 0.03 - leg_m / 2, depth_m / 2 - 0.03 - leg_m / 2
    legs = [_part((sx * leg_x, sy * leg_y, (height_m - top_m) / 2), (leg_m, leg_m, height_m - top_m), material,
                  f"{kind} leg") for sx in (-1, 1) for sy in (-1, 1)]
    return [_part((0, 0, height_m - top_m / 2), (width_m, depth_m, top_m), material, f"{kind} top")] + legs


def chair(material, width_m=0.45, depth_m=0.45, seat_height_m=0.46, back_height_m=0.42, seat_m=0.04,
          leg_m=0.035, back_m=0.03):
    """A seat on four legs with a back panel standing on the seat's -y edge."""
    leg_height = seat_height_m - seat_m
    legs = [_part((sx * (width_m - leg_m) / 2, sy * (depth_m - leg_m) / 2, leg_height / 2),
                  (leg_m, leg_m, leg_height), material, "chair leg") for sx in (-1, 1) for sy in (-1, 1)]
    return [_part((0, 0, seat_height_m - seat_m / 2), (width_m, depth_m, seat_m), material, "chair seat"),
            _part((0, (back_m - depth_m) / 2, seat_height_m + back_height_m / 2), (width_m, back_m, back_height_m),
                  material, "chair back")] + legs


def desk(material, width_m, depth_m, height_m=0.75, top_m=0.03, side_m=0.03):
    """A top on two side panels, with a modesty panel at the back."""
    side_height = height_m - top_m
    sides = [_part((sx * (width_m - side_m) / 2, 0, side_height / 2), (side_m, depth_m, side_height), material,
                   "desk side") for sx in (-1, 1)]
    back = _part((0, -depth_m / 2 + 0.06, side_height - 0.2), (width_m - 2 * side_m, 0.02, 0.4), material, "desk back")
    return [_part((0, 0, height_m - top_m / 2), (width_m, depth_m, top_m), material, "desk top"), back] + sides


def bed(frame, sheet, cover, pillow, width_m, length_m, rng):
    """A frame with a headboard at -y, a mattress, pillows and a cover over its foot end."""
    base_m, mattress_m = rng.uniform(0.22, 0.35), rng.uniform(0.18, 0.25)
    head_m, board_m = rng.uniform(0.8, 1.2), 0.06
    top = base_m + mattress_m
    inner_length = length_m - board_m
    parts = [_part((0, -length_m / 2 + board_m / 2, head_m / 2), (width_m, board_m, head_m), frame, "bed headboard"),
             _part((0, board_m / 2, base_m / 2), (width_m, inner_length, base_m), frame, "bed frame"),
             _part((0, board_m / 2, base_m + mattress_m / 2), (width_m - 0.04, inner_length - 0.04, mattress_m), sheet,
                   "mattress")]
    pillows = 1 if width_m < 1.3 else 2
    pillow_w = min(0.65, (width_m - 0.1) / pillows - 0.04)
    for index in range(pillows):
        x = (index - (pillows - 1) / 2) * (width_m - 0.1) / pillows
        parts.append(_part((x, -length_m / 2 + board_m + 0.05 + 0.2, top + 0.06), (pillow_w, 0.4, 0.12), pillow,
                           "pillow"))
    cover_length = inner_length * rng.uniform(0.55, 0.75)
    parts.append(_part((0, length_m / 2 - cover_length / 2 + 0.01, top + 0.03 - mattress_m * 0.4),
                       (width_m + 0.02, cover_length, mattress_m * 0.8 + 0.06), cover, "bed cover"))
    return parts


def bookcase(material, book_materials, width_m, depth_m, height_m, shelves, rng, board_m=0.02):
    """Two sides, a top, a plinth, a back panel and `shelves` compartments, most holding a row of books."""
    inner_w = width_m - 2 * board_m
    parts = [_part((sx * (width_m - board_m) / 2, 0, height_m / 2), (board_m, depth_m, height_m), material,
                   "bookcase side") for sx in (-1, 1)]
    parts += [_part((0, 0, height_m - board_m / 2), (inner_w, depth_m, board_m), material, "bookcase board"),
              _part((0, 0, 0.04), (inner_w, depth_m, 0.08), material, "bookcase board"),
              _part((0, -depth_m / 2 + 0.005, height_m / 2), (inner_w, 0.01, height_m - board_m - 0.08), material,
                    "bookcase back")]
    step = (height_m - board_m - 0.08) / shelves
    for index in range(shelves):
        bottom = 0.08 + index * step + (board_m if index else 0.0)
        if index:
            parts.append(_part((0, 0, bottom - board_m / 2), (inner_w, depth_m, board_m), material, "bookcase board"))
        if rng.random() < 0.8:
            room = step - (board_m if index else 0.0)
            w, h = inner_w * rng.uniform(0.3, 0.95), room * rng.uniform(0.55, 0.85)
            d = (depth_m - 0.01) * rng.uniform(0.6, 0.9)
            x = rng.uniform(-(inner_w - w) / 2, (inner_w - w) / 2)
            material_books = book_materials[int(rng.integers(len(book_materials)))]
            parts.append(_part((x, -depth_m / 2 + 0.01 + d / 2, bottom + h / 2), (w, d, h), material_books, "books"))
    return parts


def cabinet(material, front, handle, width_m, depth_m, height_m, fronts=2, drawers=False, kind="cabinet"):
    """A body with `fronts` doors (side by side) or drawers (stacked) on its +y face, each with a handle."""
    body_d = depth_m - 0.02
    parts = [_part((0, -0.01, height_m / 2), (width_m, body_d, height_m), material, kind)]
    y = body_d / 2 - 0.01 + 0.01
    for index in range(fronts):
        if drawers:
            h = (height_m - 0.04) / fronts
            z = 0.02 + h * (index + 0.5)
            size, where = (width_m - 0.03, 0.02, h - 0.015), (0, y, z)
            handle_at, handle_size = (0, y + 0.02, z + h * 0.25), (min(0.2, width_m / 3), 0.02, 0.02)
        else:
            w = (width_m - 0.02) / fronts
            x = -width_m / 2 + 0.01 + w * (index + 0.5)
            size, where = (w - 0.01, 0.02, height_m - 0.05), (x, y, height_m / 2 + 0.01)
            side = -1 if index < fronts / 2 else 1
            handle_at = (x - side * (w / 2 - 0.06), y + 0.02, min(height_m * 0.55, 1.1))
            handle_size = (0.02, 0.02, min(0.15, height_m / 4))
        parts.append(_part(where, size, front, f"{kind} front"))
        parts.append(_part(handle_at, handle_size, handle, "handle"))
    return parts


def sofa(material, width_m, depth_m, rng, seats=None):
    """A base, a back at -y, two arms and seat cushions."""
    base_m, back_top, arm_top = 0.3, rng.uniform(0.75, 0.9), rng.uniform(0.55, 0.65)
    back_m, arm_m = rng.uniform(0.18, 0.25), rng.uniform(0.12, 0.22)
    seats = seats or max(1, min(3, int(round((width_m - 2 * arm_m) / 0.6))))
    front_depth = depth_m - back_m
    parts = [_part((0, 0, base_m / 2), (width_m, depth_m, base_m), material, "sofa base"),
             _part((0, -depth_m / 2 + back_m / 2, (base_m + back_top) / 2), (width_m, back_m, back_top - base_m),
                   material, "sofa back")]
    parts += [_part((sx * (width_m - arm_m) / 2, back_m / 2, (base_m + arm_top) / 2), (arm_m, front_depth,
                                                                                        arm_top - base_m),
                    material, "sofa arm") for sx in (-1, 1)]
    seat_w = (width_m - 2 * arm_m) / seats
    for index in range(seats):
        x = -width_m / 2 + arm_m + seat_w * (index + 0.5)
        parts.append(_part((x, back_m / 2 + 0.005, base_m + 0.06), (seat_w - 0.01, front_depth - 0.01, 0.12),
                           material, "cushion"))
    return parts


def television(screen, stand_height_m, width_m):
    """A flat screen on a foot, standing at stand_height_m."""
    height = width_m * 9 / 16
    return [_part((0, 0, stand_height_m + 0.01), (0.3, 0.2, 0.02), screen, "tv foot"),
            _part((0, 0, stand_height_m + 0.07 + height / 2), (width_m, 0.05, height), screen, "tv")]


def door(leaf, frame, handle, width_m=0.9, height_m=2.05, frame_m=0.07, depth_m=0.05):
    """A closed door: a leaf against the wall (-y) inside a frame of two jambs and a header, with a handle."""
    wall_y = -depth_m / 2
    leaf_m = 0.03
    return [_part((0, wall_y + leaf_m / 2, height_m / 2), (width_m, leaf_m, height_m), leaf, "door"),
            _part((-(width_m + frame_m) / 2, 0, (height_m + frame_m) / 2), (frame_m, depth_m, height_m + frame_m),
                  frame, "door frame"),
            _part(((width_m + frame_m) / 2, 0, (height_m + frame_m) / 2), (frame_m, depth_m, height_m + frame_m),
                  frame, "door frame"),
            _part((0, 0, height_m + frame_m / 2), (width_m + 2 * frame_m, depth_m, frame_m), frame, "door frame"),
            _part((width_m / 2 - 0.1, wall_y + leaf_m + 0.025, 1.0), (0.12, 0.05, 0.025), handle, "handle")]


def window(frame, pane, width_m, height_m, sill_m, curtains=None, curtain_top_m=None, frame_m=0.06, depth_m=0.05):
    """A bright pane against the wall (-y) in a frame, with a mullion when wide, a sill board and, with a
    curtain material, two curtains hanging from curtain_top_m to the floor."""
    wall_y = -depth_m / 2
    middle = sill_m + height_m / 2
    parts = [_part((0, wall_y + 0.005, middle), (width_m, 0.01, height_m), pane, "window pane")]
    for sx in (-1, 1):
        parts.append(_part((sx * (width_m + frame_m) / 2, 0, middle), (frame_m, depth_m, height_m + 2 * frame_m),
                           frame, "window frame"))
    for z in (sill_m - frame_m / 2, sill_m + height_m + frame_m / 2):
        parts.append(_part((0, 0, z), (width_m, depth_m, frame_m), frame, "window frame"))
    if width_m > 1.1:
        parts.append(_part((0, wall_y + 0.02, middle), (0.05, 0.04, height_m), frame, "window frame"))
    parts.append(_part((0, wall_y + 0.075, sill_m - frame_m - 0.015), (width_m + 0.2, 0.15, 0.03), frame,
                       "window sill"))
    if curtains is not None:
        curtain_w = min(0.45, 0.2 + width_m * 0.12)
        top = curtain_top_m if curtain_top_m is not None else sill_m + height_m + 0.25
        for sx in (-1, 1):
            parts.append(_part((sx * (width_m / 2 + frame_m + curtain_w / 2 - 0.08), depth_m / 2 + 0.155,
                                (top + 0.02) / 2), (curtain_w, 0.08, top - 0.02), curtains, "curtain"))
    return parts


def picture(frame, canvas, width_m, height_m, center_z_m, border_m=0.04):
    """A framed picture hanging on the wall (-y)."""
    return [_part((0, 0, center_z_m), (width_m, 0.03, height_m), frame, "picture frame"),
            _part((0, 0.0175, center_z_m), (width_m - 2 * border_m, 0.005, height_m - 2 * border_m), canvas,
                  "picture")]


def table_lamp(base, shade, height_m=0.45, shade_m=0.26):
    """A lamp for a table or nightstand: a square foot, a stem and a softly glowing shade."""
    stem = height_m - 0.03 - shade_m * 0.8
    return [_part((0, 0, 0.015), (0.13, 0.13, 0.03), base, "lamp foot"),
            _part((0, 0, 0.03 + stem / 2), (0.025, 0.025, stem), base, "lamp stem"),
            _part((0, 0, height_m - shade_m * 0.4), (shade_m, shade_m, shade_m * 0.8), shade, "lamp shade")]


def _small_object(rng, palette):
    """(boxes standing on z = 0 around the origin, footprint width, depth) of a random small object."""
    kind = rng.choice(["books", "box", "bottle", "lamp", "papers", "vase"], p=[0.25, 0.25, 0.15, 0.1, 0.1, 0.15])
    if kind == "books":
        w, d, h = rng.uniform(0.15, 0.3), rng.uniform(0.2, 0.3), rng.uniform(0.03, 0.15)
        lying = dataclasses.replace(palette["books"][int(rng.integers(len(palette["books"])))], angle=math.pi / 2)
        return [_part((0, 0, h / 2), (w, d, h), lying, "books")], w, d
    if kind == "box":
        w, d, h = rng.uniform(0.1, 0.4), rng.uniform(0.1, 0.35), rng.uniform(0.05, 0.3)
        material = [painted, fabric, wood][int(rng.integers(3))](rng)
        return [_part((0, 0, h / 2), (w, d, h), material, "box")], w, d
    if kind == "bottle":
        w, h = rng.uniform(0.06, 0.09), rng.uniform(0.15, 0.3)
        glass = plain(rng, tuple(rng.uniform(0.1, 0.8, 3)), 0.1)
        return [_part((0, 0, h * 0.35), (w, w, h * 0.7), glass, "bottle"),
                _part((0, 0, h * 0.85), (w * 0.4, w * 0.4, h * 0.3), glass, "bottle")], w, w
    if kind == "lamp":
        return table_lamp(palette["metal"], glowing(rng, (0.95, 0.9, 0.8), 0.8), rng.uniform(0.35, 0.55)), 0.3, 0.3
    if kind == "papers":
        w, d = rng.uniform(0.21, 0.32), rng.uniform(0.28, 0.4)
        return [_part((0, 0, 0.01), (w, d, 0.02), plain(rng, (0.92, 0.92, 0.9), 0.05), "papers")], w, d
    w, h = rng.uniform(0.08, 0.15), rng.uniform(0.1, 0.3)
    return [_part((0, 0, h / 2), (w, w, h), plain(rng, tuple(rng.uniform(0.2, 0.9, 3)), 0.15), "vase")], w, w


def clutter(rng, palette, width_m, depth_m, top_z_m, count, center=(0.0, 0.0), taken=()):
    """Up to `count` small objects (books, boxes, bottles, lamps, papers, vases) on a surface width_m x
    depth_m at height top_z_m centred at `center` in the piece's frame, clear of each other and of the
    `taken` rectangles (x0, x1, y0, y1)."""
    boxes, rects = [], list(taken)
    for _ in range(count):
        parts, w, d = _small_object(rng, palette)
        if w > width_m - 0.04 or d > depth_m - 0.04:
            continue
        x = center[0] + rng.uniform(-(width_m - w) / 2 + 0.02, (width_m - w) / 2 - 0.02)
        y = center[1] + rng.uniform(-(depth_m - d) / 2 + 0.02, (depth_m - d) / 2 - 0.02)
        rect = (x - w / 2, x + w / 2, y - d / 2, y + d / 2)
        if any(rect[0] < r[1] and r[0] < rect[1] and rect[2] < r[3] and r[2] < rect[3] for r in rects):
            continue
        rects.append(rect)
        moved = place(parts, x, y, rng.normal(0, 0.2))
        boxes += [dataclasses.replace(box, center=box.center + np.array([0, 0, top_z_m])) for box in moved]
    return boxes


def plant(pot, leaves, pot_m=0.3, height_m=1.0):
    """A potted plant: a pot, a stem and three clumps of foliage, the top one narrower."""
    foliage = height_m - pot_m
    return [_part((0, 0, pot_m * 0.5), (pot_m, pot_m, pot_m), pot, "pot"),
            _part((0, 0, pot_m + foliage * 0.2), (0.03, 0.03, foliage * 0.4), leaves, "plant"),
            place([_part((0, 0, pot_m + foliage * 0.55), (pot_m * 1.7, pot_m * 1.3, foliage * 0.5), leaves, "plant")],
                  0, 0, 0.5)[0],
            place([_part((0, 0, pot_m + foliage * 0.45), (pot_m * 1.2, pot_m * 1.8, foliage * 0.4), leaves, "plant")],
                  0, 0, -0.3)[0],
            _part((0, 0, pot_m + foliage * 0.85), (pot_m * 0.9, pot_m * 0.9, foliage * 0.3), leaves, "plant")]


# -- Layout ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Piece:
    """Boxes in their own frame with what to try when placing them: against a wall or free-standing."""
    boxes: list
    where: str = "wall"            # "wall", "free" or "either"
    keepout: tuple = ()            # extra (x0, x1, y0, y1, z0, z1) regions in the piece's frame to keep clear
    floor_area: bool = True        # counts towards MAX_FLOOR_SHARE
    wall_gap_m: tuple = (0.0, 0.04)

    def __post_init__(self):
        self.bounds = _bounds(self.boxes)


def _bounds(boxes):
    """(x0, x1, y0, y1, z0, z1): the bounds of boxes in their frame."""
    centers, halves, c, s = _box_arrays(boxes)
    reach = np.stack([np.abs(c) * halves[:, 0] + np.abs(s) * halves[:, 1],
                      np.abs(s) * halves[:, 0] + np.abs(c) * halves[:, 1], halves[:, 2]], 1)
    low, high = (centers - reach).min(axis=0), (centers + reach).max(axis=0)
    return low[0], high[0], low[1], high[1], low[2], high[2]


def _box_arrays(boxes):
    """Centres (B, 3), half sizes (B, 3), cos and sin of the yaws (B,) of boxes."""
    yaws = np.array([box.yaw for box in boxes], np.float64)
    return (np.array([box.center for box in boxes], np.float64), np.array([box.half for box in boxes], np.float64),
            np.cos(yaws), np.sin(yaws))


def _to_local(points, centers, c, s):
    """Points (..., P, 3) in the frames of B boxes: (..., P, B, 3)."""
    d = points[..., :, None, :] - centers
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1], d[..., 2]], -1)


class Layout:
    """Pieces placed in a room so far, with their footprints: rectangles (centre x, y, half x, y, yaw) and
    height ranges; a new piece may not overlap any footprint whose height range meets its own."""

    def __init__(self, size):
        self.size = np.asarray(size, np.float64)
        self.boxes, self.rects, self.floor_m2 = [], np.zeros((0, 7)), 0.0
        self.low, self.high = np.zeros((0, 2)), np.zeros((0, 2))  # the footprints' axis-aligned bounds

    def free_share(self):
        return 1.0 - self.floor_m2 / (self.size[0] * self.size[1])

    def _rects_of(self, piece, x, y, yaw):
        regions = [piece.bounds] + list(piece.keepout)
        c, s = math.cos(yaw), math.sin(yaw)
        rects = []
        for x0, x1, y0, y1, z0, z1 in regions:
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2
            rects.append([x + c * mx - s * my, y + s * mx + c * my, (x1 - x0) / 2, (y1 - y0) / 2, yaw, z0, z1])
        return np.asarray(rects)

    def _inside(self, rects):
        for cx, cy, hx, hy, yaw, _, _ in rects:
            c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
            ex, ey = c * hx + s * hy, s * hx + c * hy
            if cx - ex < -1e-6 or cy - ey < -1e-6 or cx + ex > self.size[0] + 1e-6 or cy + ey > self.size[1] + 1e-6:
                return False
        return True

    def fits(self, piece, x, y, yaw, margin_m=0.03):
        rects = self._rects_of(piece, x, y, yaw)
        if not self._inside(rects[:1]) or piece.bounds[5] > self.size[2] - 0.01:
            return False
        if not len(self.rects):
            return True
        low, high = _plan_bounds(rects)
        for k, rect in enumerate(rects):  # only footprints whose bounding boxes meet need the exact test
            near = np.all((self.low < high[k] + margin_m) & (self.high > low[k] - margin_m), axis=1)
            if near.any() and _overlaps(rect, self.rects[near], margin_m).any():
                return False
        return True

    def add(self, piece, x, y, yaw):
        rects = self._rects_of(piece, x, y, yaw)
        self.rects = np.concatenate([self.rects, rects])
        low, high = _plan_bounds(rects)
        self.low, self.high = np.concatenate([self.low, low]), np.concatenate([self.high, high])
        self.boxes.extend(place(piece.boxes, x, y, yaw))
        if piece.floor_area:
            self.floor_m2 += 4 * rects[0, 2] * rects[0, 3]

    def try_wall(self, rng, piece, wall=None, tries=12):
        """Puts the piece's -y side against a wall (random unless given) somewhere along it; True if it fits."""
        x0, x1, y0, _, _, _ = piece.bounds
        for _ in range(tries):
            side = int(rng.integers(4)) if wall is None else wall
            length = self.size[1] if side < 2 else self.size[0]
            half = max(-x0, x1)
            if length < 2 * half + 0.04:
                continue
            along = rng.uniform(half + 0.02, length - half - 0.02)
            turn = rng.normal(0, 0.01) if piece.floor_area else 0.0
            gap = rng.uniform(*piece.wall_gap_m) + half * abs(math.sin(turn)) - y0
            x, y, yaw = _wall_pose(self.size, side, along, gap)
            if self.fits(piece, x, y, yaw + turn):
                self.add(piece, x, y, yaw + turn)
                return True
        return False

    def try_free(self, rng, piece, tries=12):
        """Stands the piece anywhere on the floor, mostly square to the walls; True if it fits."""
        x0, x1, y0, y1, _, _ = piece.bounds
        reach = math.hypot(max(-x0, x1), max(-y0, y1))
        for _ in range(tries):
            if rng.random() < 0.7:
                yaw = rng.integers(4) * math.pi / 2 + rng.normal(0, 0.12)
            else:
                yaw = rng.uniform(0, 2 * math.pi)
            margin = min(reach, min(self.size[:2]) / 2 - 0.01)
            x, y = rng.uniform(margin, self.size[0] - margin), rng.uniform(margin, self.size[1] - margin)
            if self.fits(piece, x, y, yaw):
                self.add(piece, x, y, yaw)
                return True
        return False

    def try_place(self, rng, piece):
        if piece.where == "wall" or (piece.where == "either" and rng.random() < 0.6):
            return self.try_wall(rng, piece)
        return self.try_free(rng, piece)


def _wall_pose(size, wall, along_m, distance_m):
    """(x, y, yaw) of a frame whose +y points into the room from wall `wall` (0: x=0, 1: x=W, 2: y=0,
    3: y=D), `along_m` along it and distance_m from it."""
    if wall == 0:
        return distance_m, along_m, -math.pi / 2
    if wall == 1:
        return size[0] - distance_m, along_m, math.pi / 2
    if wall == 2:
        return along_m, distance_m, 0.0
    return along_m, size[1] - distance_m, math.pi


def _plan_bounds(rects):
    """(low (n, 2), high (n, 2)): axis-aligned bounds in the plan of rects (n, 7)."""
    c, s = np.abs(np.cos(rects[:, 4])), np.abs(np.sin(rects[:, 4]))
    reach = np.stack([c * rects[:, 2] + s * rects[:, 3], s * rects[:, 2] + c * rects[:, 3]], 1)
    return rects[:, :2] - reach, rects[:, :2] + reach


def _overlaps(rect, rects, margin_m):
    """Which of rects (n, 7) overlap rect (7,) in the plan (separating axis test, grown by margin_m) and in
    height."""
    cx, cy, hx, hy, yaw, z0, z1 = rect
    height = (rects[:, 5] < z1) & (rects[:, 6] > z0)
    d = rects[:, :2] - np.array([cx, cy])
    a_axes = np.array([[math.cos(yaw), math.sin(yaw)], [-math.sin(yaw), math.cos(yaw)]])
    b_axes = np.stack([np.stack([np.cos(rects[:, 4]), np.sin(rects[:, 4])], 1),
                       np.stack([-np.sin(rects[:, 4]), np.cos(rects[:, 4])], 1)], 1)  # (n, 2, 2)
    a_half, b_half = np.array([hx, hy]) + margin_m / 2, rects[:, 2:4] + margin_m / 2
    separated = np.zeros(len(rects), bool)
    for k in range(2):  # the axes of rect
        axis = a_axes[k]
        reach_b = (b_half * np.abs(b_axes @ axis)).sum(axis=1)
        separated |= np.abs(d @ axis) > a_half[k] + reach_b
    for k in range(2):  # the axes of each of rects
        axis = b_axes[:, k]
        reach_a = np.abs(axis @ a_axes.T) @ a_half
        separated |= np.abs((d * axis).sum(axis=1)) > b_half[:, k] + reach_a
    return height & ~separated


# -- Pieces by room type --------------------------------------------------------------------------------
def _dining_set(rng, palette):
    width, depth, height = rng.uniform(0.9, 1.8), rng.uniform(0.7, 1.0), rng.uniform(0.72, 0.77)
    boxes = table(palette["wood"], width, depth, height)
    chair_material = palette["chair"]
    per_side = 1 if width < 1.2 else 2
    seat = dict(width_m=rng.uniform(0.4, 0.48), depth_m=rng.uniform(0.4, 0.48), seat_height_m=rng.uniform(0.43, 0.48),
                back_height_m=rng.uniform(0.35, 0.5))
    for side in (-1, 1):
        for index in range(per_side):
            if rng.random() < 0.2:
                continue
            x = (index - (per_side - 1) / 2) * width / per_side + rng.normal(0, 0.05)
            y = side * (depth / 2 + seat["depth_m"] / 2 + rng.uniform(0.05, 0.3))
            turn = rng.normal(0, 0.15)
            boxes += place(chair(chair_material, **seat), x, y, (0.0 if side < 0 else math.pi) + turn)
    boxes += clutter(rng, palette, width - 0.1, depth - 0.1, height, int(rng.integers(0, 4)))
    return Piece(boxes, "free")


def _desk_set(rng, palette, material):
    width, depth, height = rng.uniform(1.0, 1.6), rng.uniform(0.55, 0.8), rng.uniform(0.72, 0.76)
    boxes = desk(material, width, depth, height)
    taken = []
    if rng.random() < 0.5:
        screen_w, x = rng.uniform(0.45, 0.6), rng.uniform(-0.2, 0.2)
        boxes += place(television(plain(rng, (0.05, 0.05, 0.06), 0.2), height, screen_w), x, -depth / 2 + 0.2)
        taken.append((x - screen_w / 2, x + screen_w / 2, -depth / 2, -depth / 2 + 0.35))
    boxes += clutter(rng, palette, width - 0.06, depth - 0.04, height, int(rng.integers(0, 5)), taken=taken)
    chair_material = palette["chair"]
    if rng.random() < 0.85:
        y = depth / 2 + 0.22 + rng.uniform(0.0, 0.35)
        boxes += place(chair(chair_material, seat_height_m=rng.uniform(0.44, 0.5)), rng.uniform(-0.2, 0.2), y,
                       math.pi + rng.normal(0, 0.3))
    return Piece(boxes, "either")


def _bed(rng, palette):
    width, length = rng.choice([0.9, 1.4, 1.6, 1.8]) + rng.uniform(0, 0.1), rng.uniform(1.95, 2.15)
    boxes = bed(palette["wood"], plain(rng, (0.9, 0.9, 0.88), 0.05), fabric(rng), plain(rng, (0.92, 0.92, 0.9), 0.05),
                width, length, rng)
    for side in (-1, 1):
        if rng.random() < 0.6:
            w, h = rng.uniform(0.4, 0.55), rng.uniform(0.45, 0.6)
            stand = cabinet(palette["wood"], palette["wood"], palette["metal"], w, 0.4, h, 2, drawers=True,
                            kind="nightstand")
            stand += clutter(rng, palette, w, 0.38, h, int(rng.integers(0, 3)), center=(0, -0.01))
            boxes += place(stand, side * (width / 2 + 0.05 + w / 2), -length / 2 + 0.2)
    return Piece(boxes, "wall", wall_gap_m=(0.0, 0.02))


def _bookcase(rng, palette):
    height = rng.uniform(0.8, 2.1)
    shelves = max(2, int(round(height / rng.uniform(0.3, 0.4))))
    width, depth = rng.uniform(0.6, 1.2), rng.uniform(0.28, 0.4)
    boxes = bookcase(palette["shelf"], palette["books"], width, depth, height, shelves, rng)
    if height < 1.4:
        boxes += clutter(rng, palette, width, depth, height, int(rng.integers(0, 3)))
    return Piece(boxes, "wall")


def _cabinet(rng, palette, tall=False):
    height = rng.uniform(1.6, 2.2) if tall else rng.uniform(0.5, 1.1)
    width = rng.uniform(0.8, 1.5) if tall else rng.uniform(0.4, 1.6)
    drawers = not tall and rng.random() < 0.5
    fronts = int(rng.integers(2, 5)) if drawers else (1 if width < 0.6 else 2)
    material = palette["wood"] if rng.random() < 0.5 else palette["paint"]
    front = material if rng.random() < 0.7 else painted(rng)
    depth = rng.uniform(0.4, 0.65)
    boxes = cabinet(material, front, palette["metal"], width, depth, height, fronts, drawers,
                    "wardrobe" if tall else "cabinet")
    if not tall:
        boxes += clutter(rng, palette, width, depth - 0.02, height, int(rng.integers(0, 4)), center=(0, -0.01))
    return Piece(boxes, "wall")


def _sofa_set(rng, palette):
    width, depth = rng.uniform(1.5, 2.4), rng.uniform(0.8, 0.95)
    boxes = sofa(palette["fabric"], width, depth, rng)
    if rng.random() < 0.7:
        table_w, table_d, table_h = rng.uniform(0.8, 1.2), rng.uniform(0.45, 0.65), rng.uniform(0.38, 0.46)
        coffee = table(palette["wood"], table_w, table_d, table_h, kind="coffee table")
        coffee += clutter(rng, palette, table_w, table_d, table_h, int(rng.integers(0, 3)))
        boxes += place(coffee, 0, depth / 2 + rng.uniform(0.35, 0.5) + table_d / 2)
    return Piece(boxes, "either")


def _armchair(rng, palette):
    return Piece(sofa(palette["fabric"], rng.uniform(0.8, 1.0), rng.uniform(0.8, 0.9), rng, seats=1), "free")


def _tv_stand(rng, palette):
    width, height = rng.uniform(1.0, 1.8), rng.uniform(0.4, 0.55)
    boxes = cabinet(palette["paint"], palette["paint"], palette["metal"], width, 0.42, height, 2)
    screen_w = min(width - 0.1, rng.uniform(0.8, 1.4))
    boxes += place(television(plain(rng, (0.04, 0.04, 0.05), 0.2), height, screen_w), 0, -0.05)
    boxes += clutter(rng, palette, width, 0.4, height, int(rng.integers(0, 3)), center=(0, -0.01),
                     taken=[(-screen_w / 2, screen_w / 2, -0.2, 0.2)])
    return Piece(boxes, "wall")


def _kitchen_counter(rng, palette, room_size):
    length = rng.uniform(1.5, min(4.0, max(room_size[:2]) - 0.3))
    fronts = max(2, int(round(length / 0.55)))
    front = painted(rng)
    boxes = cabinet(front, front, palette["metal"], length, 0.6, 0.86, fronts, kind="kitchen cabinet")
    boxes.append(_part((0, 0.01, 0.88), (length + 0.02, 0.62, 0.04), plain(rng, (0.3, 0.3, 0.3), 0.3, (0.05, 0.2)),
                       "counter top"))
    boxes += clutter(rng, palette, length, 0.6, 0.9, int(rng.integers(1, 6)), center=(0, 0.01))
    if rng.random() < 0.7 and room_size[2] > 2.3:
        upper = place(cabinet(front, front, palette["metal"], length, 0.35, 0.7, fronts, kind="wall cabinet"), 0, 0)
        boxes += [dataclasses.replace(box, center=box.center + np.array([0, -0.125, 1.45])) for box in upper]
    return Piece(boxes, "wall", wall_gap_m=(0.0, 0.01))


def _fridge(rng, palette):
    white = plain(rng, (0.9, 0.9, 0.9) if rng.random() < 0.6 else (0.6, 0.62, 0.64), 0.05)
    return Piece(cabinet(white, white, palette["metal"], rng.uniform(0.6, 0.75), 0.65, rng.uniform(1.7, 1.9), 2,
                         drawers=True, kind="fridge"), "wall")


def _chair(rng, palette):
    return Piece(chair(palette["chair"], seat_height_m=rng.uniform(0.43, 0.48)), "free")


def _side_table(rng, palette):
    return Piece(table(palette["wood"], rng.uniform(0.4, 0.8), rng.uniform(0.4, 0.6), rng.uniform(0.45, 0.75)),
                 "either")


def _plant(rng, palette):
    pot = plain(rng, [(0.6, 0.32, 0.2), (0.85, 0.85, 0.82), (0.2, 0.2, 0.2)][int(rng.integers(3))], 0.1)
    leaves = Material(NOISE, float(rng.uniform(0.04, 0.1)), 0.0, _tint(rng, (0.25, 0.45, 0.15), 0.15),
                      _tint(rng, (0.08, 0.2, 0.05), 0.15), _seed(rng), 1.0)
    return Piece(plant(pot, leaves, rng.uniform(0.2, 0.35), rng.uniform(0.6, 1.5)), "either")


def _rug(rng, palette):
    boxes = [_part((0, 0, 0.005), (rng.uniform(1.2, 2.5), rng.uniform(0.8, 1.8), 0.01), fabric(rng), "rug")]
    return Piece(boxes, "free", floor_area=False)


RECIPES = {
    # room type: (piece maker, probability, most copies), big pieces first
    "bedroom": ((_bed, 1.0, 1), (lambda r, p: _cabinet(r, p, tall=True), 0.6, 1), (_cabinet, 0.6, 2),
                (lambda r, p: _desk_set(r, p, p["wood"]), 0.4, 1), (_bookcase, 0.4, 1), (_chair, 0.3, 1),
                (_plant, 0.3, 1), (_rug, 0.3, 1)),
    "living room": ((_sofa_set, 1.0, 1), (_tv_stand, 0.7, 1), (_armchair, 0.5, 2), (_bookcase, 0.6, 2),
                    (_cabinet, 0.5, 1), (_side_table, 0.4, 1), (_plant, 0.5, 2), (_rug, 0.4, 1)),
    "kitchen": ((_dining_set, 1.0, 1), (lambda r, p: _kitchen_counter(r, p, p["size"]), 0.7, 1), (_fridge, 0.5, 1),
                (_cabinet, 0.5, 2), (_bookcase, 0.2, 1), (_chair, 0.3, 1), (_plant, 0.2, 1)),
    "office": ((lambda r, p: _desk_set(r, p, p["wood2"]), 1.0, 3), (_bookcase, 0.8, 3), (_cabinet, 0.6, 2),
               (_dining_set, 0.3, 1), (_chair, 0.3, 2), (_plant, 0.4, 1)),
}


def _palette(rng, size):
    return {"wood": wood(rng), "wood2": wood(rng), "shelf": wood(rng) if rng.random() < 0.6 else painted(rng),
            "paint": painted(rng), "fabric": fabric(rng), "metal": plain(rng, (0.25, 0.25, 0.27), 0.1),
            "chair": wood(rng) if rng.random() < 0.6 else painted(rng), "books": [books(rng) for _ in range(4)],
            "size": size}


def _openings(rng, layout, palette):
    """Doors (0-2) and windows (0-2) on random walls."""
    size = layout.size
    for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):
        width, height = rng.uniform(0.8, 1.0), rng.uniform(2.0, 2.1)
        leaf = palette["wood"] if rng.random() < 0.5 else painted(rng)
        frame = leaf if rng.random() < 0.5 else painted(rng)
        boxes = door(leaf, frame, palette["metal"], width, height)
        keepout = ((-width / 2 - 0.1, width / 2 + 0.1, 0.0, 0.9, 0.0, height),)
        layout.try_wall(rng, Piece(boxes, "wall", keepout, floor_area=False, wall_gap_m=(0.0, 0.0)))
    for _ in range(int(rng.choice([0, 0, 1, 1, 1, 2]))):
        sill = rng.uniform(0.75, 1.0)
        height = min(rng.uniform(1.0, 1.5), size[2] - sill - 0.35)
        width = rng.uniform(0.8, 2.0)
        sky = _tint(rng, [(0.85, 0.9, 1.0), (0.95, 0.95, 0.95), (0.75, 0.85, 0.95)][int(rng.integers(3))], 0.05)
        pane = glowing(rng, sky, rng.uniform(1.5, 3.0))
        curtains = fabric(rng) if rng.random() < 0.5 else None
        top = min(sill + height + 0.25, size[2] - 0.05)
        boxes = window(painted(rng) if rng.random() < 0.7 else palette["wood"], pane, width, height, sill, curtains,
                       top)
        layout.try_wall(rng, Piece(boxes, "wall", floor_area=False, wall_gap_m=(0.0, 0.0)))
    for _ in range(int(rng.integers(0, 3))):
        width, height = rng.uniform(0.3, 1.0), rng.uniform(0.3, 0.8)
        colors = rng.uniform(0.1, 0.9, (2, 3))
        canvas = Material(int(rng.choice([NOISE, CHECKERS, STRIPES])), float(rng.uniform(0.05, 0.4)),
                          float(rng.uniform(0, math.pi)), tuple(colors[0]), tuple(colors[1]), _seed(rng),
                          float(rng.uniform(0.6, 3.0)))
        boxes = picture(palette["wood"] if rng.random() < 0.5 else painted(rng), canvas, width, height,
                        rng.uniform(1.3, 1.7))
        layout.try_wall(rng, Piece(boxes, "wall", floor_area=False, wall_gap_m=(0.0, 0.0)))


def _furnish(rng, layout, room_type, palette):
    for maker, probability, most in RECIPES[room_type]:
        for _ in range(most):
            if rng.random() >= probability or layout.free_share() < 1 - MAX_FLOOR_SHARE:
                break
            piece = maker(rng, palette)
            x0, x1, y0, y1, _, _ = piece.bounds
            room_left_m2 = (MAX_FLOOR_SHARE - 1 + layout.free_share()) * layout.size[0] * layout.size[1]
            if piece.floor_area and (x1 - x0) * (y1 - y0) > room_left_m2:
                continue
            layout.try_place(rng, piece)


def _lamps(rng, size, palette):
    """1-3 ceiling lamps: a glowing panel with a point light just below it."""
    boxes, lights = [], []
    for _ in range(int(rng.integers(1, 4))):
        x, y = rng.uniform(0.5, size[0] - 0.5), rng.uniform(0.5, size[1] - 0.5)
        panel = rng.uniform(0.25, 0.6)
        boxes.append(Box(np.array([x, y, size[2] - 0.025]), np.array([panel / 2, panel / 2, 0.025]),
                         float(rng.uniform(0, math.pi)), palette["lamp"], "ceiling lamp"))
        tint = np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.75, 0.95)])
        lights.append(Light(np.array([x, y, size[2] - 0.15]), tint * rng.uniform(0.8, 1.4)))
    return boxes, lights


# -- Camera ---------------------------------------------------------------------------------------------
def nyu_camera(width=NYU_WIDTH, height=NYU_HEIGHT, rotation=None, position=None):
    """NYU's Kinect colour camera scaled to width x height."""
    return Camera(fx=NYU_FX * width / NYU_WIDTH, fy=NYU_FY * height / NYU_HEIGHT, cx=NYU_CX * width / NYU_WIDTH,
                  cy=NYU_CY * height / NYU_HEIGHT, width=width, height=height,
                  rotation=np.eye(3) if rotation is None else rotation,
                  position=np.zeros(3) if position is None else position)


def probe_depths(size, boxes, position, rotation, x, y):
    """(depth (N,), index of the box hit or -1 (N,)) of N rays with normalised image coordinates x, y (N,)
    from a camera at `position` with world-from-camera `rotation` in a room `size` holding `boxes` (a
    _box_arrays tuple), by the slab test of every ray against every box in front of the camera (which is
    outside them)."""
    directions = rotation @ np.stack([x, y, np.ones_like(x)])                    # (3, N)
    with np.errstate(divide="ignore", invalid="ignore"):
        far_wall = np.where(directions > 0, np.asarray(size, np.float64)[:, None], 0.0)
        hull = (far_wall - position[:, None]) / directions
        depth = np.where(hull > 0, hull, np.inf).min(axis=0)
        centers, halves, c, s = boxes
        ahead = (centers - position) @ rotation[:, 2] > -np.linalg.norm(halves, axis=1)
        if not ahead.any():
            return depth, np.full(depth.shape, -1)
        centers, halves, c, s = centers[ahead], halves[ahead], c[ahead, None], s[ahead, None]
        origin = _to_local(position[None], centers, c[:, 0], s[:, 0])[0]        # (B, 3)
        dx, dy = directions[0], directions[1]
        local = (c * dx + s * dy, -s * dx + c * dy, np.broadcast_to(directions[2], (len(centers), len(x))))
        near = far = None
        for axis in range(3):
            inverse = 1.0 / local[axis]
            t1 = (-halves[:, axis, None] - origin[:, axis, None]) * inverse
            t2 = (halves[:, axis, None] - origin[:, axis, None]) * inverse
            low, high = np.fmin(t1, t2), np.fmax(t1, t2)
            near = low if near is None else np.fmax(near, low)
            far = high if far is None else np.fmin(far, high)
        box_depths = np.where((near <= far) & (near > 0), near, np.inf)
        nearest = box_depths.argmin(axis=0)
        box_depth = np.take_along_axis(box_depths, nearest[None], 0)[0]
    hit = np.where(box_depth < depth, np.flatnonzero(ahead)[nearest], -1)
    return np.minimum(depth, box_depth), hit


def _probe_rays(camera):
    """Normalised coordinates (x, y) of the probe grid's pixels and which lie in the central region."""
    cols, rows = PROBE_GRID
    u = (np.arange(cols) + 0.5) * camera.width / cols - 0.5
    v = (np.arange(rows) + 0.5) * camera.height / rows - 0.5
    uu, vv = np.meshgrid(u, v)
    rows_c, cols_c = center_region(camera.height, camera.width)
    central = (vv >= rows_c.start) & (vv < rows_c.stop) & (uu >= cols_c.start) & (uu < cols_c.stop)
    return ((uu.ravel() - camera.cx) / camera.fx, (vv.ravel() - camera.cy) / camera.fy, central.ravel())


def _free_positions(rng, size, boxes, count):
    """Up to `count` floor points (x, y) at least CAMERA_CLEARANCE_M + 5 cm from the walls and, in plan,
    CAMERA_CLEARANCE_M from every box standing on the floor or hanging below 2 m (a photographer stands
    there); boxes is a _box_arrays tuple."""
    margin = CAMERA_CLEARANCE_M + 0.05
    points = np.stack([rng.uniform(margin, size[0] - margin, 4 * count),
                       rng.uniform(margin, size[1] - margin, 4 * count)], 1)
    centers, halves, c, s = boxes
    standing = (centers[:, 2] - halves[:, 2] < 2.0) & (centers[:, 2] + halves[:, 2] > 0.05)  # not lamps, rugs
    d = points[:, None, :] - centers[standing, :2]
    reach = halves[standing, :2] + CAMERA_CLEARANCE_M
    blocked = ((np.abs(c[standing] * d[..., 0] + s[standing] * d[..., 1]) < reach[:, 0])
               & (np.abs(-s[standing] * d[..., 0] + c[standing] * d[..., 1]) < reach[:, 1])).any(axis=1)
    return points[~blocked][:count]


def _clear_of_boxes(position, boxes):
    """Whether a point keeps CAMERA_CLEARANCE_M from every box (per axis of each box's frame)."""
    centers, halves, c, s = boxes
    local = _to_local(position[None], centers, c, s)[0]
    return not np.all(np.abs(local) < halves + CAMERA_CLEARANCE_M, axis=-1).any()


def choose_camera(rng, size, boxes, width=NYU_WIDTH, height=NYU_HEIGHT):
    """A hand-held camera pose by rejection: random free floor points, heights, headings, pitches and
    rolls, each probed with PROBE_GRID rays. The first pose whose central median depth is at least
    MIN_CENTER_DEPTH_M (plus 10 cm) with at most NEAR_FRACTION of the rays nearer than NEAR_DEPTH_M and
    MIN_FURNITURE_SHARE of them on furniture wins; after PROBE_TRIES poses, the first that passed but for
    the furniture, else the one with the deepest centre. None when no floor point is free."""
    camera = nyu_camera(width, height)
    x, y, central = _probe_rays(camera)
    arrays = _box_arrays(boxes) if boxes else (np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0))
    furniture = np.array([box.kind.split()[0] not in OPENING_KINDS for box in boxes] + [False])  # [-1]: none
    points = _free_positions(rng, size, arrays, PROBE_TRIES)
    fallback, best = None, (-1.0, None)
    for point in points:
        position, rotation = _random_pose(rng, size, point)
        if not _clear_of_boxes(position, arrays):
            continue
        depth, hit = probe_depths(size, arrays, position, rotation, x, y)
        center = float(np.median(depth[central]))
        if center >= MIN_CENTER_DEPTH_M + 0.1 and (depth < NEAR_DEPTH_M).mean() <= NEAR_FRACTION:
            if furniture[hit].mean() >= MIN_FURNITURE_SHARE:
                return _posed(camera, (position, rotation))
            fallback = fallback or (position, rotation)
        if center > best[0]:
            best = (center, (position, rotation))
    pose = fallback or best[1]
    return None if pose is None else _posed(camera, pose)


def _random_pose(rng, size, point):
    """(position, rotation): a height, a heading (half the time roughly towards the room's middle), a
    pitch (mostly slightly down) and a small roll."""
    height = float(np.clip(rng.normal(1.4, 0.15), *CAMERA_HEIGHT_RANGE_M))
    if rng.random() < 0.5:
        middle = np.asarray(size[:2]) / 2 - point
        yaw = math.atan2(middle[1], middle[0]) + rng.uniform(-1.0, 1.0)
    else:
        yaw = rng.uniform(0, 2 * math.pi)
    pitch = math.radians(float(np.clip(rng.normal(-9, 7), *CAMERA_PITCH_RANGE_DEG)))
    roll = math.radians(float(np.clip(rng.normal(0, 2), -CAMERA_ROLL_LIMIT_DEG, CAMERA_ROLL_LIMIT_DEG)))
    return np.array([point[0], point[1], height]), look_rotation(yaw, pitch, roll)


def _posed(camera, pose):
    return dataclasses.replace(camera, position=pose[0], rotation=pose[1])


# -- Rooms ----------------------------------------------------------------------------------------------
def random_room(rng, width=NYU_WIDTH, height=NYU_HEIGHT):
    """A random furnished room with its lights and a camera inside it (see synthetic's module docstring)."""
    size = np.array([rng.uniform(*ROOM_SIZE_RANGE), rng.uniform(*ROOM_SIZE_RANGE), rng.uniform(*ROOM_HEIGHT_RANGE)])
    surfaces = room_materials(rng)
    palette = _palette(rng, size)
    palette["lamp"] = glowing(rng, (0.95, 0.95, 0.9), 4.0)
    room_type = ROOM_TYPES[int(rng.integers(len(ROOM_TYPES)))]
    layout = Layout(size)
    _openings(rng, layout, palette)
    _furnish(rng, layout, room_type, palette)
    lamp_boxes, lights = _lamps(rng, size, palette)
    furniture = layout.boxes
    camera = choose_camera(rng, size, furniture + lamp_boxes, width, height)
    while camera is None:  # no free floor: take out the most recent boxes until there is
        furniture = furniture[:-1]
        camera = choose_camera(rng, size, furniture + lamp_boxes, width, height)
    ambient = np.full(3, rng.uniform(0.15, 0.3))
    return Scene(size, surfaces, furniture + lamp_boxes, lights, ambient, camera, noise_tile(rng))
