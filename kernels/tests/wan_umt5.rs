//! The umT5 text encoder (`kernels::wan::Umt5Encoder`) against transformers 5.24.0's
//! `UMT5EncoderModel` and diffusers 0.42.1's `WanPipeline.encode_prompt` on the tiny
//! random-weight checkpoint in `model/wan/tiny/`: the goldens in
//! `model/wan/tiny-goldens.safetensors` were computed in f32 on the CPU by
//! `model/wan/make_tiny.py`. PyTorch's own CPU results move by up to ~5e-7 with where the
//! weights lie in memory, so the tolerance is 1e-5 absolute.

mod common;

use common::wan::{max_abs_diff, open_tiny as open, Goldens};
use kernels::wan::{prompt_embeds, relative_position_bucket, Umt5Encoder};

const TOLERANCE: f32 = 1e-5;

#[test]
fn encoder_matches_transformers_and_the_pipeline() {
    let ckpt = open();
    let encoder = Umt5Encoder::from_checkpoint(&ckpt).expect("encoder");
    let d = encoder.d_model();
    let goldens = Goldens::load();
    for key in ["en", "zh"] {
        let input = goldens.ids(&format!("{key}.input_ids"));
        let mask = goldens.ids(&format!("{key}.attention_mask"));
        assert_eq!(input.len(), 512);
        let hidden = encoder.encode(&input, &mask);
        assert_eq!(hidden.len(), 512 * d);
        let want = goldens.f32(&format!("{key}.last_hidden_state"));
        // Padding rows are computed (and nonzero) in the reference too.
        assert!(want[want.len() - d..].iter().any(|&v| v != 0.0), "{key}");
        let err = max_abs_diff(&hidden, &want);
        eprintln!("{key}.last_hidden_state: max abs error {err:e}");
        assert!(err <= TOLERANCE, "{key}.last_hidden_state off by {err}");

        let embeds = prompt_embeds(hidden, d, &mask);
        let want = goldens.f32(&format!("{key}.prompt_embeds"));
        let err = max_abs_diff(&embeds, &want);
        eprintln!("{key}.prompt_embeds: max abs error {err:e}");
        assert!(err <= TOLERANCE, "{key}.prompt_embeds off by {err}");
        let len = mask.iter().filter(|&&m| m != 0).count();
        assert!(embeds[len * d..].iter().all(|&v| v == 0.0), "{key}");
        assert!(
            embeds[(len - 1) * d..len * d].iter().any(|&v| v != 0.0),
            "{key}"
        );
    }
}

#[test]
fn negative_prompt_from_the_tokenizer_matches_the_pipeline() {
    // The empty negative prompt, tokenized here rather than read from the goldens: the
    // whole path from text to what the transformer sees.
    let ckpt = open();
    let encoder = Umt5Encoder::from_checkpoint(&ckpt).expect("encoder");
    let encoding = ckpt.tokenizer().encode("", true).expect("tokenize");
    let mut input: Vec<u32> = encoding.get_ids().to_vec();
    assert_eq!(input, vec![1], "the empty prompt is </s>");
    let mut mask = vec![1u32; input.len()];
    input.resize(512, 0);
    mask.resize(512, 0);
    let embeds = prompt_embeds(encoder.encode(&input, &mask), encoder.d_model(), &mask);
    let goldens = Goldens::load();
    let err = max_abs_diff(&embeds, &goldens.f32("negative.prompt_embeds"));
    eprintln!("negative.prompt_embeds: max abs error {err:e}");
    assert!(err <= TOLERANCE, "negative.prompt_embeds off by {err}");
}

#[test]
fn the_test_notices_a_missing_relative_bias() {
    // umT5 has a relative position bias in every block (T5 only in the first): dropping the
    // second block's moves the output far past the tolerance, as does dropping the mask.
    let ckpt = open();
    let goldens = Goldens::load();
    let input = goldens.ids("en.input_ids");
    let mask = goldens.ids("en.attention_mask");
    let want = goldens.f32("en.last_hidden_state");

    let mut encoder = Umt5Encoder::from_checkpoint(&ckpt).expect("encoder");
    encoder.zero_relative_bias(1);
    let err = max_abs_diff(&encoder.encode(&input, &mask), &want);
    eprintln!("without block 1's relative bias: max abs error {err:e}");
    assert!(err > 100.0 * TOLERANCE, "{err}");

    let encoder = Umt5Encoder::from_checkpoint(&ckpt).expect("encoder");
    let err = max_abs_diff(&encoder.encode(&input, &vec![1; mask.len()]), &want);
    eprintln!("without the mask: max abs error {err:e}");
    assert!(err > 100.0 * TOLERANCE, "{err}");
}

#[test]
fn buckets_are_t5s() {
    // umT5-xxl's 32 buckets, max distance 128, as transformers buckets them (bidirectional:
    // keys after the query in 16..32).
    let b = |r| relative_position_bucket(r, 32, 128);
    assert_eq!((b(0), b(-1), b(-7), b(1), b(7)), (0, 1, 7, 17, 23));
    // Log-spaced from 8 on: bucket 8 + floor(log(n / 8) / log(16) * 8).
    assert_eq!(
        (b(-8), b(-11), b(-12), b(-16), b(-32), b(-64)),
        (8, 8, 9, 10, 12, 14)
    );
    assert_eq!((b(-127), b(-128), b(-1000)), (15, 15, 15));
    assert_eq!((b(16), b(1000)), (26, 31));
    // The tiny checkpoint's 11 buckets, max distance 19: halves of 5, 2 exact.
    let t = |r| relative_position_bucket(r, 11, 19);
    let got: Vec<usize> = (-20..=20).map(t).collect();
    assert!(got.iter().all(|&x| x < 10), "{got:?}");
    assert_eq!((t(0), t(-1), t(-2), t(1), t(2), t(100)), (0, 1, 2, 6, 7, 9));
}
