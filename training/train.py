"""Trains the default model: data set, then the autoencoder, then text encoder + UNet.

    /usr/bin/python3 training/train.py --run training/runs/default   # ~2 h on one core

Stages (each resumes from its checkpoint in the run folder; a finished stage is skipped):
1. data:    training/dataset.py images + attribute labels (deterministic from --seed).
2. vae:     AutoencoderKL on aligned 32x32 crops: MSE + 0.5 L1 reconstruction of a sampled
            latent, plus a small KL term.  -> vae.pt, loss_vae.csv
3. latents: encode every image once (mean, logvar) and measure the latents' std, whose
            inverse becomes the VAE's scaling_factor (as for SD).  -> latents.pt
4. unet:    CLIPTextModel and UNet2DConditionModel trained together on noise-prediction MSE
            at a uniform random timestep of SD's scaled-linear schedule (min-SNR-5
            weighting, floored at high noise by --layout-weight, see loss_weights); each
            caption is drawn fresh from the image's attributes (dataset.make_caption) and
            replaced by "" with probability p_uncond = 0.1 (classifier-free guidance
            training). Constant rate after warm-up, cosine-annealed over the last
            --lr-decay-minutes. EMA weights are kept and exported.  -> unet.pt, loss_unet.csv

Checkpoints are written atomically every --ckpt-minutes. Stage lengths are wall-clock
budgets (the machine is shared), stored in the checkpoint so a resumed run continues the
same budget. One thread: on a contended machine OpenMP with 2 threads was ~8x slower.
"""
import argparse
import copy
import csv
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import config  # noqa: E402
import dataset  # noqa: E402
import models  # noqa: E402
import tokenizer_build  # noqa: E402


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def save_atomic(obj, path):
    torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)


def restore(path, modules, opt):
    """Loads a checkpoint written by the trainers (state_dicts under modules' keys, "opt",
    "state", "rng") into modules and opt; returns its state dict, or None without one."""
    if not os.path.exists(path):
        return None
    ck = torch.load(path)
    for key, m in modules.items():
        m.load_state_dict(ck[key])
    opt.load_state_dict(ck["opt"])
    torch.set_rng_state(ck["rng"])
    return ck["state"]


def load_data(run, count, seed):
    path = os.path.join(run, "data.npz")
    if not os.path.exists(path):
        log("generating %d images (seed %d)" % (count, seed))
        images, labels = dataset.generate(count, seed)
        np.savez(path + ".tmp.npz", images=images, labels=labels)
        os.replace(path + ".tmp.npz", path)
    d = np.load(path)
    return d["images"], d["labels"]


def to_tensor(images):
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class CsvLog:
    def __init__(self, path, fields):
        new = not os.path.exists(path)
        self.f = open(path, "a", newline="")
        self.w = csv.writer(self.f)
        if new:
            self.w.writerow(fields)

    def row(self, *vals):
        self.w.writerow(vals)
        self.f.flush()


# ------------------------------------------------------------------ stage 2: VAE

def train_vae(args, images):
    path = os.path.join(args.run, "vae.pt")
    torch.manual_seed(args.seed)
    vae = models.AutoencoderKL(config.VAE)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    state = restore(path, {"model": vae}, opt)
    if state is None:
        state = {"step": 0, "elapsed": 0.0, "done": False}
    else:
        log("vae: resumed at step %d (%.1f min)" % (state["step"], state["elapsed"] / 60))
    # A budget raised on the command line continues a finished stage.
    state["done"] = state["elapsed"] >= args.vae_minutes * 60 or state["step"] >= args.vae_steps
    if state["done"]:
        vae.vae_step = state["step"]
        return vae
    out = CsvLog(os.path.join(args.run, "loss_vae.csv"), ["step", "minutes", "rec", "kl"])
    rng = np.random.Generator(np.random.PCG64(args.seed + 100 + state["step"]))
    t0, last_ck = time.time() - state["elapsed"], time.time()
    budget = args.vae_minutes * 60
    run_rec = run_kl = None
    while True:
        idx = rng.integers(0, len(images), args.vae_batch)
        oy, ox = rng.integers(0, 5, 2) * 8  # crops aligned to the 8-pixel latent grid
        x = to_tensor(images[idx, oy:oy + 32, ox:ox + 32])
        mean, logvar = vae.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        y = vae.decode(z)
        rec = F.mse_loss(y, x) + 0.5 * F.l1_loss(y, x)
        kl = 0.5 * torch.mean(mean ** 2 + torch.exp(logvar) - 1.0 - logvar)
        loss = rec + args.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["step"] += 1
        run_rec = rec.item() if run_rec is None else 0.98 * run_rec + 0.02 * rec.item()
        run_kl = kl.item() if run_kl is None else 0.98 * run_kl + 0.02 * kl.item()
        state["elapsed"] = time.time() - t0
        if state["step"] % 25 == 0:
            out.row(state["step"], "%.2f" % (state["elapsed"] / 60), "%.5f" % run_rec,
                    "%.3f" % run_kl)
        if state["step"] % 100 == 0:
            log("vae step %d  %.1f min  rec %.4f  kl %.2f" % (state["step"], state["elapsed"] / 60,
                                                             run_rec, run_kl))
        state["done"] = state["elapsed"] >= budget or state["step"] >= args.vae_steps
        if state["done"] or time.time() - last_ck > args.ckpt_minutes * 60:
            save_atomic({"model": vae.state_dict(), "opt": opt.state_dict(), "state": state,
                         "rng": torch.get_rng_state()}, path)
            last_ck = time.time()
        if state["done"]:
            log("vae: done at step %d" % state["step"])
            vae.vae_step = state["step"]
            return vae


