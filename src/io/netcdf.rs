//! NetCDF time series (one variable per band, a time dimension: the WorldCereal / openEO
//! layout of `../shared/data/worldcereal_flanders/*/raw_netcdf/`) split into one GeoTIFF per
//! date, which `[[scene_sets]]` then find by the date in their names.
//!
//! GDAL's netCDF driver gives each variable as a subdataset whose bands are the time steps;
//! the time axis is the extra dimension (`NETCDF_DIM_EXTRA`) with CF units
//! (`seconds since 2017-08-04 10:53:28`, `days since ...`) and its values
//! (`NETCDF_DIM_<dim>_VALUES`).

use std::path::{Path, PathBuf};

use gdal::raster::Buffer;
use gdal::{Dataset, DriverManager, Metadata};

use crate::error::{Error, Result};

/// One variable of a time series: its subdataset and scale / offset / nodata.
#[derive(Debug, Clone)]
pub struct Variable {
    /// Variable name (`B05`, `SCL`, `VV`).
    pub name: String,
    /// GDAL path of its subdataset.
    pub subdataset: String,
    /// Value scale (CF `scale_factor`), 1 when absent.
    pub scale: f64,
    /// Value offset (CF `add_offset`), 0 when absent.
    pub offset: f64,
    /// Fill value.
    pub nodata: Option<f64>,
}

/// A NetCDF time series: variables and the time of each step (RFC 3339, UTC).
#[derive(Debug, Clone)]
pub struct TimeSeries {
    /// The file.
    pub path: PathBuf,
    /// Variables with the time dimension, in file order.
    pub variables: Vec<Variable>,
    /// Time of each step.
    pub times: Vec<String>,
}

/// Reads the variables and time axis of a NetCDF time series.
pub fn read_series(path: &Path) -> Result<TimeSeries> {
    if !path.is_file() {
        return Err(Error::input(path, "file not found; check the path"));
    }
    let ds = Dataset::open(path).map_err(|e| {
        Error::input(
            path,
            format!("GDAL cannot open it ({e}); give a NetCDF time series"),
        )
    })?;
    let subs: Vec<String> = ds
        .metadata_domain("SUBDATASETS")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.ends_with("_NAME").then(|| v.to_string())
        })
        .collect();
    let names: Vec<String> = if subs.is_empty() {
        vec![path.to_string_lossy().to_string()]
    } else {
        subs
    };
    let mut variables = Vec::new();
    let mut times: Option<Vec<String>> = None;
    for sub in names {
        let sds = Dataset::open(&sub)
            .map_err(|e| Error::input(path, format!("GDAL cannot open {sub} ({e})")))?;
        let Some(t) = time_axis(&sds, path)? else {
            continue;
        };
        if times.as_ref().is_some_and(|x| x != &t) {
            return Err(Error::input(
                path,
                format!(
                    "{sub} has another time axis than the variables before it; split it on its own"
                ),
            ));
        }
        let band = sds
            .rasterband(1)
            .map_err(|e| Error::input(path, e.to_string()))?;
        let name = sub
            .rsplit(':')
            .next()
            .unwrap_or(&sub)
            .trim_matches('"')
            .to_string();
        variables.push(Variable {
            name,
            subdataset: sub.clone(),
            scale: band.scale().unwrap_or(1.0),
            offset: band.offset().unwrap_or(0.0),
            nodata: band.no_data_value(),
        });
        times = Some(t);
    }
    let times = times.ok_or_else(|| {
        Error::input(path, "has no variable with a time dimension (NETCDF_DIM_EXTRA with CF time units); give a NetCDF time series (time, y, x)")
    })?;
    Ok(TimeSeries {
        path: path.to_path_buf(),
        variables,
        times,
    })
}

