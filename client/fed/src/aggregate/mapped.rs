//! Update files mapped into memory, read in place: a tensor is a [`View`] of the mapped bytes,
//! never copied to the heap.
//!
//! Mapping costs no memory of the process's own: the pages are the kernel's page cache of the
//! file (shared, clean, evictable), faulted in as the loops reach them and read once. The file
//! must not change while it is mapped: bcfl writes update files once, under names derived from
//! their SHA-256, and never rewrites them in place; a file truncated by another program while
//! mapped makes the reading process fault (`SIGBUS`), as with any memory map.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};

use super::kernels::View;
use crate::error::{Error, Result};
use crate::update::{Encoding, Header};

/// One update file, mapped, with its parsed and checked header.
#[derive(Debug)]
pub struct MappedUpdate {
    path: PathBuf,
    map: Mmap,
    header: Header,
}

impl MappedUpdate {
    /// Maps `path` and checks that every tensor's bytes lie inside the file and hold exactly
    /// its shape's number of values.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and update files are never modified in place (see the
        // module docs); the bytes are only ever read as `u8`, so any content is valid.
        #[allow(unsafe_code)]
        // `populate`: map every page now, in one call, rather than fault them in one by one.
        let map =
            unsafe { MmapOptions::new().populate().map(&file) }.map_err(|e| Error::io(path, e))?;
        #[cfg(unix)]
        {
            // A hint only (read-ahead); aggregation is correct without it.
            let _ = map.advise(memmap2::Advice::Sequential);
        }
        let what = path.display().to_string();
        let header = Header::parse(&mut &map[..], &what)?;
        for (name, entry) in &header.tensors {
            let range = header.data_range(entry);
            let width = match entry.encoding {
                Encoding::F32 => 4,
                Encoding::Int8 => 1,
            };
            if range.end > map.len() as u64 {
                return Err(Error::Update(format!("{what}: {name}: data past the end")));
            }
            if range.end - range.start != (entry.numel() * width) as u64 {
                return Err(Error::Update(format!(
                    "{what}: {name}: {} bytes for shape {:?}",
                    range.end - range.start,
                    entry.shape
                )));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            map,
            header,
        })
    }

    /// The tensors it holds.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// A tensor's values, in place.
    pub fn view(&self, name: &str) -> Result<View<'_>> {
        let entry =
            self.header.tensors.get(name).ok_or_else(|| {
                Error::Update(format!("{}: no tensor {name}", self.path.display()))
            })?;
        let range = self.header.data_range(entry);
        // `open` checked the range against the map's length.
        let bytes = &self.map[range.start as usize..range.end as usize];
        Ok(View::of(entry, bytes))
    }
}
