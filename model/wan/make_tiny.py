#!/usr/bin/env python3
"""Builds reel's tiny random-weight Wan2.1 text-to-video pipeline and its golden tensors.

This script is the only thing that (re)generates:

  model/wan/tiny/                    a `WanPipeline` as diffusers 0.42.1 `save_pretrained`s
                                     it, in f32: model_index.json, scheduler/, text_encoder/
                                     (UMT5EncoderModel), tokenizer/ (T5Tokenizer from a
                                     locally trained SentencePiece unigram model),
                                     transformer/ (WanTransformer3DModel), vae/
                                     (AutoencoderKLWan, encoder included).
  model/wan/tiny-goldens.safetensors reference tensors for parity work (listed below); the
                                     prompts and shapes are in its metadata.

Run it from anywhere (paths are relative to this file), with the pinned packages installed
outside the repository, e.g.:

  pip install --target /var/tmp/reel-wan-py -r model/wan/requirements.txt
  PYTHONPATH=/var/tmp/reel-wan-py OMP_NUM_THREADS=1 python3 model/wan/make_tiny.py

It downloads nothing, takes about 10 s on one CPU thread and is deterministic: a rerun
rewrites byte-identical files (compare with `git status`). The goldens are computed from the
pipeline as `WanPipeline.from_pretrained` loads it back from model/wan/tiny/. PyTorch's CPU
results depend on where the weights lie in memory: the same weights built in this process
rather than memory-mapped from the files give a transformer.output up to 5e-7 away (2.9e-6
after the 4-step pipeline), so parity against these goldens needs a tolerance of that order.

The model is shaped like Wan2.1-T2V but tiny, with every dimension distinct where the
architecture allows it, so that a swapped or transposed axis cannot pass a parity test:

  tokenizer     SentencePiece unigram, nmt_nfkc, 250 pieces (pad 0, eos 1, unk 2) + 7
                <extra_id_*> = 257 tokens; trained on a fixed generated English/Chinese
                corpus.
  text_encoder  umT5: vocab 263, d_model 24, 3 heads x d_kv 7, d_ff 37, 2 layers,
                11 relative-position buckets, max distance 19 (transformers 5 writes
                tie_word_embeddings true, so the file holds `shared.weight` only).
  transformer   2 heads x 14 (width 28; RoPE splits a head as t 6, h 4, w 4), patch (1, 2, 3),
                5 latent channels in and out, text_dim 24, freq_dim 18, ffn 45, 3 blocks,
                cross-attention norm, qk rms_norm_across_heads.
  vae           base 3, dim_mult [1, 2, 3, 4] (widths 3, 6, 9, 12), 2 residual blocks per
                level (3 in the decoder), z 5, time halved at the 2nd and 3rd downsamplings
                (8x spatial, 4x temporal, as Wan2.1); random latents_mean / latents_std.
  scheduler     UniPCMultistepScheduler as Wan2.1 ships it (flow_prediction, flow sigmas,
                flow_shift 3.0, order 2, bh2).

Every parameter is random: the libraries' default init for weights and biases, then
every norm weight / gamma drawn as 1 + 0.2 * N(0, 1), every bias (norm biases included)
and every modulation table redrawn as 0.2 * N(0, 1), so no norm is the identity.

Goldens (f32 unless noted; "en" / "zh" are the two prompts in the metadata):

  {en,zh}.ids               int64 [n]: the tokenizer's ids with </s>, unpadded.
  {en,zh}.input_ids         int64 [1, 512]: padded to 512 as the pipeline pads them.
  {en,zh}.attention_mask    int64 [1, 512].
  {en,zh}.last_hidden_state [1, 512, 24]: UMT5EncoderModel(input_ids, attention_mask).
  {en,zh,negative}.prompt_embeds [1, 512, 24]: WanPipeline.encode_prompt's output (rows past
                            the prompt's length zeroed); "negative" is the empty prompt.
  transformer.latent        [1, 5, 2, 4, 6]: a fixed random latent (2 frames, 4 x 6).
  transformer.timestep      [1]: 750.
  transformer.output        [1, 5, 2, 4, 6]: transformer(latent, timestep, en.prompt_embeds).
  unipc4.timesteps          int64 [4]: set_timesteps(4) (999, 900, 750, 500).
  unipc4.sigmas             [5]: the matching sigmas, final 0 included.
  vae.latent                [1, 5, 2, 4, 6]: a fixed random (normalised) latent.
  vae.video                 [1, 3, 5, 32, 48]: vae.decode(latent / (1/std) + mean), in [-1, 1].
  vae3.latent               [1, 5, 3, 4, 6]: a longer random latent (three latent frames).
  vae3.video                [1, 3, 9, 32, 48]: its decode, as vae.video.
  pipeline.latents          [1, 5, 2, 4, 6]: the starting noise of the run below.
  pipeline.final_latents    [1, 5, 2, 4, 6]: WanPipeline(en, negative "", 32 x 48, 5 frames,
                            4 steps, guidance 5.0, latents given, output_type "latent"):
                            the denoised latent before the VAE (not de-normalised).
  pipeline.video            [1, 5, 32, 48, 3]: the same run with output_type "np" (frames,
                            height, width, RGB in [0, 1]).
  transformer.patch_embed   [1, 8, 28]: inside the transformer.output call: the patch
                            embedding's tokens (frame, row, column order),
  transformer.temb          [1, 28]: the time embedding (the output head's modulation input),
  transformer.timestep_proj [1, 168]: time_proj(silu(temb)), the blocks' 6 modulation rows,
  transformer.text_embeds   [1, 512, 28]: the text embedder's output,
  transformer.blocks        [3, 1, 8, 28]: each block's output.
  unipc4.step_latents       [4, 1, 5, 2, 4, 6]: the pipeline.final_latents run's latents after
                            each scheduler step (the last is pipeline.final_latents).
  euler2.timesteps          [2]: FlowMatchEulerDiscreteScheduler(shift 3.0).set_timesteps(2).
  euler2.sigmas             [3]: the matching sigmas, final 0 included.
  euler2.final_latents      [1, 5, 2, 4, 6]: the pipeline.final_latents run with that
                            scheduler and 2 steps.
  euler2.step_latents       [2, 1, 5, 2, 4, 6]: its latents after each step.
"""

