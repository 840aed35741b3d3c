//! Large arrays of a snapshot, in memory the kernel may back with huge pages.
//!
//! A check reads a subject's record and its effective set at random places in arrays that
//! reach a hundred megabytes or more with a million subjects. With 4 KiB pages nearly every
//! such read also misses the TLB, and the page-table walk that follows is one more trip to
//! memory. With 2 MiB pages the whole array needs a few dozen TLB entries. So on Linux an
//! array of at least [`MAPPED_FROM`] bytes gets its own anonymous mapping, advised with
//! `MADV_HUGEPAGE`: transparent huge pages are used when the system's setting is `always` or
//! `madvise` (the default of most distributions), and the advice is harmless when it is
//! `never`. Smaller arrays, other systems, and a mapping that fails are ordinary vectors.

use std::fmt;
use std::ops::{Deref, DerefMut};

use bytemuck::Pod;

/// Arrays from this size (bytes) are mapped: a huge page is 2 MiB, and a smaller array has
/// too few pages for the TLB to matter.
pub(crate) const MAPPED_FROM: usize = 4 << 20;

/// A fixed-length array of plain values, mapped on its own when large (see the module docs).
pub(crate) struct PodArray<T> {
    storage: Storage<T>,
}

enum Storage<T> {
    Heap(Vec<T>),
    #[cfg(target_os = "linux")]
    Mapped {
        map: memmap2::MmapMut,
        len: usize,
    },
}

impl<T: Pod> PodArray<T> {
    /// `len` copies of `value`.
    pub(crate) fn filled(value: T, len: usize) -> PodArray<T> {
        if let Some(mut array) = PodArray::mapped(len) {
            array.fill(value);
            return array;
        }
        PodArray {
            storage: Storage::Heap(vec![value; len]),
        }
    }

    /// The values of `values`, moved to a mapping when large.
    pub(crate) fn from_vec(values: Vec<T>) -> PodArray<T> {
        match PodArray::mapped(values.len()) {
            Some(mut array) => {
                array.copy_from_slice(&values);
                array
            }
            None => PodArray {
                storage: Storage::Heap(values),
            },
        }
    }

    /// Whether the values sit in their own mapping (advised to use huge pages).
    pub(crate) fn is_mapped(&self) -> bool {
        !matches!(self.storage, Storage::Heap(_))
    }

    /// Bytes of the values when they sit in their own mapping (which the global allocator,
    /// and so a counting allocator, does not see), else 0.
    pub(crate) fn mapped_bytes(&self) -> usize {
        if self.is_mapped() {
            std::mem::size_of_val::<[T]>(self)
        } else {
            0
        }
    }

    /// A zeroed mapping for `len` values, if the array is large enough to want one and the
    /// system gives it.
    #[cfg(target_os = "linux")]
    fn mapped(len: usize) -> Option<PodArray<T>> {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?;
        if bytes < MAPPED_FROM {
            return None;
        }
        let map = memmap2::MmapMut::map_anon(bytes).ok()?;
        // Only a hint: without huge pages the array still works, on small pages.
        let _ = map.advise(memmap2::Advice::HugePage);
        let array = PodArray {
            storage: Storage::Mapped { map, len },
        };
        // A mapping is page-aligned, so the cast cannot fail; never hand out a short array.
        (array.len() == len).then_some(array)
    }

    #[cfg(not(target_os = "linux"))]
    fn mapped(_len: usize) -> Option<PodArray<T>> {
        None
    }
}

impl<T> Default for PodArray<T> {
    fn default() -> Self {
        PodArray {
            storage: Storage::Heap(Vec::new()),
        }
    }
}

impl<T: Pod> Deref for PodArray<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        match &self.storage {
            Storage::Heap(values) => values,
            // Page-aligned and sized for `len` values: the cast succeeds. Were it to fail, the
            // array would read as empty, so every lookup in it finds nothing (a deny).
            #[cfg(target_os = "linux")]
            Storage::Mapped { map, len } => {
                let bytes = map.get(..len * std::mem::size_of::<T>()).unwrap_or(&[]);
                bytemuck::try_cast_slice(bytes).unwrap_or(&[])
            }
        }
    }
}

impl<T: Pod> DerefMut for PodArray<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.storage {
            Storage::Heap(values) => values,
            #[cfg(target_os = "linux")]
            Storage::Mapped { map, len } => {
                let bytes = map
                    .get_mut(..*len * std::mem::size_of::<T>())
                    .unwrap_or(&mut []);
                bytemuck::try_cast_slice_mut(bytes).unwrap_or(&mut [])
            }
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for PodArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodArray")
            .field("len", &self.len())
            .field("mapped", &self.is_mapped())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_arrays_stay_on_the_heap_and_large_ones_keep_every_value() {
        let small = PodArray::from_vec(vec![7u32; 100]);
        assert!(!small.is_mapped());
        assert_eq!(small.len(), 100);

        let n = MAPPED_FROM / 4 + 3;
        let values: Vec<u32> = (0..n as u32).collect();
        let large = PodArray::from_vec(values.clone());
        #[cfg(target_os = "linux")]
        assert!(large.is_mapped());
        assert_eq!(&large[..], &values[..]);

        let mut filled = PodArray::filled(u64::MAX, MAPPED_FROM / 8 + 1);
        assert!(filled.iter().all(|&v| v == u64::MAX));
        filled[5] = 1;
        assert_eq!(filled[5], 1);
        assert_eq!(filled.len(), MAPPED_FROM / 8 + 1);
    }
}
