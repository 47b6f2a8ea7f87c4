"""Optional stage: fine-tunes the VAE decoder on whole 64x64 images, encoder frozen.

    /usr/bin/python3 training/finetune_decoder.py --run training/runs/default --minutes 25

The VAE stage of train.py learns on 32x32 crops to be cheap; this pass trains the decoder
(post_quant_conv + decoder) on full images with the frozen encoder's sampled latents, and
weights the pixels of the shape 5x more than the background (the shape is what the
evaluation judges and what small shapes lose). The latent space is unchanged, so it can
run while the UNet trains on latents.pt. Writes vae_ft.pt (a complete VAE state_dict), which
export.py prefers to vae.pt. Resumable like train.py.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import config  # noqa: E402
import models  # noqa: E402
from train import CsvLog, log, save_atomic, to_tensor  # noqa: E402


def foreground_weight(x):
    """1 on the background, 6 on the shape; background = median of the border pixels."""
    border = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, :, 0], x[:, :, :, -1]], dim=2)
    bg = border.median(dim=2).values[:, :, None, None]
    fg = ((x - bg).abs().sum(dim=1, keepdim=True) > 0.25).float()
    return 1.0 + 5.0 * fg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="training/runs/default")
    ap.add_argument("--minutes", type=float, default=25.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--ckpt-minutes", type=float, default=3.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    images = np.load(os.path.join(args.run, "data.npz"))["images"]
    vae = models.AutoencoderKL(config.VAE)
    vae.load_state_dict(torch.load(os.path.join(args.run, "vae.pt"))["model"])
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    path = os.path.join(args.run, "vae_ft.pt")
    state = {"step": 0, "elapsed": 0.0}
    if os.path.exists(path):
        ck = torch.load(path)
        vae.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state = ck["state"]
        log("decoder: resumed at step %d" % state["step"])
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    out = CsvLog(os.path.join(args.run, "loss_decoder.csv"), ["step", "minutes", "rec"])
    rng = np.random.Generator(np.random.PCG64(args.seed + state["step"]))
    gen = torch.Generator().manual_seed(args.seed + state["step"])
    t0, last_ck = time.time() - state["elapsed"], time.time()
    run = None
    while state["elapsed"] < args.minutes * 60:
        x = to_tensor(images[rng.integers(0, len(images), args.batch)])
        with torch.no_grad():
            mean, logvar = vae.encode(x)
            z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=gen)
        y = vae.decode(z)
        w = foreground_weight(x)
        d = y - x
        loss = ((d ** 2 + 0.5 * d.abs()) * w).mean() / w.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["step"] += 1
        state["elapsed"] = time.time() - t0
        run = loss.item() if run is None else 0.98 * run + 0.02 * loss.item()
        if state["step"] % 10 == 0:
            out.row(state["step"], "%.2f" % (state["elapsed"] / 60), "%.5f" % run)
        if state["step"] % 50 == 0:
            log("decoder step %d  %.1f min  rec %.4f" % (state["step"], state["elapsed"] / 60, run))
        done = state["elapsed"] >= args.minutes * 60
        if done or time.time() - last_ck > args.ckpt_minutes * 60:
            save_atomic({"model": vae.state_dict(), "opt": opt.state_dict(), "state": state}, path)
            last_ck = time.time()
    log("decoder: done at step %d" % state["step"])


if __name__ == "__main__":
    main()
