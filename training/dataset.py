"""Procedural captioned data set for the default model: coloured shapes on backgrounds.

Each sample is a 64x64 RGB image of one shape (circle, square, triangle, star) in one of
8 colours, 2 sizes and 5 positions, on a plain or lightly textured background, plus its
attributes. Captions are drawn from the attributes by a grammar in which every attribute
but the shape may be left out ("a large red circle on the left", "a blue square",
"a small yellow star at the top on a black background", "a triangle"); the trainer draws a
fresh caption each time it uses an image, so the model sees every image under several
captions and must vary what a caption leaves out.

Rendering is anti-aliased by supersampling: the shape's mask is drawn at 4x with PIL and
box-filtered down. Everything is a pure function of the seed (numpy's PCG64 generator).

    /usr/bin/python3 training/dataset.py --count 16 --seed 1 --grid /tmp/grid.png
"""
import argparse
import math

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
SUPERSAMPLE = 4

SHAPES = ["circle", "square", "triangle", "star"]
COLOURS = {  # name -> RGB
    "red": (220, 30, 30), "green": (30, 170, 60), "blue": (35, 70, 225),
    "yellow": (240, 215, 30), "orange": (245, 135, 20), "purple": (140, 45, 185),
    "white": (245, 245, 245), "black": (15, 15, 15),
}
SIZES = {"small": (6.0, 8.0), "large": (12.5, 15.0)}  # radius range in pixels
POSITIONS = {"left": (17, 32), "right": (47, 32), "top": (32, 17), "bottom": (32, 47),
             "center": (32, 32)}
BACKGROUNDS = {
    "black": (20, 20, 22), "white": (238, 238, 235), "gray": (125, 125, 128),
    "navy": (22, 30, 85), "beige": (222, 205, 165), "teal": (20, 115, 115),
}
POSITION_PHRASES = {  # "on the <position>" works for every position (a plain prompt form)
    "left": ["on the left"], "right": ["on the right"],
    "top": ["at the top", "on the top"], "bottom": ["at the bottom", "on the bottom"],
    "center": ["in the center", "on the center", "in the middle"],
}
JITTER = 3  # pixels of position jitter
MIN_CONTRAST = 110.0  # min RGB distance between shape and background colour

SHAPE_NAMES, COLOUR_NAMES = list(SHAPES), list(COLOURS)
SIZE_NAMES, POSITION_NAMES, BG_NAMES = list(SIZES), list(POSITIONS), list(BACKGROUNDS)


def _allowed(colour, bg):
    a, b = np.array(COLOURS[colour], float), np.array(BACKGROUNDS[bg], float)
    return float(np.linalg.norm(a - b)) >= MIN_CONTRAST


def shape_polygon(shape, cx, cy, r):
    """Vertices (or bounding box for a circle) of a shape of nominal radius r."""
    if shape == "circle":
        return [(cx - r, cy - r), (cx + r, cy + r)]
    if shape == "square":
        h = r * 0.88  # similar area to the circle
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "triangle":  # equilateral, pointing up, centred on its centroid
        R = r * 1.3
        return [(cx + R * math.cos(a), cy - R * math.sin(a))
                for a in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3)]
    if shape == "star":  # five points, one pointing up
        R, ri = r * 1.3, r * 1.3 * 0.45
        pts = []
        for k in range(10):
            a = math.pi / 2 + k * math.pi / 5
            rr = R if k % 2 == 0 else ri
            pts.append((cx + rr * math.cos(a), cy - rr * math.sin(a)))
        return pts
    raise ValueError(shape)


def render_mask(shape, cx, cy, r):
    """Anti-aliased coverage (64, 64) float32 in [0, 1]."""
    s = SUPERSAMPLE
    img = Image.new("L", (SIZE * s, SIZE * s), 0)
    d = ImageDraw.Draw(img)
    pts = [(x * s, y * s) for x, y in shape_polygon(shape, cx, cy, r)]
    if shape == "circle":
        d.ellipse(pts, fill=255)
    else:
        d.polygon(pts, fill=255)
    a = np.asarray(img, dtype=np.float32).reshape(SIZE, s, SIZE, s).mean(axis=(1, 3))
    return a / 255.0


def render_background(bg, texture, rng):
    """(64, 64, 3) float32 background: plain, noise, gradient or stripes (all faint)."""
    base = np.array(BACKGROUNDS[bg], np.float32)[None, None, :]
    img = np.broadcast_to(base, (SIZE, SIZE, 3)).copy()
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    if texture == "noise":
        img += rng.normal(0.0, 5.0, (SIZE, SIZE, 1)).astype(np.float32)
    elif texture == "gradient":
        ang = rng.uniform(0, 2 * math.pi)
        g = (np.cos(ang) * (xx - 32) + np.sin(ang) * (yy - 32)) / 32.0
        img += (14.0 * g)[..., None]
    elif texture == "stripes":
        period = rng.uniform(6, 12)
        v = xx if rng.random() < 0.5 else yy
        img += (6.0 * np.sign(np.sin(2 * math.pi * v / period)))[..., None]
    return img


TEXTURES = ["plain", "plain", "noise", "gradient", "stripes"]


