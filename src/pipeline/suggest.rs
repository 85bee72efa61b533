//! `geofuse suggest OUT`: the pixels to label next from the products of a run, as a
//! GeoPackage of points with a QGIS style; the user fills the `class` field of the points they
//! label and a later run takes the file as reference data.

use std::path::{Path, PathBuf};

use crate::config::{Pipeline, SceneDef};
use crate::error::{Error, Result};
use crate::io::points::{write_gpkg, Point, Value};
use crate::io::reader::RasterReader;
use crate::product::{ProductBand, BYTE_SCALE, MARGIN, NODATA};
use crate::raster::{Grid, Window};
use crate::suggest::{candidates, select, Rank, SceneBands};

/// What `geofuse suggest` was asked.
#[derive(Debug, Clone)]
pub struct SuggestOptions {
    /// Product to rank (a method or a regularised product; default: the first method).
    pub method: Option<String>,
    /// Number of points.
    pub n: usize,
    /// Balance the points across the predicted classes.
    pub per_class: bool,
    /// Ranking.
    pub by: Rank,
    /// Minimum distance between two points, in CRS units (default: ten pixels).
    pub min_distance: Option<f64>,
    /// GeoPackage to write (default `<OUT>/suggested.gpkg`).
    pub out: Option<PathBuf>,
    /// Seed of the order among equal scores.
    pub seed: u64,
}

/// The fields of a suggested point, in order.
pub const FIELDS: [&str; 14] = [
    "priority",
    "scene",
    "product",
    "ranked_by",
    "score",
    "predicted",
    "predicted_name",
    "confidence",
    "aleatoric",
    "epistemic",
    "total",
    "x",
    "y",
    "class",
];

/// One scene's product, read.
struct Scene<'a> {
    def: &'a SceneDef,
    grid: Grid,
    /// Bytes of the five prediction bands, row-major.
    bands: Vec<Vec<u8>>,
    /// Bytes of the margin band, when the product has one.
    margin: Option<Vec<u8>>,
}

/// Runs `geofuse suggest`; returns the GeoPackage's path and the number of points.
pub fn run_suggest(out: &Path, o: &SuggestOptions) -> Result<(PathBuf, usize)> {
    let (points, crs) = suggest_points(out, o)?;
    let layer = if o.by == Rank::Confident {
        "confident"
    } else {
        "suggested"
    };
    let path = o
        .out
        .clone()
        .unwrap_or_else(|| out.join(format!("{layer}.gpkg")));
    write_gpkg(&path, layer, &crs, &FIELDS, &points)?;
    crate::io::writer::write_atomic(&path.with_extension("qml"), points_style(o.n).as_bytes())?;
    Ok((path, points.len()))
}

/// The suggested points (fields in [`FIELDS`] order; the scene name is field 1) and the CRS
/// they are written in.
pub fn suggest_points(out: &Path, o: &SuggestOptions) -> Result<(Vec<Point>, String)> {
    suggest_in(&super::shared::pipeline_of(out)?, out, o)
}

