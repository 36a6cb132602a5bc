//! Prompt text -> scene segments of matched terms.
//!
//! The text is lowercased and cut into runs: English words (whole words only; a hyphen or
//! apostrophe between letters stays inside the run), Chinese characters, and single symbol or
//! punctuation characters. Word runs are matched by the longest listed phrase, Chinese runs by
//! the longest listed string. Sentence ends (`.`, `!`, `?`, `。`...), semicolons, line breaks
//! and break words (`then`, `然后`...) end a segment; a comma does not.

use super::lexicon::{self, Meaning, MAX_HAN_CHARS, MAX_PHRASE_WORDS};

/// One position of a segment: a matched term, or anything unmatched (which keeps terms on
/// either side of it from counting as adjacent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    Term(Meaning),
    Other,
}

/// The segments of a prompt, in order; empty segments are dropped.
pub fn segments(prompt: &str) -> Vec<Vec<Item>> {
    let mut out = Segments::default();
    let chars: Vec<char> = prompt.to_lowercase().chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_han(c) {
            let end = run_end(&chars, i, is_han);
            match_han(&chars[i..end], &mut out);
            i = end;
        } else if is_word_char(c) {
            let end = word_run_end(&chars, i);
            match_words(&chars[i..end], &mut out);
            i = end;
        } else {
            if ends_sentence(&chars, i) {
                out.cut();
            } else if let Some(m) = lexicon::symbol(c) {
                out.push(Item::Term(m));
            } else if matches!(c, ':' | '：' | '=' | '-') {
                out.push(Item::Term(Meaning::Link));
            } else if !c.is_whitespace() && !is_invisible(c) {
                out.push(Item::Other);
            }
            i += 1;
        }
    }
    out.finish()
}

#[derive(Default)]
struct Segments {
    done: Vec<Vec<Item>>,
    current: Vec<Item>,
}

impl Segments {
    fn push(&mut self, item: Item) {
        if item == Item::Term(Meaning::Break) {
            self.cut();
        } else {
            self.current.push(item);
        }
    }

    fn cut(&mut self) {
        if self.current.iter().any(|it| matches!(it, Item::Term(_))) {
            self.done.push(std::mem::take(&mut self.current));
        } else {
            self.current.clear();
        }
    }

    fn finish(mut self) -> Vec<Vec<Item>> {
        self.cut();
        self.done
    }
}

fn is_han(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}')
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && !is_han(c)
}

/// Variation selectors and joiners that ride on emoji.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{200B}'..='\u{200D}')
}

fn ends_sentence(chars: &[char], i: usize) -> bool {
    match chars[i] {
        // `2.5` or `e.g` keep their dot; a dot before a space, symbol or the end ends a sentence.
        '.' => !chars.get(i + 1).is_some_and(|&c| c.is_alphanumeric()),
        '!' | '?' | ';' | '。' | '！' | '？' | '；' | '…' | '\n' | '\r' => true,
        _ => false,
    }
}

fn run_end(chars: &[char], start: usize, keep: impl Fn(char) -> bool) -> usize {
    start + chars[start..].iter().take_while(|&&c| keep(c)).count()
}

/// End of a run of words: words separated by spaces, with `-` or `'` joining letters.
fn word_run_end(chars: &[char], start: usize) -> usize {
    let mut end = start;
    let mut i = start;
    while i < chars.len() {
        let c = chars[i];
        let joins = matches!(c, '-' | '\'' | '’')
            && i > start
            && is_word_char(chars[i - 1])
            && chars.get(i + 1).is_some_and(|&n| is_word_char(n));
        if is_word_char(c) || joins {
            i += 1;
            end = i;
        } else if c == ' ' || c == '\t' {
            i += 1;
        } else {
            break;
        }
    }
    end
}

fn match_words(run: &[char], out: &mut Segments) {
    let text: String = run.iter().collect();
    let text = text.replace('’', "'");
    // A hyphen joins words of one phrase (`off-white`, `mid-sized`); an apostrophe stays in
    // its word (`doesn't`).
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '-')
        .filter(|w| !w.is_empty())
        .map(lexicon::fold)
        .collect();
    let mut i = 0;
    while i < words.len() {
        let longest = (1..=MAX_PHRASE_WORDS.min(words.len() - i))
            .rev()
            .find_map(|n| lexicon::english(&words[i..i + n].join(" ")).map(|m| (n, m)));
        match longest {
            Some((n, meaning)) => {
                out.push(Item::Term(meaning));
                i += n;
            }
            None => {
                out.push(Item::Other);
                i += 1;
            }
        }
    }
}

fn match_han(run: &[char], out: &mut Segments) {
    let mut i = 0;
    while i < run.len() {
        let longest = (1..=MAX_HAN_CHARS.min(run.len() - i)).rev().find_map(|n| {
            let s: String = run[i..i + n].iter().collect();
            lexicon::chinese(&s).map(|m| (n, m))
        });
        match longest {
            Some((n, meaning)) => {
                out.push(Item::Term(meaning));
                i += n;
            }
            None => {
                out.push(Item::Other);
                i += 1;
            }
        }
    }
}
