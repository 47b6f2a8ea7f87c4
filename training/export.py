"""Writes a trained run as a diffusers StableDiffusionPipeline folder (default models/default).

    /usr/bin/python3 training/export.py --run training/runs/default --out models/default

Layout and files are what save_pretrained(..., safe_serialization=True) writes:
model_index.json, scheduler/scheduler_config.json, tokenizer/{vocab.json, merges.txt,
tokenizer_config.json, special_tokens_map.json}, text_encoder/{config.json,
model.safetensors}, unet/ and vae/ {config.json, diffusion_pytorch_model.safetensors}.
Weights are F32 (the whole model is a few MB) with __metadata__ {"format": "pt"}; the UNet
and text encoder are the EMA weights unless --no-ema; the VAE is vae_ft.pt (decoder
fine-tuned by finetune_decoder.py) when the run has one, else vae.pt. Works on an intermediate checkpoint
of a run still training (the checkpoints are replaced atomically).
"""
import argparse
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import config  # noqa: E402
import models  # noqa: E402
import st  # noqa: E402
import tokenizer_build  # noqa: E402

MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.27.2",
    "feature_extractor": [None, None],
    "image_encoder": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def write_json(obj, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def load_run(run, ema=True):
    """(tokenizer, text encoder, unet, vae, vae config, step) of a run's checkpoints."""
    tok = tokenizer_build.Tokenizer(os.path.join(run, "tokenizer"))
    ck = torch.load(os.path.join(run, "unet.pt"))
    text = models.CLIPTextModel(config.text_encoder_config(tok))
    unet = models.UNet2DConditionModel(config.UNET)
    text.load_state_dict(ck["ema_text_encoder" if ema else "text_encoder"])
    unet.load_state_dict(ck["ema_unet" if ema else "unet"])
    vcfg = dict(config.VAE, scaling_factor=round(float(ck["scaling_factor"]), 5))
    vae = models.AutoencoderKL(vcfg)
    ft = os.path.join(run, "vae_ft.pt")  # finetune_decoder.py's decoder, same encoder
    vae.load_state_dict(torch.load(ft if os.path.exists(ft) else os.path.join(run, "vae.pt"))["model"])
    return tok, text.eval(), unet.eval(), vae.eval(), vcfg, ck["state"]["step"]


def export(run, out, ema=True):
    tok, text, unet, vae, vcfg, step = load_run(run, ema)
    tmp = out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    meta = {"format": "pt"}
    write_json(MODEL_INDEX, os.path.join(tmp, "model_index.json"))
    write_json(config.SCHEDULER, os.path.join(tmp, "scheduler/scheduler_config.json"))
    shutil.copytree(os.path.join(run, "tokenizer"), os.path.join(tmp, "tokenizer"))
    write_json(config.text_encoder_config(tok), os.path.join(tmp, "text_encoder/config.json"))
    st.save(text.state_dict(), os.path.join(tmp, "text_encoder/model.safetensors"), meta)
    write_json(config.UNET, os.path.join(tmp, "unet/config.json"))
    st.save(unet.state_dict(), os.path.join(tmp, "unet/diffusion_pytorch_model.safetensors"), meta)
    write_json(vcfg, os.path.join(tmp, "vae/config.json"))
    st.save(vae.state_dict(), os.path.join(tmp, "vae/diffusion_pytorch_model.safetensors"), meta)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    print("%s: step %d (%s weights), %.1f MB" % (out, step, "EMA" if ema else "raw", size / 1e6))


def main():
    ap = argparse.ArgumentParser(description="Export a training run as a diffusers folder.")
    ap.add_argument("--run", default="training/runs/default")
    ap.add_argument("--out", default="models/default")
    ap.add_argument("--no-ema", action="store_true")
    args = ap.parse_args()
    export(args.run, args.out, not args.no_ema)


if __name__ == "__main__":
    main()
