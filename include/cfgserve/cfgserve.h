/*
 * cfgserve — public C API of the inference engine.
 *
 * Basic usage:
 *
 *     cs_runtime_init(argc, argv);             // picks fast BLAS kernels (may re-exec once)
 *     cs_model *m;
 *     char msg[512];
 *     if (cs_model_load("models/default", &m, msg, sizeof msg) != CS_OK) { puts(msg); ... }
 *     ...
 *     cs_model_free(m);
 *
 * Thread safety: a cs_model is read-only after cs_model_load returns and may be shared by
 * any number of threads. Functions that take a msg buffer write a NUL-terminated,
 * human-readable reason there on failure (what, where, why).
 */
#ifndef CFGSERVE_H
#define CFGSERVE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CS_API __attribute__((visibility("default")))
#else
#define CS_API
#endif

typedef enum cs_status {
    CS_OK = 0,
    CS_ERR_INVALID_ARG = -1, /* a parameter is out of range or malformed */
    CS_ERR_IO = -2,          /* a file could not be opened, mapped or read */
    CS_ERR_FORMAT = -3,      /* a file's contents are malformed or inconsistent */
    CS_ERR_UNSUPPORTED = -4, /* valid input the engine does not implement */
    CS_ERR_NOMEM = -5,       /* an allocation failed */
    CS_ERR_CANCELLED = -6,   /* the caller asked to stop */
    CS_ERR_INTERNAL = -7     /* a bug: please report */
} cs_status;

/* A short constant name for a status ("invalid argument", ...). */
CS_API const char *cs_status_str(cs_status s);

typedef enum cs_log_level {
    CS_LOG_DEBUG = 0,
    CS_LOG_INFO = 1,
    CS_LOG_WARN = 2,
    CS_LOG_ERROR = 3
} cs_log_level;

/* The engine never prints; it hands log lines to this callback (default: none). */
typedef void (*cs_log_fn)(cs_log_level level, const char *line, void *user);
CS_API void cs_set_log(cs_log_fn fn, void *user);

/*
 * Prepares the process for fast matrix products. OpenBLAS chooses its kernels when it is
 * loaded and Debian's build falls back to slow ones on CPUs it does not know, so when
 * OPENBLAS_CORETYPE is unset this sets it for the detected CPU and re-executes the
 * program once (argv must be main's). A value already set is respected. Returns only
 * when no re-exec was needed or the re-exec failed.
 */
CS_API void cs_runtime_init(int argc, char **argv);

/* The OpenBLAS kernel set in use ("Haswell", "SkylakeX", ...), for logs and reports. */
CS_API const char *cs_blas_kernel_name(void);

/* Compute threads of each batched call (OpenBLAS and the engine's kernel pool), for the
 * whole process: workers stepping at the same time share them, so a server with W workers
 * on C cores wants about C / W. n <= 0 keeps OpenBLAS's default (OPENBLAS_NUM_THREADS,
 * else every core). Call before cs_session_new: a session sizes its pool when made. */
CS_API void cs_set_threads(int n);
CS_API int cs_threads(void);

typedef struct cs_model cs_model; /* read-only after load; share across threads */

/* Loads a model: a diffusers-layout folder (model_index.json, tokenizer/, text_encoder/,
 * unet/, vae/, scheduler/) or a single Stable Diffusion 1.x / 2.x checkpoint in the
 * original LDM layout (.safetensors or .ckpt; configs inferred, see cs_load_params).
 * Every file is validated; on failure *out is NULL. */
CS_API cs_status cs_model_load(const char *path, cs_model **out, char *msg, size_t msg_size);

