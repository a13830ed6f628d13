//! SCIM endpoints (RFC 7644 §3). Each handler parses the request, calls the service, and shapes the
//! response; nothing else.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::extract::ScimBody;
use crate::app::AppState;
use crate::scim::MEDIA_TYPE;
use crate::scim::discovery::{Limits, service_provider_config as spc};
use crate::scim::error::{ScimError, ScimResult};
use crate::scim::list::{self, ListRequest};
use crate::scim::resource;
use crate::scim::schema::{self, ResourceType};
use crate::service::Kind;
use crate::service::list as listing;
use crate::service::resources::{self, Needs};
use crate::service::{Ctx, Rendered, bulk};
use crate::store::DirectoryScope;

type Params = Query<Vec<(String, String)>>;

fn base_url(state: &AppState, scope: &DirectoryScope) -> String {
    format!("{}/scim/v2/{}", state.public_url, scope.directory_id())
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, MEDIA_TYPE)],
        body.to_string(),
    )
        .into_response()
}

/// A single resource, projected per `attributes`/`excludedAttributes`, with its ETag, and with
/// `Location` when it was just created (RFC 7644 §3.3).
fn resource_response(
    status: StatusCode,
    r: Rendered,
    rt: &ResourceType,
    params: &[(String, String)],
) -> Response {
    let etag = r.etag();
    let body = resource::project_into(
        r.body,
        rt,
        param(params, "attributes"),
        param(params, "excludedAttributes"),
    );
    let mut resp = json_response(status, &body);
    let h = resp.headers_mut();
    if let Ok(v) = etag.parse() {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED
        && let Ok(v) = r.location.parse()
    {
        h.insert(header::LOCATION, v);
    }
    resp
}

fn needs(params: &[(String, String)]) -> Needs {
    Needs::from_projection(
        param(params, "attributes"),
        param(params, "excludedAttributes"),
    )
}

macro_rules! ctx {
    ($state:expr, $scope:expr, $base:ident) => {{
        $base = base_url(&$state, &$scope);
        Ctx {
            store: &$state.store,
            scope: &$scope,
            base_url: &$base,
            sizes: &$state.sizes,
        }
    }};
}

fn not_modified_or(
    r: Rendered,
    headers: &HeaderMap,
    rt: &ResourceType,
    params: &[(String, String)],
) -> Response {
    // RFC 7644 §3.14 / RFC 7232 §3.2: a GET with a matching If-None-Match gets 304.
    if let Some(inm) = header_str(headers, header::IF_NONE_MATCH)
        && crate::scim::version::if_match_ok(Some(inm), r.version)
    {
        return not_modified(&r);
    }
    resource_response(StatusCode::OK, r, rt, params)
}

/// The resource type named by the `{resource}` path segment; anything else is a SCIM 404.
fn kind(segment: &str) -> ScimResult<Kind> {
    Kind::from_endpoint(segment)
        .ok_or_else(|| ScimError::not_found(format!("no such endpoint /{segment}")))
}

// RFC 7644 §3.3
#[tracing::instrument(skip_all, fields(org_id = %scope.org_id(), directory_id = %scope.directory_id(), resource = resource))]
pub async fn create(
    State(st): State<AppState>,
    Extension(scope): Extension<DirectoryScope>,
    Path((_, resource)): Path<(String, String)>,
    Query(params): Params,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let kind = kind(&resource)?;
    let base;
    let ctx = ctx!(st, scope, base);
    let r = resources::create(&ctx, kind, &body).await?;
    Ok(resource_response(
        StatusCode::CREATED,
        r,
        kind.rt(),
        &params,
    ))
}

// RFC 7644 §3.4.1
#[tracing::instrument(skip_all, fields(org_id = %scope.org_id(), directory_id = %scope.directory_id(), resource = resource, resource_id = id))]
pub async fn get(
    State(st): State<AppState>,
    Extension(scope): Extension<DirectoryScope>,
    Path((_, resource, id)): Path<(String, String, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> ScimResult<Response> {
    let kind = kind(&resource)?;
    let base;
    let ctx = ctx!(st, scope, base);
    if kind == Kind::Group && unprojected(&params) {
        return group_streamed(&ctx, &id, &headers).await;
    }
    let r = resources::get(&ctx, kind, &id, needs(&params)).await?;
    Ok(not_modified_or(r, &headers, kind.rt(), &params))
}

fn unprojected(params: &[(String, String)]) -> bool {
    param(params, "attributes").is_none() && param(params, "excludedAttributes").is_none()
}

/// A group with all its members, written as it is sent (chunked), so a GET of a 100,000-member
/// group holds the member rows, not the 22 MB document; see [`resources::GroupStream`].
async fn group_streamed(ctx: &Ctx<'_>, id: &str, headers: &HeaderMap) -> ScimResult<Response> {
    let inm = header_str(headers, header::IF_NONE_MATCH);
    let unchanged =
        |version| inm.is_some_and(|v| crate::scim::version::if_match_ok(Some(v), version));
    let g = resources::get_group_stream(ctx, id, unchanged).await?;
    if unchanged(g.head.version) {
        return Ok(not_modified(&g.head));
    }
    let etag = g.head.etag();
    let head = resource::project_into(g.head.body.clone(), Kind::Group.rt(), None, None);
    let chunks = g.into_chunks(&head).map(Ok::<_, std::convert::Infallible>);
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, MEDIA_TYPE)],
        axum::body::Body::from_stream(futures_util::stream::iter(chunks)),
    )
        .into_response();
    if let Ok(v) = etag.parse() {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

fn not_modified(r: &Rendered) -> Response {
    let mut resp = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = r.etag().parse() {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

// RFC 7644 §3.5.1
#[tracing::instrument(skip_all, fields(org_id = %scope.org_id(), directory_id = %scope.directory_id(), resource = resource, resource_id = id))]
pub async fn replace(
    State(st): State<AppState>,
    Extension(scope): Extension<DirectoryScope>,
    Path((_, resource, id)): Path<(String, String, String)>,
    Query(params): Params,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let kind = kind(&resource)?;
    let base;
    let ctx = ctx!(st, scope, base);
    let if_match = header_str(&headers, header::IF_MATCH);
    let r = resources::replace(&ctx, kind, &id, &body, if_match, needs(&params)).await?;
    Ok(resource_response(StatusCode::OK, r, kind.rt(), &params))
}

// RFC 7644 §3.5.2
#[tracing::instrument(skip_all, fields(org_id = %scope.org_id(), directory_id = %scope.directory_id(), resource = resource, resource_id = id))]
pub async fn patch(
    State(st): State<AppState>,
    Extension(scope): Extension<DirectoryScope>,
    Path((_, resource, id)): Path<(String, String, String)>,
    Query(params): Params,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let kind = kind(&resource)?;
    let base;
    let ctx = ctx!(st, scope, base);
    let if_match = header_str(&headers, header::IF_MATCH);
    // RFC 7644 §3.5.2: the server "MAY return HTTP status code 204 (No Content)" and "MUST return
    // a 200 OK if the attributes parameter is specified". A group answers 204 unless a projection
    // is asked for, so a member change never reads the member list back: its cost stays that of
    // the change, whatever the group's size. Users keep 200 with the resource.
    let bodiless = kind == Kind::Group && unprojected(&params);
    let wanted = if bodiless {
        Needs {
            groups: false,
            members: false,
        }
    } else {
        needs(&params)
    };
    let r = resources::patch(&ctx, kind, &id, &body, if_match, wanted).await?;
    if bodiless {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = r.etag().parse() {
            resp.headers_mut().insert(header::ETAG, v);
        }
        return Ok(resp);
    }
    Ok(resource_response(StatusCode::OK, r, kind.rt(), &params))
}

// RFC 7644 §3.6
#[tracing::instrument(skip_all, fields(org_id = %scope.org_id(), directory_id = %scope.directory_id(), resource = resource, resource_id = id))]
pub async fn delete(
    State(st): State<AppState>,
    Extension(scope): Extension<DirectoryScope>,
    Path((_, resource, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ScimResult<StatusCode> {
    let kind = kind(&resource)?;
    let base;
    let ctx = ctx!(st, scope, base);
    resources::delete(&ctx, kind, &id, header_str(&headers, header::IF_MATCH)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// RFC 7644 §3.4.2
#[tracing::instrument(skip_all, fields(org_id = %scope.org_id(), directory_id = %scope.directory_id(), resource = resource))]
pub async fn list(
    State(st): State<AppState>,
    Extension(scope): Extension<DirectoryScope>,
    Path((_, resource)): Path<(String, String)>,
    Query(params): Params,
) -> ScimResult<Response> {
    let kind = kind(&resource)?;
    let base;
    let ctx = ctx!(st, scope, base);
    let req = ListRequest::from_query(&params)?;
    Ok(json_response(
        StatusCode::OK,
        &listing::list(&ctx, kind, &req).await?,
    ))
}

// RFC 7644 §3.4.3
#[tracing::instrument(skip_all, fields(org_id = %scope.org_id(), directory_id = %scope.directory_id(), resource = resource))]
pub async fn search(
    State(st): State<AppState>,
    Extension(scope): Extension<DirectoryScope>,
    Path((_, resource)): Path<(String, String)>,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let kind = kind(&resource)?;
    let base;
    let ctx = ctx!(st, scope, base);
    let req = search_request(&body)?;
    Ok(json_response(
        StatusCode::OK,
        &listing::list(&ctx, kind, &req).await?,
    ))
}

/// RFC 7644 §3.4.3: the body must name the SearchRequest schema.
fn search_request(body: &Value) -> ScimResult<ListRequest> {
    const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    let ok = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .any(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(SEARCH)))
        });
    if !ok {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must contain {SEARCH}"
        )));
    }
    ListRequest::from_search_body(body)
}

#[tracing::instrument(skip_all, fields(org_id = %scope.org_id(), directory_id = %scope.directory_id()))]
pub async fn search_root(
    State(st): State<AppState>,
    Extension(scope): Extension<DirectoryScope>,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let base;
    let ctx = ctx!(st, scope, base);
    let req = search_request(&body)?;
    Ok(json_response(
        StatusCode::OK,
        &listing::search_root(&ctx, &req).await?,
    ))
}

#[tracing::instrument(skip_all, fields(org_id = %scope.org_id(), directory_id = %scope.directory_id()))]
pub async fn bulk(
    State(st): State<AppState>,
    Extension(scope): Extension<DirectoryScope>,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let base;
    let ctx = ctx!(st, scope, base);
    Ok(json_response(
        StatusCode::OK,
        &bulk::bulk(&ctx, &body).await?,
    ))
}

// ---- discovery (RFC 7644 §4) -------------------------------------------------------------------

#[tracing::instrument(skip_all, fields(org_id = %scope.org_id(), directory_id = %scope.directory_id()))]
pub async fn service_provider_config(
    State(st): State<AppState>,
    Extension(scope): Extension<DirectoryScope>,
) -> Response {
    let limits = Limits {
        max_results: st.sizes.page_size,
        default_page_size: list::DEFAULT_COUNT.min(st.sizes.page_size),
        bulk_max_operations: st.sizes.bulk_operations,
        bulk_max_payload: st.sizes.bulk_payload_bytes,
    };
    json_response(StatusCode::OK, &spc(&base_url(&st, &scope), &limits))
}

fn discovery_list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [list::LIST_RESPONSE],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    })
}

