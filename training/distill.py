"""Guidance distillation: a student UNet that predicts the teacher's CFG output in one pass.

    nice -n 5 nohup /usr/bin/python3 training/distill.py --teacher models/default \\
        --run training/runs/student > training/runs/student/log.txt 2>&1 &

Teacher: the UNet of an exported model folder (models/default). Student: a copy of it with
`time_cond_proj_dim` set, i.e. a new time_embedding.cond_proj (Linear(dim -> 48), no bias)
that adds diffusers' guidance-scale embedding of (w - 1) to the timestep features. That
layer starts at zero, so at step 0 the student *is* the teacher's conditional branch.

Per step: a batch of training latents (dataset.py images at --seed, encoded once with the
teacher's VAE, sampled from its latent distribution and scaled as in train.py), a uniform
timestep, a guidance scale w ~ U[--w-min, --w-max] per row (the server's range) and a
caption drawn fresh from the image's attributes, replaced by "" with probability
--p-uncond (then the target is the unconditional prediction, whatever w). Loss:
MSE(student(x_t, t, c, emb(w - 1)), eps_u + w (eps_c - eps_u)) with the teacher's eps_c,
eps_u at the same x_t (Meng et al. 2023, stage 1, in epsilon space). The text encoder is
the teacher's, frozen, and shipped unchanged. EMA of the student is kept and exported.

Checkpoints (student.pt in the run folder) every --ckpt-minutes; the same command resumes
it (--init FOLDER starts a new run from an exported student instead of the teacher); the budget is wall-clock (--minutes). Loss log: loss.csv (step, minutes, running
loss). Export: --export models/student writes the teacher's folder with the student UNet.
"""
import argparse
import copy
import math
import os
import shutil
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import config  # noqa: E402
import dataset  # noqa: E402
import export as export_mod  # noqa: E402
import make_golden  # noqa: E402
import models  # noqa: E402
import st  # noqa: E402
from train import CsvLog, ema_update, log, restore, save_atomic, to_tensor  # noqa: E402


def student_config(teacher_cfg, dim):
    return dict(teacher_cfg, time_cond_proj_dim=dim)


def make_student(teacher, dim):
    student = models.UNet2DConditionModel(student_config(teacher.config, dim))
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    assert missing == ["time_embedding.cond_proj.weight"] and not unexpected, (missing, unexpected)
    with torch.no_grad():
        student.time_embedding.cond_proj.weight.zero_()
    return student


def init_student(student, folder):
    """Start from an exported student (its EMA UNet) instead of the teacher: a longer run
    continues the shipped model when the run folder with its optimiser state is gone."""
    w = st.load(os.path.join(folder, "unet/diffusion_pytorch_model.safetensors"))
    student.load_state_dict({k: v.float() for k, v in w.items()})
    log("initialised from %s" % folder)


@torch.no_grad()
def load_latents(run, vae, vcfg, count, seed):
    """(mean, logvar, labels) of --count data set images encoded by the teacher's VAE."""
    path = os.path.join(run, "latents.pt")
    if os.path.exists(path):
        d = torch.load(path)
        if d["count"] == count and d["seed"] == seed:
            return d
    log("generating and encoding %d images (seed %d)" % (count, seed))
    images, labels = dataset.generate(count, seed)
    means, logvars = [], []
    for i in range(0, count, 64):
        m, lv = vae.encode(to_tensor(images[i:i + 64]))
        means.append(m)
        logvars.append(lv)
    d = {"mean": torch.cat(means), "logvar": torch.cat(logvars), "labels": labels,
         "count": count, "seed": seed, "scaling_factor": vcfg["scaling_factor"]}
    save_atomic(d, path)
    return d


def lr_at(args, step, elapsed):
    """Warm-up, then constant, cosine-annealed to 5 % over the last --decay-minutes."""
    warm = min(1.0, (step + 1) / args.warmup)
    left, span = args.minutes * 60 - elapsed, args.decay_minutes * 60
    if span <= 0 or left >= span:
        return args.lr * warm
    p = min(1.0, 1.0 - left / span)
    return args.lr * warm * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * p)))