/// The time of each band of a subdataset, or None when it has no extra dimension.
fn time_axis(sds: &Dataset, path: &Path) -> Result<Option<Vec<String>>> {
    let Some(extra) = sds.metadata_item("NETCDF_DIM_EXTRA", "") else {
        return Ok(None);
    };
    let dim = extra
        .trim_matches(['{', '}'])
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let units = sds
        .metadata_item(&format!("{dim}#units"), "")
        .unwrap_or_default();
    let values = sds
        .metadata_item(&format!("NETCDF_DIM_{dim}_VALUES"), "")
        .unwrap_or_default();
    let (step, base) = cf_units(&units).ok_or_else(|| {
        Error::input(path, format!("the dimension `{dim}` has units `{units}`, not CF time units (`days since YYYY-MM-DD`); give a NetCDF time series"))
    })?;
    let times = values
        .trim_matches(['{', '}'])
        .split(',')
        .map(|v| {
            let v: f64 = v.trim().parse().map_err(|_| {
                Error::input(path, format!("time value `{v}` of `{dim}` is not a number"))
            })?;
            Ok(crate::time::rfc3339_from_epoch(
                base + (v * step).round() as i64,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    if times.len() != sds.raster_count() {
        return Err(Error::input(
            path,
            format!(
                "`{dim}` lists {} times for {} bands; the file is inconsistent",
                times.len(),
                sds.raster_count()
            ),
        ));
    }
    Ok(Some(times))
}

/// `(seconds per unit, epoch seconds of the reference time)` of CF time units.
fn cf_units(units: &str) -> Option<(f64, i64)> {
    let (unit, since) = units.split_once(" since ")?;
    let step = match unit.trim().to_ascii_lowercase().as_str() {
        "seconds" | "second" | "s" => 1.0,
        "minutes" | "minute" => 60.0,
        "hours" | "hour" | "h" => 3600.0,
        "days" | "day" | "d" => 86400.0,
        _ => return None,
    };
    let t = since.trim();
    let day = crate::time::day_number(t.get(..10)?)?;
    let hms: Vec<i64> = t
        .get(11..19)
        .unwrap_or("")
        .split(':')
        .filter_map(|x| x.parse().ok())
        .collect();
    let secs = match hms.as_slice() {
        [h, m, s] => h * 3600 + m * 60 + s,
        _ => 0,
    };
    Some((step, day * 86400 + secs))
}

/// Writes one GeoTIFF per time step under `out`: `<prefix>_<YYYY-MM-DD>.tif` holding every
/// variable except `mask` as a band (described by its name, `date` metadata set), and the
/// `mask` variable as `<prefix>_<mask>_<YYYY-MM-DD>.tif`. With `physical`, values are scaled
/// to physical units (Float32, fill values NaN); otherwise raw values keep the variables'
/// type and carry their scale and offset. Steps on one day: the first is kept. The files.
pub fn split_dates(
    ts: &TimeSeries,
    out: &Path,
    prefix: &str,
    mask: Option<&str>,
    physical: bool,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, "create output folder", e))?;
    let open = |v: &Variable| {
        Dataset::open(&v.subdataset).map_err(|e| Error::input(&ts.path, e.to_string()))
    };
    let (mut main, mut masks) = (Vec::new(), Vec::new());
    for v in &ts.variables {
        let is_mask = mask.is_some_and(|m| v.name.eq_ignore_ascii_case(m));
        let list = if is_mask { &mut masks } else { &mut main };
        list.push((v, open(v)?));
    }
    let mut written = Vec::new();
    let mut days = std::collections::HashSet::new();
    for (i, t) in ts.times.iter().enumerate() {
        let day = &t[..10];
        if !days.insert(day.to_string()) {
            continue;
        }
        if !main.is_empty() {
            let f = out.join(format!("{prefix}_{day}.tif"));
            write_step(ts, &main, i, t, &f, physical)?;
            written.push(f);
        }
        if let Some((m, _)) = masks.first() {
            let f = out.join(format!("{prefix}_{}_{day}.tif", m.name));
            write_step(ts, &masks[..1], i, t, &f, false)?;
            written.push(f);
        }
    }
    Ok(written)
}

/// Writes step `i` of `vars` to `dst` (temporary name, renamed when complete, removed on
/// failure).
fn write_step(
    ts: &TimeSeries,
    vars: &[(&Variable, Dataset)],
    i: usize,
    time: &str,
    dst: &Path,
    physical: bool,
) -> Result<()> {
    let tmp = super::writer::append_ext(dst, ".partial.tif");
    match write_step_to(ts, vars, (i, time), &tmp, physical) {
        Ok(()) => std::fs::rename(&tmp, dst)
            .map_err(|e| Error::io(dst, "move the dated GeoTIFF into place", e)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The geotransform of a subdataset and whether its rows must be turned over: GDAL's own,
/// else one from the `bounds` attribute (`(xmin, ymin, xmax, ymax)`, as openEO / WorldCereal
/// write it) and the raster size. Without coordinates GDAL's netCDF driver takes the rows as
/// stored bottom-up and turns them over; openEO and xarray store them north-up (checked
/// against the WorldCereal GeoTIFFs made from the same files), so they are turned back.
fn geotransform(sds: &Dataset, path: &Path) -> Result<([f64; 6], bool)> {
    if let Ok(gt) = sds.geo_transform() {
        if gt != [0.0, 1.0, 0.0, 0.0, 0.0, 1.0] {
            return Ok((gt, false));
        }
    }
    let (w, h) = sds.raster_size();
    let b: Vec<f64> = sds
        .metadata_item("NC_GLOBAL#bounds", "")
        .unwrap_or_default()
        .trim_matches(['(', ')', '[', ']'])
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    match b.as_slice() {
        [x0, y0, x1, y1] if x1 > x0 && y1 > y0 => Ok((
            [
                *x0,
                (x1 - x0) / w as f64,
                0.0,
                *y1,
                0.0,
                -(y1 - y0) / h as f64,
            ],
            true,
        )),
        _ => Err(Error::input(
            path,
            "has neither x/y coordinates GDAL reads nor a `bounds` attribute; georeference it",
        )),
    }
}

/// [`write_step`]'s body, into `tmp`.
fn write_step_to(
    ts: &TimeSeries,
    vars: &[(&Variable, Dataset)],
    (i, time): (usize, &str),
    tmp: &Path,
    physical: bool,
) -> Result<()> {
    let first = &vars[0].1;
    let (w, h) = first.raster_size();
    let drv = DriverManager::get_driver_by_name("GTiff")
        .map_err(|e| Error::gdal(tmp, "GTiff driver", e))?;
    let opts = gdal::raster::RasterCreationOptions::from_iter(["COMPRESS=DEFLATE", "TILED=YES"]);
    let fail = |e: gdal::errors::GdalError| Error::gdal(tmp, "write a dated GeoTIFF", e);
    let band_type = first
        .rasterband(i + 1)
        .map_err(|e| Error::input(&ts.path, e.to_string()))?
        .band_type();
    let mut out = if physical {
        drv.create_with_band_type_with_options::<f32, _>(tmp, w, h, vars.len(), &opts)
            .map_err(fail)?
    } else {
        create_like(&drv, tmp, (w, h), vars.len(), band_type, &opts).map_err(fail)?
    };
    let (gt, turn) = geotransform(first, &ts.path)?;
    out.set_geo_transform(&gt).map_err(fail)?;
    out.set_projection(&first.projection()).map_err(fail)?;
    out.set_metadata_item("date", time, "").map_err(fail)?;
    for (b, (v, src)) in vars.iter().enumerate() {
        let band = src
            .rasterband(i + 1)
            .map_err(|e| Error::input(&ts.path, e.to_string()))?;
        let mut vals = band
            .read_as::<f64>((0, 0), (w, h), (w, h), None)
            .map_err(|e| Error::input(&ts.path, e.to_string()))?;
        let mut ob = out.rasterband(b + 1).map_err(fail)?;
        ob.set_description(&v.name).map_err(fail)?;
        if physical {
            for x in vals.data_mut() {
                *x = if Some(*x) == v.nodata {
                    f64::NAN
                } else {
                    *x * v.scale + v.offset
                };
            }
            ob.set_no_data_value(Some(f64::NAN)).map_err(fail)?;
        } else {
            if let Some(n) = v.nodata {
                ob.set_no_data_value(Some(n)).map_err(fail)?;
            }
            if v.scale != 1.0 || v.offset != 0.0 {
                ob.set_scale(v.scale).map_err(fail)?;
                ob.set_offset(v.offset).map_err(fail)?;
            }
        }
        let mut data = vals.data().to_vec();
        if turn {
            let rows: Vec<&[f64]> = data.chunks(w).rev().collect();
            data = rows.concat();
        }
        let mut buf = Buffer::new((w, h), data);
        ob.write((0, 0), (w, h), &mut buf).map_err(fail)?;
    }
    Ok(())
}

/// A GeoTIFF with `n` bands of `t` (raw values keep their type).
fn create_like(
    drv: &gdal::Driver,
    path: &Path,
    (w, h): (usize, usize),
    n: usize,
    t: gdal::raster::GdalDataType,
    opts: &gdal::raster::RasterCreationOptions,
) -> gdal::errors::Result<Dataset> {
    use gdal::raster::GdalDataType as T;
    match t {
        T::UInt8 => drv.create_with_band_type_with_options::<u8, _>(path, w, h, n, opts),
        T::UInt16 => drv.create_with_band_type_with_options::<u16, _>(path, w, h, n, opts),
        T::Int16 => drv.create_with_band_type_with_options::<i16, _>(path, w, h, n, opts),
        T::UInt32 => drv.create_with_band_type_with_options::<u32, _>(path, w, h, n, opts),
        T::Int32 => drv.create_with_band_type_with_options::<i32, _>(path, w, h, n, opts),
        _ => drv.create_with_band_type_with_options::<f32, _>(path, w, h, n, opts),
    }
}

#[cfg(test)]
mod tests {
    use super::cf_units;

    #[test]
    fn cf_time_units_give_the_step_and_the_reference_time() {
        assert_eq!(
            cf_units("seconds since 1970-01-01 00:00:00"),
            Some((1.0, 0))
        );
        assert_eq!(cf_units("days since 1970-01-02"), Some((86400.0, 86400)));
        let (s, t) = cf_units("seconds since 2017-08-04 10:53:28").unwrap();
        assert_eq!(s, 1.0);
        assert_eq!(
            crate::time::rfc3339_from_epoch(t + 864109),
            "2017-08-14T10:55:17Z"
        );
        assert_eq!(cf_units("metres"), None);
        assert_eq!(cf_units("fortnights since 2017-01-01"), None);
    }
}