/// [`suggest_points`] over the products in `out` of the run of pipeline `p`.
pub fn suggest_in(p: &Pipeline, out: &Path, o: &SuggestOptions) -> Result<(Vec<Point>, String)> {
    let product = product_name(p, out, o)?;
    let scenes = read_products(p, out, &product)?;
    if o.by == Rank::Margin {
        if let Some(s) = scenes.iter().find(|s| s.margin.is_none()) {
            return Err(Error::input(out.join(&s.def.name).join(format!("{product}.tif")), "has no margin band; add `[product] margin = true` to the pipeline and rerun `geofuse run`, or rank with --by least-confidence"));
        }
    }
    let ids: Vec<u8> = p.classes.iter().map(|c| c.id).collect();
    let bands: Vec<SceneBands> = scenes
        .iter()
        .map(|s| scene_bands(p, s, &ids, o))
        .collect::<Result<_>>()?;
    let n_cand = candidates(&bands);
    if n_cand == 0 {
        return Err(Error::input(out, format!("has no candidate pixel of `{product}`: every predicted pixel lies in the scenes' reference data (`labels` or `reference`), so there is nothing left to label")));
    }
    check_ranking(&scenes, &bands, o, &product, out)?;
    if n_cand < o.n {
        return Err(Error::input(out, format!("has {n_cand} candidate pixels of `{product}` (predicted, outside the reference data) for --n {}; ask for --n {n_cand} or fewer", o.n)));
    }
    // Confidence sampling always balances the classes: the most confident pixels of the
    // commonest class would crowd out the rest.
    let balanced = o.per_class || o.by == Rank::Confident;
    let per_class = balanced.then_some(p.classes.len());
    let picks = select(&bands, o.n, per_class, o.seed);
    if picks.len() < o.n {
        return Err(Error::input(out, format!("only {} pixels of `{product}` lie --min-distance apart, fewer than --n {}; lower --min-distance or --n", picks.len(), o.n)));
    }
    let points: Vec<Point> = picks
        .iter()
        .enumerate()
        .map(|(i, pk)| {
            point(
                p,
                &scenes[pk.scene],
                (pk.row, pk.col),
                i + 1,
                &product,
                o.by,
            )
        })
        .collect();
    Ok((points, common_crs(&scenes)))
}

/// The product ranked: `--method`, else the first method's.
fn product_name(p: &Pipeline, out: &Path, o: &SuggestOptions) -> Result<String> {
    let names = p.product_names();
    match &o.method {
        Some(m) if names.contains(m) => Ok(m.clone()),
        Some(m) => Err(Error::input(
            out,
            format!(
                "has no product `{m}`; products of this run: {}",
                names.join(", ")
            ),
        )),
        None => Ok(names[0].clone()),
    }
}

/// Every scene's product of `product` that exists.
fn read_products<'a>(p: &'a Pipeline, out: &Path, product: &str) -> Result<Vec<Scene<'a>>> {
    let mut scenes = Vec::new();
    for s in &p.scenes {
        let path = out.join(&s.name).join(format!("{product}.tif"));
        if !path.exists() {
            continue;
        }
        let r = RasterReader::open(&path)?;
        let grid = r.grid()?;
        if r.band_count() < ProductBand::ALL.len() {
            return Err(Error::input(
                &path,
                "is not a geofuse product (too few bands); rerun `geofuse run`",
            ));
        }
        let win = Window::full(grid.width, grid.height);
        let bytes = |b: usize| -> Result<Vec<u8>> {
            Ok(r.read_band(b, win)?
                .iter()
                .map(|&v| if v.is_nan() { NODATA } else { v as u8 })
                .collect())
        };
        let bands = (1..=5).map(bytes).collect::<Result<_>>()?;
        let margin_band = (1..=r.band_count())
            .find(|&b| r.band_description(b).starts_with(&format!("{MARGIN}:")));
        let margin = margin_band.map(bytes).transpose()?;
        scenes.push(Scene {
            def: s,
            grid,
            bands,
            margin,
        });
    }
    if scenes.is_empty() {
        return Err(Error::input(out, format!("holds no product `{product}.tif` in any scene folder; run `geofuse run PIPELINE --out {}` first", out.display())));
    }
    Ok(scenes)
}

