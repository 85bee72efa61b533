//! GDAL's sieve (`GDALSieveFilter`, what `gdal_sieve.py` runs): patches of one value smaller
//! than a threshold take the value of their largest neighbouring patch; pixels outside the
//! band's mask (nodata) neither change nor count as neighbours.

/// Sieves band `band` (1-based) of `ds` in place: patches (4- or 8-connected) of fewer than
/// `threshold` pixels merge into their largest neighbour. `Err` is GDAL's message.
pub fn sieve_band(
    ds: &gdal::Dataset,
    band: usize,
    threshold: usize,
    connectedness: u8,
) -> std::result::Result<(), String> {
    if band == 0 || band > ds.raster_count() {
        return Err(format!("no band {band}"));
    }
    let threshold = std::ffi::c_int::try_from(threshold)
        .map_err(|_| format!("sieve threshold {threshold} is too large"))?;
    // SAFETY: the dataset handle is valid while `ds` is borrowed and `band` exists (checked
    // above); GDALGetMaskBand returns a band owned by that band; GDALSieveFilter reads the
    // source and writes the destination (the same band, which GDAL documents as allowed)
    // through those handles only; no options list and no progress callback are passed.
    let err = unsafe {
        let h = gdal_sys::GDALGetRasterBand(ds.c_dataset(), band as std::ffi::c_int);
        if h.is_null() {
            return Err(format!("no band {band}"));
        }
        let mask = gdal_sys::GDALGetMaskBand(h);
        gdal_sys::GDALSieveFilter(
            h,
            mask,
            h,
            threshold,
            connectedness as std::ffi::c_int,
            std::ptr::null_mut(),
            None,
            std::ptr::null_mut(),
        )
    };
    if err == gdal_sys::CPLErr::CE_None {
        Ok(())
    } else {
        Err(super::last_gdal_message())
    }
}
