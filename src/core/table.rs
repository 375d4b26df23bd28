//! Columns tied to their values: each column carries the accessor that reads its cell from a
//! tool's row type, so a column added, removed or made optional cannot shift the others.
//! [`Output`] renders the cells (table, CSV, JSON) as before.

use crate::core::cli::{TimeCells, Timestamps};
use crate::core::output::{Column, Output, Value};

type Cell<R> = Box<dyn for<'r> Fn(&'r R) -> Value<'r>>;

/// The columns of a tool's rows of type `R`, each with its accessor.
pub struct Table<R> {
    columns: Vec<Column>,
    cells: Vec<Cell<R>>,
}

impl<R> Default for Table<R> {
    fn default() -> Self {
        Table {
            columns: Vec::new(),
            cells: Vec::new(),
        }
    }
}

impl<R: 'static> Table<R> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a column and the accessor of its cell.
    pub fn col(
        mut self,
        column: Column,
        cell: impl for<'r> Fn(&'r R) -> Value<'r> + 'static,
    ) -> Self {
        self.columns.push(column);
        self.cells.push(Box::new(cell));
        self
    }

    /// Adds `column` when `when`, else its JSON-only twin `json` (an option that shows a column
    /// in the table, while JSON always has the field).
    pub fn col_if(
        self,
        when: bool,
        column: Column,
        json: &'static str,
        cell: impl for<'r> Fn(&'r R) -> Value<'r> + 'static,
    ) -> Self {
        self.col(if when { column } else { Column::json(json) }, cell)
    }

    /// The -T/-t columns (time of day, seconds since start), read from the row's [`TimeCells`].
    pub fn stamps(mut self, stamps: &Timestamps, cells: fn(&R) -> &TimeCells) -> Self {
        let columns = stamps.columns();
        for (i, c) in columns.into_iter().enumerate() {
            // The i-th of the time cells present, in the order Timestamps::columns gives.
            self = self.col(c, move |r| {
                cells(r).values().nth(i).unwrap_or(Value::Str(""))
            });
        }
        self
    }

    /// The columns, for [`Output::new`].
    pub fn columns(&self) -> Vec<Column> {
        self.columns.clone()
    }

    /// An [`Output`] for these columns.
    pub fn output(&self, format: crate::core::output::Format) -> Output {
        Output::new(format, self.columns())
    }

    /// Prints one row.
    pub fn row(&self, out: &mut Output, row: &R) {
        let values: Vec<Value> = self.cells.iter().map(|cell| cell(row)).collect();
        out.row(&values);
    }
}