/* Loading options; every field but path may be NULL (= inferred / bundled). */
typedef struct cs_load_params {
    const char *path;            /* diffusers folder, or an LDM .safetensors / .ckpt file */
    const char *vae;             /* replacement VAE: an LDM VAE file (encoder.* / decoder.*
                                  * keys) or a diffusers vae folder */
    const char *original_config; /* single file: LDM config as JSON (v1-inference.yaml tree) */
    const char *prediction_type; /* single file: "epsilon" or "v_prediction" */
    const char *model_type;      /* single file: "sd1" or "sd2" */
    const char *text_encoder_config; /* single file: folder holding a CLIPTextModel config.json */
    const char *tokenizer;       /* single file: CLIP tokenizer folder (default: bundled) */
    const char *weights_dtype;   /* "file" (default): the matrices of linear and conv layers
                                  * stay F16 / BF16 in memory when the checkpoint stores
                                  * them so (same outputs, about half the resident weights);
                                  * "fp32": widen every weight at load */
    const char *precision;       /* "fp32" (default): fp32 products, golden-exact. "bf16":
                                  * the matrices of linear and conv layers are kept bf16
                                  * (rounded to nearest even at load; half the memory of
                                  * fp32, whatever weights_dtype says) and multiplied in
                                  * bf16 with fp32 accumulation (AVX512_BF16 vdpbf16ps where
                                  * the CPU has it, else a slow portable kernel with the same
                                  * bits); norms, softmax, attention, biases and embeddings
                                  * stay fp32. Results differ from fp32 (about 1e-3
                                  * relative per layer), still independent of batch and
                                  * threads */
} cs_load_params;

CS_API cs_status cs_model_load_ex(const cs_load_params *lp, cs_model **out, char *msg,
                                  size_t msg_size);
CS_API void cs_model_free(cs_model *m);


/* Whether s[0, n) is valid UTF-8 (no overlong forms, surrogates or values past
 * U+10FFFF): the rule every text the engine accepts is held to. */
CS_API int cs_utf8_valid(const char *s, size_t n);

/* ---- generation ---------------------------------------------------------------------
 *
 *     cs_session *s;   cs_session_new(m, NULL, &s, msg, n);        // one per worker thread
 *     cs_gen_params p = cs_gen_default_params(m);
 *     p.prompt = "a red circle";  p.seed = 42;
 *     cs_job *j;       cs_job_new(s, &p, &j, msg, n);              // encodes prompts, draws noise
 *     while (!cs_job_done(j)) cs_step(s, &j, 1, msg, n);           // or many jobs per call
 *     cs_decode(s, &j, 1, msg, n);
 *     cs_job_png(j, 0, &png, &len, msg, n);  ...  free(png);  cs_job_free(j);
 *
 * cs_step runs ONE denoising step for every job given, as one UNet batch: conditional
 * rows for all of them and unconditional rows only for jobs whose guidance needs them.
 * Jobs may be at different steps, with different samplers, step counts and guidance;
 * they must share the latent size. A job's result never depends on what it was batched
 * with: its noise comes from its own seeded counter-based stream.
 */

typedef struct cs_session cs_session; /* per worker: activation arena; one call at a time */
typedef struct cs_job cs_job;         /* one request's sampling state; used by one thread
                                         at a time (the one stepping it) */

enum { CS_MAX_IMAGES_PER_JOB = 16 };

typedef struct cs_lora_spec { const char *name; double weight; } cs_lora_spec;
enum { CS_MAX_LORAS_PER_JOB = 8 };