# ------------------------------------------------------------------ stage 3: latents

@torch.no_grad()
def encode_latents(args, vae, images):
    path = os.path.join(args.run, "latents.pt")
    if os.path.exists(path):
        d = torch.load(path)
        if d.get("vae_step") == vae.vae_step:
            return d
    log("encoding %d images" % len(images))
    vae.eval()
    means, logvars = [], []
    for i in range(0, len(images), 32):
        m, lv = vae.encode(to_tensor(images[i:i + 32]))
        means.append(m)
        logvars.append(lv)
    mean, logvar = torch.cat(means), torch.cat(logvars)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    scale = float(1.0 / z.std())
    log("latents: std %.4f -> scaling_factor %.5f" % (z.std(), scale))
    d = {"mean": mean.half(), "logvar": logvar.half(), "scaling_factor": scale,
         "vae_step": vae.vae_step}
    save_atomic(d, path)
    return d


# ------------------------------------------------------------------ stage 4: UNet + text

def ema_update(ema, model, decay):
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.mul_(decay).add_(p.detach(), alpha=1.0 - decay)


def loss_weights(snr, layout_weight):
    """Per-timestep weights of the epsilon MSE. Min-SNR-5 tames the low-noise end. At the
    high-noise end an epsilon loss weighs an error in the predicted image by SNR, nearly
    zero there, so nothing teaches the model to lay out the image (where the shape goes)
    from the text: it reads the layout off the faint image left in the noise, and position
    words end up ignored (measured: equal loss for right and wrong position captions).
    layout_weight F floors the image-space weight at F (weight F / SNR, at most 20)."""
    w = torch.clamp(snr, max=5.0) / snr
    if layout_weight > 0:
        w = torch.maximum(w, torch.clamp(layout_weight / snr, max=20.0))
    return w


