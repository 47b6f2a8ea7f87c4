"""PyTorch modules of the default model: CLIPTextModel, AutoencoderKL, UNet2DConditionModel.

They mirror transformers 4.37 / diffusers 0.27 exactly where it matters for the weights:
state_dict names, tensor shapes, config.json fields, and the forward computation (norm
epsilons, head split, GEGLU, timestep embedding, padding of the VAE downsampler). So the
files export.py writes load in diffusers, and in cfgserve's C engine, unchanged; and the
reference outputs make_golden.py records are what diffusers would compute.

Only the configuration the default model uses is implemented (SD 1.x block types, no
linear projection, no class conditions); the constructors reject anything else. The one
optional extra is `time_cond_proj_dim` (a guidance-distilled UNet, training/distill.py):
time_embedding.cond_proj adds the guidance-scale embedding to the timestep features.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- text encoder (CLIP)

class CLIPAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.scale = heads, (d // heads) ** -0.5
        self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.v_proj, self.out_proj = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x, mask):  # x (B, L, D), mask (L, L) additive
        b, l, d = x.shape
        h = self.heads

        def split(t):
            return t.view(b, l, h, d // h).transpose(1, 2)  # (B, h, L, dh)
        q, k, v = split(self.q_proj(x) * self.scale), split(self.k_proj(x)), split(self.v_proj(x))
        w = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1)
        o = (w @ v).transpose(1, 2).reshape(b, l, d)
        return self.out_proj(o)


class CLIPMLP(nn.Module):
    def __init__(self, d, inner):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, inner), nn.Linear(inner, d)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h * torch.sigmoid(1.702 * h))  # quick_gelu


class CLIPEncoderLayer(nn.Module):
    def __init__(self, d, heads, inner, eps):
        super().__init__()
        self.self_attn = CLIPAttention(d, heads)
        self.layer_norm1 = nn.LayerNorm(d, eps=eps)
        self.mlp = CLIPMLP(d, inner)
        self.layer_norm2 = nn.LayerNorm(d, eps=eps)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEmbeddings(nn.Module):
    def __init__(self, vocab, d, positions):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, d)
        self.position_embedding = nn.Embedding(positions, d)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        return self.token_embedding(ids) + self.position_embedding(pos)[None]


class CLIPEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList(
            CLIPEncoderLayer(cfg["hidden_size"], cfg["num_attention_heads"],
                             cfg["intermediate_size"], cfg["layer_norm_eps"])
            for _ in range(cfg["num_hidden_layers"]))


class CLIPTextTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = CLIPEmbeddings(cfg["vocab_size"], cfg["hidden_size"],
                                         cfg["max_position_embeddings"])
        self.encoder = CLIPEncoder(cfg)
        self.final_layer_norm = nn.LayerNorm(cfg["hidden_size"], eps=cfg["layer_norm_eps"])


class CLIPTextModel(nn.Module):
    """transformers.CLIPTextModel (no attention mask, as Stable Diffusion calls it)."""

    def __init__(self, cfg):
        super().__init__()
        assert cfg["hidden_act"] == "quick_gelu"
        self.config = cfg
        self.text_model = CLIPTextTransformer(cfg)

    def forward(self, ids, output_hidden_states=False):
        """Returns (last_hidden_state, pooler_output, hidden_states tuple or None)."""
        tm = self.text_model
        l = ids.shape[1]
        mask = torch.full((l, l), float("-inf"), device=ids.device).triu(1)
        x = tm.embeddings(ids)
        hidden = [x]
        for layer in tm.encoder.layers:
            x = layer(x, mask)
            hidden.append(x)
        last = tm.final_layer_norm(x)
        eos = self.config["eos_token_id"]
        # transformers 4.37: legacy argmax(ids) when eos_token_id == 2, else first eos.
        idx = ids.argmax(-1) if eos == 2 else (ids == eos).int().argmax(-1)
        pooled = last[torch.arange(ids.shape[0], device=ids.device), idx]
        return last, pooled, (tuple(hidden) if output_hidden_states else None)


# ---------------------------------------------------------------- shared diffusers blocks

class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, groups, eps, temb=None):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        if temb is not None:
            self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.conv_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if hasattr(self, "conv_shortcut"):
            x = self.conv_shortcut(x)
        return x + h


class Downsample2D(nn.Module):
    def __init__(self, c, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:  # the VAE encoder's asymmetric padding
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _heads_attention(q, k, v, heads):
    """softmax(q k^T / sqrt(dh)) v over heads; q (B, N, C), k/v (B, M, C)."""
    b, n, c = q.shape
    m = k.shape[1]
    dh = c // heads
    q = q.view(b, n, heads, dh).transpose(1, 2)
    k = k.view(b, m, heads, dh).transpose(1, 2)
    v = v.view(b, m, heads, dh).transpose(1, 2)
    w = torch.softmax((q @ k.transpose(-1, -2)) * (dh ** -0.5), dim=-1)
    return (w @ v).transpose(1, 2).reshape(b, n, c)


class VAEAttention(nn.Module):
    """diffusers Attention as the VAE mid block builds it: one head, GroupNorm, residual."""

    def __init__(self, c, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.to_q, self.to_k, self.to_v = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c)])

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.group_norm(x).view(b, c, h * w).transpose(1, 2)  # (B, HW, C)
        o = _heads_attention(self.to_q(t), self.to_k(t), self.to_v(t), 1)
        o = self.to_out[0](o).transpose(1, 2).reshape(b, c, h, w)
        return o + x


class UNetMidBlock2D(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.attentions = nn.ModuleList([VAEAttention(c, groups)])
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, groups, 1e-6),
                                      ResnetBlock2D(c, c, groups, 1e-6)])

    def forward(self, x):
        x = self.resnets[0](x)
        return self.resnets[1](self.attentions[0](x))


# ---------------------------------------------------------------- AutoencoderKL

class EncoderBlock(nn.Module):
    def __init__(self, cin, cout, n, groups, down):
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock2D(cin if i == 0 else cout, cout, groups, 1e-6)
                                     for i in range(n))
        if down:
            self.downsamplers = nn.ModuleList([Downsample2D(cout, 0)])

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if hasattr(self, "downsamplers"):
            x = self.downsamplers[0](x)
        return x


class DecoderBlock(nn.Module):
    def __init__(self, cin, cout, n, groups, up):
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock2D(cin if i == 0 else cout, cout, groups, 1e-6)
                                     for i in range(n))
        if up:
            self.upsamplers = nn.ModuleList([Upsample2D(cout)])

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if hasattr(self, "upsamplers"):
            x = self.upsamplers[0](x)
        return x


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, g, n = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["layers_per_block"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            EncoderBlock(ch[max(i - 1, 0)], ch[i], n, g, i < len(ch) - 1) for i in range(len(ch)))
        self.mid_block = UNetMidBlock2D(ch[-1], g)
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            x = b(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, g, n = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["layers_per_block"]
        rev = list(reversed(ch))
        self.conv_in = nn.Conv2d(cfg["latent_channels"], ch[-1], 3, padding=1)
        self.mid_block = UNetMidBlock2D(ch[-1], g)
        self.up_blocks = nn.ModuleList(
            DecoderBlock(rev[max(i - 1, 0)], rev[i], n + 1, g, i < len(ch) - 1)
            for i in range(len(ch)))
        self.conv_norm_out = nn.GroupNorm(g, ch[0], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[0], cfg["out_channels"], 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        assert set(cfg["down_block_types"]) == {"DownEncoderBlock2D"}
        assert set(cfg["up_block_types"]) == {"UpDecoderBlock2D"} and cfg["act_fn"] == "silu"
        self.config = cfg
        lc = cfg["latent_channels"]
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * lc, 2 * lc, 1)
        self.post_quant_conv = nn.Conv2d(lc, lc, 1)

    def encode(self, x):
        """Returns (mean, logvar) of latent_dist."""
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


# ---------------------------------------------------------------- UNet2DConditionModel

class Attention(nn.Module):
    def __init__(self, c, heads, kv_dim):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(c, c, bias=False)
        self.to_k = nn.Linear(kv_dim, c, bias=False)
        self.to_v = nn.Linear(kv_dim, c, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(c, c)])

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        return self.to_out[0](_heads_attention(self.to_q(x), self.to_k(ctx), self.to_v(ctx),
                                               self.heads))


class GEGLU(nn.Module):
    def __init__(self, c, inner):
        super().__init__()
        self.proj = nn.Linear(c, 2 * inner)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(c, 4 * c), nn.Dropout(0.0), nn.Linear(4 * c, c)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    def __init__(self, c, heads, cross):
        super().__init__()
        self.norm1, self.attn1 = nn.LayerNorm(c), Attention(c, heads, c)
        self.norm2, self.attn2 = nn.LayerNorm(c), Attention(c, heads, cross)
        self.norm3, self.ff = nn.LayerNorm(c), FeedForward(c)

    def forward(self, x, ctx):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), ctx)
        return x + self.ff(self.norm3(x))


class Transformer2DModel(nn.Module):
    def __init__(self, c, heads, cross, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.proj_in = nn.Conv2d(c, c, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(c, heads, cross)])
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x, ctx):
        b, c, h, w = x.shape
        t = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(b, h * w, c)
        t = self.transformer_blocks[0](t, ctx)
        return self.proj_out(t.reshape(b, h, w, c).permute(0, 3, 1, 2)) + x


class UNetDownBlock(nn.Module):
    def __init__(self, cin, cout, n, temb, groups, eps, heads, cross, attn, down):
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock2D(cin if i == 0 else cout, cout, groups, eps, temb)
                                     for i in range(n))
        if attn:
            self.attentions = nn.ModuleList(Transformer2DModel(cout, heads, cross, groups)
                                            for _ in range(n))
        if down:
            self.downsamplers = nn.ModuleList([Downsample2D(cout, 1)])

    def forward(self, x, temb, ctx):
        skips = []
        for i, r in enumerate(self.resnets):
            x = r(x, temb)
            if hasattr(self, "attentions"):
                x = self.attentions[i](x, ctx)
            skips.append(x)
        if hasattr(self, "downsamplers"):
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UNetUpBlock(nn.Module):
    def __init__(self, cin, prev, cout, n, temb, groups, eps, heads, cross, attn, up):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D((prev if i == 0 else cout) + (cin if i == n - 1 else cout), cout,
                          groups, eps, temb) for i in range(n))
        if attn:
            self.attentions = nn.ModuleList(Transformer2DModel(cout, heads, cross, groups)
                                            for _ in range(n))
        if up:
            self.upsamplers = nn.ModuleList([Upsample2D(cout)])

    def forward(self, x, skips, temb, ctx):
        for i, r in enumerate(self.resnets):
            x = r(torch.cat([x, skips.pop()], dim=1), temb)
            if hasattr(self, "attentions"):
                x = self.attentions[i](x, ctx)
        if hasattr(self, "upsamplers"):
            x = self.upsamplers[0](x)
        return x


class UNetMidBlock2DCrossAttn(nn.Module):
    def __init__(self, c, temb, groups, eps, heads, cross):
        super().__init__()
        self.attentions = nn.ModuleList([Transformer2DModel(c, heads, cross, groups)])
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, groups, eps, temb),
                                      ResnetBlock2D(c, c, groups, eps, temb)])

    def forward(self, x, temb, ctx):
        x = self.resnets[0](x, temb)
        return self.resnets[1](self.attentions[0](x, ctx), temb)


class TimestepEmbedding(nn.Module):
    def __init__(self, cin, dim, cond_dim=None):
        super().__init__()
        self.linear_1, self.linear_2 = nn.Linear(cin, dim), nn.Linear(dim, dim)
        if cond_dim:  # diffusers: cond_proj added to the sinusoidal input, no bias
            self.cond_proj = nn.Linear(cond_dim, cin, bias=False)

    def forward(self, x, cond=None):
        if cond is not None:
            x = x + self.cond_proj(cond)
        return self.linear_2(F.silu(self.linear_1(x)))


def timestep_features(t, dim, flip_sin_to_cos=True, shift=0.0):
    """diffusers get_timestep_embedding (max_period 10000, scale 1)."""
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - shift)
    emb = t[:, None].float() * torch.exp(exponent)[None]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return emb


def guidance_scale_embedding(w, dim):
    """diffusers StableDiffusionPipeline.get_guidance_scale_embedding(w, dim), float32.
    The pipeline passes w = guidance_scale - 1 (a float32 tensor, one entry per image)."""
    w = w.float() * 1000.0
    half = dim // 2
    step = torch.log(torch.tensor(10000.0)) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -step)
    emb = w[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class UNet2DConditionModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        ch, n = cfg["block_out_channels"], cfg["layers_per_block"]
        g, eps, cross = cfg["norm_num_groups"], cfg["norm_eps"], cfg["cross_attention_dim"]
        assert cfg["num_attention_heads"] is None and not cfg["use_linear_projection"]
        hd = cfg["attention_head_dim"]
        heads = hd if isinstance(hd, list) else [hd] * len(ch)  # diffusers: these are head counts
        temb = 4 * ch[0]
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch[0], temb, cfg.get("time_cond_proj_dim"))
        self.down_blocks = nn.ModuleList()
        for i, kind in enumerate(cfg["down_block_types"]):
            assert kind in ("CrossAttnDownBlock2D", "DownBlock2D")
            self.down_blocks.append(UNetDownBlock(
                ch[max(i - 1, 0)], ch[i], n, temb, g, eps, heads[i], cross,
                kind == "CrossAttnDownBlock2D", i < len(ch) - 1))
        assert cfg["mid_block_type"] == "UNetMidBlock2DCrossAttn"
        self.mid_block = UNetMidBlock2DCrossAttn(ch[-1], temb, g, eps, heads[-1], cross)
        rev, rheads = list(reversed(ch)), list(reversed(heads))
        self.up_blocks = nn.ModuleList()
        for i, kind in enumerate(cfg["up_block_types"]):
            assert kind in ("CrossAttnUpBlock2D", "UpBlock2D")
            prev = rev[max(i - 1, 0)]
            cin = rev[min(i + 1, len(ch) - 1)]
            self.up_blocks.append(UNetUpBlock(
                cin, prev, rev[i], n + 1, temb, g, eps, rheads[i], cross,
                kind == "CrossAttnUpBlock2D", i < len(ch) - 1))
        self.conv_norm_out = nn.GroupNorm(g, ch[0], eps=eps)
        self.conv_out = nn.Conv2d(ch[0], cfg["out_channels"], 3, padding=1)

    def forward(self, x, t, ctx, timestep_cond=None):
        """x (B, C, h, w), t (B,) timesteps, ctx (B, L, cross), timestep_cond (B,
        time_cond_proj_dim) or None (as in diffusers: no cond_proj term) -> noise (B, C, h, w)."""
        cfg = self.config
        assert timestep_cond is None or cfg.get("time_cond_proj_dim"), "no time_cond_proj_dim"
        temb = self.time_embedding(timestep_features(t, cfg["block_out_channels"][0],
                                                     cfg["flip_sin_to_cos"], cfg["freq_shift"]),
                                   timestep_cond)
        x = self.conv_in(x)
        skips = [x]
        for b in self.down_blocks:
            x, s = b(x, temb, ctx)
            skips += s
        x = self.mid_block(x, temb, ctx)
        for b in self.up_blocks:
            n = len(b.resnets)
            x = b(x, skips[-n:], temb, ctx)
            del skips[-n:]
        return self.conv_out(F.silu(self.conv_norm_out(x)))
