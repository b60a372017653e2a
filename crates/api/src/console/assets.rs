//! The console's files, embedded at build time from `crates/api/assets/console`.

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

/// The shell every page is.
pub const INDEX_HTML: &str = include_str!("../../assets/console/index.html");

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../assets/console/", $name)),
        }
    };
}

/// Every asset, by its path under `/console/`.
const ASSETS: &[Asset] = &[
    asset!("console.css", CSS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("pages.js", JS),
    asset!("ansi.js", JS),
    asset!("log_view.js", JS),
    asset!("log_stream.js", JS),
    asset!("attach_client.js", JS),
    asset!("terminal.js", JS),
    asset!("vendor/xterm/xterm.mjs", JS),
    asset!("vendor/xterm/xterm.css", CSS),
    asset!("vendor/addon-fit/addon-fit.mjs", JS),
];

/// The asset named `name`; only names in the table exist, so no path ever
/// reaches the file system.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}
