"""Writes the classifier's validation set: the data-set generator's own images and labels.

The C classifier (tests/eval/classify.c) is proven on images drawn exactly as the training
data is drawn, but from a seed the trainer never uses (training uses 1234), so
test_classify measures it on unseen samples. dataset.generate() does not return the
texture, so this script repeats its loop (sample_attributes then render, one rng) and
keeps the texture too; the images are bit-identical to generate(count, seed)'s, which
the script asserts.

Output (the folder test_classify reads):
    images.png  tiles of 64x64, COLS per row, row-major (a short last row is padded black)
    labels.csv  header shape,colour,size,position,background,texture; one row per tile

    /usr/bin/python3 training/make_eval_set.py [--count 2048] [--seed 20261125] [--out DIR]
"""
import argparse
import os

import numpy as np
from PIL import Image

import dataset as ds

COLS = 32
HEADER = ["shape", "colour", "size", "position", "background", "texture"]


def draw(count, seed):
    """(images (N, 64, 64, 3) uint8, list of attribute dicts incl. texture)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    images = np.empty((count, ds.SIZE, ds.SIZE, 3), np.uint8)
    attrs = []
    for i in range(count):  # the same draws in the same order as ds.generate()
        a = ds.sample_attributes(rng)
        images[i] = ds.render(a, rng)
        attrs.append(a)
    return images, attrs


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=2048)  # 2.8 MB PNG
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "eval", "validation"))
    args = ap.parse_args()
    if args.seed == 1234:
        ap.error("seed 1234 is the training seed; validation must use unseen samples")

    images, attrs = draw(args.count, args.seed)
    ref, _ = ds.generate(args.count, args.seed)
    assert np.array_equal(ref, images), "draw() diverged from dataset.generate()"

    rows = (args.count + COLS - 1) // COLS
    grid = np.zeros((rows * ds.SIZE, COLS * ds.SIZE, 3), np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, COLS)
        grid[r * ds.SIZE:(r + 1) * ds.SIZE, c * ds.SIZE:(c + 1) * ds.SIZE] = im
    os.makedirs(args.out, exist_ok=True)
    png = os.path.join(args.out, "images.png")
    Image.fromarray(grid).save(png, optimize=True)
    with open(os.path.join(args.out, "labels.csv"), "w") as f:
        f.write(",".join(HEADER) + "\n")
        for a in attrs:
            f.write(",".join(a[k] for k in HEADER) + "\n")
    print("%d images (%d x %d grid), %s: %d bytes" %
          (args.count, rows, COLS, png, os.path.getsize(png)))


if __name__ == "__main__":
    main()