import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

import sentencepiece as spm  # noqa: E402
from diffusers import (  # noqa: E402
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    UniPCMultistepScheduler,
    WanPipeline,
    WanTransformer3DModel,
)
from safetensors.torch import save_file  # noqa: E402
from transformers import T5Tokenizer, UMT5Config, UMT5EncoderModel  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "tiny"
GOLDENS = HERE / "tiny-goldens.safetensors"

SEED = 20261201
PROMPT_EN = "A red fox runs through fresh snow at sunrise, cinematic, 4K."
PROMPT_ZH = "一只红色的狐狸在日出时穿过新雪，电影感。"
MAX_SEQ = 512

SP_VOCAB = 250
EXTRA_IDS = 7

EN_WORDS = (
    "a an the red blue green white black small large old young fox cat dog bird horse fish "
    "runs walks flies swims jumps sleeps sits looks through over under across into near at "
    "fresh deep cold warm snow rain water river forest field city street mountain sky sea "
    "sunrise sunset night morning evening light shadow cinematic slow motion camera close "
    "wide shot view of with and in on is are video scene beautiful bright dark soft"
).split()
ZH_TEXT = (
    "一只红色蓝色绿色白色黑色的小大老狐狸猫狗鸟马鱼在跑走飞游跳睡坐看穿过越进入近日出日落"
    "时新雪雨水河森林田野城市街道山天空海光影电影感慢动作镜头特写远景美丽明亮黑暗柔和夜晚早晨"
)


def corpus(rng: random.Random) -> list[str]:
    """A fixed, generated bilingual corpus for the tokenizer."""
    lines = []
    zh = list(ZH_TEXT)
    for _ in range(3000):
        n = rng.randint(4, 14)
        words = [rng.choice(EN_WORDS) for _ in range(n)]
        line = " ".join(words)
        lines.append(line[0].upper() + line[1:] + rng.choice([".", ",", "!", "?"]))
        n = rng.randint(4, 18)
        lines.append("".join(rng.choice(zh) for _ in range(n)) + rng.choice(["。", "，"]))
    # Digits and a few frequent bigrams so the pieces are not all single characters.
    lines += [f"{i} frames at {j} fps" for i in range(10) for j in range(10)]
    lines += ["一只狐狸在雪中奔跑。", "日出时的电影感镜头。", "红色的狐狸穿过新雪。"] * 50
    return lines


def train_tokenizer(workdir: Path) -> T5Tokenizer:
    rng = random.Random(SEED)
    text = corpus(rng)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text),
        model_prefix=str(workdir / "spiece"),
        model_type="unigram",
        vocab_size=SP_VOCAB,
        normalization_rule_name="nmt_nfkc",
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        seed_sentencepiece_size=100000,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    return T5Tokenizer.from_pretrained(str(workdir), extra_ids=EXTRA_IDS)


