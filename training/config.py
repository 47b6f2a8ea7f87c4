"""Configurations of the default model, exactly as diffusers / transformers write them.

export.py writes these dicts as the components' config.json files (plus the few fields
filled in at export time: vocab size, token ids, scaling factor), and models.py builds
its modules from them, so the trained weights and the shipped configs cannot disagree.

Sizes were chosen for CPU training in about an hour on a shared 2-core machine: a
factor-8 VAE gives 8x8x4 latents for 64x64 images, and the UNet runs at 8x8 and 4x4.
"""
import tokenizer_build

IMAGE_SIZE = 64
LATENT_SIZE = 8
TEXT_HIDDEN = 64

TEXT_ENCODER = {
    "architectures": ["CLIPTextModel"],
    "attention_dropout": 0.0,
    "bos_token_id": None,  # filled from the tokenizer
    "eos_token_id": None,  # filled from the tokenizer
    "hidden_act": "quick_gelu",
    "hidden_size": TEXT_HIDDEN,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 4 * TEXT_HIDDEN,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": tokenizer_build.MODEL_MAX_LENGTH,
    "model_type": "clip_text_model",
    "num_attention_heads": 4,
    "num_hidden_layers": 3,
    "pad_token_id": None,  # filled from the tokenizer
    "projection_dim": TEXT_HIDDEN,
    "torch_dtype": "float32",
    "transformers_version": "4.37.0",
    "vocab_size": None,  # filled from the tokenizer
}

VAE = {
    "_class_name": "AutoencoderKL",
    "_diffusers_version": "0.27.2",
    "act_fn": "silu",
    "block_out_channels": [16, 32, 64, 64],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "force_upcast": True,
    "in_channels": 3,
    "latent_channels": 4,
    "latents_mean": None,
    "latents_std": None,
    "layers_per_block": 1,
    "norm_num_groups": 16,
    "out_channels": 3,
    "sample_size": IMAGE_SIZE,
    "scaling_factor": 1.0,  # set at export from the latents' standard deviation
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

UNET = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": "0.27.2",
    "act_fn": "silu",
    "addition_embed_type": None,
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": None,
    "attention_head_dim": 4,
    "attention_type": "default",
    "block_out_channels": [48, 96],
    "center_input_sample": False,
    "class_embed_type": None,
    "class_embeddings_concat": False,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "cross_attention_dim": TEXT_HIDDEN,
    "cross_attention_norm": None,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "dropout": 0.0,
    "dual_cross_attention": False,
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 1,
    "mid_block_only_cross_attention": None,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 16,
    "num_attention_heads": None,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": None,
    "resnet_out_scale_factor": 1.0,
    "resnet_skip_time_act": False,
    "resnet_time_scale_shift": "default",
    "reverse_transformer_layers_per_block": None,
    "sample_size": LATENT_SIZE,
    "time_cond_proj_dim": None,
    "time_embedding_act_fn": None,
    "time_embedding_dim": None,
    "time_embedding_type": "positional",
    "timestep_post_act": None,
    "transformer_layers_per_block": 1,
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "upcast_attention": False,
    "use_linear_projection": False,
}

# DDIMScheduler as diffusers 0.27 saves it, with Stable Diffusion 1.5's schedule.
SCHEDULER = {
    "_class_name": "DDIMScheduler",
    "_diffusers_version": "0.27.2",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "clip_sample_range": 1.0,
    "dynamic_thresholding_ratio": 0.995,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "rescale_betas_zero_snr": False,
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "thresholding": False,
    "timestep_spacing": "leading",
    "trained_betas": None,
}


def text_encoder_config(tok):
    """The text encoder config with the tokenizer's sizes and ids filled in."""
    cfg = dict(TEXT_ENCODER)
    cfg.update(vocab_size=len(tok.vocab), bos_token_id=tok.bos, eos_token_id=tok.eos,
               pad_token_id=tok.eos)
    return cfg


def alphas_cumprod():
    import torch
    betas = torch.linspace(SCHEDULER["beta_start"] ** 0.5, SCHEDULER["beta_end"] ** 0.5,
                           SCHEDULER["num_train_timesteps"], dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)
