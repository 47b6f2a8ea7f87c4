"""Preview grid of a run (or an exported model): one row per prompt, one column per seed.

    /usr/bin/python3 training/preview.py --run training/runs/default --out /tmp/preview.png
    /usr/bin/python3 training/preview.py --model models/default --guidance 5 --steps 25

Samples with the same DDIM + CFG loop as make_golden.py (diffusers' pipeline order).
"""
import argparse
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import config  # noqa: E402
import export  # noqa: E402
import make_golden  # noqa: E402

PROMPTS = ["a red circle", "a blue square", "a yellow triangle", "a green star",
           "a large orange circle on the left", "a small purple square on the right",
           "a white triangle at the top", "a black star at the bottom on a white background",
           "a large blue star in the center", "a triangle"]


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run")
    ap.add_argument("--model")
    ap.add_argument("--out", default="/tmp/preview.png")
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--prompt", action="append")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.model:
        tok, text, unet, vae, vcfg, scfg = make_golden.load_model(args.model)
    else:
        tok, text, unet, vae, vcfg, _ = export.load_run(args.run or "training/runs/default")
        scfg = config.SCHEDULER
    prompts = args.prompt or PROMPTS
    rows = []
    for p in prompts:
        gen = torch.Generator().manual_seed(0)
        lat = torch.randn(args.seeds, 4, config.LATENT_SIZE, config.LATENT_SIZE, generator=gen)
        o = make_golden.pipeline(tok, text, unet, vae, vcfg, scfg, [p] * args.seeds,
                                 [""] * args.seeds, args.guidance, args.steps, lat)
        imgs = (o["image"].numpy() * 255).round().astype(np.uint8)
        rows.append(np.concatenate([np.pad(im, ((1, 1), (1, 1), (0, 0))) for im in imgs], axis=1))
        print(p)
    grid = np.concatenate(rows, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
