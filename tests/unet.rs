//! The multi-scale encoder (`encoder = "unet"`): its receptive field is what the halo claims,
//! and tiled inference with that halo equals an untiled run up to float rounding, for tiles
//! that start off the pooling lattice too.

use geofuse::learned::{EncoderKind, Fusion, LearnedModel, NetSpec, Runtime, RAW_BANDS};
use geofuse::rng::Rng;
use ndarray::{s, Array3};

fn unet(fusion: Fusion) -> LearnedModel {
    let spec = NetSpec {
        encoder: EncoderKind::Unet,
        ..NetSpec::raw(fusion, 8, 4)
    };
    LearnedModel::random(&Runtime::new("cpu").unwrap(), spec, 0.5, 2, 3)
}

/// Random raw bands with a cloud (optical missing) and a SAR gap.
fn raw(h: usize, w: usize) -> Array3<f32> {
    let mut rng = Rng::new(17);
    let mut raw = Array3::from_shape_fn((RAW_BANDS, h, w), |_| rng.f64() as f32 * 2.0 - 0.5);
    raw.slice_mut(s![0..10, h / 8..h / 4, 30..70])
        .fill(f32::NAN);
    raw.slice_mut(s![10.., 3 * h / 5..3 * h / 4, ..])
        .fill(f32::NAN);
    raw
}

#[test]
fn the_receptive_field_spans_64_pixels_and_ends_inside_the_halo() {
    let model = unet(Fusion::Concat);
    let radius = model.halo();
    assert!(2 * radius + 1 >= 64, "receptive field {}", 2 * radius + 1);
    let base = raw(64, 200);
    // The deterministic logits (probabilities round small changes away).
    let (p0, _) = model.forward(&base);
    let mut poked = base.clone();
    poked
        .slice_mut(s![.., 30..34, 18..22])
        .mapv_inplace(|v| v + 5.0);
    let (p1, _) = model.forward(&poked);
    let moved = |c: usize| (0..4).any(|k| p0[[k, 32, c]] != p1[[k, 32, c]]);
    // About 30 pixels away the change is seen (a 9 x 9 encoder would not see it; a random
    // network's ReLUs may mute a single column, so any of 28-36 px away) ...
    assert!((50..=58).any(moved), "no change 30-36 px away");
    // ... and beyond the halo it is not, to the bit.
    for c in 22 + radius..200 {
        assert!(
            !moved(c),
            "pixel {} px away changed (halo {radius})",
            c - 21
        );
    }
}

#[test]
fn unet_tiles_equal_the_untiled_prediction() {
    let model = unet(Fusion::LearnedKernel);
    let (h, w) = (150, 171);
    let raw = raw(h, w);
    let (full_p, full_e) = model.predict(&raw, (0, 0));
    // 37 and 50 put tile origins off the 8-pixel lattice; 64 keeps them on it.
    for ts in [37usize, 50, 64] {
        let mut worst = 0f32;
        for t in geofuse::tiler::tiles(w, h, ts, model.halo()) {
            let rd = t.read;
            let sub = raw
                .slice(s![
                    ..,
                    rd.row..rd.row + rd.height,
                    rd.col..rd.col + rd.width
                ])
                .to_owned();
            let (p, e) = model.predict(&sub, (rd.row, rd.col));
            let (r0, c0) = t.core_offset();
            for r in 0..t.core.height {
                for c in 0..t.core.width {
                    let (gr, gc) = (t.core.row + r, t.core.col + c);
                    for k in 0..4 {
                        worst = worst.max((p[[k, r0 + r, c0 + c]] - full_p[[k, gr, gc]]).abs());
                    }
                    worst = worst.max((e[[r0 + r, c0 + c]] - full_e[[gr, gc]]).abs());
                }
            }
        }
        // Float32 rounding of convolutions summed in another order (as for the small encoder).
        assert!(
            worst < 1e-4,
            "tile size {ts}: max |tiled - untiled| = {worst}"
        );
    }
}
