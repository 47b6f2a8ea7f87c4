"""Reference cases for a shipped model, in the case format of ../shared/golden.

    /usr/bin/python3 training/make_golden.py --model models/default --out tests/golden_default
    /usr/bin/python3 training/make_golden.py --model models/student --out tests/golden_student

Each case folder has case.json (kind, component folders relative to the case, call,
tensor names/shapes) + inputs.safetensors + outputs.safetensors; `cfgserve-golden <case>`
replays it. Outputs are computed in float32 by training/models.py, which reproduces
diffusers 0.27 / transformers 4.37 (training/check_reference.py checks that against the
shared golden data), and the pipeline case replays StableDiffusionPipeline.__call__ with
the model's DDIMScheduler (eta 0) step by step. Cases:

* text_encoder:  5 prompts padded to model_max_length + one unpadded prompt
* unet:          a CFG-style batch (noisy latent twice, prompt and "" embeddings)
* vae:           decode of two latents, encode of two data set images
* pipeline_cfg:  one prompt, guidance 7.5, 10 steps, given initial latents
* pipeline_two_prompts: two prompts with their own negative prompts, guidance 4, 6 steps

A guidance-embedded model (unet time_cond_proj_dim, training/distill.py's student) gets
what diffusers does with one: no unconditional batch, timestep_cond =
get_guidance_scale_embedding(guidance_scale - 1) per image at every UNet call (recorded as
the output timestep_cond), and its own cases instead of the CFG ones (see main).
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import config  # noqa: E402
import dataset  # noqa: E402
import models  # noqa: E402
import st  # noqa: E402
import tokenizer_build  # noqa: E402

VERSIONS = {"reference": "training/models.py (mirrors diffusers 0.27.2 / transformers 4.37.0)",
            "torch": torch.__version__}


def load_model(folder):
    def comp(cls, sub, weights):
        with open(os.path.join(folder, sub, "config.json")) as f:
            cfg = json.load(f)
        m = cls(cfg)
        m.load_state_dict({k: v.float() for k, v in
                           st.load(os.path.join(folder, sub, weights)).items()})
        return m.eval(), cfg
    tok = tokenizer_build.Tokenizer(os.path.join(folder, "tokenizer"))
    text, _ = comp(models.CLIPTextModel, "text_encoder", "model.safetensors")
    unet, _ = comp(models.UNet2DConditionModel, "unet", "diffusion_pytorch_model.safetensors")
    vae, vcfg = comp(models.AutoencoderKL, "vae", "diffusion_pytorch_model.safetensors")
    with open(os.path.join(folder, "scheduler/scheduler_config.json")) as f:
        scfg = json.load(f)
    return tok, text, unet, vae, vcfg, scfg


def spec(tensors):
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
            for k, v in tensors.items()}


def write_case(out, name, case, inputs, outputs):
    d = os.path.join(out, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    case = dict(case, versions=VERSIONS, inputs=spec(inputs), outputs=spec(outputs))
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    st.save(inputs, os.path.join(d, "inputs.safetensors"))
    st.save(outputs, os.path.join(d, "outputs.safetensors"))
    print("%s: %s" % (name, ", ".join("%s %s" % (k, list(v.shape)) for k, v in outputs.items())))


def rel(out, name, target):
    return os.path.relpath(target, os.path.join(out, name))


def case_text_encoder(out, model_dir, tok, text):
    prompts = ["a large red circle on the left", "a blue square", "",
               "a small yellow star at the top on a black background", "a triangle"]
    ids = torch.tensor([tok.encode(p) for p in prompts])
    short = torch.tensor([tok.encode("a green star")[:5]])  # [BOS, a, green, star, EOS]
    last, pooled, hidden = text(ids, output_hidden_states=True)
    outputs = {"last_hidden_state": last, "pooler_output": pooled,
               "hidden_states_m2": hidden[-2],
               "clip_skip_1": text.text_model.final_layer_norm(hidden[-2]),
               "short_last_hidden_state": text(short)[0]}
    for i, h in enumerate(hidden):
        outputs["hidden_states.%d" % i] = h
    case = {"kind": "text_encoder", "class": "transformers.CLIPTextModel",
            "component_dirs": {"text_encoder": rel(out, "text_encoder", model_dir + "/text_encoder")},
            "prompts": prompts,
            "call": "text_encoder(input_ids, output_hidden_states=True); no attention mask"}
    write_case(out, "text_encoder", case, {"input_ids": ids, "short_input_ids": short}, outputs)


def embedded_dim(unet):
    """time_cond_proj_dim of a guidance-embedded UNet, else 0."""
    return unet.config.get("time_cond_proj_dim") or 0


def case_unet(out, model_dir, tok, text, unet, gen):
    ids = torch.tensor([tok.encode(""), tok.encode("a large purple triangle on the right")])
    ctx = text(ids)[0]
    ac = config.alphas_cumprod()
    x0 = torch.randn(1, 4, 8, 8, generator=gen)
    t = torch.tensor([601, 601])
    sample = (ac[601].sqrt() * x0 + (1 - ac[601]).sqrt() * torch.randn(1, 4, 8, 8, generator=gen))
    sample = sample.repeat(2, 1, 1, 1)
    inputs = {"sample": sample, "timestep": t, "encoder_hidden_states": ctx}
    case = {"kind": "unet", "class": "diffusers.UNet2DConditionModel",
            "what": "CFG-style batch: the same noisy latent with the \"\" and a prompt embedding",
            "component_dirs": {"unet": rel(out, "unet", model_dir + "/unet")},
            "call": "unet(sample, timestep, encoder_hidden_states=encoder_hidden_states).sample"}
    dim = embedded_dim(unet)
    if dim:
        inputs["timestep_cond"] = models.guidance_scale_embedding(torch.tensor([0.0, 6.5]), dim)
        case["what"] += "; timestep_cond = get_guidance_scale_embedding([0, 6.5]) (s = 1, 7.5)"
        case["call"] = ("unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, "
                        "timestep_cond=timestep_cond).sample")
    write_case(out, "unet", case, inputs,
               {"sample": unet(sample, t, ctx, inputs.get("timestep_cond"))})


def case_vae(out, model_dir, vae, gen):
    images, _ = dataset.generate(2, seed=77)
    image = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    mean, logvar = vae.encode(image)
    latents = mean + 0.1 * torch.randn(mean.shape, generator=gen)
    case = {"kind": "vae", "class": "diffusers.AutoencoderKL",
            "component_dirs": {"vae": rel(out, "vae", model_dir + "/vae")},
            "call": {"decode": "vae.decode(latents).sample",
                     "encode": "vae.encode(image).latent_dist (mean, logvar)"}}
    write_case(out, "vae", case, {"latents": latents, "image": image},
               {"decoded": vae.decode(latents), "latent_mean": mean, "latent_logvar": logvar})


def ddim_timesteps(scfg, n):
    ratio = scfg["num_train_timesteps"] // n
    return (np.arange(0, n) * ratio).round()[::-1].astype(np.int64) + scfg["steps_offset"]


def pipeline(tok, text, unet, vae, vcfg, scfg, prompts, negs, g, n, latents):
    """StableDiffusionPipeline.__call__ with DDIMScheduler (eta 0), output_type "np".
    For a guidance-embedded UNet g may be a list, one scale per prompt (each prompt's rows
    are then what a diffusers call with that scale computes)."""
    ac = config.alphas_cumprod()
    cond = text(torch.tensor([tok.encode(p) for p in prompts]))[0]
    dim = embedded_dim(unet)
    gs = g if isinstance(g, list) else [g] * len(prompts)
    assert dim or not isinstance(g, list), "one guidance scale per CFG call"
    # diffusers: do_classifier_free_guidance = g > 1 and time_cond_proj_dim is None.
    cfg = gs[0] > 1.0 and not dim
    tcond = (models.guidance_scale_embedding(torch.tensor(gs) - 1.0, dim) if dim else None)
    embeds = cond
    if cfg:
        embeds = torch.cat([text(torch.tensor([tok.encode(p) for p in negs]))[0], cond])
    ts = ddim_timesteps(scfg, n)
    ratio = scfg["num_train_timesteps"] // n
    final = torch.tensor(1.0) if scfg["set_alpha_to_one"] else ac[0]
    x = latents * 1.0  # init_noise_sigma = 1
    rec = {k: [] for k in ("step_latents", "unet_sample", "unet_out")}
    for t in ts:
        xin = torch.cat([x, x]) if cfg else x
        tt = torch.full((xin.shape[0],), int(t), dtype=torch.int64)
        eps = unet(xin, tt, embeds, tcond)
        rec["unet_sample"].append(xin)
        rec["unet_out"].append(eps)
        if cfg:
            eu, ec = eps.chunk(2)
            eps = eu + gs[0] * (ec - eu)
        a_t = ac[t]
        a_prev = ac[t - ratio] if t - ratio >= 0 else final
        x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
        x = a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps
        rec["step_latents"].append(x)
    dec_in = vae.post_quant_conv(x / vcfg["scaling_factor"])
    decoded = vae.decoder(dec_in)
    image = (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
    outputs = {"image": image, "timesteps": torch.from_numpy(ts.copy()),
               "step_latents": torch.stack(rec["step_latents"]),
               "unet_sample": torch.stack(rec["unet_sample"]),
               "unet_timestep": torch.from_numpy(ts.copy()),
               "unet_out": torch.stack(rec["unet_out"]), "prompt_embeds": embeds,
               "vae_decoder_in": dec_in, "vae_decoded": decoded}
    if dim:
        outputs["timestep_cond"] = tcond
    return outputs


def case_pipeline(out, name, model_dir, parts, prompts, negs, g, n, gen, what):
    tok, text, unet, vae, vcfg, scfg = parts
    latents = torch.randn(len(prompts), 4, config.LATENT_SIZE, config.LATENT_SIZE, generator=gen)
    outputs = pipeline(tok, text, unet, vae, vcfg, scfg, prompts, negs, g, n, latents)
    one = len(prompts) == 1
    dim = embedded_dim(unet)
    case = {"kind": "pipeline", "class": "diffusers.StableDiffusionPipeline", "what": what,
            "model_dir": rel(out, name, model_dir),
            "scheduler": {"class": scfg["_class_name"],
                          "note": "the model's own scheduler/scheduler_config.json"},
            "call": {"prompt": prompts[0] if one else prompts,
                     "negative_prompt": (negs[0] if one else negs) if negs else None,
                     "guidance_scale": g,
                     "num_inference_steps": n, "height": config.IMAGE_SIZE,
                     "width": config.IMAGE_SIZE, "output_type": "np",
                     "latents": "inputs.safetensors:latents"},
            "do_classifier_free_guidance": not dim and g > 1.0,
            "vae_scale_factor": 2 ** (len(vcfg["block_out_channels"]) - 1)}
    if dim:
        case["guidance_embedded"] = True
        case["notes"] = [
            "the UNet has time_cond_proj_dim: no unconditional batch; timestep_cond = "
            "get_guidance_scale_embedding(guidance_scale - 1, time_cond_proj_dim), one row per "
            "image, at every UNet call",
            "guidance_scale as a list: one scale per prompt in one batch (cfgserve's per-request "
            "scale); each prompt's rows equal a diffusers call with its own scale"]
        if negs is None:
            del case["call"]["negative_prompt"]
    write_case(out, name, case, {"latents": latents}, outputs)


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description="Write golden cases for the default model.")
    ap.add_argument("--model", default="models/default")
    ap.add_argument("--out", default="tests/golden_default")
    args = ap.parse_args()
    torch.set_num_threads(1)
    parts = load_model(args.model)
    tok, text, unet, vae, _, _ = parts
    os.makedirs(args.out, exist_ok=True)
    model_dir = os.path.abspath(args.model)
    out = os.path.abspath(args.out)
    gen = torch.Generator().manual_seed(2024)
    case_text_encoder(out, model_dir, tok, text)
    case_unet(out, model_dir, tok, text, unet, gen)
    case_vae(out, model_dir, vae, gen)
    if embedded_dim(unet):  # negative prompts mean nothing to it (no unconditional pass)
        case_pipeline(out, "pipeline_w7_5", model_dir, parts, ["a large red circle on the left"],
                      None, 7.5, 10, gen, "one prompt, guidance 7.5 embedded, 10 DDIM steps")
        case_pipeline(out, "pipeline_two_w", model_dir, parts,
                      ["a blue square at the top", "a small yellow star"], None, [2.0, 9.0], 6,
                      gen, "two prompts with their own guidance scales (2 and 9) in one batch, "
                      "6 DDIM steps")
        case_pipeline(out, "pipeline_w1", model_dir, parts, ["a green triangle"], None, 1.0, 6,
                      gen, "guidance 1 (embedding of 0), 6 DDIM steps")
        return
    case_pipeline(out, "pipeline_cfg", model_dir, parts, ["a large red circle on the left"], [""],
                  7.5, 10, gen, "one prompt, empty negative prompt, guidance 7.5, 10 DDIM steps")
    case_pipeline(out, "pipeline_two_prompts", model_dir, parts,
                  ["a blue square at the top", "a small yellow star"], ["", "a red star"], 4.0, 6,
                  gen, "two prompts with their own negative prompts, guidance 4, 6 DDIM steps")


if __name__ == "__main__":
    main()
