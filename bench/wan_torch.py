"""The PyTorch (diffusers 0.42.1) side of the Wan2.1 benchmark, and its report.

  python3 bench/wan_torch.py make-mid DIR     a mid-size random-weight WanPipeline, saved
                                              with save_pretrained (reel loads the same files)
  python3 bench/wan_torch.py run --config tiny|mid|1.3b [--dir DIR] [--runs N] [--dtype f32|bf16]
                                              one JSON line per measurement, as
                                              bench/src/bin/wan_vs_torch.rs prints them
  python3 bench/wan_torch.py report FILE...   the Markdown table of both sides' lines

The shapes and components mirror wan_vs_torch.rs (see its header); `bench/wan_bench.sh`
runs everything. Threads: torch.set_num_threads(--threads), OMP_NUM_THREADS set by the
caller. Peak RSS is this process's ru_maxrss (VmHWM), so each configuration and dtype runs
in its own process.
"""

import argparse
import json
import math
import resource
import statistics
import sys
import time
from pathlib import Path

PROMPT = "A red fox runs through fresh snow at sunrise, cinematic, 4K."
TEXT_LEN = 512
# One 1.3B forward at 17 x 256 x 256 (1,280 tokens): torch's FLOP counter on the
# weightless model (docs FACTS, Wan2.1 section).
FLOPS_1_3B = 3.78e12

CONFIG_1_3B = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=12,
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=8960,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    image_dim=None,
    added_kv_proj_dim=None,
    rope_max_seq_len=1024,
)

# Transformer latent and VAE / end-to-end latent [C, F, H, W] per checkpoint config.
SHAPES = {
    "tiny": ((5, 2, 4, 6), (5, 2, 4, 6)),
    "mid": ((16, 3, 32, 32), (16, 3, 16, 16)),
}


