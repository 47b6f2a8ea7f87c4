"""Does the model use each caption attribute? Loss of the UNet checkpoint on training
latents when the caption names an attribute right versus wrong, per noise band.

A model that ignores, say, position words scores the same loss for "on the left" and
"on the right"; one that uses them scores lower with the right caption. Cheap (a few
hundred forward passes) and runs on a live checkpoint while training goes on:

    /usr/bin/python3 training/probe_conditioning.py --run training/runs/default
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import config  # noqa: E402
import dataset  # noqa: E402
import export  # noqa: E402

ATTRS = {"colour": dataset.COLOUR_NAMES, "shape": dataset.SHAPE_NAMES,
         "size": dataset.SIZE_NAMES, "position": dataset.POSITION_NAMES}


def caption(a):
    return "a %s %s %s on the %s" % (a["size"], a["colour"], a["shape"], a["position"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="training/runs/default")
    ap.add_argument("--count", type=int, default=256)
    ap.add_argument("--no-ema", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tok, text, unet, _, _, step = export.load_run(args.run, ema=not args.no_ema)
    lat = torch.load(os.path.join(args.run, "latents.pt"))
    labels = np.load(os.path.join(args.run, "data.npz"))["labels"]
    idx = torch.arange(args.count)
    x0 = lat["mean"][idx].float() * lat["scaling_factor"]
    ac = config.alphas_cumprod()
    gen = torch.Generator().manual_seed(0)
    print("step %d: mean noise MSE with the right caption vs one attribute wrong" % step)
    print("%-9s %9s" % ("t", "right") + "".join("%16s" % ("wrong " + a) for a in ATTRS))
    with torch.no_grad():
        for lo, hi in ((800, 1000), (600, 800), (400, 600), (200, 400)):
            t = torch.randint(lo, hi, (len(idx),), generator=gen)
            noise = torch.randn(x0.shape, generator=gen)
            a = ac[t].view(-1, 1, 1, 1)
            xt = a.sqrt() * x0 + (1 - a).sqrt() * noise

            def loss(caps):
                ids = torch.tensor([tok.encode(c) for c in caps])
                return ((unet(xt, t, text(ids)[0]) - noise) ** 2).mean().item()
            attrs = [dataset.attrs_of(labels[i]) for i in idx.tolist()]
            row = [loss([caption(x) for x in attrs])]
            for name, values in ATTRS.items():
                wrong = []
                for x in attrs:
                    y = dict(x)
                    y[name] = values[(values.index(x[name]) + 1) % len(values)]
                    wrong.append(caption(y))
                row.append(loss(wrong))
            print("%-9s %9.5f" % ("%d-%d" % (lo, hi), row[0]) +
                  "".join("%16.5f" % v for v in row[1:]))


if __name__ == "__main__":
    main()
