//! Reading the references a client may see: `HEAD`, `refs/heads/*`, `refs/tags/*` (and the rest of
//! `refs/`), each with its target and, for annotated tags, the peeled object.

use gix::bstr::ByteSlice;
use gix::ObjectId;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors reading references.
#[derive(Debug, thiserror::Error)]
#[error("could not read the references")]
pub struct Error(#[source] pub BoxError);

/// One advertised reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    /// Full name, e.g. `refs/heads/main`.
    pub name: String,
    /// What it points at.
    pub target: ObjectId,
    /// For an annotated tag: the object it finally points at.
    pub peeled: Option<ObjectId>,
}

/// The references of a repository and what `HEAD` is.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// All references under `refs/`, sorted by name.
    pub refs: Vec<Ref>,
    /// The branch `HEAD` points at (`refs/heads/...`), born or not.
    pub head_symref: Option<String>,
    /// The object `HEAD` resolves to, if born.
    pub head: Option<ObjectId>,
}

impl Snapshot {
    /// Reads the references of `repo`.
    pub fn read(repo: &gix::Repository) -> Result<Self, Error> {
        let platform = repo.references().map_err(|e| Error(e.into()))?;
        let mut refs = Vec::new();
        for r in platform
            .prefixed(b"refs/".as_bstr())
            .map_err(|e| Error(e.into()))?
        {
            let mut r = r.map_err(|e| Error(e.into()))?;
            let Some(target) = r.target().try_id().map(ToOwned::to_owned) else {
                continue; // symbolic refs under refs/ are not advertised
            };
            let name = r.name().as_bstr().to_str_lossy().into_owned();
            // Only annotated tags need peeling; finding that out from the object header avoids
            // inflating every commit a ref points at.
            let is_tag = repo
                .find_header(target)
                .map(|h| h.kind() == gix::objs::Kind::Tag)
                .unwrap_or(false);
            let peeled = if is_tag {
                match r.peel_to_id() {
                    Ok(id) if id.detach() != target => Some(id.detach()),
                    _ => None,
                }
            } else {
                None
            };
            refs.push(Ref {
                name,
                target,
                peeled,
            });
        }
        refs.sort_by(|a, b| a.name.cmp(&b.name));
        let head_symref = repo
            .head_name()
            .map_err(|e| Error(e.into()))?
            .map(|n| n.as_bstr().to_str_lossy().into_owned());
        let head = head_symref
            .as_ref()
            .and_then(|n| refs.iter().find(|r| &r.name == n))
            .map(|r| r.target);
        Ok(Self {
            refs,
            head_symref,
            head,
        })
    }

    /// Whether `id` is the target or peeled target of some advertised reference (or `HEAD`).
    pub fn is_tip(&self, id: &ObjectId) -> bool {
        self.head.as_ref() == Some(id)
            || self
                .refs
                .iter()
                .any(|r| &r.target == id || r.peeled.as_ref() == Some(id))
    }

    /// The current value of the reference `name`.
    pub fn get(&self, name: &str) -> Option<ObjectId> {
        self.refs.iter().find(|r| r.name == name).map(|r| r.target)
    }
}
