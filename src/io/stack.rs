//! Per-band STAC assets stacked into GDAL VRTs: the optical bands on the finest band's grid
//! (each band resampled as the pipeline states; several Items of a day mosaicked, their
//! nodata transparent), the mask on the same grid (nearest), the SAR polarisations on the
//! SAR Items' own grid (the scene's co-registration warps them onto the optical grid). With a
//! declared grid every band is warped onto it (a warped VRT per band). Nothing is copied at
//! full resolution: the VRTs point at the assets (`/vsicurl/` range reads for http hrefs).

use std::ffi::CString;
use std::path::{Path, PathBuf};

use gdal::Dataset;

use super::reader::{grid_of, same_crs};
use super::warp::xml_escape;
use crate::config::catalogue::{AssetRef, BandResampling, CatalogueScene, GridDef};
use crate::error::{Error, Result};
use crate::raster::Grid;

/// The VRTs of one catalogue scene.
#[derive(Debug, Clone)]
pub struct Stacks {
    /// Optical bands in pipeline order.
    pub optical: PathBuf,
    /// Mask on the optical grid.
    pub mask: Option<PathBuf>,
    /// SAR polarisations in pipeline order, on the SAR Items' grid.
    pub sar: PathBuf,
}

/// One opened asset.
struct Source {
    path: String,
    grid: Grid,
    dtype: String,
    nodata: Option<f64>,
    ds: Dataset,
}

/// Builds the scene's VRTs in `dir`.
pub fn build_stacks(c: &CatalogueScene, dir: &Path) -> Result<Stacks> {
    let (optical, mask) = build_optical(c, dir)?;
    Ok(Stacks {
        optical,
        mask,
        sar: stack_sar(c, dir)?,
    })
}

/// Builds the optical VRT (and the mask's, when the scene has one) of a catalogue scene in
/// `dir`: `(optical, mask)`.
pub fn build_optical(c: &CatalogueScene, dir: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    super::http::configure_network();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create work folder", e))?;
    let bands: Vec<(String, BandResampling, Vec<Source>)> = c
        .bands
        .iter()
        .map(|(n, r, refs)| Ok((n.clone(), *r, open_all(refs)?)))
        .collect::<Result<_>>()?;
    let mask: Vec<Source> = open_all(&c.mask)?;
    let optical = dir.join("optical.vrt");
    let mask_path = (!mask.is_empty()).then(|| dir.join("mask.vrt"));
    let (grid, mask_sources) = match &c.grid {
        None => {
            let all: Vec<&Source> = bands.iter().flat_map(|b| &b.2).collect();
            let grid = union_grid(&all, c)?;
            write_bands(&optical, &grid, &bands, c.dn_shift)?;
            (grid, mask)
        }
        Some(g) => {
            let mut warped = Vec::new();
            for (i, (n, r, s)) in bands.iter().enumerate() {
                let w = warp_each(s, g, *r, dir, &format!("band{i}"))?;
                // Resampled by the warp: stacked as they are.
                warped.push((n.clone(), BandResampling::Nearest, w));
            }
            let grid = warped[0].2[0].grid.clone();
            write_bands(&optical, &grid, &warped, c.dn_shift)?;
            let m = match &mask_path {
                Some(_) => warp_each(&mask, g, BandResampling::Nearest, dir, "mask")?,
                None => Vec::new(),
            };
            (grid, m)
        }
    };
    if let Some(m) = &mask_path {
        let l = Layer {
            name: "mask",
            resampling: BandResampling::Nearest,
            sources: mask_sources.iter().collect(),
            shift: 0.0,
        };
        write_vrt(m, &grid, &[l])?;
    }
    Ok((optical, mask_path))
}

/// Writes the optical VRT: one band per `(name, resampling, sources)`, each shifted by
/// `shift` DN.
fn write_bands(
    dst: &Path,
    grid: &Grid,
    bands: &[(String, BandResampling, Vec<Source>)],
    shift: f64,
) -> Result<()> {
    let layers: Vec<Layer> = bands
        .iter()
        .map(|(n, r, s)| Layer {
            name: n,
            resampling: *r,
            sources: s.iter().collect(),
            shift,
        })
        .collect();
    write_vrt(dst, grid, &layers)
}

/// The SAR VRT (`dir/sar.vrt`): the polarisations of the SAR Items on their own grid.
pub fn stack_sar(c: &CatalogueScene, dir: &Path) -> Result<PathBuf> {
    super::http::configure_network();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create work folder", e))?;
    let sar_bands: Vec<(String, BandResampling, Vec<Source>)> = c
        .sar
        .iter()
        .map(|(p, refs)| Ok((p.clone(), BandResampling::Nearest, open_all(refs)?)))
        .collect::<Result<_>>()?;
    let all: Vec<&Source> = sar_bands.iter().flat_map(|b| &b.2).collect();
    let sar_grid = union_grid(&all, c)?;
    let sar = dir.join("sar.vrt");
    write_bands(&sar, &sar_grid, &sar_bands, 0.0)?;
    Ok(sar)
}