/// The ranking bytes, classes and usable pixels of one scene.
fn scene_bands(p: &Pipeline, s: &Scene, ids: &[u8], o: &SuggestOptions) -> Result<SceneBands> {
    let reference = reference_pixels(p, s)?;
    let class: Vec<u8> = s.bands[0]
        .iter()
        .map(|&id| {
            ids.iter()
                .position(|&i| i == id)
                .map_or(u8::MAX, |k| k as u8)
        })
        .collect();
    let usable = class
        .iter()
        .zip(&reference)
        .map(|(&c, &r)| c != u8::MAX && !r)
        .collect();
    let score = match o.by {
        Rank::Epistemic => s.bands[ProductBand::Epistemic.index()].clone(),
        Rank::Total => s.bands[ProductBand::Total.index()].clone(),
        Rank::LeastConfidence => s.bands[ProductBand::Confidence.index()]
            .iter()
            .map(|&v| 250u8.saturating_sub(v))
            .collect(),
        Rank::Random => vec![0; class.len()],
        Rank::Confident => s.bands[ProductBand::Confidence.index()].clone(),
        Rank::Margin => s
            .margin
            .as_ref()
            .map(|m| m.iter().map(|&v| 250u8.saturating_sub(v)).collect())
            .unwrap_or_else(|| vec![0; class.len()]),
    };
    let px = s.grid.pixel_area().sqrt().max(f64::MIN_POSITIVE);
    Ok(SceneBands {
        width: s.grid.width,
        class,
        score,
        usable,
        min_distance: o.min_distance.map_or(10.0, |d| d / px),
    })
}

/// Pixels of the scene's reference data (labels raster or vector reference) on the product's
/// grid: never suggested again.
fn reference_pixels(p: &Pipeline, s: &Scene) -> Result<Vec<bool>> {
    let g = &s.grid;
    if let Some(r) = &s.def.reference {
        let features = crate::io::vector::read_reference(r, &p.classes, &g.crs_wkt)?;
        let ras =
            crate::reference::rasterize(&features, g).map_err(|m| Error::input(&r.path, m))?;
        return Ok(ras
            .labels
            .iter()
            .map(|&l| l != crate::reference::UNLABELLED)
            .collect());
    }
    let Some(labels) = &s.def.labels else {
        return Ok(vec![false; g.pixels()]);
    };
    let dir = crate::io::writer::temp_dir_for(&std::env::temp_dir().join("geofuse-suggest"))?;
    let aligned = dir.join("labels.tif");
    let read = || -> Result<ndarray::Array2<f32>> {
        let nearest = crate::io::warp::Resampling::Nearest;
        crate::io::warp::warp_to_grid(labels, &aligned, g, nearest, false)?;
        RasterReader::open(&aligned)?.read_band(1, Window::full(g.width, g.height))
    };
    let v = read();
    let _ = std::fs::remove_dir_all(&dir);
    let ids: Vec<f32> = p.classes.iter().map(|c| c.id as f32).collect();
    Ok(v?.iter().map(|l| ids.contains(l)).collect())
}

/// Refuses a ranking the products cannot give: an uncertainty band that is 0 everywhere.
fn check_ranking(
    scenes: &[Scene],
    bands: &[SceneBands],
    o: &SuggestOptions,
    product: &str,
    out: &Path,
) -> Result<()> {
    let band = match o.by {
        Rank::Epistemic => ProductBand::Epistemic,
        Rank::Total => ProductBand::Total,
        _ => return Ok(()),
    };
    let any = scenes.iter().zip(bands).any(|(s, b)| {
        s.bands[band.index()]
            .iter()
            .zip(&b.usable)
            .any(|(&v, &u)| u && v > 0 && v != NODATA)
    });
    if any {
        return Ok(());
    }
    Err(Error::input(out, format!("`{product}` reports no {} uncertainty (0 at every candidate pixel: a network with mc_passes = 1, or a single member); rank with --by least-confidence or random, or use a method with an ensemble", band.name())))
}

/// The CRS of the points: the scenes' when they share one, else WGS 84.
fn common_crs(scenes: &[Scene]) -> String {
    let first = &scenes[0].grid.crs_wkt;
    if scenes
        .iter()
        .all(|s| crate::io::reader::same_crs(&s.grid.crs_wkt, first))
    {
        first.clone()
    } else {
        crate::io::writer::epsg_wkt(4326).unwrap_or_else(|_| first.clone())
    }
}

