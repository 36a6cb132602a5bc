//! Caption -> token ids, as `tokenize` in model/net.py: whitespace split, each word looked up
//! in the checkpoint's vocabulary, padded with 0 to `max_tokens`. An unknown word is an error
//! (the planner must only emit vocabulary words), never silently dropped.

use std::collections::HashMap;

use crate::error::KernelError;

pub struct Tokenizer {
    index: HashMap<String, usize>,
    max_tokens: usize,
}

impl Tokenizer {
    pub fn new(vocab: &[String], max_tokens: usize) -> Tokenizer {
        // Like the Python dict comprehension: a repeated word maps to its last index.
        let index = vocab
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i))
            .collect();
        Tokenizer { index, max_tokens }
    }

    pub fn encode(&self, caption: &str) -> Result<Vec<usize>, KernelError> {
        let mut ids = caption
            .split_whitespace()
            .map(|w| {
                self.index
                    .get(w)
                    .copied()
                    .ok_or_else(|| KernelError::UnknownWord {
                        word: w.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if ids.len() > self.max_tokens {
            return Err(KernelError::TooManyTokens {
                count: ids.len(),
                max: self.max_tokens,
            });
        }
        ids.resize(self.max_tokens, 0);
        Ok(ids)
    }

    /// The unconditional caption: all padding.
    pub fn null(&self) -> Vec<usize> {
        vec![0; self.max_tokens]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok() -> Tokenizer {
        let vocab: Vec<String> = ["<pad>", "a", "red", "circle"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        Tokenizer::new(&vocab, 4)
    }

    #[test]
    fn encodes_and_pads() {
        assert_eq!(tok().encode("  a red\tcircle ").unwrap(), [1, 2, 3, 0]);
        assert_eq!(tok().encode("").unwrap(), tok().null());
    }

    #[test]
    fn rejects_unknown_and_long_captions() {
        assert!(
            matches!(tok().encode("a blue circle"), Err(KernelError::UnknownWord { word }) if word == "blue")
        );
        assert!(matches!(
            tok().encode("a a a a a"),
            Err(KernelError::TooManyTokens { count: 5, max: 4 })
        ));
    }
}
