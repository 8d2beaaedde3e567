//! The permission matrix: every route built so far × owner, writer, reader, stranger, anonymous,
//! scoped tokens and the internal token, on private and public repositories.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{Auth, TestServer, INTERNAL};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Owner,
    Writer,
    Reader,
    Stranger,
    Anonymous,
    /// The owner's token restricted to read this repository.
    ScopedRead,
    /// The owner's token restricted to write this repository.
    ScopedWrite,
    /// The owner's token restricted to another repository.
    ScopedOther,
    /// Only `X-Internal-Token`.
    Internal,
}

const ACTORS: [Actor; 9] = [
    Actor::Owner,
    Actor::Writer,
    Actor::Reader,
    Actor::Stranger,
    Actor::Anonymous,
    Actor::ScopedRead,
    Actor::ScopedWrite,
    Actor::ScopedOther,
    Actor::Internal,
];

#[derive(Debug, Clone, Copy)]
enum Route {
    GetRepo,
    PatchRepo,
    DeleteRepo,
    ArchiveRepo,
    ListCollaborators,
    PutCollaborator,
    DeleteCollaborator,
    ListEvents,
}

const ROUTES: [Route; 8] = [
    Route::GetRepo,
    Route::PatchRepo,
    Route::DeleteRepo,
    Route::ArchiveRepo,
    Route::ListCollaborators,
    Route::PutCollaborator,
    Route::DeleteCollaborator,
    Route::ListEvents,
];

struct Users {
    owner: Uuid,
    writer: Uuid,
    reader: Uuid,
    stranger: Uuid,
    org: Uuid,
}

fn auth_for(srv: &TestServer, u: &Users, actor: Actor, repo: &str) -> Auth {
    let org = u.org;
    match actor {
        Actor::Owner => Auth::Bearer(srv.token(u.owner)),
        Actor::Writer => Auth::Bearer(srv.token(u.writer)),
        Actor::Reader => Auth::Bearer(srv.token(u.reader)),
        Actor::Stranger => Auth::Bearer(srv.token(u.stranger)),
        Actor::Anonymous => Auth::None,
        Actor::ScopedRead => {
            Auth::Bearer(srv.scoped(u.owner, &format!("orbit:repo:{org}/{repo}:read")))
        }
        Actor::ScopedWrite => {
            Auth::Bearer(srv.scoped(u.owner, &format!("openid orbit:repo:{org}/{repo}:write")))
        }
        Actor::ScopedOther => {
            Auth::Bearer(srv.scoped(u.owner, &format!("orbit:repo:{org}/elsewhere:write")))
        }
        Actor::Internal => Auth::Internal(INTERNAL.into()),
    }
}

/// What a user of GitHub would expect, per API.md's Authorization section.
fn expected(route: Route, actor: Actor, public: bool) -> u16 {
    let can_read = public
        || matches!(
            actor,
            Actor::Owner | Actor::Writer | Actor::Reader | Actor::ScopedRead | Actor::ScopedWrite
        );
    let success = match route {
        Route::DeleteRepo | Route::DeleteCollaborator => 204,
        _ => 200,
    };
    match route {
        Route::GetRepo => {
            if can_read {
                200
            } else {
                404
            }
        }
        _ => match actor {
            Actor::Anonymous | Actor::Internal => 401,
            _ if !can_read => 404,
            Actor::Owner | Actor::ScopedWrite => success,
            _ => 403,
        },
    }
}

async fn call(
    srv: &TestServer,
    route: Route,
    auth: &Auth,
    org: Uuid,
    repo: &str,
    target: Uuid,
) -> (u16, Value) {
    let base = format!("/repos/{org}/{repo}");
    let (method, path, body) = match route {
        Route::GetRepo => (Method::GET, base, None),
        Route::PatchRepo => (Method::PATCH, base, Some(json!({"description": "changed"}))),
        Route::DeleteRepo => (Method::DELETE, base, None),
        Route::ArchiveRepo => (Method::POST, format!("{base}/archive"), None),
        Route::ListCollaborators => (Method::GET, format!("{base}/collaborators"), None),
        Route::PutCollaborator => (
            Method::PUT,
            format!("{base}/collaborators/{}", Uuid::new_v4()),
            Some(json!({"role": "reader"})),
        ),
        Route::DeleteCollaborator => (
            Method::DELETE,
            format!("{base}/collaborators/{target}"),
            None,
        ),
        Route::ListEvents => (Method::GET, format!("{base}/events"), None),
    };
    let r = srv.send(method, &path, auth, body).await;
    (r.status.as_u16(), r.body)
}

