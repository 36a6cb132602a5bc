//! "Fast start": move the `moov` box in front of `mdat`.
//!
//! The mp4 writer appends `moov` after the media data, so a browser would need the whole file
//! before it could start playing. Moving `moov` forward shifts the media data by `moov`'s size,
//! so every chunk offset (`stco`/`co64`) in it grows by that much; the size of `moov` itself
//! does not change, because the offsets keep their width.

use std::io::Cursor;

use anyhow::{anyhow, ensure, Context as _, Result};
use mp4::{BoxHeader, BoxType, MoovBox, ReadBox, WriteBox};

/// Top-level boxes as (type, start, end) byte ranges.
fn top_level(file: &[u8]) -> Result<Vec<(BoxType, usize, usize)>> {
    let mut boxes = Vec::new();
    let mut at = 0usize;
    while at < file.len() {
        let mut cursor = Cursor::new(&file[at..]);
        let header = BoxHeader::read(&mut cursor).context("reading a box header")?;
        // mp4 reports a 64-bit size less the 8 bytes of the size field itself.
        let size = match cursor.position() {
            16 => header.size + 8,
            _ => header.size,
        } as usize;
        let size = if size == 0 { file.len() - at } else { size };
        ensure!(
            size >= 8 && at + size <= file.len(),
            "box {:?} overruns the file",
            header.name
        );
        boxes.push((header.name, at, at + size));
        at += size;
    }
    Ok(boxes)
}

/// Rewrites an MP4 so that `moov` precedes `mdat`; files already in that order come back as is.
pub(crate) fn moov_first(file: &[u8]) -> Result<Vec<u8>> {
    let boxes = top_level(file)?;
    let find = |kind| boxes.iter().position(|b| b.0 == kind);
    let moov_at = find(BoxType::MoovBox).ok_or_else(|| anyhow!("no moov box"))?;
    let mdat_at = find(BoxType::MdatBox).ok_or_else(|| anyhow!("no mdat box"))?;
    if moov_at < mdat_at {
        return Ok(file.to_vec());
    }
    let (_, start, end) = boxes[moov_at];
    let shift = (end - start) as u64;

    let mut cursor = Cursor::new(&file[start..end]);
    let header = BoxHeader::read(&mut cursor)?;
    let mut moov = MoovBox::read_box(&mut cursor, header.size)?;
    for trak in &mut moov.traks {
        let stbl = &mut trak.mdia.minf.stbl;
        if let Some(stco) = &mut stbl.stco {
            for offset in &mut stco.entries {
                *offset =
                    u32::try_from(*offset as u64 + shift).context("chunk offset past 4 GiB")?;
            }
        }
        if let Some(co64) = &mut stbl.co64 {
            co64.entries.iter_mut().for_each(|offset| *offset += shift);
        }
    }
    let mut moved = Vec::with_capacity(end - start);
    moov.write_box(&mut moved)?;
    ensure!(
        moved.len() as u64 == shift,
        "moov changed size when rewritten ({} -> {})",
        shift,
        moved.len()
    );

    let mut out = Vec::with_capacity(file.len());
    for (i, &(_, s, e)) in boxes.iter().enumerate() {
        if i == mdat_at {
            out.extend_from_slice(&moved);
        }
        if i != moov_at {
            out.extend_from_slice(&file[s..e]);
        }
    }
    Ok(out)
}
