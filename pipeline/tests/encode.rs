//! Encoders: the MP4 parses back (mp4 crate) with the right frames, duration and size and with
//! `moov` before `mdat`; ffprobe and ffmpeg (installed by ./test.sh) confirm H.264 Constrained
//! Baseline yuv420p with every frame and decode colours close to the input. PNG comes out
//! whole.

use std::io::Cursor;
use std::process::Command;

use pipeline::encode::{png_rgb, Mp4Encoder};
use pipeline::post::yuv::rgb_to_yuv420;
use pipeline::post::Yuv420;

const W: usize = 96;
const FPS: u32 = 24;
const FRAMES: usize = 30;

/// A moving two-colour square on a flat background, RGB8, `W` x `W`.
fn frame(i: usize) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(W * W * 3);
    for y in 0..W {
        for x in 0..W {
            let inside = (10 + i..40 + i).contains(&x) && (30..60).contains(&y);
            let c = match (inside, x < 25 + i) {
                (true, true) => [230, 50, 50],
                (true, false) => [50, 90, 230],
                (false, _) => [225, 210, 170],
            };
            rgb.extend_from_slice(&c);
        }
    }
    rgb
}

fn encode(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut enc = Mp4Encoder::new(W as u32, W as u32, FPS).expect("encoder");
    for f in frames {
        enc.push(&rgb_to_yuv420(f, W, W)).expect("push");
    }
    assert_eq!(enc.frames(), frames.len());
    enc.finish().expect("finish")
}

/// Top-level box types in file order.
fn top_level(file: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= file.len() {
        let size = u32::from_be_bytes(file[at..at + 4].try_into().expect("4 bytes")) as usize;
        out.push(String::from_utf8_lossy(&file[at + 4..at + 8]).into_owned());
        assert!(size >= 8, "bad box size {size}");
        at += size;
    }
    assert_eq!(at, file.len(), "boxes do not tile the file");
    out
}

/// Panics unless `name` runs: the check below needs it (./test.sh installs ffmpeg).
fn require_tool(name: &str) {
    let found = Command::new(name)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} not found on PATH: run the tests through ./test.sh, which installs ffmpeg"
    );
}

#[test]
fn mp4_parses_back_with_frames_duration_and_size() {
    let frames: Vec<Vec<u8>> = (0..FRAMES).map(frame).collect();
    let mp4 = encode(&frames);
    eprintln!("{FRAMES} frames of {W}x{W}: {} bytes", mp4.len());

    let boxes = top_level(&mp4);
    let pos = |t: &str| {
        boxes
            .iter()
            .position(|b| b == t)
            .unwrap_or_else(|| panic!("no {t} in {boxes:?}"))
    };
    assert_eq!(pos("ftyp"), 0);
    assert!(
        pos("moov") < pos("mdat"),
        "moov must precede mdat for progressive playback: {boxes:?}"
    );

    let mut reader =
        mp4::Mp4Reader::read_header(Cursor::new(&mp4), mp4.len() as u64).expect("mp4 parses");
    assert_eq!(reader.tracks().len(), 1);
    let track = reader.tracks().get(&1).expect("track 1");
    assert_eq!(
        track.media_type().expect("media type"),
        mp4::MediaType::H264
    );
    assert_eq!((track.width() as usize, track.height() as usize), (W, W));
    assert_eq!(track.sample_count() as usize, FRAMES);
    let expected = FRAMES as f64 / FPS as f64;
    assert!(
        (track.duration().as_secs_f64() - expected).abs() < 1e-3,
        "track lasts {:?}",
        track.duration()
    );
    assert!(
        (reader.duration().as_secs_f64() - expected).abs() < 1e-3,
        "movie lasts {:?}",
        reader.duration()
    );
    assert!(
        (track.frame_rate() - FPS as f64).abs() < 1e-3,
        "frame rate {}",
        track.frame_rate()
    );
    for i in 1..=FRAMES as u32 {
        let sample = reader
            .read_sample(1, i)
            .expect("sample reads")
            .expect("sample exists");
        assert!(!sample.bytes.is_empty());
        assert_eq!(
            sample.is_sync,
            i == 1,
            "only the first of {FRAMES} frames is a key frame"
        );
        // Length-prefixed NAL units that tile the sample exactly.
        let mut at = 0;
        while at < sample.bytes.len() {
            let n =
                u32::from_be_bytes(sample.bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
            at += 4 + n;
        }
        assert_eq!(
            at,
            sample.bytes.len(),
            "sample {i} is not length-prefixed NAL units"
        );
    }
}

#[test]
fn ffprobe_sees_constrained_baseline_yuv420p_and_ffmpeg_decodes_the_colours() {
    require_tool("ffprobe");
    require_tool("ffmpeg");
    let frames: Vec<Vec<u8>> = (0..FRAMES).map(frame).collect();
    let dir = std::env::temp_dir().join(format!("reel-encode-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("clip.mp4");
    std::fs::write(&path, encode(&frames)).expect("write mp4");

    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
        ])
        .arg("stream=codec_name,profile,pix_fmt,width,height,nb_read_frames,avg_frame_rate")
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(&path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    for line in [
        "codec_name=h264".to_string(),
        "profile=Constrained Baseline".to_string(),
        "pix_fmt=yuv420p".to_string(),
        format!("width={W}"),
        format!("height={W}"),
        format!("nb_read_frames={FRAMES}"),
        format!("avg_frame_rate={FPS}/1"),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "ffprobe does not report {line:?}:\n{text}"
        );
    }

    let decoded = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        decoded.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    assert_eq!(decoded.stdout.len(), FRAMES * W * W * 3);
    for (i, (got, want)) in decoded
        .stdout
        .chunks_exact(W * W * 3)
        .zip(&frames)
        .enumerate()
    {
        let mean = got
            .iter()
            .zip(want)
            .map(|(a, b)| a.abs_diff(*b) as f64)
            .sum::<f64>()
            / want.len() as f64;
        assert!(
            mean < 4.0,
            "frame {i} decodes {mean:.2} off on average (colour matrix or range wrong?)"
        );
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn encoder_rejects_what_it_cannot_encode() {
    assert!(Mp4Encoder::new(95, 96, FPS).is_err(), "odd width");
    assert!(Mp4Encoder::new(96, 96, 0).is_err(), "zero fps");
    let mut enc = Mp4Encoder::new(96, 96, FPS).expect("encoder");
    let small = Yuv420 {
        width: 64,
        height: 64,
        y: vec![16; 64 * 64],
        u: vec![128; 32 * 32],
        v: vec![128; 32 * 32],
    };
    assert!(enc.push(&small).is_err(), "wrong size");
    let torn = Yuv420 {
        width: 96,
        height: 96,
        y: vec![16; 10],
        u: vec![128; 48 * 48],
        v: vec![128; 48 * 48],
    };
    assert!(enc.push(&torn).is_err(), "short plane");
    assert!(enc.finish().is_err(), "no frames");
}

#[test]
fn png_comes_out_whole() {
    let rgb = frame(3);
    let png_bytes = png_rgb(W as u32, W as u32, &rgb).expect("png");
    let mut reader = png::Decoder::new(Cursor::new(&png_bytes))
        .read_info()
        .expect("png header");
    let mut back = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut back).expect("png data");
    assert_eq!(
        (info.width, info.height, info.color_type),
        (W as u32, W as u32, png::ColorType::Rgb)
    );
    assert_eq!(&back[..info.buffer_size()], &rgb[..]);

    assert!(png_rgb(W as u32, W as u32, &rgb[1..]).is_err());
}