def randomise_norms_and_biases(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Norm weights / gammas to 1 + 0.2 N(0,1); biases and modulation tables to 0.2 N(0,1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            is_norm = (
                "norm" in name.lower() and leaf in ("weight", "gamma")
            ) or leaf == "gamma"
            if is_norm:
                p.copy_(1.0 + 0.2 * noise)
            elif leaf == "bias" or leaf == "scale_shift_table":
                p.copy_(0.2 * noise)


def build(tokenizer: T5Tokenizer) -> WanPipeline:
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED + 1)

    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=263,
            d_model=24,
            d_kv=7,
            d_ff=37,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=3,
            relative_attention_num_buckets=11,
            relative_attention_max_distance=19,
            feed_forward_proj="gated-gelu",
            dense_act_fn="gelu_new",
            is_gated_act=True,
            layer_norm_epsilon=1e-6,
            scalable_attention=True,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
            tokenizer_class="T5Tokenizer",
        )
    )
    assert len(tokenizer) <= text_encoder.config.vocab_size, len(tokenizer)

    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 3),
        num_attention_heads=2,
        attention_head_dim=14,
        in_channels=5,
        out_channels=5,
        text_dim=24,
        freq_dim=18,
        ffn_dim=45,
        num_layers=3,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
        image_dim=None,
        added_kv_proj_dim=None,
        rope_max_seq_len=1024,
    )

    latents_mean = [round(x, 4) for x in (0.3 * torch.randn(5, generator=gen)).tolist()]
    latents_std = [round(x, 4) for x in (0.5 + torch.rand(5, generator=gen) * 2.0).tolist()]
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=5,
        dim_mult=[1, 2, 3, 4],
        num_res_blocks=2,
        attn_scales=[],
        temperal_downsample=[False, True, True],
        dropout=0.0,
        latents_mean=latents_mean,
        latents_std=latents_std,
    )

    for model in (text_encoder, transformer, vae):
        randomise_norms_and_biases(model, gen)
        model.eval()

    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        num_train_timesteps=1000,
        flow_shift=3.0,
    )
    return WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        transformer=transformer,
        vae=vae,
        scheduler=scheduler,
    )