def sample_attributes(rng):
    shape = SHAPE_NAMES[rng.integers(len(SHAPE_NAMES))]
    colour = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
    while True:
        bg = BG_NAMES[rng.integers(len(BG_NAMES))]
        if _allowed(colour, bg):
            break
    return {"shape": shape, "colour": colour,
            "size": SIZE_NAMES[rng.integers(len(SIZE_NAMES))],
            "position": POSITION_NAMES[rng.integers(len(POSITION_NAMES))],
            "background": bg, "texture": TEXTURES[rng.integers(len(TEXTURES))]}


def render(attrs, rng):
    """(64, 64, 3) uint8 image for the attributes (jitter drawn from rng)."""
    cx, cy = POSITIONS[attrs["position"]]
    cx += rng.uniform(-JITTER, JITTER)
    cy += rng.uniform(-JITTER, JITTER)
    r = rng.uniform(*SIZES[attrs["size"]])
    mask = render_mask(attrs["shape"], cx, cy, r)[..., None]
    colour = np.array(COLOURS[attrs["colour"]], np.float32) + rng.uniform(-10, 10, 3)
    bg = render_background(attrs["background"], attrs["texture"], rng)
    img = mask * colour[None, None, :] + (1.0 - mask) * bg
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# Probability that a caption states each optional attribute.
P_SIZE, P_COLOUR, P_POSITION, P_BACKGROUND = 0.5, 0.8, 0.6, 0.3


# Probability that a caption is a fragment naming one attribute alone ("yellow", "large",
# "on the left", "star"), the way negative prompts are written: without these the model
# never learns what "yellow" alone means, and a negative prompt "yellow" steers nowhere.
P_FRAGMENT = 0.12


def make_fragment(attrs, rng):
    u = rng.random()
    if u < 0.4:
        return attrs["colour"]
    if u < 0.6:
        return attrs["shape"]
    if u < 0.8:
        return attrs["size"]
    opts = POSITION_PHRASES[attrs["position"]]
    return opts[rng.integers(len(opts))]


def make_caption(attrs, rng):
    if rng.random() < P_FRAGMENT:
        return make_fragment(attrs, rng)
    words = ["a"]
    if rng.random() < P_SIZE:
        words.append(attrs["size"])
    if rng.random() < P_COLOUR:
        words.append(attrs["colour"])
    words.append(attrs["shape"])
    if rng.random() < P_POSITION:
        opts = POSITION_PHRASES[attrs["position"]]
        words.append(opts[rng.integers(len(opts))])
    if rng.random() < P_BACKGROUND:
        words.append("on a %s background" % attrs["background"])
    return " ".join(words)


def caption_vocabulary():
    """Every word the grammar can produce, with a weight (how often it occurs)."""
    counts = {}

    def add(text, w):
        for word in text.split():
            counts[word] = counts.get(word, 0) + w
    add("a", 2)
    for names, w in ((SHAPE_NAMES, 1), (COLOUR_NAMES, 1), (SIZE_NAMES, 1), (BG_NAMES, 1)):
        for name in names:
            add(name, w)
    for opts in POSITION_PHRASES.values():
        for o in opts:
            add(o, 1)
    add("on a background", 1)
    add("shape", 1)
    return counts


def generate(count, seed):
    """Returns (images (N, 64, 64, 3) uint8, attribute index array (N, 5) int16).

    Columns of the index array: shape, colour, size, position, background (indices into
    SHAPE_NAMES, COLOUR_NAMES, SIZE_NAMES, POSITION_NAMES, BG_NAMES)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    images = np.empty((count, SIZE, SIZE, 3), np.uint8)
    labels = np.empty((count, 5), np.int16)
    for i in range(count):
        a = sample_attributes(rng)
        images[i] = render(a, rng)
        labels[i] = (SHAPE_NAMES.index(a["shape"]), COLOUR_NAMES.index(a["colour"]),
                     SIZE_NAMES.index(a["size"]), POSITION_NAMES.index(a["position"]),
                     BG_NAMES.index(a["background"]))
    return images, labels


def attrs_of(row):
    return {"shape": SHAPE_NAMES[row[0]], "colour": COLOUR_NAMES[row[1]],
            "size": SIZE_NAMES[row[2]], "position": POSITION_NAMES[row[3]],
            "background": BG_NAMES[row[4]]}


def save_grid(images, path, cols=8):
    n = len(images)
    rows = (n + cols - 1) // cols
    grid = np.zeros((rows * (SIZE + 2), cols * (SIZE + 2), 3), np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * (SIZE + 2):r * (SIZE + 2) + SIZE, c * (SIZE + 2):c * (SIZE + 2) + SIZE] = im
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=50000)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", help="write images + labels to this .npz")
    ap.add_argument("--grid", help="write the first 64 images as a PNG grid")
    args = ap.parse_args()
    images, labels = generate(args.count, args.seed)
    if args.out:
        np.savez(args.out, images=images, labels=labels)
    if args.grid:
        save_grid(images[:64], args.grid)
    rng = np.random.Generator(np.random.PCG64(args.seed + 1))
    for row in labels[:8]:
        print(make_caption(attrs_of(row), rng))


if __name__ == "__main__":
    main()