typedef struct cs_gen_params {
    const char *prompt;          /* required (may be "") */
    const char *negative_prompt; /* "" or NULL: the empty prompt. Must be empty for a
                                    guidance-distilled model (UNet time_cond_proj_dim): it
                                    runs no unconditional pass */
    double guidance_scale;       /* s: 1 = conditional only, 0 = unconditional only */
    int steps;                   /* 1 .. cs_max_steps */
    uint64_t seed;               /* image i uses seed + i */
    int width, height;           /* pixels; multiples of cs_model_size_multiple */
    const char *sampler;         /* NULL or "": the model's scheduler; else a cs_sampler_names() entry */
    int karras;                  /* 1: Karras sigmas (samplers with sigmas) */
    int num_images;              /* 1 .. CS_MAX_IMAGES_PER_JOB */
    double guidance_rescale;     /* phi in [0, 1]; 0 = off (must be 0 for a guidance-distilled
                                    model) */
    double guidance_lo, guidance_hi; /* guidance only while sigma in [lo, hi]; hi <= 0 = always
                                        (no interval for a guidance-distilled model) */
    int clip_skip;               /* 0 = last text-encoder layer; k = k layers before it
                                    (final_layer_norm(hidden_states[-(k+1)]), diffusers'
                                    clip_skip = k; A1111's "Clip skip" k + 1). As in diffusers
                                    0.27.2 it applies to the prompt only: the negative prompt
                                    always uses the last layer */
    double eta;                  /* DDIM eta (0 = deterministic) */
    /* img2img / inpainting: NULL init_image = text-to-image */
    const uint8_t *init_image;   /* RGB8, `height` rows of width*3 bytes (the request's size) */
    double strength;             /* (0, 1]: share of the schedule run from the init image */
    const uint8_t *mask;         /* NULL, or 8-bit, height rows of width bytes; >= 128 = repaint */
    int inpaint_fill;            /* with a mask, what the masked area starts from: CS_FILL_* */
    /* LoRA: names of files in the model's LoRA folder, each with its weight */
    const struct cs_lora_spec *loras;
    int num_loras;
    /* How prompt text is read: CS_PROMPT_PLAIN (diffusers: the text as it is) or
     * CS_PROMPT_A1111 (the web UI's language: (emphasis:1.2), [less], BREAK, prompts longer
     * than 75 tokens in chunks; clip skip then applies to the negative prompt too, as the
     * web UI does) */
    int prompt_syntax;
} cs_gen_params;

enum { CS_PROMPT_PLAIN = 0, CS_PROMPT_A1111 = 1 };

/* Inpainting's masked content. ORIGINAL: the init image (diffusers). The others are the
 * A1111 web UI's choices: BLUR ("fill") first repaints the masked pixels with colours
 * blurred in from around them; LATENT_NOISE and LATENT_NOTHING replace the init latents
 * under the mask by the image's noise or by zeros before noising. */
enum { CS_FILL_ORIGINAL = 0, CS_FILL_BLUR = 1, CS_FILL_LATENT_NOISE = 2, CS_FILL_LATENT_NOTHING = 3 };

/* Model defaults: guidance 7.5, 50 steps (or the model's), native size, seed 0. */
CS_API cs_gen_params cs_gen_default_params(const cs_model *m);

/* Checks every field of p against the model. On failure *field (when non-NULL) names the
 * offending parameter ("steps", "width", ...) and msg says why. */
CS_API cs_status cs_params_validate(const cs_model *m, const cs_gen_params *p,
                                    const char **field, char *msg, size_t msg_size);

/* NULL-terminated list of sampler names accepted in cs_gen_params.sampler. */
CS_API const char *const *cs_sampler_names(void);
CS_API int cs_max_steps(void);
/* Width and height must be multiples of this (VAE factor x UNet downsampling). */
CS_API int cs_model_size_multiple(const cs_model *m);
CS_API void cs_model_native_size(const cs_model *m, int *width, int *height);
CS_API const char *cs_model_name(const cs_model *m);
/* Nonzero for a guidance-distilled model (its UNet takes the guidance scale as an input,
 * time_cond_proj_dim): one UNet row per image, no negative prompt, no guidance_rescale. */
CS_API int cs_model_guidance_distilled(const cs_model *m);

