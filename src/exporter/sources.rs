//! The exportable tools, from the one registry (a tool with an `export` entry), in the order
//! they are loaded and published. What they hand the exporter is defined in `core::export`.

use std::sync::LazyLock;

pub use crate::core::export::*;

pub struct Exportable {
    pub name: &'static str,
    pub load: fn(&Ctx) -> anyhow::Result<Loaded>,
}

/// Every exportable tool, in the order they are loaded and published (each entry's `order`).
pub static EXPORTABLE: LazyLock<Vec<Exportable>> = LazyLock::new(|| {
    let mut tools: Vec<(u8, Exportable)> = crate::tools::TOOLS
        .iter()
        .filter_map(|t| {
            let e = t.export.as_ref()?;
            Some((
                e.order,
                Exportable {
                    name: t.name,
                    load: e.load,
                },
            ))
        })
        .collect();
    tools.sort_by_key(|(order, _)| *order);
    tools.into_iter().map(|(_, e)| e).collect()
});
