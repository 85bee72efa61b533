//! Pure window maths: a scene cut into square cores, each read with a halo clipped to the scene.

use crate::raster::Window;

pub(crate) mod ordered;

/// One tile: the core it writes and the (larger) window it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Position in row-major tile order.
    pub index: usize,
    /// Pixels this tile owns and writes.
    pub core: Window,
    /// Pixels this tile reads: the core plus the halo, clipped to the scene.
    pub read: Window,
}

impl Tile {
    /// Row and column of the core inside the read window.
    pub fn core_offset(&self) -> (usize, usize) {
        (self.core.row - self.read.row, self.core.col - self.read.col)
    }
}

/// Cuts a `width` x `height` scene into cores of `tile_size` (the last row/column of tiles
/// may be smaller) with reads extended by `halo` pixels on every side.
pub fn tiles(width: usize, height: usize, tile_size: usize, halo: usize) -> Vec<Tile> {
    let ts = tile_size.max(1);
    let mut out = Vec::new();
    for row in (0..height).step_by(ts) {
        for col in (0..width).step_by(ts) {
            let core = Window {
                col,
                row,
                width: ts.min(width - col),
                height: ts.min(height - row),
            };
            let r0 = row.saturating_sub(halo);
            let c0 = col.saturating_sub(halo);
            let r1 = (row + core.height + halo).min(height);
            let c1 = (col + core.width + halo).min(width);
            let read = Window {
                col: c0,
                row: r0,
                width: c1 - c0,
                height: r1 - r0,
            };
            out.push(Tile {
                index: out.len(),
                core,
                read,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn cores_partition_the_scene_and_reads_hold_the_halo(w in 1usize..300, h in 1usize..300, ts in 1usize..128, halo in 0usize..9) {
            let t = tiles(w, h, ts, halo);
            let mut seen = vec![0u8; w * h];
            for tile in &t {
                for r in tile.core.row..tile.core.row + tile.core.height {
                    for c in tile.core.col..tile.core.col + tile.core.width {
                        seen[r * w + c] += 1;
                    }
                }
                let rd = tile.read;
                prop_assert!(rd.col + rd.width <= w && rd.row + rd.height <= h);
                // Every core pixel has its full halo inside the read window, unless clipped by the scene.
                prop_assert_eq!(rd.col, tile.core.col.saturating_sub(halo));
                prop_assert_eq!(rd.row, tile.core.row.saturating_sub(halo));
                prop_assert_eq!(rd.col + rd.width, (tile.core.col + tile.core.width + halo).min(w));
                prop_assert_eq!(rd.row + rd.height, (tile.core.row + tile.core.height + halo).min(h));
            }
            prop_assert!(seen.iter().all(|&s| s == 1));
        }
    }
}