fn open_all(refs: &[AssetRef]) -> Result<Vec<Source>> {
    refs.iter().map(open_asset).collect()
}

/// Opens one asset; the error names the Item, the asset key, the href and the fix.
fn open_asset(a: &AssetRef) -> Result<Source> {
    let path = gdal_path(&a.href);
    let fail = |why: String| {
        let (timeout, retry) = super::http::network_settings();
        let net = if path.starts_with("/vsicurl/") {
            format!(" (network reads are retried {retry} times, {timeout} s each; GDAL_HTTP_MAX_RETRY and GDAL_HTTP_TIMEOUT set them)")
        } else {
            String::new()
        };
        Error::input(
            &a.href,
            format!("Item `{}`, asset `{}`: {why}; check that the href is reachable and names a raster, or drop the Item{net}", a.item, a.key),
        )
    };
    let ds = Dataset::open(&path).map_err(|_| {
        let why = super::last_gdal_message();
        let why = if why.is_empty() {
            "not found, not answering, or not a raster".to_string()
        } else {
            why
        };
        fail(format!("GDAL cannot open it ({why})"))
    })?;
    if ds.raster_count() == 0 {
        return Err(fail("it has no raster band".into()));
    }
    let grid =
        grid_of(&ds, Path::new(&a.href)).map_err(|_| fail("it has no geotransform".into()))?;
    if grid.transform[2] != 0.0 || grid.transform[4] != 0.0 || grid.transform[5] >= 0.0 {
        return Err(fail("its grid is rotated or not north-up".into()));
    }
    let (dtype, nodata) = {
        let band = ds.rasterband(1).map_err(|e| fail(e.to_string()))?;
        (band.band_type().name(), band.no_data_value())
    };
    Ok(Source {
        path,
        grid,
        dtype,
        nodata,
        ds,
    })
}

/// The grid covering every source at the finest source resolution; the sources must share
/// a CRS.
fn union_grid(all: &[&Source], c: &CatalogueScene) -> Result<Grid> {
    let first = all
        .first()
        .ok_or_else(|| Error::Internal("a stack without sources".into()))?;
    if let Some(other) = all
        .iter()
        .find(|s| !same_crs(&s.grid.crs_wkt, &first.grid.crs_wkt))
    {
        let items = c.optical_items.iter().chain(&c.sar_items);
        let ids: Vec<&str> = items.map(|i| i.id.as_str()).collect();
        return Err(Error::GridMismatch {
            path: PathBuf::from(&other.path),
            msg: format!(
                "the Items of one scene ({}) are on different CRSs ({} and {}); declare a common grid: `grid = {{ epsg = ..., bounds = [xmin, ymin, xmax, ymax], resolution = 10 }}` in the [[catalogue]] table",
                ids.join(", "),
                first.grid.describe(),
                other.grid.describe()
            ),
        });
    }
    let res = all
        .iter()
        .map(|s| s.grid.transform[1])
        .fold(f64::INFINITY, f64::min);
    let b = all.iter().map(|s| s.grid.bounds()).fold(
        [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ],
        |a, b| {
            [
                a[0].min(b[0]),
                a[1].min(b[1]),
                a[2].max(b[2]),
                a[3].max(b[3]),
            ]
        },
    );
    Ok(Grid {
        width: ((b[2] - b[0]) / res).round() as usize,
        height: ((b[3] - b[1]) / res).round() as usize,
        transform: [b[0], res, 0.0, b[3], 0.0, -res],
        crs_wkt: first.grid.crs_wkt.clone(),
        epsg: first.grid.epsg,
    })
}

/// Each of one band's sources (one per Item) warped onto a declared grid as a warped VRT in
/// `dir` (gdalwarp writes a VRT from one source only); the stack mosaics them, nodata
/// transparent. A source without nodata (a mask) gets 0 outside its footprint.
fn warp_each(
    srcs: &[Source],
    g: &GridDef,
    r: BandResampling,
    dir: &Path,
    stem: &str,
) -> Result<Vec<Source>> {
    srcs.iter()
        .enumerate()
        .map(|(j, s)| warp_one(s, g, r, &dir.join(format!("{stem}_{j}.vrt"))))
        .collect()
}

/// One source warped onto a declared grid as a warped VRT at `dst`.
fn warp_one(src: &Source, g: &GridDef, r: BandResampling, dst: &Path) -> Result<Source> {
    let [x0, y0, x1, y1] = g.bounds;
    let res = g.resolution.to_string();
    let mut args: Vec<String> = vec![
        "-of".into(),
        "VRT".into(),
        "-t_srs".into(),
        format!("EPSG:{}", g.epsg),
        "-te".into(),
        x0.to_string(),
        y0.to_string(),
        x1.to_string(),
        y1.to_string(),
        "-tr".into(),
        res.clone(),
        res,
        "-r".into(),
        r.gdal_name().into(),
        "-overwrite".into(),
    ];
    if src.nodata.is_none() {
        args.extend(["-dstnodata".into(), "0".into()]);
    }
    let cargs: Vec<CString> = args
        .iter()
        .map(|a: &String| CString::new(a.as_str()).unwrap_or_default())
        .collect();
    let c_dst = CString::new(dst.to_string_lossy().as_bytes())
        .map_err(|e| Error::Internal(e.to_string()))?;
    if !super::warp::run_warp(&[&src.ds], &cargs, &c_dst) {
        return Err(Error::input(
            dst,
            format!("GDAL could not warp the assets onto the declared grid EPSG:{} ({}); check `catalogue.grid`", g.epsg, super::last_gdal_message()),
        ));
    }
    let a = AssetRef {
        item: "grid".into(),
        key: "warped".into(),
        href: dst.to_string_lossy().to_string(),
    };
    let mut s = open_asset(&a)?;
    s.nodata = s.nodata.or(src.nodata).or(Some(0.0));
    Ok(s)
}