/* ---- LoRA (kohya / A1111 .safetensors) -----------------------------------------------
 *
 * A LoRA adds scale·(alpha/r)·up·down to the weights of UNet and text-encoder layers. Per
 * request (cs_gen_params.loras) it runs as a side path of the layers it touches, only for
 * the batch rows of the jobs that asked for it, so jobs with different LoRAs share one
 * batched step and a job's image never depends on its companions. A LoRA name is a file
 * name in the model's LoRA folder ("name" or "name.safetensors"); files load lazily on
 * first use and stay cached in the model (thread-safe).
 */

/* Sets the folder LoRA names resolve in (must be a readable directory). Call before the
 * model is shared by threads. */
CS_API cs_status cs_model_set_lora_dir(cs_model *m, const char *dir, char *msg, size_t msg_size);
/* The LoRA names available (file names without ".safetensors"), sorted, in a malloc'd
 * NULL-terminated array; free it with cs_lora_list_free. An empty list without a folder. */
CS_API char **cs_lora_list(const cs_model *m, int *count);
CS_API void cs_lora_list_free(char **names);
/* Patches the model's weights once with LoRA `name` at `weight` (W += weight·(alpha/r)·
 * up·down, in double, stored as float): for a server that always applies one LoRA. Call
 * before the model is shared and before any prompt is encoded. */
CS_API cs_status cs_model_fuse_lora(cs_model *m, const char *name, double weight, char *msg,
                                    size_t msg_size);
/* Parses "NAME:WEIGHT" (command lines): the text after the last ':' is the weight when it
 * is a number, else the whole text is the name and the weight 1. name receives a copy. */
CS_API cs_status cs_lora_spec_parse(const char *text, char *name, size_t name_size,
                                    double *weight, char *msg, size_t msg_size);

typedef struct cs_session_params {
    int max_images;           /* images per UNet batch (CFG rows are twice this); default 4 */
    int max_width, max_height; /* largest image the session must hold; default native size */
    /* VAE tiling (diffusers' enable_tiling): images whose latent is larger than
     * vae_tile / f on a side are decoded in overlapping tiles of vae_tile pixels, so the
     * decoder's memory follows the tile, not the image. 0 = off (default); else a
     * multiple of 4·f (32 for SD). */
    int vae_tile;
} cs_session_params;

CS_API cs_session_params cs_session_default_params(const cs_model *m);

/* Plans and allocates the session's activation memory once (sp may be NULL). */
CS_API cs_status cs_session_new(const cs_model *m, const cs_session_params *sp, cs_session **out,
                                char *msg, size_t msg_size);
CS_API void cs_session_free(cs_session *s);
/* Bytes of activation memory the session holds. */
CS_API size_t cs_session_bytes(const cs_session *s);

/* Validates p, encodes the prompts (cached per model), draws the initial noise. With an
 * init_image it also encodes that image with the VAE and starts from it noised to the
 * strength's step (diffusers' img2img pipeline; with a mask its inpainting pipeline). */
CS_API cs_status cs_job_new(cs_session *s, const cs_gen_params *p, cs_job **out, char *msg,
                            size_t msg_size);
CS_API void cs_job_free(cs_job *j);

/* One denoising step for each of the n jobs, as one batched UNet call. Jobs that are done
 * are an error. All jobs must have the same image size and fit the session. */
CS_API cs_status cs_step(cs_session *s, cs_job *const *jobs, int n, char *msg, size_t msg_size);
CS_API int cs_job_step(const cs_job *j);   /* steps done */
/* Steps that run in all (the sampler may add one; img2img runs the schedule's last ones). */
CS_API int cs_job_steps(const cs_job *j);
CS_API int cs_job_done(const cs_job *j);   /* all steps done */
/* NULL, or why the job failed inside cs_step ("numerical error at step k ...": its latents
 * went NaN/Inf, e.g. through an overflowing LoRA). A failed job is refused by cs_step;
 * the other jobs of the batch go on unaffected. */
CS_API const char *cs_job_error(const cs_job *j);
CS_API int cs_job_num_images(const cs_job *j);
CS_API uint64_t cs_job_seed(const cs_job *j, int image);
/* Number of UNet rows the job's next step needs (0 when done). */
CS_API int cs_job_rows_next_step(const cs_job *j);

