//! The benchmark report: measure a bounded set of scenarios ([`results`]), name its figures
//! for the baseline ([`figures`]), judge the original targets and the goals
//! ([`verdicts`]), draw SVG plots ([`plots`]), write Markdown ([`markdown`]) and check against
//! a stored baseline ([`gate`]); set reel beside its peer stack ([`peer`]).

pub mod figures;
pub mod gate;
pub mod machine;
pub mod markdown;
pub mod peer;
pub mod plots;
pub mod results;
pub mod verdicts;