/// One band of a VRT: its sources (mosaicked in order), resampling and DN shift.
struct Layer<'a> {
    name: &'a str,
    resampling: BandResampling,
    sources: Vec<&'a Source>,
    /// Added to every valid value (then Float32, nodata NaN, so a shifted 0 stays valid).
    shift: f64,
}

/// Writes a VRT of `layers` on `grid`, under a temporary name renamed when complete.
fn write_vrt(dst: &Path, grid: &Grid, layers: &[Layer]) -> Result<()> {
    let t = &grid.transform;
    let mut x = format!(
        "<VRTDataset rasterXSize=\"{}\" rasterYSize=\"{}\">\n  <SRS>{}</SRS>\n  <GeoTransform>{}</GeoTransform>\n",
        grid.width,
        grid.height,
        xml_escape(&grid.crs_wkt),
        t.iter().map(|v| format!("{v:.17e}")).collect::<Vec<_>>().join(", ")
    );
    for (i, l) in layers.iter().enumerate() {
        x.push_str(&band_xml(i + 1, l, grid));
    }
    x.push_str("</VRTDataset>\n");
    let tmp = crate::io::writer::append_ext(dst, ".partial");
    std::fs::write(&tmp, x).map_err(|e| Error::io(&tmp, "write VRT", e))?;
    std::fs::rename(&tmp, dst).map_err(|e| Error::io(dst, "move VRT into place", e))
}

/// One `VRTRasterBand`: a ComplexSource per source placed by its geotransform, the source's
/// nodata transparent so a mosaic never paints nodata over another Item's pixels.
fn band_xml(b: usize, l: &Layer, grid: &Grid) -> String {
    let first = l.sources[0];
    let (dtype, nd) = if l.shift != 0.0 {
        ("Float32".to_string(), Some("nan".to_string()))
    } else {
        (first.dtype.clone(), first.nodata.map(|v| v.to_string()))
    };
    let nd = nd
        .map(|v| format!("    <NoDataValue>{v}</NoDataValue>\n"))
        .unwrap_or_default();
    let scaling = if l.shift != 0.0 {
        format!(
            "<ScaleOffset>{}</ScaleOffset><ScaleRatio>1</ScaleRatio>",
            l.shift
        )
    } else {
        String::new()
    };
    let mut x = format!(
        "  <VRTRasterBand dataType=\"{dtype}\" band=\"{b}\">\n    <Description>{}</Description>\n{nd}",
        xml_escape(l.name)
    );
    let (gx, gy, res) = (grid.transform[0], grid.transform[3], grid.transform[1]);
    for s in &l.sources {
        let st = &s.grid.transform;
        let dst = [
            (st[0] - gx) / res,
            (gy - st[3]) / res,
            s.grid.width as f64 * st[1] / res,
            s.grid.height as f64 * -st[5] / res,
        ];
        let snd = s
            .nodata
            .map(|v| format!("<NODATA>{v}</NODATA>"))
            .unwrap_or_default();
        x.push_str(&format!(
            "    <ComplexSource resampling=\"{}\">\n      <SourceFilename relativeToVRT=\"0\">{}</SourceFilename>\n      <SourceBand>1</SourceBand>\n      <SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{}\" ySize=\"{}\"/>\n      <DstRect xOff=\"{}\" yOff=\"{}\" xSize=\"{}\" ySize=\"{}\"/>\n      {snd}{scaling}\n    </ComplexSource>\n",
            l.resampling.vrt_name(),
            xml_escape(&s.path),
            s.grid.width,
            s.grid.height,
            dst[0], dst[1], dst[2], dst[3]
        ));
    }
    x.push_str("  </VRTRasterBand>\n");
    x
}
/// The path GDAL opens for an href: `/vsicurl/` for http(s), the path for `file://`, the
/// href itself otherwise (a local path).
pub fn gdal_path(href: &str) -> String {
    if href.starts_with("http://") || href.starts_with("https://") {
        format!("/vsicurl/{href}")
    } else if let Some(p) = href.strip_prefix("file://") {
        p.to_string()
    } else if let Some(p) = href.strip_prefix("s3://") {
        format!("/vsis3/{p}")
    } else {
        href.to_string()
    }
}