/* Decodes the latents of finished jobs (one batched VAE call per session-sized group). */
CS_API cs_status cs_decode(cs_session *s, cs_job *const *jobs, int n, char *msg, size_t msg_size);
/* After cs_decode: 8-bit RGB pixels (height rows of width*3 bytes) of image i, borrowed. */
CS_API const uint8_t *cs_job_rgb(const cs_job *j, int image, int *width, int *height);
/* After cs_decode: a PNG of image i with the parameters in a tEXt "parameters" chunk;
 * *png is malloc'd, the caller frees it. */
CS_API cs_status cs_job_png(const cs_job *j, int image, uint8_t **png, size_t *len, char *msg,
                            size_t msg_size);
/* The "parameters" text of image i (A1111 format), malloc'd; the caller frees it. */
CS_API char *cs_job_parameters_text(const cs_job *j, int image);

/* ---- step previews and early finish --------------------------------------------------
 *
 * Every step keeps the sampler's estimate of the clean image (x0, "pred_original_sample")
 * beside the latents; it is an output of the step only, so a job's numbers do not change.
 *
 * A preview is that estimate mapped to RGB by a per-model linear map (latent channels ->
 * RGB plus a bias) fitted by least squares against the model's own VAE the first time a
 * preview is asked for (a few small VAE decodes in s, then cached in the model; thread-
 * safe), sampled bilinearly from the latent grid to at most CS_PREVIEW_MAX_SIDE pixels on
 * the long side (never above the image size). It costs a few latent-sized passes and a
 * PNG encode, no VAE call. Before the first step the estimate is the start: the init
 * image's latents for img2img, the scaled noise otherwise.
 */
enum { CS_PREVIEW_MAX_SIDE = 256 };

/* 8-bit RGB preview of image i of j (*rgb malloc'd, *width x *height pixels). */
CS_API cs_status cs_job_preview(cs_session *s, const cs_job *j, int image, uint8_t **rgb,
                                int *width, int *height, char *msg, size_t msg_size);
/* The same as a PNG (*png malloc'd; the caller frees it). */
CS_API cs_status cs_job_preview_png(cs_session *s, const cs_job *j, int image, uint8_t **png,
                                    size_t *len, char *msg, size_t msg_size);
/* Ends j now: its latents become the current x0 estimate (for an inpainting job, blended
 * with the kept region) and it counts as done, so cs_decode gives the image it had reached
 * (what the web UI answers after an interrupt). A done job is left as it is. */
CS_API void cs_job_finish_early(cs_job *j);
/* 1 when cs_job_finish_early ended j before its last step. */
CS_API int cs_job_finished_early(const cs_job *j);

/* ---- image resizing ------------------------------------------------------------------ */

/* The A1111 web UI's img2img resize modes (its images.resize_image). */
typedef enum cs_resize_mode {
    CS_RESIZE_STRETCH = 0, /* "Just resize": to the target size, aspect not kept */
    CS_RESIZE_CROP = 1,    /* "Crop and resize": cover the target, crop the centre */
    CS_RESIZE_FILL = 2     /* "Resize and fill": fit inside, centred; the bands beside it
                              are the image's edge rows (columns) stretched across */
} cs_resize_mode;

/* Antialiased (Lanczos-3, widened when shrinking, as Pillow's LANCZOS) resize of src
 * (sh rows of sw·channels bytes, 1..4 channels) into dst (dh rows of dw·channels bytes).
 * Sides 1..16384. */
CS_API cs_status cs_image_resize(const uint8_t *src, int sw, int sh, int channels, uint8_t *dst,
                                 int dw, int dh, int mode, char *msg, size_t msg_size);

#ifdef __cplusplus
}
#endif
#endif /* CFGSERVE_H */
