//! Archives over REST against `git archive` of the same commit: the same files under the same
//! `{repo}-{shortsha}/` prefix, with the same bytes, executable bits and symlinks, as tar,
//! tar.gz and zip (read back with Python's tarfile and zipfile).

use std::path::Path;

use reqwest::{Method, StatusCode};

use crate::pulls::{Fixture, Work};

/// The files of an archive as sorted `name mode-kind sha256` lines (directories left out).
fn listing(archive: &Path, zip: bool) -> String {
    let script = r#"
import hashlib, sys, tarfile, zipfile, stat
path, kind = sys.argv[1], sys.argv[2]
rows = []
if kind == "zip":
    z = zipfile.ZipFile(path)
    for i in z.infolist():
        if i.filename.endswith("/"):
            continue
        mode = (i.external_attr >> 16) & 0o177777
        data = z.read(i)
        k = "link" if stat.S_ISLNK(mode) else ("exec" if mode & 0o111 else "file")
        rows.append(f"{i.filename} {k} {hashlib.sha256(data).hexdigest()}")
else:
    t = tarfile.open(path)
    for m in t.getmembers():
        if m.isdir() or m.name == "pax_global_header" or m.type == tarfile.XGLTYPE:
            continue
        if m.issym():
            rows.append(f"{m.name} link {hashlib.sha256(m.linkname.encode()).hexdigest()}")
        else:
            data = t.extractfile(m).read()
            k = "exec" if m.mode & 0o111 else "file"
            rows.append(f"{m.name} {k} {hashlib.sha256(data).hexdigest()}")
print("\n".join(sorted(rows)))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(archive)
        .arg(if zip { "zip" } else { "tar" })
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn archives_hold_what_git_archive_holds() {
    let f = Fixture::new("public").await;
    let mut w = Work::clone(&f.url).await;
    let binary: String = (0..3000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    w.commit(
        &[
            ("README.md", "# demo\n"),
            ("src/main.rs", "fn main() {}\n"),
            ("src/deep/nested/file.txt", &binary),
            ("empty", ""),
            ("bin/run.sh", "#!/bin/sh\necho hi\n"),
        ],
        "files",
    )
    .await;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            w.dir.join("bin/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
    }
    std::os::unix::fs::symlink("src/main.rs", w.dir.join("link")).expect("symlink");
    w.run(&["add", "-A"]).await;
    w.run(&["commit", "-q", "-m", "exec and link"]).await;
    let head = w.run(&["rev-parse", "HEAD"]).await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let short = w.run(&["rev-parse", "--short", "HEAD"]).await;
    let prefix = format!("{}-{short}/", f.name);

    let tmp = tempfile::tempdir().expect("tmp");
    for (suffix, git_format, zip) in [
        ("tar.gz", "tar.gz", false),
        ("tar", "tar", false),
        ("zip", "zip", true),
    ] {
        let resp = f
            .srv
            .client
            .get(format!(
                "{}{}",
                f.srv.base,
                f.rest(&format!("/archive/main.{suffix}"))
            ))
            .send()
            .await
            .expect("archive");
        assert_eq!(resp.status(), StatusCode::OK, "{suffix}");
        let disposition = resp
            .headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            disposition.contains(&format!("{}-{short}.{suffix}", f.name)),
            "{disposition}"
        );
        let ours = tmp.path().join(format!("ours.{suffix}"));
        std::fs::write(&ours, resp.bytes().await.expect("body")).expect("write");
        let theirs = tmp.path().join(format!("git.{suffix}"));
        w.run(&[
            "archive",
            &format!("--format={git_format}"),
            &format!("--prefix={prefix}"),
            "-o",
            theirs.to_str().expect("path"),
            &head,
        ])
        .await;
        let (a, b) = (listing(&ours, zip), listing(&theirs, zip));
        assert!(a.contains("bin/run.sh exec") && a.contains(" link "), "{a}");
        assert_eq!(a, b, "{suffix}");
    }
    for bad in ["/archive/main.rar", "/archive/.zip"] {
        f.call(Method::GET, bad, None)
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    f.call(Method::GET, "/archive/nope.tar.gz", None)
        .await
        .assert_error(404, "NOT_FOUND");
}