/// The point of pixel (`r`, `c`) of a scene, with its fields.
fn point(
    p: &Pipeline,
    s: &Scene,
    (r, c): (usize, usize),
    priority: usize,
    product: &str,
    by: Rank,
) -> Point {
    let i = r * s.grid.width + c;
    let t = s.grid.transform;
    let (x, y) = (
        t[0] + (c as f64 + 0.5) * t[1] + (r as f64 + 0.5) * t[2],
        t[3] + (c as f64 + 0.5) * t[4] + (r as f64 + 0.5) * t[5],
    );
    let phys = |b: ProductBand| Value::Real(s.bands[b.index()][i] as f64 * BYTE_SCALE);
    let id = s.bands[0][i];
    let name = p
        .classes
        .iter()
        .find(|k| k.id == id)
        .map_or(String::new(), |k| k.name.clone());
    let score = match by {
        Rank::Epistemic => phys(ProductBand::Epistemic),
        Rank::Total => phys(ProductBand::Total),
        Rank::LeastConfidence => Value::Real(1.0 - s.bands[1][i] as f64 * BYTE_SCALE),
        Rank::Random => Value::Null,
        Rank::Confident => phys(ProductBand::Confidence),
        Rank::Margin => s
            .margin
            .as_ref()
            .map_or(Value::Null, |m| Value::Real(m[i] as f64 * BYTE_SCALE)),
    };
    // Confidence sampling fills `class` with the prediction (the model's label, marked by
    // `ranked_by` = confident); every other ranking leaves it for the user.
    let class = if by == Rank::Confident {
        Value::Int(id as i64)
    } else {
        Value::Null
    };
    Point {
        x,
        y,
        crs_wkt: s.grid.crs_wkt.clone(),
        values: vec![
            Value::Int(priority as i64),
            Value::Text(s.def.name.clone()),
            Value::Text(product.to_string()),
            Value::Text(by.name().to_string()),
            score,
            Value::Int(id as i64),
            Value::Text(name),
            phys(ProductBand::Confidence),
            phys(ProductBand::Aleatoric),
            phys(ProductBand::Epistemic),
            phys(ProductBand::Total),
            Value::Real(x),
            Value::Real(y),
            class,
        ],
    }
}

/// A QGIS style for the points: graduated by priority (red first), labelled with it.
pub fn points_style(n: usize) -> String {
    let third = n.div_ceil(3).max(1);
    let ranges = [
        (1, third, "215,25,28,255", "highest priority"),
        (third + 1, 2 * third, "253,174,97,255", "middle"),
        (
            2 * third + 1,
            n.max(2 * third + 1),
            "43,131,186,255",
            "lowest",
        ),
    ];
    let mut r = String::new();
    let mut sym = String::new();
    for (i, (lo, hi, color, label)) in ranges.iter().enumerate() {
        r.push_str(&format!("      <range lower=\"{lo}\" upper=\"{hi}\" symbol=\"{i}\" label=\"{label} ({lo}-{hi})\" render=\"true\"/>\n"));
        sym.push_str(&format!("      <symbol type=\"marker\" name=\"{i}\" alpha=\"1\" clip_to_extent=\"1\" force_rhr=\"0\">\n        <layer class=\"SimpleMarker\" enabled=\"1\" pass=\"0\" locked=\"0\">\n          <prop k=\"color\" v=\"{color}\"/>\n          <prop k=\"name\" v=\"circle\"/>\n          <prop k=\"outline_color\" v=\"35,35,35,255\"/>\n          <prop k=\"size\" v=\"3\"/>\n        </layer>\n      </symbol>\n"));
    }
    format!("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n<qgis version=\"3.28\" styleCategories=\"Symbology|Labeling\">\n  <renderer-v2 type=\"graduatedSymbol\" attr=\"priority\" graduatedMethod=\"GraduatedColor\" symbollevels=\"0\" enableorderby=\"0\" forceraster=\"0\">\n    <ranges>\n{r}    </ranges>\n    <symbols>\n{sym}    </symbols>\n  </renderer-v2>\n  <labeling type=\"simple\">\n    <settings calloutType=\"simple\">\n      <text-style fieldName=\"priority\" fontSize=\"8\" textColor=\"0,0,0,255\"/>\n    </settings>\n  </labeling>\n</qgis>\n")
}