def train(args):
    tok, text, teacher, vae, vcfg, _ = make_golden.load_model(args.teacher)
    for p in list(text.parameters()) + list(teacher.parameters()):
        p.requires_grad_(False)
    lat = load_latents(args.run, vae, vcfg, args.count, args.seed)
    del vae
    torch.manual_seed(args.seed + 7)
    student = make_student(teacher, args.cond_dim)
    if args.init:
        init_student(student, args.init)
    ema = copy.deepcopy(student)
    opt = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.0)
    path = os.path.join(args.run, "student.pt")
    state = restore(path, {"unet": student, "ema_unet": ema}, opt)
    if state is None:
        state = {"step": 0, "elapsed": 0.0}
    else:
        log("resumed at step %d (%.1f min)" % (state["step"], state["elapsed"] / 60))
    if state["elapsed"] >= args.minutes * 60 or state["step"] >= args.steps:
        log("budget already spent (step %d); raise --minutes to continue" % state["step"])
        return
    out = CsvLog(os.path.join(args.run, "loss.csv"), ["step", "minutes", "loss", "lr"])
    ac = config.alphas_cumprod()
    mean, logvar, labels = lat["mean"], lat["logvar"], lat["labels"]
    scale = lat["scaling_factor"]
    rng = np.random.Generator(np.random.PCG64(args.seed + 300 + state["step"]))
    t0, last_ck = time.time() - state["elapsed"], time.time()
    run_loss = None
    while True:
        b = args.batch
        idx = rng.integers(0, len(labels), b)
        caps = [dataset.make_caption(dataset.attrs_of(labels[i]), rng)
                if rng.random() >= args.p_uncond else "" for i in idx]
        m, lv = mean[idx].float(), logvar[idx].float()
        x0 = (m + torch.exp(0.5 * lv) * torch.randn_like(m)) * scale
        t = torch.randint(0, 1000, (b,))
        a = ac[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1.0 - a).sqrt() * torch.randn_like(x0)
        w = torch.from_numpy(rng.uniform(args.w_min, args.w_max, b).astype(np.float32))
        with torch.no_grad():
            ctx = text(torch.tensor([tok.encode(c) for c in caps]))[0]
            null = text(torch.tensor([tok.encode("")]))[0].expand(b, -1, -1)
            eps = teacher(torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([null, ctx]))
            eu, ec = eps.chunk(2)
            target = eu + w.view(-1, 1, 1, 1) * (ec - eu)
        pred = student(xt, t, ctx, models.guidance_scale_embedding(w - 1.0, args.cond_dim))
        loss = ((pred - target) ** 2).mean()
        lr = lr_at(args, state["step"], state["elapsed"])
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        state["step"] += 1
        ema_update(ema, student, min(args.ema, (1.0 + state["step"]) / (10.0 + state["step"])))
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        state["elapsed"] = time.time() - t0
        if state["step"] % 10 == 0:
            out.row(state["step"], "%.2f" % (state["elapsed"] / 60), "%.5f" % run_loss, "%.2e" % lr)
        if state["step"] % 50 == 0:
            log("step %d  %.1f min  loss %.4f  (%.2f s/step)" % (
                state["step"], state["elapsed"] / 60, run_loss, state["elapsed"] / state["step"]))
        done = state["elapsed"] >= args.minutes * 60 or state["step"] >= args.steps
        if done or time.time() - last_ck > args.ckpt_minutes * 60:
            save_atomic({"unet": student.state_dict(), "ema_unet": ema.state_dict(),
                         "opt": opt.state_dict(), "state": state, "rng": torch.get_rng_state(),
                         "config": student.config}, path)
            last_ck = time.time()
        if done:
            log("done at step %d (%.1f min), loss %.4f" % (state["step"], state["elapsed"] / 60,
                                                           run_loss))
            return


def export(args):
    """The teacher's folder with the student's UNet (config with time_cond_proj_dim)."""
    ck = torch.load(os.path.join(args.run, "student.pt"))
    out = args.export.rstrip("/")
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(args.teacher, tmp)
    shutil.rmtree(os.path.join(tmp, "unet"))
    export_mod.write_json(ck["config"], os.path.join(tmp, "unet/config.json"))
    st.save(ck["unet" if args.no_ema else "ema_unet"],
            os.path.join(tmp, "unet/diffusion_pytorch_model.safetensors"), {"format": "pt"})
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    print("%s: student step %d (%s weights), %.1f MB" % (
        out, ck["state"]["step"], "raw" if args.no_ema else "EMA", size / 1e6))


def main():
    ap = argparse.ArgumentParser(description="Distil a guidance-embedded student UNet.")
    ap.add_argument("--teacher", default="models/default")
    ap.add_argument("--run", default="training/runs/student")
    ap.add_argument("--export", help="write the student model folder here and exit")
    ap.add_argument("--no-ema", action="store_true", help="export the raw weights")
    ap.add_argument("--init", help="start from this exported student folder (not the teacher)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--count", type=int, default=8000, help="data set images to encode")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cond-dim", type=int, default=64, help="time_cond_proj_dim")
    ap.add_argument("--w-min", type=float, default=1.0)
    ap.add_argument("--w-max", type=float, default=12.0)
    ap.add_argument("--p-uncond", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--minutes", type=float, default=45.0, help="wall-clock budget")
    ap.add_argument("--decay-minutes", type=float, default=12.0)
    ap.add_argument("--steps", type=int, default=1000000)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--ckpt-minutes", type=float, default=3.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.export:
        export(args)
        return
    os.makedirs(args.run, exist_ok=True)
    train(args)


if __name__ == "__main__":
    main()
