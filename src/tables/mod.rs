//! Reading and writing the tables stages exchange (polars DataFrames): each table is written as Parquet
//! for programs and as CSV beside it for people, and read back with errors that name the file and column.

pub mod image_rows;

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use polars::prelude::{
    Column, CsvReadOptions, CsvWriter, DataFrame, DataType, ParquetReader, ParquetWriter,
    PolarsResult, SerReader, SerWriter,
};

/// Writes `frame` as `<dir>/<name>.parquet` and `<dir>/<name>.csv`.
pub fn write(frame: &mut DataFrame, dir: &Path, name: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let parquet = dir.join(format!("{name}.parquet"));
    let file =
        File::create(&parquet).with_context(|| format!("cannot create `{}`", parquet.display()))?;
    ParquetWriter::new(file)
        .finish(frame)
        .with_context(|| format!("cannot write `{}`", parquet.display()))?;
    write_csv(frame, &dir.join(format!("{name}.csv")))
}

/// Writes `frame` as CSV only.
pub fn write_csv(frame: &mut DataFrame, path: &Path) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create `{}`", path.display()))?;
    CsvWriter::new(file)
        .finish(frame)
        .with_context(|| format!("cannot write `{}`", path.display()))
}

/// A table read from a file, remembered with its path for error messages.
pub struct Table {
    frame: DataFrame,
    file: PathBuf,
}

impl Table {
    /// Reads a Parquet file.
    pub fn parquet(path: &Path) -> anyhow::Result<Table> {
        let file =
            File::open(path).with_context(|| format!("cannot open table `{}`", path.display()))?;
        let frame = ParquetReader::new(file)
            .finish()
            .with_context(|| format!("`{}` is not a readable Parquet table", path.display()))?;
        Ok(Table {
            frame,
            file: path.to_path_buf(),
        })
    }

    /// Reads a table by its extension: `.parquet`, or CSV otherwise.
    pub fn read(path: &Path) -> anyhow::Result<Table> {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
        {
            Table::parquet(path)
        } else {
            Table::csv(path)
        }
    }

    /// Reads a CSV file with a header, every column as text.
    pub fn csv(path: &Path) -> anyhow::Result<Table> {
        let frame = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|reader| reader.finish())
            .with_context(|| format!("`{}` is not a readable CSV table", path.display()))?;
        Ok(Table {
            frame,
            file: path.to_path_buf(),
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.frame.height()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the table has a column `name`.
    pub fn has(&self, name: &str) -> bool {
        self.frame.column(name).is_ok()
    }

    fn column(&self, name: &str) -> anyhow::Result<&Column> {
        match self.frame.column(name) {
            Ok(c) => Ok(c),
            Err(_) => {
                let names: Vec<String> = self
                    .frame
                    .get_column_names()
                    .iter()
                    .map(|n| n.to_string())
                    .collect();
                bail!(
                    "`{}` has no column `{name}` (it has: {})",
                    self.file.display(),
                    names.join(", ")
                )
            }
        }
    }

    fn typed<T>(&self, name: &str, dtype: DataType) -> anyhow::Result<Vec<Option<T>>>
    where
        T: 'static,
        Column: ExtractColumn<T>,
    {
        let column = self.column(name)?;
        let cast = column.cast(&dtype).with_context(|| {
            format!("`{}`: column `{name}` is not {dtype}", self.file.display())
        })?;
        Column::extract(&cast)
            .with_context(|| format!("`{}`: column `{name}`", self.file.display()))
    }

    /// A text column; missing values are `None`.
    pub fn optional_text(&self, name: &str) -> anyhow::Result<Vec<Option<String>>> {
        self.typed(name, DataType::String)
    }

    /// A text column that must have a value in every row.
    pub fn text(&self, name: &str) -> anyhow::Result<Vec<String>> {
        self.required(name, self.optional_text(name)?)
    }

    /// A text column if the table has it, otherwise `None` in every row.
    pub fn text_if_present(&self, name: &str) -> anyhow::Result<Vec<Option<String>>> {
        if self.has(name) {
            self.optional_text(name)
        } else {
            Ok(vec![None; self.len()])
        }
    }

    /// A whole-number column if the table has it, otherwise `None` in every row.
    pub fn int_if_present(&self, name: &str) -> anyhow::Result<Vec<Option<i64>>> {
        if self.has(name) {
            self.optional_int(name)
        } else {
            Ok(vec![None; self.len()])
        }
    }

    /// A number column; missing values are `None`.
    pub fn optional_float(&self, name: &str) -> anyhow::Result<Vec<Option<f64>>> {
        self.typed(name, DataType::Float64)
    }

    /// A number column that must have a value in every row.
    pub fn float(&self, name: &str) -> anyhow::Result<Vec<f64>> {
        self.required(name, self.optional_float(name)?)
    }

    /// A whole-number column; missing values are `None`.
    pub fn optional_int(&self, name: &str) -> anyhow::Result<Vec<Option<i64>>> {
        self.typed(name, DataType::Int64)
    }

    /// A whole-number column that must have a value in every row.
    pub fn int(&self, name: &str) -> anyhow::Result<Vec<i64>> {
        self.required(name, self.optional_int(name)?)
    }

    fn required<T>(&self, name: &str, values: Vec<Option<T>>) -> anyhow::Result<Vec<T>> {
        values
            .into_iter()
            .enumerate()
            .map(|(row, v)| {
                v.with_context(|| {
                    format!(
                        "`{}`: column `{name}` is empty in row {}",
                        self.file.display(),
                        row + 1
                    )
                })
            })
            .collect()
    }
}

/// Pulls typed values out of a column already cast to the matching type.
pub trait ExtractColumn<T> {
    /// The values, `None` where missing.
    fn extract(column: &Column) -> PolarsResult<Vec<Option<T>>>;
}

impl ExtractColumn<String> for Column {
    fn extract(column: &Column) -> PolarsResult<Vec<Option<String>>> {
        Ok(column
            .str()?
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    }
}

impl ExtractColumn<f64> for Column {
    fn extract(column: &Column) -> PolarsResult<Vec<Option<f64>>> {
        Ok(column.f64()?.iter().collect())
    }
}

impl ExtractColumn<i64> for Column {
    fn extract(column: &Column) -> PolarsResult<Vec<Option<i64>>> {
        Ok(column.i64()?.iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_missing_columns() {
        let dir = tempfile::tempdir().unwrap();
        let mut frame = DataFrame::new_infer_height(vec![
            Column::new("path".into(), ["a.png", "b, c.png"]),
            Column::new("width".into(), [Some(3i64), None]),
        ])
        .unwrap();
        write(&mut frame, dir.path(), "t").unwrap();
        let t = Table::parquet(&dir.path().join("t.parquet")).unwrap();
        assert_eq!(t.text("path").unwrap(), ["a.png", "b, c.png"]);
        assert_eq!(t.optional_int("width").unwrap(), [Some(3), None]);
        let err = t.int("width").unwrap_err().to_string();
        assert!(err.contains("column `width` is empty in row 2"), "{err}");
        let err = t.text("label").unwrap_err().to_string();
        assert!(
            err.contains("no column `label`") && err.contains("t.parquet"),
            "{err}"
        );
        let csv = Table::csv(&dir.path().join("t.csv")).unwrap();
        assert_eq!(csv.text("path").unwrap(), ["a.png", "b, c.png"]);
        assert_eq!(csv.optional_int("width").unwrap(), [Some(3), None]);
    }
}