def timed(runs, fn):
    """Median of `runs` timed calls after one untimed warm-up call, and every run."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median_low(times), times


def emit(side, config, component, detail, result):
    median, runs = result
    print(
        json.dumps(
            {
                "side": side,
                "config": config,
                "component": component,
                "detail": detail,
                "median_s": median,
                "runs_s": runs,
            }
        ),
        flush=True,
    )


def make_mid(out_dir: Path) -> None:
    import torch
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import T5Tokenizer, UMT5Config, UMT5EncoderModel

    torch.manual_seed(12)
    tiny = Path(__file__).resolve().parent.parent / "model" / "wan" / "tiny"
    tokenizer = T5Tokenizer.from_pretrained(str(tiny / "tokenizer"))
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=263,
            d_model=512,
            d_kv=64,
            d_ff=1024,
            num_layers=4,
            num_decoder_layers=4,
            num_heads=8,
            relative_attention_num_buckets=32,
            relative_attention_max_distance=128,
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
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=12,
        attention_head_dim=64,
        in_channels=16,
        out_channels=16,
        text_dim=512,
        freq_dim=256,
        ffn_dim=3072,
        num_layers=8,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
        image_dim=None,
        added_kv_proj_dim=None,
        rope_max_seq_len=1024,
    )
    vae = AutoencoderKLWan(
        base_dim=32,
        z_dim=16,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=2,
        attn_scales=[],
        temperal_downsample=[False, True, True],
        dropout=0.0,
    )
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        num_train_timesteps=1000,
        flow_shift=3.0,
    )
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        transformer=transformer,
        vae=vae,
        scheduler=scheduler,
    )
    pipe.save_pretrained(str(out_dir), safe_serialization=True)
    print(f"wrote {out_dir}", file=sys.stderr)


def values(shape, seed, dtype):
    import torch

    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen) * 2 - 1).to(dtype)


def run_checkpoint(config, directory, runs, side):
    import torch
    from diffusers import WanPipeline

    pipe = WanPipeline.from_pretrained(str(directory), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    tshape, vshape = SHAPES[config]
    tok = pipe.tokenizer(
        PROMPT,
        padding="max_length",
        max_length=TEXT_LEN,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    with torch.inference_mode():
        emit(
            side,
            config,
            "umt5",
            "encode 512 tokens",
            timed(runs, lambda: pipe.text_encoder(tok.input_ids, tok.attention_mask)),
        )
        embeds = pipe.encode_prompt(
            PROMPT, do_classifier_free_guidance=False, max_sequence_length=TEXT_LEN
        )[0]
        negative = values(embeds.shape, 2, torch.float32)
        latent = values((1, *tshape), 1, torch.float32)
        t1 = torch.tensor([500.0])

        def forward(x, t, e):
            return pipe.transformer(
                hidden_states=x, timestep=t, encoder_hidden_states=e, return_dict=False
            )[0]

        emit(
            side,
            config,
            "transformer",
            "forward, batch 1",
            timed(runs, lambda: forward(latent, t1, embeds)),
        )
        latent2 = torch.cat([latent, latent])
        embeds2 = torch.cat([embeds, negative])
        t2 = torch.tensor([500.0, 500.0])
        emit(
            side,
            config,
            "transformer_cfg",
            "forward, batch 2 (cond + uncond)",
            timed(runs, lambda: forward(latent2, t2, embeds2)),
        )
        z, frames, h, w = vshape
        video_latent = values((1, z, frames, h, w), 3, torch.float32)
        emit(
            side,
            config,
            "vae",
            "decode",
            timed(runs, lambda: pipe.vae.decode(video_latent, return_dict=False)),
        )
        scale = pipe.vae_scale_factor_spatial

        def generate():
            pipe(
                prompt=PROMPT,
                negative_prompt="",
                height=h * scale,
                width=w * scale,
                num_frames=1 + pipe.vae_scale_factor_temporal * (frames - 1),
                num_inference_steps=4,
                guidance_scale=5.0,
                latents=video_latent.clone(),
                max_sequence_length=TEXT_LEN,
                output_type="np",
            )

        emit(side, config, "end_to_end", "4 steps, CFG 5", timed(runs, generate))


def run_1_3b(runs, dtype, side):
    import torch
    from diffusers import WanTransformer3DModel
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    start = time.perf_counter()
    # Built on the meta device and allocated in `dtype` directly, so a bf16 run never holds
    # f32 weights (its peak RSS is the bf16 model's); the RoPE tables (buffers computed in
    # __init__, not parameters) are then built for real.
    with torch.device("meta"):
        model = WanTransformer3DModel(**CONFIG_1_3B).to(dtype)
    model = model.to_empty(device="cpu")
    model.rope = WanRotaryPosEmbed(128, (1, 2, 2), 1024)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            elif p.dim() >= 2 and not name.endswith("scale_shift_table"):
                bound = 1.0 / math.sqrt(p[0].numel())
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound)
            else:
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * 0.02)
    model.eval()
    print(f"built random 1.3B ({dtype}) in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    latent = values((1, 16, 5, 32, 32), 1, dtype)
    text = values((1, TEXT_LEN, 4096), 2, dtype)
    t = torch.tensor([500.0])
    with torch.inference_mode():
        result = timed(
            runs,
            lambda: model(
                hidden_states=latent, timestep=t, encoder_hidden_states=text, return_dict=False
            ),
        )
    emit(side, "1.3b", "transformer", f"forward, batch 1, 1280 tokens, {dtype}", result)


def run(args):
    import torch

    torch.set_num_threads(args.threads)
    side = "torch" if args.dtype == "f32" else "torch-bf16"
    if args.config == "1.3b":
        dtype = torch.float32 if args.dtype == "f32" else torch.bfloat16
        run_1_3b(args.runs, dtype, side)
    else:
        if args.dtype != "f32":
            sys.exit("--dtype bf16: only --config 1.3b")
        directory = args.dir or (Path(__file__).resolve().parent.parent / "model/wan/tiny")
        run_checkpoint(args.config, directory, args.runs, side)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "side": side,
                "config": args.config,
                "component": "peak_rss",
                "rss_kib": rss,
                "threads": torch.get_num_threads(),
            }
        )
    )


def report(files):
    rows = {}
    rss = {}
    for f in files:
        for line in Path(f).read_text().splitlines():
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r["component"] == "peak_rss":
                rss[(r["config"], r["side"])] = r["rss_kib"]
            else:
                rows.setdefault((r["config"], r["component"]), {})[r["side"]] = r
    print("| config | component | reel s | torch f32 s | torch f32 / reel | torch bf16 s | torch bf16 / reel |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (config, component), sides in rows.items():
        reel = sides.get("reel")

        def cell(side):
            r = sides.get(side)
            if r is None:
                return "", ""
            ratio = f"{r['median_s'] / reel['median_s']:.2f}" if reel else ""
            return f"{r['median_s']:.4g} ({len(r['runs_s'])})", ratio

        t32, r32 = cell("torch")
        t16, r16 = cell("torch-bf16")
        reel_s = f"{reel['median_s']:.4g} ({len(reel['runs_s'])})" if reel else ""
        print(f"| {config} | {component} | {reel_s} | {t32} | {r32} | {t16} | {r16} |")
    if ("1.3b", "transformer") in rows:
        print()
        print("| 1.3B forward, 1,280 tokens | median s | GFLOP/s (3.78 TFLOP) | peak RSS GiB |")
        print("|---|---:|---:|---:|")
        for side, sides in rows[("1.3b", "transformer")].items():
            s = sides["median_s"]
            mem = rss.get(("1.3b", side))
            mem = f"{mem / 2**20:.2f}" if mem else ""
            print(f"| {side} | {s:.4g} | {FLOPS_1_3B / s / 1e9:.0f} | {mem} |")
    print()
    print("| config | side | peak RSS MiB |")
    print("|---|---|---:|")
    for (config, side), kib in sorted(rss.items()):
        print(f"| {config} | {side} | {kib / 1024:.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mid = sub.add_parser("make-mid")
    mid.add_argument("dir", type=Path)
    r = sub.add_parser("run")
    r.add_argument("--config", required=True, choices=["tiny", "mid", "1.3b"])
    r.add_argument("--dir", type=Path)
    r.add_argument("--runs", type=int, default=5)
    r.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    r.add_argument("--threads", type=int, default=2)
    rep = sub.add_parser("report")
    rep.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.command == "make-mid":
        make_mid(args.dir)
    elif args.command == "run":
        run(args)
    else:
        report(args.files)


if __name__ == "__main__":
    main()
