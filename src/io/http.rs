//! HTTP through GDAL's own client (libcurl, `CPLHTTPFetch`): STAC documents and searches,
//! with the same retries and timeouts as the `/vsicurl/` range reads of raster assets.
//!
//! geofuse sets GDAL's network options once per process unless the environment already does:
//! `GDAL_HTTP_TIMEOUT` (seconds per request, default [`DEFAULT_TIMEOUT_S`]),
//! `GDAL_HTTP_CONNECTTIMEOUT` ([`DEFAULT_CONNECT_TIMEOUT_S`]), `GDAL_HTTP_MAX_RETRY`
//! ([`DEFAULT_MAX_RETRY`] retries after the first try, on HTTP 429/5xx and connection
//! failures) with `GDAL_HTTP_RETRY_DELAY` ([`DEFAULT_RETRY_DELAY_S`] s, doubled each time),
//! and `GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR` (no directory listing per remote file).
//! Remote blocks are kept for the whole run: `CPL_VSIL_CURL_CACHE_SIZE` (default
//! [`DEFAULT_REMOTE_CACHE_MB`] MB) with `GDAL_HTTP_MULTIRANGE=SERIAL`, because GDAL's parallel
//! multi-range reads bypass that cache. A run reads a scene several times (sampling for
//! training, each method's prediction, tile halos): with GDAL's defaults a 2048 x 2048 scene
//! of 106 MB of COGs downloaded 1.3 GB, with these 78 MB (BENCHMARKS.md). Assets larger than
//! the cache are downloaded again on each pass; raise the variable or declare a `grid`.
//! A request therefore gives up after at most about (retries + 1) x timeout seconds; a run
//! never hangs on a dead server.

use std::ffi::{c_char, c_int, CStr, CString};

/// Seconds one HTTP request may take.
pub const DEFAULT_TIMEOUT_S: u32 = 30;
/// Seconds to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT_S: u32 = 10;
/// Retries after a failed request.
pub const DEFAULT_MAX_RETRY: u32 = 3;
/// Seconds before the first retry.
pub const DEFAULT_RETRY_DELAY_S: u32 = 1;
/// Megabytes of downloaded remote blocks kept for reuse.
pub const DEFAULT_REMOTE_CACHE_MB: u64 = 256;

/// `CPLHTTPResult` of GDAL 3.6 (`cpl_http.h`); gdal-sys does not bind `cpl_http.h`.
#[repr(C)]
struct CplHttpResult {
    n_status: c_int,
    content_type: *mut c_char,
    err_buf: *mut c_char,
    data_len: c_int,
    data_alloc: c_int,
    data: *mut u8,
    headers: *mut *mut c_char,
    mime_part_count: c_int,
    mime_parts: *mut std::ffi::c_void,
}

extern "C" {
    fn CPLHTTPFetch(url: *const c_char, options: *mut *mut c_char) -> *mut CplHttpResult;
    fn CPLHTTPDestroyResult(result: *mut CplHttpResult);
}

/// The network options in force: `(timeout_s, max_retry)`.
pub fn network_settings() -> (u32, u32) {
    let get = |k: &str, d: u32| {
        let c = CString::new(k).unwrap_or_default();
        // SAFETY: CPLGetConfigOption returns a pointer owned by GDAL (or the default, NULL
        // here) that stays valid until the option is changed; it is copied at once.
        let p = unsafe { gdal_sys::CPLGetConfigOption(c.as_ptr(), std::ptr::null()) };
        if p.is_null() {
            return d;
        }
        // SAFETY: non-null, NUL-terminated string owned by GDAL.
        let s = unsafe { CStr::from_ptr(p) }.to_string_lossy();
        s.trim().parse().unwrap_or(d)
    };
    (
        get("GDAL_HTTP_TIMEOUT", DEFAULT_TIMEOUT_S),
        get("GDAL_HTTP_MAX_RETRY", DEFAULT_MAX_RETRY),
    )
}

/// Sets GDAL's network options that the environment leaves unset (see the module docs).
pub fn configure_network() {
    let defaults = [
        ("GDAL_HTTP_TIMEOUT", DEFAULT_TIMEOUT_S.to_string()),
        (
            "GDAL_HTTP_CONNECTTIMEOUT",
            DEFAULT_CONNECT_TIMEOUT_S.to_string(),
        ),
        ("GDAL_HTTP_MAX_RETRY", DEFAULT_MAX_RETRY.to_string()),
        ("GDAL_HTTP_RETRY_DELAY", DEFAULT_RETRY_DELAY_S.to_string()),
        ("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR".to_string()),
        (
            "CPL_VSIL_CURL_CACHE_SIZE",
            (DEFAULT_REMOTE_CACHE_MB << 20).to_string(),
        ),
        ("GDAL_HTTP_MULTIRANGE", "SERIAL".to_string()),
    ];
    for (k, v) in defaults {
        if std::env::var_os(k).is_some() {
            continue;
        }
        let (ck, cv) = (CString::new(k), CString::new(v));
        if let (Ok(ck), Ok(cv)) = (ck, cv) {
            // SAFETY: both are valid NUL-terminated strings; GDAL copies them.
            unsafe { gdal_sys::CPLSetConfigOption(ck.as_ptr(), cv.as_ptr()) };
        }
    }
}

/// GETs `url`, or POSTs `json` to it; the body, or the reason it failed (curl's or the
/// server's message, with the HTTP status).
pub fn fetch(url: &str, json: Option<&str>) -> Result<Vec<u8>, String> {
    let (timeout, retry) = network_settings();
    let mut opts = vec![
        format!("TIMEOUT={timeout}"),
        format!("MAX_RETRY={retry}"),
        format!("RETRY_DELAY={DEFAULT_RETRY_DELAY_S}"),
        "HEADERS=Accept: application/geo+json, application/json".to_string(),
    ];
    if let Some(body) = json {
        opts.push(format!("POSTFIELDS={body}"));
        opts[3] = "HEADERS=Content-Type: application/json\r\nAccept: application/geo+json, application/json".into();
    }
    let c_opts: Vec<CString> = opts
        .iter()
        .map(|o| {
            CString::new(o.as_str())
                .map_err(|_| format!("{url}: a request option holds a NUL byte"))
        })
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*mut c_char> = c_opts.iter().map(|c| c.as_ptr() as *mut c_char).collect();
    argv.push(std::ptr::null_mut());
    let c_url = CString::new(url).map_err(|_| format!("{url}: the URL holds a NUL byte"))?;
    // SAFETY: url and the NULL-terminated option list are valid for the call; GDAL returns
    // an owned result (or NULL) that is destroyed exactly once below, after its fields are
    // copied.
    unsafe {
        let r = CPLHTTPFetch(c_url.as_ptr(), argv.as_mut_ptr());
        if r.is_null() {
            return Err(format!("{url}: {}", super::last_gdal_message()));
        }
        let res = &*r;
        let err = (!res.err_buf.is_null())
            .then(|| CStr::from_ptr(res.err_buf).to_string_lossy().to_string())
            .filter(|e| !e.is_empty());
        let body = if res.data.is_null() || res.data_len <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(res.data, res.data_len as usize).to_vec()
        };
        let status = res.n_status;
        CPLHTTPDestroyResult(r);
        match err {
            Some(e) => Err(format!(
                "{url}: {e} (tried {} times, {timeout} s each)",
                retry + 1
            )),
            None if status != 0 => Err(format!("{url}: request failed (curl status {status})")),
            None => Ok(body),
        }
    }
}