def lr_decay(args, state, budget):
    """Cosine decay to 5 % over the last --lr-decay-minutes of the budget: a constant rate
    leaves the weights jittering around the minimum; the tail anneals them."""
    span = args.lr_decay_minutes * 60
    left = budget - state["elapsed"]
    if span <= 0 or left >= span:
        return 1.0
    progress = min(1.0, 1.0 - left / span)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_unet(args, labels, lat, tok):
    path = os.path.join(args.run, "unet.pt")
    torch.manual_seed(args.seed + 1)
    unet = models.UNet2DConditionModel(config.UNET)
    text = models.CLIPTextModel(config.text_encoder_config(tok))
    with torch.no_grad():  # CLIP-like init of the embeddings (default N(0, 1) is too large)
        text.text_model.embeddings.token_embedding.weight.normal_(0.0, 0.02)
        text.text_model.embeddings.position_embedding.weight.normal_(0.0, 0.01)
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=args.unet_lr, weight_decay=0.01)
    ema_unet, ema_text = copy.deepcopy(unet), copy.deepcopy(text)
    state = restore(path, {"unet": unet, "text_encoder": text, "ema_unet": ema_unet,
                           "ema_text_encoder": ema_text}, opt)
    if state is None:
        state = {"step": 0, "elapsed": 0.0, "done": False}
    else:
        log("unet: resumed at step %d (%.1f min)" % (state["step"], state["elapsed"] / 60))
    state["done"] = state["elapsed"] >= args.unet_minutes * 60 or state["step"] >= args.unet_steps
    if state["done"]:
        return
    out = CsvLog(os.path.join(args.run, "loss_unet.csv"), ["step", "minutes", "loss", "lr"])
    ac = config.alphas_cumprod()
    snr = ac / (1.0 - ac)
    weight = loss_weights(snr, args.layout_weight)
    mean, logvar, scale = lat["mean"], lat["logvar"], lat["scaling_factor"]
    rng = np.random.Generator(np.random.PCG64(args.seed + 200 + state["step"]))
    t0, last_ck = time.time() - state["elapsed"], time.time()
    budget = args.unet_minutes * 60
    run_loss = None
    while True:
        idx = rng.integers(0, len(labels), args.batch)
        caps = [dataset.make_caption(dataset.attrs_of(labels[i]), rng)
                if rng.random() >= args.p_uncond else "" for i in idx]
        ids = torch.tensor([tok.encode(c) for c in caps])
        m, lv = mean[idx].float(), logvar[idx].float()
        x0 = (m + torch.exp(0.5 * lv) * torch.randn_like(m)) * scale
        t = torch.randint(0, 1000, (args.batch,))
        noise = torch.randn_like(x0)
        a = ac[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1.0 - a).sqrt() * noise
        ctx = text(ids)[0]
        pred = unet(xt, t, ctx)
        per = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
        loss = (per * weight[t]).mean()
        lr = args.unet_lr * min(1.0, (state["step"] + 1) / args.warmup) * lr_decay(args, state, budget)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        state["step"] += 1
        decay = min(args.ema, (1.0 + state["step"]) / (10.0 + state["step"]))
        ema_update(ema_unet, unet, decay)
        ema_update(ema_text, text, decay)
        mse = per.mean().item()
        run_loss = mse if run_loss is None else 0.98 * run_loss + 0.02 * mse
        state["elapsed"] = time.time() - t0
        if state["step"] % 10 == 0:
            out.row(state["step"], "%.2f" % (state["elapsed"] / 60), "%.5f" % run_loss, "%.2e" % lr)
        if state["step"] % 50 == 0:
            log("unet step %d  %.1f min  mse %.4f  (%.2f s/step)" % (
                state["step"], state["elapsed"] / 60, run_loss,
                state["elapsed"] / state["step"]))
        state["done"] = state["elapsed"] >= budget or state["step"] >= args.unet_steps
        if state["done"] or time.time() - last_ck > args.ckpt_minutes * 60:
            save_atomic({"unet": unet.state_dict(), "text_encoder": text.state_dict(),
                         "ema_unet": ema_unet.state_dict(), "ema_text_encoder": ema_text.state_dict(),
                         "opt": opt.state_dict(), "state": state, "rng": torch.get_rng_state(),
                         "scaling_factor": scale}, path)
            last_ck = time.time()
        if state["done"]:
            log("unet: done at step %d" % state["step"])
            return


def main():
    ap = argparse.ArgumentParser(description="Train the default cfgserve model.")
    ap.add_argument("--run", default="training/runs/default")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--count", type=int, default=20000, help="data set size")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ckpt-minutes", type=float, default=3.0)
    ap.add_argument("--vae-minutes", type=float, default=20.0)
    ap.add_argument("--vae-steps", type=int, default=100000)
    ap.add_argument("--vae-batch", type=int, default=32)
    ap.add_argument("--vae-lr", type=float, default=1e-3)
    ap.add_argument("--kl-weight", type=float, default=1e-4)
    ap.add_argument("--unet-minutes", type=float, default=100.0)
    ap.add_argument("--unet-steps", type=int, default=1000000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--unet-lr", type=float, default=6e-4)
    ap.add_argument("--layout-weight", type=float, default=0.2,
                    help="floor of the image-space loss weight at high noise (0 = min-SNR only)")
    ap.add_argument("--lr-decay-minutes", type=float, default=25.0,
                    help="cosine-anneal the UNet rate over the last N minutes of its budget")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--p-uncond", type=float, default=0.1)
    ap.add_argument("--stage", choices=["all", "vae"], default="all")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.run, exist_ok=True)
    tok_dir = os.path.join(args.run, "tokenizer")
    tokenizer_build.write(tok_dir)
    tok = tokenizer_build.Tokenizer(tok_dir)
    images, labels = load_data(args.run, args.count, args.seed)
    vae = train_vae(args, images)
    if args.stage == "vae":
        return
    lat = encode_latents(args, vae, images)
    del images
    train_unet(args, labels, lat, tok)
    log("training finished; export with: /usr/bin/python3 training/export.py --run %s" % args.run)


if __name__ == "__main__":
    main()