#[tracing::instrument(skip_all, fields(org_id = %scope.org_id(), directory_id = %scope.directory_id()))]
pub async fn resource_types(
    State(st): State<AppState>,
    Extension(scope): Extension<DirectoryScope>,
) -> Response {
    json_response(
        StatusCode::OK,
        &discovery_list(schema::resource_types_json(&base_url(&st, &scope))),
    )
}

#[tracing::instrument(skip_all, fields(org_id = %scope.org_id(), directory_id = %scope.directory_id()))]
pub async fn resource_type(
    State(st): State<AppState>,
    Extension(scope): Extension<DirectoryScope>,
    Path((_, name)): Path<(String, String)>,
) -> ScimResult<Response> {
    schema::resource_types_json(&base_url(&st, &scope))
        .into_iter()
        .find(|r| {
            r["id"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(&name))
        })
        .map(|r| json_response(StatusCode::OK, &r))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {name:?}")))
}

#[tracing::instrument(skip_all, fields(org_id = %scope.org_id(), directory_id = %scope.directory_id()))]
pub async fn schemas(
    State(st): State<AppState>,
    Extension(scope): Extension<DirectoryScope>,
) -> Response {
    json_response(
        StatusCode::OK,
        &discovery_list(schema::schemas_json(&base_url(&st, &scope))),
    )
}

#[tracing::instrument(skip_all, fields(org_id = %scope.org_id(), directory_id = %scope.directory_id()))]
pub async fn schema(
    State(st): State<AppState>,
    Extension(scope): Extension<DirectoryScope>,
    Path((_, id)): Path<(String, String)>,
) -> ScimResult<Response> {
    schema::schemas_json(&base_url(&st, &scope))
        .into_iter()
        .find(|s| {
            s["id"]
                .as_str()
                .is_some_and(|sid| sid.eq_ignore_ascii_case(&id))
        })
        .map(|s| json_response(StatusCode::OK, &s))
        .ok_or_else(|| ScimError::not_found(format!("no schema {id:?}")))
}
