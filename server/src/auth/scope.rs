//! `orbit:` scopes: `orbit:repo:{orgId}/{name}:read|write` and `orbit:repo:{orgId}/*:read|write`.
//!
//! A token whose `scope` claim holds any `orbit:` scope is restricted to exactly those; a token
//! without one acts with the user's full rights. `write` includes `read`. An `orbit:` scope that
//! does not parse grants nothing (but still restricts the token).

use uuid::Uuid;

/// What an operation needs from a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Reading a repository.
    Read,
    /// Changing a repository (push, branches, settings...).
    Write,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    org_id: Uuid,
    /// Lowercased repository name; `None` for `*`.
    name: Option<String>,
    access: Access,
}

/// The parsed `orbit:` scopes of a restricted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes {
    grants: Vec<Grant>,
}

impl Scopes {
    /// Parses a space-separated `scope` claim. `None` when it holds no `orbit:` scope at all.
    pub fn parse(claim: &str) -> Option<Self> {
        let orbit: Vec<&str> = claim
            .split_ascii_whitespace()
            .filter(|s| s.starts_with("orbit:"))
            .collect();
        if orbit.is_empty() {
            return None;
        }
        Some(Self {
            grants: orbit.into_iter().filter_map(parse_one).collect(),
        })
    }

    /// Whether these scopes allow `access` to repository `name` of org `org_id`.
    pub fn allows(&self, org_id: Uuid, name: &str, access: Access) -> bool {
        self.grants.iter().any(|g| {
            g.org_id == org_id
                && g.access >= access
                && g.name
                    .as_deref()
                    .is_none_or(|n| n.eq_ignore_ascii_case(name))
        })
    }

    /// `(org, Some(lowercased name))` or `(org, None)` for wildcard grants allowing `access`,
    /// for filtering lists in the database.
    pub fn repo_filters(&self, access: Access) -> impl Iterator<Item = (Uuid, Option<&str>)> {
        self.grants
            .iter()
            .filter(move |g| g.access >= access)
            .map(|g| (g.org_id, g.name.as_deref()))
    }
}

fn parse_one(scope: &str) -> Option<Grant> {
    let rest = scope.strip_prefix("orbit:repo:")?;
    let (path, access) = rest.rsplit_once(':')?;
    let access = match access {
        "read" => Access::Read,
        "write" => Access::Write,
        _ => return None,
    };
    let (org, name) = path.split_once('/')?;
    let org_id = Uuid::parse_str(org).ok()?;
    let name = match name {
        "*" => None,
        n if !n.is_empty() && !n.contains('/') => Some(n.to_ascii_lowercase()),
        _ => return None,
    };
    Some(Grant {
        org_id,
        name,
        access,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_restrict_exactly() {
        let org = Uuid::new_v4();
        let other = Uuid::new_v4();
        assert!(Scopes::parse("openid profile").is_none());
        let s = Scopes::parse(&format!(
            "openid orbit:repo:{org}/App:read orbit:repo:{other}/*:write"
        ))
        .expect("scoped");
        assert!(s.allows(org, "app", Access::Read));
        assert!(!s.allows(org, "app", Access::Write));
        assert!(!s.allows(org, "other", Access::Read));
        assert!(s.allows(other, "anything", Access::Write));
        assert!(s.allows(other, "anything", Access::Read));
        let junk = Scopes::parse("orbit:admin orbit:repo:not-a-uuid/x:read").expect("restricted");
        assert!(!junk.allows(org, "app", Access::Read));
    }
}
