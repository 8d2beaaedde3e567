//! The OpenAPI 3.1 document at `/openapi.json` (and `/v1/openapi.json`).
//!
//! Every REST route is registered through `utoipa_axum`'s [`OpenApiRouter`] with the
//! `#[utoipa::path]` of its handler, so the router and the document come from the same
//! declaration and cannot drift apart. [`finish`] then adds what is common to every operation:
//! the path parameters a handler did not describe (as strings), the error envelope as the
//! `default` response, and the security requirements (a bearer JWT, or the internal token on
//! `/admin` and `/internal`).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder,
    SecurityRequirement, Type,
};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{Body, Envelope};
use crate::state::AppState;

/// The route of the document itself.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_openapi))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
async fn get_openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

/// The finished document, serialized once.
pub fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let (_, mut doc) = super::openapi_router().split_for_parts();
        doc.merge(<super::protection::Docs as utoipa::OpenApi>::openapi());
        finish(doc)
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    })
}

/// Adds the parts common to every operation (see the module docs).
pub fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info.title = "Orbit".into();
    doc.info.version = "v1".into();
    doc.info.description = Some(
        "Git hosting for programs. Every route is also served under `/v1`; every failure \
         answers the error envelope."
            .into(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    let (name, schema) = (Envelope::name(), Envelope::schema());
    components.schemas.insert(name.into_owned(), schema);
    let (name, schema) = (Body::name(), Body::schema());
    components.schemas.insert(name.into_owned(), schema);
    components.security_schemes.insert(
        "bearer".into(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        )
        .into(),
    );
    components.security_schemes.insert(
        "internalToken".into(),
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Internal-Token"))).into(),
    );

    let paths = std::mem::take(&mut doc.paths.paths);
    for (path, mut item) in paths {
        // axum's catch-all `{*name}` is an ordinary (slash-spanning) parameter in OpenAPI.
        let path = path.replace("{*", "{");
        let internal = path.starts_with("/admin") || path.starts_with("/internal");
        let public = matches!(path.as_str(), "/" | "/api" | "/health" | "/openapi.json");
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let params = op.parameters.get_or_insert_with(Vec::new);
            for name in template_names(&path) {
                let described = params
                    .iter()
                    .any(|p| matches!(p, RefOr::T(p) if p.name == name && p.parameter_in == ParameterIn::Path));
                if !described {
                    params.push(RefOr::T(path_parameter(name)));
                }
            }
            if params.is_empty() {
                op.parameters = None;
            }
            op.responses.responses.insert(
                "default".into(),
                ResponseBuilder::new()
                    .description("The error envelope")
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                            .build(),
                    )
                    .build()
                    .into(),
            );
            if !public {
                op.security = Some(if internal {
                    vec![SecurityRequirement::new(
                        "internalToken",
                        Vec::<String>::new(),
                    )]
                } else {
                    // Public repositories are readable without a token.
                    vec![
                        SecurityRequirement::new("bearer", Vec::<String>::new()),
                        SecurityRequirement::default(),
                    ]
                });
            }
        }
        doc.paths.paths.insert(path, item);
    }
    doc
}

/// The `{name}`s of a path template.
fn template_names(path: &str) -> Vec<&str> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect()
}

fn path_parameter(name: &str) -> Parameter {
    let uuid = matches!(name, "org_id" | "user_id");
    let mut schema = ObjectBuilder::new().schema_type(Type::String);
    if uuid {
        schema = schema.format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Uuid,
        )));
    } else {
        schema = schema.min_length(Some(1));
    }
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(schema.build()))
        .build()
}
