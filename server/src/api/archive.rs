//! `GET /repos/{o}/{r}/archive/{ref}.tar.gz` (also `.tar`, `.tgz`, `.zip`): the files of a
//! commit as `git archive` makes them, under a `{repo}-{shortsha}/` directory, streamed. Tar
//! formats stream straight from the tree walk; zip (whose index goes last) is written to a
//! temporary file first, then streamed — memory stays constant either way.

use std::io::{self, Read, Write};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use gitcore::read::{self, archive::Format};
use uuid::Uuid;

use super::access;
use super::error::ApiError;
use super::extract::Path;
use crate::auth::Caller;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_archive))
}

fn split(spec: &str) -> Result<(&str, Format, &'static str), ApiError> {
    for (suffix, format, mime) in [
        (".tar.gz", Format::TarGz, "application/gzip"),
        (".tgz", Format::TarGz, "application/gzip"),
        (".tar", Format::Tar, "application/x-tar"),
        (".zip", Format::Zip, "application/zip"),
    ] {
        if let Some(reference) = spec.strip_suffix(suffix) {
            if !reference.is_empty() {
                return Ok((reference, format, mime));
            }
        }
    }
    Err(ApiError::validation(format!(
        "archive: {spec:?} must be <ref>.tar.gz, <ref>.tar, <ref>.tgz or <ref>.zip"
    )))
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/archive/{*spec}",
    tag = "git",
    responses((status = 200, description = "`{ref}.tar.gz`, `{ref}.tgz`, `{ref}.tar` or `{ref}.zip`, streamed", content((String = "application/gzip"), (String = "application/x-tar"), (String = "application/zip"))))
)]
async fn get_archive(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, spec)): Path<(Uuid, String, String)>,
) -> Result<Response, ApiError> {
    let (reference, format, mime) = split(&spec)?;
    let reference = reference.to_owned();
    let a = access::load_content(&state, &caller, org_id, &name).await?;
    let path = state.config.storage_root.join(&a.repo.storage_path);
    let repos = state.repos.clone();
    // Resolve first, so a bad ref is a clean 404 before any byte is sent.
    let (commit, short) = {
        let repos = repos.clone();
        let path = path.clone();
        tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
            let r = repos
                .open(&path)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let commit = read::resolve::commit(&r, &reference)?;
            Ok((commit, read::resolve::abbreviate(&r, &commit)))
        })
        .await??
    };
    let prefix = format!("{}-{short}", a.repo.name);
    let ext = match format {
        Format::Tar => "tar",
        Format::TarGz => "tar.gz",
        Format::Zip => "zip",
    };
    let filename = format!("{prefix}.{ext}");
    let permit = state
        .git_permits
        .clone()
        .acquire_owned()
        .await
        .map_err(ApiError::internal)?;
    let (tx, stream) = crate::body_channel::channel(16);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let result = (|| -> Result<(), String> {
            let r = repos.open(&path).map_err(|e| e.to_string())?;
            let out = io::BufWriter::with_capacity(64 * 1024, tx.clone());
            match format {
                Format::Tar | Format::TarGz => {
                    read::archive::write_tar(&r, commit, &prefix, format == Format::TarGz, out)
                        .map_err(|e| gitcore::error_chain(&e))
                }
                Format::Zip => {
                    let mut tmp = tempfile::tempfile().map_err(|e| e.to_string())?;
                    read::archive::write_zip(&r, commit, &prefix, &mut tmp)
                        .map_err(|e| gitcore::error_chain(&e))?;
                    io::Seek::rewind(&mut tmp).map_err(|e| e.to_string())?;
                    let mut out = out;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = tmp.read(&mut buf).map_err(|e| e.to_string())?;
                        if n == 0 {
                            break;
                        }
                        out.write_all(&buf[..n]).map_err(|e| e.to_string())?;
                    }
                    out.flush().map_err(|e| e.to_string())
                }
            }
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, "archive failed midway");
            // The client sees a cut-off body rather than a complete-looking archive.
            tx.fail(e);
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
