//! A run's training history as its report kept it (`runs/<id>/report/history.*`), read back for the
//! validation curves that comparisons and sweeps draw.

use std::path::Path;

use crate::plot::curves::{self, Panel, Series};
use crate::tables::Table;

/// The validation columns of a kept history, one value per epoch.
pub struct History {
    /// The epochs, from 1.
    pub epochs: Vec<f64>,
    /// Validation loss at each epoch.
    pub val_loss: Vec<f64>,
    /// Validation accuracy at each epoch.
    pub val_accuracy: Vec<f64>,
}

/// The history in `folder` (a run's report), or `None` when it kept none. An unreadable one is a
/// warning naming `run`: one run's history leaves it out of the curves, not out of the report.
pub fn kept(folder: &Path, run: &str) -> Option<History> {
    let file = ["history.parquet", "history.csv"]
        .iter()
        .map(|f| folder.join(f))
        .find(|f| f.is_file())?;
    let columns = Table::read(&file).and_then(|t| {
        Ok(History {
            epochs: t.float("epoch")?,
            val_loss: t.float("val_loss")?,
            val_accuracy: t.float("val_accuracy")?,
        })
    });
    match columns {
        Ok(history) => Some(history),
        Err(e) => {
            eprintln!("warning: run {run} is left out of the curves: {e:#}");
            None
        }
    }
}

/// Draws validation loss and accuracy side by side.
pub fn draw_validation(
    path: &Path,
    loss: Vec<Series>,
    accuracy: Vec<Series>,
) -> anyhow::Result<()> {
    let panel = |title: &str, y: &str, series, range| Panel {
        title: title.into(),
        y_label: y.into(),
        series,
        markers: Vec::new(),
        x_axis: ("epoch".into(), 0),
        y_range: range,
    };
    curves::draw(
        path,
        &[
            panel("Validation loss", "binary cross-entropy", loss, None),
            panel(
                "Validation accuracy",
                "accuracy",
                accuracy,
                Some((0.0, 1.02)),
            ),
        ],
    )
}
