//! Moving a tree's finished files into place, on a peer: the commit after a file's last
//! chunk renames its part from `parts/` to `DIR/NAME/PATH` (see [`super::tree_files`]),
//! and the tree's directories are synced once it is complete.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::PoisonError;

use rustix::fs::{Mode, OFlags, RenameFlags};
use tracing::info;

use super::files::io_err;
use super::tree_files::{errno, leaf, mode, open_parent, TreeFiles, PARTS_DIR};
use super::{placing, ChunkStore, StoreError};
use crate::manifest::EntryKind;
use crate::text::Quoted;

impl ChunkStore {
    /// Moves the files completed since the last call into place (see
    /// [`ChunkStore::place`]); called after the data is synced, so each file reaches its
    /// path with its bytes on the disk.
    pub(super) fn place_pending(&self, state: &TreeFiles) -> Result<(), StoreError> {
        let mut pending = std::mem::take(&mut *state.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if pending.is_empty() {
            return Ok(());
        }
        // In the tree's order, so the files of one directory follow each other and share
        // its opened descriptor.
        pending.sort_unstable();
        let parts_dir = self.root.join(PARTS_DIR);
        let parts_fd = rustix::fs::open(
            &parts_dir,
            OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
        )
        .map_err(|e| io_err("open", &parts_dir)(errno(e)))?;
        // Directories opened for this batch only, so a directory the user moves later is
        // opened again (and checked) by the next.
        let mut last: Option<(String, OwnedFd)> = None;
        // The moves are recorded first: a process killed among them leaves a record that
        // the next start undoes ([`placing`]).
        let listed = pending
            .iter()
            .filter(|&&i| self.data.parts()[i].is_ours())
            .map(|&i| {
                let meta = self.data.parts()[i].file().and_then(|f| {
                    f.metadata()
                        .map_err(io_err("inspect", &self.data.parts()[i].path()))
                })?;
                Ok((state.entries[i] as u32, meta.dev(), meta.ino()))
            })
            .collect::<Result<Vec<_>, StoreError>>();
        // Synced whatever `--no-fsync` says when files without a name are among them: a
        // power cut that kept their links but lost the record would stop the next start.
        let unnamed = pending.iter().any(|&i| self.data.parts()[i].is_unnamed());
        let recorded = listed.and_then(|l| placing::record(&parts_fd, &parts_dir, &l, self.fsync || unnamed));
        if let Err(e) = recorded {
            state
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(&pending);
            return Err(e);
        }
        let mut result = Ok(());
        for (k, &i) in pending.iter().enumerate() {
            if let Err(e) = self.place(state, i, &parts_fd, &mut last) {
                // What is not placed yet is tried again by the next commit.
                state
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(&pending[k..]);
                result = Err(e);
                break;
            }
        }
        // Kept after a failure: what it placed is undone by a restart, if one comes
        // before the next commit places the rest.
        result.and_then(|()| placing::clear(&parts_fd, &parts_dir))
    }

    /// Moves part `i`, complete, verified and synced, to its path in the tree: given its
    /// mode, renamed (or, made without a name, linked) without replacing anything. The
    /// tree's directories are synced when it is complete; before that, a move lost in a
    /// power cut leaves the file in `parts/`, whole, and the next start moves it again (a
    /// lost link leaves nothing: its chunks are fetched again).
    fn place(
        &self,
        state: &TreeFiles,
        i: usize,
        parts_fd: &OwnedFd,
        last: &mut Option<(String, OwnedFd)>,
    ) -> Result<(), StoreError> {
        let (dir, manifest, data) = (&self.dir, &*self.manifest, &self.data);
        let Some(tree) = manifest.tree() else {
            return Ok(());
        };
        let part = &data.parts()[i];
        if !part.is_ours() {
            return Ok(());
        }
        let entry = &tree.entries()[state.entries[i]];
        let EntryKind::File { size, executable, .. } = entry.kind else {
            return Ok(());
        };
        // Synced whatever `--no-fsync` says: a file at its path is whole even after a
        // power cut (one that is not would stop the next start as someone else's).
        data.sync_part(i)?;
        let at = dir.join(manifest.name()).join(&entry.path);
        rustix::fs::fchmod(&*part.file()?, mode(executable))
            .map_err(|e| io_err("set the mode of", &at)(errno(e)))?;
        let parent_path = entry.path.rsplit_once('/').map_or("", |(p, _)| p);
        if last.as_ref().is_none_or(|(p, _)| p != parent_path) {
            let fd = open_parent(dir, manifest.name(), &entry.path, true)?
                .ok_or_else(|| StoreError::NoSuchDirectory(dir.to_owned()))?;
            *last = Some((parent_path.to_owned(), fd));
        }
        let Some((_, parent)) = last.as_ref() else {
            return Err(StoreError::NoSuchDirectory(dir.to_owned()));
        };
        let in_the_way = |e| match e {
            rustix::io::Errno::EXIST => StoreError::Occupied(at.clone()),
            e => io_err("move into", &at)(errno(e)),
        };
        if part.is_unnamed() {
            part.link_into(parent, leaf(&entry.path)).map_err(in_the_way)?;
            part.hand_over(&at);
            part.named();
        } else {
            // The part's path is locked across the move: a reader opening the file again
            // meanwhile waits, then opens it where it is.
            part.move_to(&at, |from| {
                let from_name = from
                    .file_name()
                    .ok_or_else(|| StoreError::NoSuchDirectory(from.to_owned()))?;
                rustix::fs::renameat_with(
                    parts_fd,
                    from_name,
                    parent,
                    leaf(&entry.path),
                    RenameFlags::NOREPLACE,
                )
                .map_err(in_the_way)
            })?;
            part.hand_over(&at);
        }
        info!(event = "file_complete", path = %Quoted(Path::new(&entry.path)), bytes = size, "file complete, verified");
        Ok(())
    }

    /// Syncs every directory of the tree, so the moves into them are on the disk.
    pub(super) fn sync_tree_dirs(&self) -> Result<(), StoreError> {
        let Some(tree) = self.manifest.tree() else {
            return Ok(());
        };
        let (dir, name) = (&self.dir, self.manifest.name());
        let mut dirs: Vec<&str> = tree
            .entries()
            .iter()
            .flat_map(|e| e.path.match_indices('/').map(|(at, _)| &e.path[..at]))
            .collect();
        dirs.sort_unstable();
        dirs.dedup();
        // Each opened as the files were moved in: component by component, no symlink.
        for d in std::iter::once(String::new()).chain(dirs.into_iter().map(|d| format!("{d}/"))) {
            let inner = format!("{d}.");
            if let Some(fd) = open_parent(dir, name, &inner, false)? {
                let at = dir.join(name).join(&d);
                rustix::fs::fsync(&fd).map_err(|e| io_err("sync", &at)(errno(e)))?;
            }
        }
        Ok(())
    }
}
