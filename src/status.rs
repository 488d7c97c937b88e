//! What `swarmshare status` and `swarmshare inspect` print: a node's directory read
//! without changing it, and the manifest a file would have, as text or one JSON object.

use std::path::Path;

use crate::chunk_store::dir_status;
use crate::error::Error;
use crate::manifest::manifest_for;
use crate::report;

/// The state of the directory `dir` (an owner's or a peer's); `json` for one object.
pub fn status(dir: &Path, json: bool) -> Result<String, Error> {
    let status = dir_status(dir)?.ok_or_else(|| Error::NoStore(dir.to_owned()))?;
    Ok(if json {
        format!("{}\n", report::status_json(&status))
    } else {
        report::status_text(&status)
    })
}

/// The manifest `file` would have if an owner served it; nothing is written.
pub fn inspect(file: &Path, json: bool) -> Result<String, Error> {
    let manifest = manifest_for(file)?;
    Ok(if json {
        format!("{}\n", report::manifest_json(&manifest))
    } else {
        report::manifest_text(&manifest)
    })
}
