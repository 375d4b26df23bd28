//! Columns tied to their values: each column carries the accessor that reads its cell from a
//! tool's row type, so a column added, removed or made optional cannot shift the others.
//! [`Output`] renders the cells (table, CSV, JSON) as before.

use crate::core::addr::{ip_version, Tuple};
use crate::core::cgroup::{Owner, Resolver};
use crate::core::cli::{Common, TimeCells, Timestamps};
use crate::core::output::{Column, Format, Output, Value};

enum Cell<R> {
    Value(Box<dyn for<'r> Fn(&'r R) -> Value<'r>>),
    /// One of the [`Owners`] fields, from the row's owner looked up once per row.
    Owner(Field),
}

/// Reads the cgroup id of a row.
type CgroupOf<R> = fn(&R) -> u64;

/// The columns of a tool's rows of type `R`, each with its accessor.
pub struct Table<R> {
    columns: Vec<Column>,
    cells: Vec<Cell<R>>,
    owners: Option<(Owners, CgroupOf<R>)>,
}

impl<R> Default for Table<R> {
    fn default() -> Self {
        Table {
            columns: Vec::new(),
            cells: Vec::new(),
            owners: None,
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
        self.cells.push(Cell::Value(Box::new(cell)));
        self
    }

    /// The container columns ([`Owners`]) of the cgroup id `cgroup` reads from the row: one per
    /// table.
    pub fn containers(mut self, common: &Common, cgroup: CgroupOf<R>) -> Self {
        let owners = Owners::new(common);
        for (column, field) in owners.columns.iter().zip(&owners.fields) {
            self.columns.push(*column);
            self.cells.push(Cell::Owner(*field));
        }
        self.owners = Some((owners, cgroup));
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
        self.col(shown_if(when, column, json), cell)
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

    /// PID (`pid_width` wide) and COMM (`comm_width`, longer names cut), of the task `task`
    /// reads from the row.
    pub fn task(
        self,
        pid_width: i32,
        comm_width: i32,
        task: for<'r> fn(&'r R) -> (u32, &'r str),
    ) -> Self {
        self.col(Column::new("PID", "pid", pid_width), move |r| {
            Value::U64(task(r).0.into())
        })
        .col(
            Column::new("COMM", "comm", comm_width).truncated(),
            move |r| Value::Str(task(r).1),
        )
    }

    /// The columns of the row's [`Tuple`] that `columns` name, in that order.
    pub fn tuple(
        mut self,
        tuple: for<'r> fn(&'r R) -> &'r Tuple,
        columns: impl IntoIterator<Item = TupleColumn>,
    ) -> Self {
        for column in columns {
            self = match column {
                TupleColumn::Ip(c) => self.col(c, move |r| Value::U64(ip_version(tuple(r).family))),
                TupleColumn::Addr(End::Local, c) => self.col(c, move |r| Value::Ip(tuple(r).laddr)),
                TupleColumn::Addr(End::Remote, c) => {
                    self.col(c, move |r| Value::Ip(tuple(r).raddr))
                }
                TupleColumn::Port(End::Local, c) => {
                    self.col(c, move |r| Value::U64(tuple(r).lport.into()))
                }
                TupleColumn::Port(End::Remote, c) => {
                    self.col(c, move |r| Value::U64(tuple(r).rport.into()))
                }
            };
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
        let owner = self.owners.as_ref().map(|(o, id)| {
            let id = id(row);
            (id, o.lookup(id))
        });
        let values: Vec<Value> = self
            .cells
            .iter()
            .map(|cell| match (cell, &owner) {
                (Cell::Value(f), _) => f(row),
                (Cell::Owner(field), Some((id, o))) => field.value(*id, o.as_ref()),
                (Cell::Owner(_), None) => Value::Absent,
            })
            .collect();
        out.row(&values);
    }
}

/// `column` when `when`, else its JSON-only twin `json`.
pub fn shown_if(when: bool, column: Column, json: &'static str) -> Column {
    if when {
        column
    } else {
        Column::json(json)
    }
}

/// Which end of a [`Tuple`] a column shows.
#[derive(Clone, Copy, Debug)]
pub enum End {
    Local,
    Remote,
}

/// A column of [`Table::tuple`]: IP (the version), or an end's address or port.
pub enum TupleColumn {
    Ip(Column),
    Addr(End, Column),
    Port(End, Column),
}

impl TupleColumn {
    /// IP, in the table only when `shown` (JSON always has it).
    pub fn ip(shown: bool) -> TupleColumn {
        TupleColumn::Ip(shown_if(shown, Column::new("IP", "ip", -2), "ip"))
    }

    /// LADDR LPORT RADDR RPORT, the addresses `addr_width` wide.
    pub fn local_remote(addr_width: i32) -> [TupleColumn; 4] {
        [
            TupleColumn::Addr(End::Local, Column::new("LADDR", "laddr", addr_width)),
            TupleColumn::Port(End::Local, Column::new("LPORT", "lport", -5)),
            TupleColumn::Addr(End::Remote, Column::new("RADDR", "raddr", addr_width)),
            TupleColumn::Port(End::Remote, Column::new("RPORT", "rport", -5)),
        ]
    }

    /// IP SADDR LPORT DADDR DPORT of a connection this host opened: LPORT in the table only
    /// with `lport`, DPORT `dport_width` wide.
    pub fn source_dest(lport: bool, dport_width: i32) -> [TupleColumn; 5] {
        [
            TupleColumn::ip(true),
            TupleColumn::Addr(End::Local, Column::new("SADDR", "saddr", -16)),
            TupleColumn::Port(
                End::Local,
                shown_if(lport, Column::new("LPORT", "lport", -6), "lport"),
            ),
            TupleColumn::Addr(End::Remote, Column::new("DADDR", "daddr", -16)),
            TupleColumn::Port(End::Remote, Column::new("DPORT", "dport", dport_width)),
        ]
    }
}

/// What a row's cgroup stands for, as columns: every tool's container columns.
/// - JSON: `cgroup_id` always (0: the event had no socket or task to attribute it to); then,
///   looked up by [`Resolver`], `container`, `container_id`, `container_runtime`,
///   `pod_namespace` and `pod` when the cgroup is a container's, else `cgroup_path`;
/// - tables, with `--containers`: CONTAINER (the container's name, its short id when its
///   runtime's state is unreadable, "host" for a cgroup of no container, "?" when not known)
///   and, when some running container belongs to a pod at start, POD (NAMESPACE/NAME or "-").
pub struct Owners {
    columns: Vec<Column>,
    fields: Vec<Field>,
    resolver: Option<&'static Resolver>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    CgroupId,
    Container,
    Pod,
    Name,
    Id,
    Runtime,
    PodNamespace,
    PodName,
    Path,
}

impl Owners {
    pub fn new(common: &Common) -> Owners {
        let json = common.format() == Format::Json;
        let mut fields = vec![Field::CgroupId];
        let resolver = crate::core::cgroup::Resolver::global;
        if common.containers && !json {
            fields.push(Field::Container);
            let (all, _) = crate::core::container::list();
            if all.iter().any(|c| c.pod.is_some()) {
                fields.push(Field::Pod);
            }
            resolver().seed(all);
        } else if json {
            // Off the start path: JSON always names, most runs have no container at all.
            resolver().seeding();
            std::thread::spawn(move || resolver().seed(crate::core::container::list().0));
        }
        if json {
            fields.extend([
                Field::Name,
                Field::Id,
                Field::Runtime,
                Field::PodNamespace,
                Field::PodName,
                Field::Path,
            ]);
        }
        let columns = fields
            .iter()
            .map(|f| match f {
                Field::CgroupId => Column::json("cgroup_id"),
                Field::Container => Column::table("CONTAINER", -16),
                Field::Pod => Column::table("POD", -24),
                Field::Name => Column::json("container"),
                Field::Id => Column::json("container_id"),
                Field::Runtime => Column::json("container_runtime"),
                Field::PodNamespace => Column::json("pod_namespace"),
                Field::PodName => Column::json("pod"),
                Field::Path => Column::json("cgroup_path"),
            })
            .collect();
        Owners {
            columns,
            resolver: (fields.len() > 1).then(Resolver::global),
            fields,
        }
    }

    /// The columns, in the order [`Owners::values`] gives their cells.
    pub fn columns(&self) -> Vec<Column> {
        self.columns.clone()
    }

    /// What cgroup `id` stands for, when these columns need it (None: the id alone is shown).
    pub fn lookup(&self, id: u64) -> Option<Owner> {
        let r = self.resolver?;
        Some(if id == 0 {
            Owner::Unknown
        } else {
            r.lookup(id)
        })
    }

    /// The JSON fields of cgroup `id`, for tools that print records ([`Output::record`]) or
    /// free text: `(key, value)` of the JSON columns; the table's CONTAINER cell as text.
    pub fn fields<'a>(&self, id: u64, owner: Option<&'a Owner>) -> Vec<(&'static str, Value<'a>)> {
        self.columns
            .iter()
            .zip(&self.fields)
            .filter(|(c, _)| c.show == crate::core::output::Show::JsonOnly)
            .map(|(c, f)| (c.key, f.value(id, owner)))
            .collect()
    }

    /// "container NAME" ("container host") for a text line, with --containers in a table.
    pub fn text(&self, id: u64, owner: Option<&Owner>) -> Option<String> {
        self.fields.contains(&Field::Container).then(|| {
            let mut s = String::from("container ");
            crate::core::output::text_value(&mut s, &Field::Container.value(id, owner));
            s
        })
    }

    /// The cells of cgroup `id` whose [`Owners::lookup`] gave `owner`.
    pub fn values<'a>(&self, id: u64, owner: Option<&'a Owner>) -> Vec<Value<'a>> {
        self.fields.iter().map(|f| f.value(id, owner)).collect()
    }
}