#[tokio::test]
async fn permission_matrix_on_repository_routes() {
    let srv = TestServer::start().await;
    let u = Users {
        owner: Uuid::new_v4(),
        writer: Uuid::new_v4(),
        reader: Uuid::new_v4(),
        stranger: Uuid::new_v4(),
        org: Uuid::new_v4(),
    };
    let mut failures = Vec::new();
    let mut n = 0;
    for public in [false, true] {
        for route in ROUTES {
            for actor in ACTORS {
                // A fresh repository per cell: some routes change or delete it.
                n += 1;
                let name = format!("m{n}");
                srv.create_repo(
                    u.owner,
                    u.org,
                    &name,
                    if public { "public" } else { "private" },
                )
                .await;
                srv.add_collaborator(u.owner, u.org, &name, u.writer, "writer")
                    .await;
                srv.add_collaborator(u.owner, u.org, &name, u.reader, "reader")
                    .await;
                let auth = auth_for(&srv, &u, actor, &name);
                let (status, body) = call(&srv, route, &auth, u.org, &name, u.reader).await;
                let want = expected(route, actor, public);
                if status != want {
                    failures.push(format!(
                        "{route:?} as {actor:?} on {} repo: got {status}, want {want}: {body}",
                        if public { "public" } else { "private" }
                    ));
                }
                if status >= 400 && body["error"]["code"].as_str().is_none() {
                    failures.push(format!("{route:?} as {actor:?}: no error envelope: {body}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn listing_shows_what_each_caller_may_read() {
    let srv = TestServer::start().await;
    let (owner, writer, stranger, org) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    srv.create_repo(owner, org, "private-a", "private").await;
    srv.create_repo(owner, org, "private-b", "private").await;
    srv.create_repo(owner, org, "public-c", "public").await;
    srv.add_collaborator(owner, org, "private-a", writer, "writer")
        .await;
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> = v
            .as_array()
            .expect("array")
            .iter()
            .map(|r| r["name"].as_str().expect("name").to_owned())
            .collect();
        n.sort();
        n
    };
    let q_org = &format!("?orgId={org}");

    assert_eq!(
        names(&list(&srv, Auth::Bearer(srv.token(owner)), "").await.body),
        ["private-a", "private-b", "public-c"]
    );
    assert_eq!(
        names(&list(&srv, Auth::Bearer(srv.token(writer)), "").await.body),
        ["private-a"]
    );
    assert_eq!(
        names(&list(&srv, Auth::Bearer(srv.token(stranger)), "").await.body),
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            &list(&srv, Auth::Bearer(srv.token(stranger)), q_org)
                .await
                .body
        ),
        ["public-c"]
    );
    assert_eq!(
        names(&list(&srv, Auth::None, q_org).await.body),
        ["public-c"]
    );
    list(&srv, Auth::None, "")
        .await
        .assert_error(401, "UNAUTHORIZED");
    list(&srv, Auth::Internal(INTERNAL.into()), "")
        .await
        .assert_error(401, "UNAUTHORIZED");
    let scoped = srv.scoped(owner, &format!("orbit:repo:{org}/private-b:read"));
    assert_eq!(
        names(&list(&srv, Auth::Bearer(scoped.clone()), "").await.body),
        ["private-b"]
    );
    assert_eq!(
        names(&list(&srv, Auth::Bearer(scoped), q_org).await.body),
        ["private-b", "public-c"]
    );
    let wildcard = srv.scoped(owner, &format!("orbit:repo:{org}/*:read"));
    assert_eq!(
        names(&list(&srv, Auth::Bearer(wildcard), "").await.body),
        ["private-a", "private-b", "public-c"]
    );
}

async fn list(srv: &TestServer, auth: Auth, query: &str) -> crate::common::Resp {
    srv.get(&format!("/repos{query}"), &auth).await
}

#[tokio::test]
async fn creating_needs_a_user_and_a_matching_scope() {
    let srv = TestServer::start().await;
    let (user, org) = (Uuid::new_v4(), Uuid::new_v4());
    let body = |name: &str| {
        Some(json!({"orgId": org, "projectId": org, "name": name, "visibility": "private"}))
    };
    srv.send(Method::POST, "/repos", &Auth::None, body("a"))
        .await
        .assert_error(401, "UNAUTHORIZED");
    srv.send(
        Method::POST,
        "/repos",
        &Auth::Internal(INTERNAL.into()),
        body("a"),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    let read_only = Auth::Bearer(srv.scoped(user, &format!("orbit:repo:{org}/*:read")));
    srv.send(Method::POST, "/repos", &read_only, body("a"))
        .await
        .assert_error(403, "FORBIDDEN");
    let other_org =
        Auth::Bearer(srv.scoped(user, &format!("orbit:repo:{}/*:write", Uuid::new_v4())));
    srv.send(Method::POST, "/repos", &other_org, body("a"))
        .await
        .assert_error(403, "FORBIDDEN");
    let named = Auth::Bearer(srv.scoped(user, &format!("orbit:repo:{org}/b:write")));
    srv.send(Method::POST, "/repos", &named, body("a"))
        .await
        .assert_error(403, "FORBIDDEN");
    assert_eq!(
        srv.send(Method::POST, "/repos", &named, body("b"))
            .await
            .status,
        200
    );
    let wildcard = Auth::Bearer(srv.scoped(user, &format!("orbit:repo:{org}/*:write")));
    assert_eq!(
        srv.send(Method::POST, "/repos", &wildcard, body("c"))
            .await
            .status,
        200
    );
    assert_eq!(
        srv.send(
            Method::POST,
            "/repos",
            &Auth::Bearer(srv.token(user)),
            body("d")
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn internal_and_admin_routes_take_only_the_internal_token() {
    let srv = TestServer::start().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let repo = srv.create_repo(owner, org, "r", "public").await;
    let id = repo["id"].as_str().expect("id").to_owned();
    let internal_body = json!({"orgId": org, "projectId": org, "ownerId": owner, "name": "auto", "visibility": "private"});
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/admin/repos".into(), None),
        (Method::GET, format!("/admin/repos/{id}"), None),
        (Method::GET, "/admin/events".into(), None),
        (Method::POST, format!("/admin/repos/{id}/archive"), None),
        (Method::POST, "/internal/repos".into(), Some(internal_body)),
    ];
    let owner_jwt = Auth::Bearer(srv.token(owner));
    for (method, path, body) in &routes {
        for auth in [
            Auth::None,
            owner_jwt.clone(),
            Auth::Internal("wrong".into()),
        ] {
            srv.send(method.clone(), path, &auth, body.clone())
                .await
                .assert_error(401, "UNAUTHORIZED");
        }
        let r = srv
            .send(
                method.clone(),
                path,
                &Auth::Internal(INTERNAL.into()),
                body.clone(),
            )
            .await;
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
    }
}
