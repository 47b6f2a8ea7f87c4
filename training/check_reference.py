"""Checks training/models.py against diffusers / transformers: loads the tiny reference
models of ../shared/golden (made by diffusers 0.27.2 / transformers 4.37.0), runs the
recorded inputs through our modules and prints the max abs difference to the recorded
outputs. Names and shapes must match exactly (load_state_dict(strict=True)).

    /usr/bin/python3 training/check_reference.py [GOLDEN_DIR]
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
import st  # noqa: E402


def load_model(cls, folder, weights):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    m = cls(cfg)
    sd = st.load(os.path.join(folder, weights))
    sd.pop("text_model.embeddings.position_ids", None)
    m.load_state_dict(sd, strict=True)
    return m.eval()


def report(name, got, want, tol=1e-4):
    d = (got - want).abs().max().item()
    print("%-40s max_abs %.3e  %s" % (name, d, "PASS" if d <= tol else "FAIL"))
    return d <= tol


def check_guidance_embedded(g):
    """The time_cond_proj_dim path (training/distill.py's student): diffusers'
    get_guidance_scale_embedding and the UNet's cond_proj, on the guidance-embedded
    pipeline's recorded timestep_cond and first UNet call."""
    ok = True
    d = os.path.join(g, "pipeline_tiny_wembed")
    unet = load_model(models.UNet2DConditionModel, os.path.join(d, "model/unet"),
                      "diffusion_pytorch_model.safetensors")
    for case in ("ddim_two_prompts_w3", "euler_w6"):
        with open(os.path.join(d, case, "case.json")) as f:
            gs = json.load(f)["call"]["guidance_scale"]
        o = st.load(os.path.join(d, case, "outputs.safetensors"))
        want = o["timestep_cond"]
        emb = models.guidance_scale_embedding(torch.tensor(gs - 1).repeat(want.shape[0]),
                                              want.shape[1])
        ok &= report("%s timestep_cond" % case, emb, want, 0.0)
        t = o["unet_timestep"][0].repeat(want.shape[0])
        ok &= report("%s unet_out[0]" % case,
                     unet(o["unet_sample"][0], t, o["prompt_embeds"], emb), o["unet_out"][0])
    return ok


@torch.no_grad()
def main():
    g = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/golden"
    mdir = os.path.join(g, "pipeline_tiny/model")
    ok = True
    te = load_model(models.CLIPTextModel, os.path.join(mdir, "text_encoder"), "model.safetensors")
    i, o = st.load(g + "/text_encoder_tiny/inputs.safetensors"), st.load(
        g + "/text_encoder_tiny/outputs.safetensors")
    last, pooled, hidden = te(i["input_ids"], output_hidden_states=True)
    ok &= report("text_encoder last_hidden_state", last, o["last_hidden_state"])
    ok &= report("text_encoder pooler_output", pooled, o["pooler_output"])
    ok &= report("text_encoder hidden_states.2", hidden[2], o["hidden_states.2"])
    unet = load_model(models.UNet2DConditionModel, os.path.join(mdir, "unet"),
                      "diffusion_pytorch_model.safetensors")
    i, o = st.load(g + "/unet_tiny/inputs.safetensors"), st.load(g + "/unet_tiny/outputs.safetensors")
    ok &= report("unet sample", unet(i["sample"], i["timestep"], i["encoder_hidden_states"]),
                 o["sample"])
    vae = load_model(models.AutoencoderKL, os.path.join(mdir, "vae"),
                     "diffusion_pytorch_model.safetensors")
    i, o = st.load(g + "/vae_tiny/inputs.safetensors"), st.load(g + "/vae_tiny/outputs.safetensors")
    ok &= report("vae decoded", vae.decode(i["latents"]), o["decoded"])
    mean, logvar = vae.encode(i["image"])
    ok &= report("vae latent_mean", mean, o["latent_mean"])
    ok &= report("vae latent_logvar", logvar, o["latent_logvar"])
    ok &= check_guidance_embedded(g)
    print("ALL PASS" if ok else "SOME FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
