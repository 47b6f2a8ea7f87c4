#!/usr/bin/env python3
"""Writes the seed corpora of the libFuzzer targets (stdlib only) into
tests/fuzz/corpus/<target>/ (committed; rerun after changing a format):

  make_seeds.py [OUT_DIR]     default: the corpus folder next to this script

Each target's first input byte is a selector (see the target's comment): 0x00 / 0x01.
"""
import base64, json, os, struct, sys, zlib

out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")


def put(target, name, data):
    d = os.path.join(out_root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def png(w, h, color_type=2, bit_depth=8, declared=None, extra=b""):
    """A small valid PNG (or one whose IHDR declares `declared` = (w, h): a bomb)."""
    chans = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    row = bytes([0]) + bytes((x * 37 + 11) % 256 for x in range(w * chans * bit_depth // 8))
    raw = row * h
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    dw, dh = declared or (w, h)
    ihdr = struct.pack(">IIBBBBB", dw, dh, bit_depth, color_type, 0, 0, 0)
    body = chunk(b"IHDR", ihdr)
    if color_type == 3:
        body += chunk(b"PLTE", bytes(range(48)))
    body += extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


small = png(8, 8)
b64 = base64.b64encode(small).decode()
mask = base64.b64encode(png(8, 8, color_type=0)).decode()

# ---- native requests ----
native = [
    {"prompt": "a red circle"},
    {"prompt": "a (red:1.2) [circle] BREAK blue", "negative_prompt": "green", "steps": 4,
     "seed": 42, "guidance_scale": 5.5, "width": 64, "height": 64, "sampler": "euler_a",
     "karras": True, "num_images": 2, "eta": 0.5, "clip_skip": 2, "guidance_rescale": 0.7,
     "guidance_interval": [0.1, 0.9], "stream": True},
    {"prompt": "x", "loras": [{"name": "style", "weight": 0.8}, {"name": "b.safetensors", "weight": -1}]},
    {"prompt": "x", "init_image": b64, "strength": 0.5, "width": 8, "height": 8},
    {"prompt": "x", "init_image": "data:image/png;base64," + b64, "mask": mask},
    {"prompt": "x", "seed": -1, "steps": 1000000, "width": -8},
    {"prompt": "\u00e9\u4e2d\U0001F600", "seed": 18446744073709551615},
]
for i, o in enumerate(native):
    put("fuzz_request", "n%d" % i, bytes([i & 1]) + json.dumps(o).encode())
put("fuzz_request", "dup", b"\x01" + b'{"prompt":"a","prompt":"b"}')
put("fuzz_request", "bad", b"\x00" + b'{"prompt":"a\\u0000"')

# ---- A1111 txt2img ----
a1111 = [
    {"prompt": "a cat <lora:style:0.7>, (masterpiece:1.3)", "negative_prompt": "blurry",
     "steps": 4, "cfg_scale": 6, "width": 64, "height": 64, "seed": 7, "batch_size": 2,
     "n_iter": 1, "sampler_name": "DPM++ 2M Karras", "scheduler": "Karras",
     "override_settings": {"CLIP_stop_at_last_layers": 2}, "send_images": True,
     "save_images": False, "alwayson_scripts": {}, "styles": [], "force_task_id": "t1"},
    {"prompt": "x", "sampler_index": "Euler a", "restore_faces": False, "tiling": False,
     "enable_hr": False, "denoising_strength": 0.5, "subseed": -1, "eta": 0.0},
    {"prompt": "<lora:a:b:c> <lyco:x:1>", "batch_size": 100},
    {},
]
for i, o in enumerate(a1111):
    put("fuzz_a1111", "a%d" % i, bytes([i & 1]) + json.dumps(o).encode())

# ---- images: raw PNGs (0x01) and base64 texts (0x00) ----
imgs = {
    "rgb": png(8, 8), "gray": png(5, 3, color_type=0), "palette": png(4, 4, color_type=3),
    "rgba": png(3, 7, color_type=6), "gray16": png(2, 2, color_type=0, bit_depth=16),
    "ga": png(3, 3, color_type=4),
    "bomb": png(8, 8, declared=(100000, 100000)),
    "wide": png(8, 8, declared=(129, 8)),
    "text": png(2, 2, extra=struct.pack(">I", 4) + b"tEXtab\x00c" + b"\0\0\0\0"),
}
for k, v in imgs.items():
    put("fuzz_image", "png_" + k, b"\x01" + v)
    put("fuzz_image", "b64_" + k, b"\x00" + base64.b64encode(v))
for k, v in {"pad1": "QQ==", "pad2": "QUI=", "bad": "QR==", "ws": "QU I=", "empty": ""}.items():
    put("fuzz_image", "b64t_" + k, b"\x00" + v.encode())

# ---- prompt syntax ----
for i, p in enumerate([
        "a (red:1.2) circle, [blue] ((square)) BREAK green background",
        "\\(literal\\) (a:0.5) [b:c:0.3] (unbalanced [ text",
        "masterpiece, " * 40, "(a:1.2.3)", "BREAKBREAK BREAK, \u00e9\u00e8 (\u4e2d\u6587:2)",
        "((( ))) ]]] ::: (x:-1) (y:1e308)"]):
    put("fuzz_prompt", "p%d" % i, p)

# ---- tokenizer ----
for i, p in enumerate(["a photo of a cat", "  Hello,   WORLD!! it's 3.14 <|endoftext|>",
                       "\u00c9l\u00e8ve na\u00efve \u4e2d\u6587 \U0001F600 \u0301x",
                       "x" * 300, "don't can't we'll", "\t\n\r"]):
    put("fuzz_tokenizer", "t%d" % i, p)
put("fuzz_tokenizer", "invalid_utf8", b"ab\xff\xc3(")


# ---- safetensors writer (lora, ldm) ----
def safetensors(tensors, meta=None):
    """tensors: list of (name, dtype, shape, bytes)."""
    hdr, data = {}, b""
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if meta:
        hdr["__metadata__"] = meta
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(shape, v=0.01):
    n = 1
    for s in shape:
        n *= s
    return ("F32", shape, struct.pack("<%df" % n, *[v * ((i % 7) - 3) for i in range(n)]))


def t(name, shape, v=0.01, dtype="F32"):
    d, s, raw = f32(shape, v)
    if dtype == "F16":
        raw = b"".join(struct.pack("<e", x) for x in struct.unpack("<%df" % (len(raw) // 4), raw))
    return (name, dtype, s, raw)


q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
conv = "lora_unet_mid_block_resnets_0_conv1"
te_q = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
fc1 = "lora_te_text_model_encoder_layers_0_mlp_fc1"
alpha = ("F32", [], struct.pack("<f", 2.0))
put("fuzz_lora", "full", b"\x00" + safetensors([
    t(q + ".lora_down.weight", [2, 8]), t(q + ".lora_up.weight", [8, 2]), (q + ".alpha",) + alpha,
    t(conv + ".lora_down.weight", [2, 4, 3, 3]), t(conv + ".lora_up.weight", [6, 2, 1, 1]),
    t(te_q + ".lora_down.weight", [4, 8], dtype="F16"), t(te_q + ".lora_up.weight", [8, 4], dtype="F16"),
    t(fc1 + ".lora_down.weight", [1, 8]), t(fc1 + ".lora_up.weight", [16, 1]), (fc1 + ".alpha",) + alpha,
], {"ss_network_dim": "2"}))
put("fuzz_lora", "unet_only", b"\x00" + safetensors([
    t(q + ".lora_down.weight", [1, 8]), t(q + ".lora_up.weight", [8, 1])]))
put("fuzz_lora", "bad_shape", b"\x00" + safetensors([
    t(q + ".lora_down.weight", [2, 7]), t(q + ".lora_up.weight", [8, 2])]))
put("fuzz_lora", "unknown_key", b"\x00" + safetensors([t("lora_unet_nothing.lora_down.weight", [1, 1])]))
for i, n in enumerate(["style", "style.safetensors", "../etc/passwd", ".hidden", "a/b", "a\\b",
                       "\u00e9t\u00e9", "x" * 201, "ok name-1.2"]):
    put("fuzz_lora", "name%d" % i, b"\x01" + n.encode())

# ---- LDM single-file checkpoints (tiny, SD-1.x style names) ----
u = "model.diffusion_model."
ldm = [
    t(u + "input_blocks.0.0.weight", [4, 4, 3, 3]), t(u + "input_blocks.0.0.bias", [4]),
    t(u + "input_blocks.1.0.in_layers.0.weight", [4]), t(u + "input_blocks.1.0.in_layers.2.weight", [4, 4, 3, 3]),
    t(u + "input_blocks.1.0.emb_layers.1.weight", [4, 16]), t(u + "input_blocks.1.0.out_layers.3.weight", [4, 4, 3, 3]),
    t(u + "input_blocks.1.1.proj_in.weight", [4, 4, 1, 1]),
    t(u + "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight", [4, 4]),
    t(u + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", [4, 8]),
    t(u + "input_blocks.3.0.op.weight", [4, 4, 3, 3]),
    t(u + "middle_block.0.in_layers.0.weight", [4]), t(u + "middle_block.1.norm.weight", [4]),
    t(u + "output_blocks.0.0.skip_connection.weight", [4, 8, 1, 1]),
    t(u + "output_blocks.2.1.conv.weight", [4, 4, 3, 3]),
    t(u + "time_embed.0.weight", [16, 4]), t(u + "out.0.weight", [4]), t(u + "out.2.weight", [4, 4, 3, 3]),
    t("first_stage_model.encoder.conv_in.weight", [4, 3, 3, 3]),
    t("first_stage_model.encoder.down.0.block.0.norm1.weight", [4]),
    t("first_stage_model.encoder.down.1.downsample.conv.weight", [4, 4, 3, 3]),
    t("first_stage_model.encoder.mid.attn_1.q.weight", [4, 4, 1, 1]),
    t("first_stage_model.decoder.up.0.block.0.nin_shortcut.weight", [4, 8, 1, 1]),
    t("first_stage_model.decoder.up.1.upsample.conv.weight", [4, 4, 3, 3]),
    t("first_stage_model.quant_conv.weight", [8, 8, 1, 1]),
    t("first_stage_model.decoder.conv_in.weight", [8, 4, 3, 3]),
    t("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", [16, 8]),
    t("cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight", [8, 8]),
]
put("fuzz_ldm", "sd1", b"\x05" + safetensors(ldm))
openclip = [
    t("cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight", [24, 8]),
    t("cond_stage_model.model.transformer.resblocks.0.attn.in_proj_bias", [24]),
    t("cond_stage_model.model.transformer.resblocks.0.ln_1.weight", [8]),
    t("cond_stage_model.model.transformer.resblocks.1.mlp.c_fc.weight", [32, 8]),
    t("cond_stage_model.model.token_embedding.weight", [16, 8]),
    t("cond_stage_model.model.positional_embedding", [77, 8]),
    t("cond_stage_model.model.text_projection", [8, 8]), t("cond_stage_model.model.ln_final.weight", [8]),
]
put("fuzz_ldm", "sd2", b"\x15" + safetensors(ldm[:17] + openclip))
ema = [t("model_ema.diffusion_modelinput_blocks00weight", [4, 4, 3, 3]), t("model_ema.decay", [])]
put("fuzz_ldm", "ema", b"\x21" + safetensors(ldm[:3] + ema))
put("fuzz_ldm", "vae_only", b"\x00" + safetensors([(n[len("first_stage_model."):],) + tuple(r)
                                                   for (n, *r) in ldm[17:25]]))