impl Field {
    fn value<'a>(self, id: u64, owner: Option<&'a Owner>) -> Value<'a> {
        let container = match owner {
            Some(Owner::Container(c)) => Some(c),
            _ => None,
        };
        let pod = container.and_then(|c| c.pod.as_ref());
        fn str_or_absent(s: Option<&str>) -> Value<'_> {
            s.map_or(Value::Absent, Value::Str)
        }
        match self {
            Field::CgroupId => Value::U64(id),
            Field::Container => match owner {
                _ if id == 0 => Value::Absent,
                Some(Owner::Container(c)) => Value::Str(c.display_name()),
                Some(Owner::Host(_)) => Value::Str("host"),
                _ => Value::Str("?"),
            },
            Field::Pod => str_or_absent(pod.map(|p| p.qualified.as_str())),
            Field::Name => str_or_absent(container.and_then(|c| c.name.as_deref())),
            Field::Id => str_or_absent(container.map(|c| c.id.as_str())),
            Field::Runtime => str_or_absent(container.map(|c| c.runtime)),
            Field::PodNamespace => str_or_absent(pod.map(|p| p.namespace.as_str())),
            Field::PodName => str_or_absent(pod.map(|p| p.name.as_str())),
            Field::Path => match owner {
                Some(Owner::Host(p)) => Value::Str(p),
                _ => Value::Absent,
            },
        }
    }
}