@torch.no_grad()
def goldens(pipe: WanPipeline) -> tuple[dict, dict]:
    g: dict[str, torch.Tensor] = {}
    for key, prompt in (("en", PROMPT_EN), ("zh", PROMPT_ZH)):
        g[f"{key}.ids"] = torch.tensor(pipe.tokenizer(prompt).input_ids, dtype=torch.int64)
        inputs = pipe.tokenizer(
            [prompt],
            padding="max_length",
            max_length=MAX_SEQ,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        g[f"{key}.input_ids"] = inputs.input_ids.to(torch.int64)
        g[f"{key}.attention_mask"] = inputs.attention_mask.to(torch.int64)
        g[f"{key}.last_hidden_state"] = pipe.text_encoder(
            inputs.input_ids, inputs.attention_mask
        ).last_hidden_state
    for key, prompt in (("en", PROMPT_EN), ("zh", PROMPT_ZH), ("negative", "")):
        embeds, _ = pipe.encode_prompt(
            prompt,
            do_classifier_free_guidance=False,
            max_sequence_length=MAX_SEQ,
            device=torch.device("cpu"),
        )
        g[f"{key}.prompt_embeds"] = embeds

    gen = torch.Generator().manual_seed(SEED + 2)
    latent = torch.randn(1, 5, 2, 4, 6, generator=gen)
    timestep = torch.tensor([750.0])
    g["transformer.latent"] = latent
    g["transformer.timestep"] = timestep
    g["transformer.output"] = pipe.transformer(
        hidden_states=latent,
        timestep=timestep,
        encoder_hidden_states=g["en.prompt_embeds"],
        return_dict=False,
    )[0]

    sched = UniPCMultistepScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(4)
    g["unipc4.timesteps"] = sched.timesteps.to(torch.int64)
    g["unipc4.sigmas"] = sched.sigmas.to(torch.float32)

    vae_latent = torch.randn(1, 5, 2, 4, 6, generator=gen)
    mean = torch.tensor(pipe.vae.config.latents_mean).view(1, 5, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(pipe.vae.config.latents_std).view(1, 5, 1, 1, 1)
    g["vae.latent"] = vae_latent
    g["vae.video"] = pipe.vae.decode(vae_latent / inv_std + mean, return_dict=False)[0]
    # Three latent frames: from the third on, the temporal upsamplers' caches hold real frames
    # (the two-frame latent above only reaches their first-frame and 'Rep' cases). Its own
    # generator, so the goldens drawn after it stay as they were.
    long_latent = torch.randn(1, 5, 3, 4, 6, generator=torch.Generator().manual_seed(SEED + 3))
    g["vae3.latent"] = long_latent
    g["vae3.video"] = pipe.vae.decode(long_latent / inv_std + mean, return_dict=False)[0]

    start = torch.randn(1, 5, 2, 4, 6, generator=gen)
    g["pipeline.latents"] = start

    def run(output_type: str):
        return pipe(
            prompt=PROMPT_EN,
            negative_prompt="",
            height=32,
            width=48,
            num_frames=5,
            num_inference_steps=4,
            guidance_scale=5.0,
            latents=start.clone(),
            max_sequence_length=MAX_SEQ,
            output_type=output_type,
        ).frames

    g["pipeline.final_latents"] = run("latent")
    g["pipeline.video"] = torch.from_numpy(np.asarray(run("np"), dtype=np.float32))

    # Added after the goldens above, so that none of them changes: the transformer's
    # intermediates for the transformer.output call, each step of the pipeline run, and the
    # same run with FlowMatchEuler (2 steps).
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        pipe.transformer.patch_embedding.register_forward_hook(
            lambda m, i, o: seen.__setitem__("patch_embed", o.flatten(2).transpose(1, 2))
        ),
        pipe.transformer.condition_embedder.register_forward_hook(
            lambda m, i, o: seen.update(temb=o[0], timestep_proj=o[1], text_embeds=o[2])
        ),
    ]
    for n, block in enumerate(pipe.transformer.blocks):
        hooks.append(
            block.register_forward_hook(
                lambda m, i, o, n=n: seen.__setitem__(f"block{n}", o)
            )
        )
    again = pipe.transformer(
        hidden_states=latent,
        timestep=timestep,
        encoder_hidden_states=g["en.prompt_embeds"],
        return_dict=False,
    )[0]
    for h in hooks:
        h.remove()
    assert torch.equal(again, g["transformer.output"])
    g["transformer.patch_embed"] = seen["patch_embed"]
    g["transformer.temb"] = seen["temb"]
    g["transformer.timestep_proj"] = seen["timestep_proj"]
    g["transformer.text_embeds"] = seen["text_embeds"]
    g["transformer.blocks"] = torch.stack(
        [seen[f"block{n}"] for n in range(len(pipe.transformer.blocks))]
    )

    def steps(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The pipeline run above with `pipe.scheduler`, `n` steps: (final latents, the
        latents after each step stacked)."""
        after = []

        def keep(p, i, t, kw):
            after.append(kw["latents"].clone())
            return {}

        final = pipe(
            prompt=PROMPT_EN,
            negative_prompt="",
            height=32,
            width=48,
            num_frames=5,
            num_inference_steps=n,
            guidance_scale=5.0,
            latents=start.clone(),
            max_sequence_length=MAX_SEQ,
            output_type="latent",
            callback_on_step_end=keep,
            callback_on_step_end_tensor_inputs=["latents"],
        ).frames
        return final, torch.stack(after)

    final, after = steps(4)
    assert torch.equal(final, g["pipeline.final_latents"])
    g["unipc4.step_latents"] = after

    unipc = pipe.scheduler
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    sched = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(2)
    g["euler2.timesteps"] = sched.timesteps.to(torch.float32)
    g["euler2.sigmas"] = sched.sigmas.to(torch.float32)
    g["euler2.final_latents"], g["euler2.step_latents"] = steps(2)
    pipe.scheduler = unipc

    g = {k: v.detach().contiguous() for k, v in g.items()}
    for k, v in g.items():
        if v.is_floating_point():
            g[k] = v.to(torch.float32)
    meta = {
        "prompt.en": PROMPT_EN,
        "prompt.zh": PROMPT_ZH,
        "prompt.negative": "",
        "max_sequence_length": str(MAX_SEQ),
        "pipeline": "height 32, width 48, num_frames 5, steps 4, guidance 5.0",
        "seed": str(SEED),
        "made_by": "model/wan/make_tiny.py",
    }
    return g, meta


def save_sorted(tensors: dict, path: Path, metadata: dict) -> None:
    """save_file, then the header's metadata in sorted order: safetensors keeps it in a hash
    map, so its order (and the file's bytes) would otherwise change from run to run."""
    save_file(tensors, str(path), metadata=metadata)
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(text) <= n, (len(text), n)
    data[8 : 8 + n] = text + b" " * (n - len(text))
    path.write_bytes(bytes(data))


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(Path(tmp))
    pipe = build(tokenizer)
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)  # no stale files from an earlier layout
    pipe.save_pretrained(str(OUT_DIR), safe_serialization=True)
    # The goldens come from the pipeline as loaded back from disk, so they hold for the files
    # (tokenizer.json, safetensors) rather than for objects that only lived in this process.
    saved = WanPipeline.from_pretrained(str(OUT_DIR), torch_dtype=torch.float32)
    tensors, meta = goldens(saved)
    save_sorted(tensors, GOLDENS, meta)
    for k, v in tensors.items():
        print(f"{k:32} {str(v.dtype):14} {list(v.shape)}")
    print(f"tokenizer: {len(tokenizer)} tokens; wrote {OUT_DIR} and {GOLDENS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
