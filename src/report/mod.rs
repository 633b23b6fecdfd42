//! Run reports and comparisons people would rather read than JSON. The report stage renders figures
//! from what the pipeline produced (`figures`); after the run, `runs/<id>/report/report.md` embeds them
//! with every number taken from the run record (`markdown`); `pipe compare` writes `compare.md` with
//! overlaid validation curves (`compare`).

pub mod compare;
pub mod figures;
pub mod history;
pub mod markdown;
pub mod sweep;
