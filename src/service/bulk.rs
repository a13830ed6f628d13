//! RFC 7644 §3.7 Bulk: operations run in order, each in its own transaction (the RFC does not make a
//! bulk request atomic); `bulkId` references are resolved as the operations that define them
//! succeed.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::resources::{self, Needs};
use super::{Ctx, Kind};
use crate::scim::error::{ScimError, ScimResult};

pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

struct Op {
    method: String,
    path: String,
    bulk_id: Option<String>,
    version: Option<String>,
    data: Option<Value>,
}

fn parse(body: &Value, max_operations: usize) -> ScimResult<(Vec<Op>, Option<usize>)> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a BulkRequest must be a JSON object"))?;
    let schemas_ok = obj
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter().any(|v| {
                v.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(BULK_REQUEST))
            })
        });
    if !schemas_ok {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must contain {BULK_REQUEST}"
        )));
    }
    let fail_on_errors =
        match obj.get("failOnErrors") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                ScimError::invalid_value("failOnErrors must be a positive integer")
            })? as usize),
        };
    let ops = obj
        .get("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be an array"))?;
    if ops.len() > max_operations {
        return Err(ScimError::new(
            413,
            None,
            format!("a bulk request may carry at most {max_operations} operations"),
        ));
    }
    let mut out = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let s = |k: &str| op.get(k).and_then(Value::as_str).map(str::to_string);
        let method = s("method")
            .ok_or_else(|| ScimError::invalid_syntax(format!("operation {i} has no method")))?
            .to_ascii_uppercase();
        let path = s("path")
            .ok_or_else(|| ScimError::invalid_syntax(format!("operation {i} has no path")))?;
        let bulk_id = s("bulkId");
        if method == "POST" && bulk_id.is_none() {
            return Err(ScimError::invalid_syntax(format!(
                "operation {i}: POST requires a bulkId"
            )));
        }
        out.push(Op {
            method,
            path,
            bulk_id,
            version: s("version"),
            data: op.get("data").cloned(),
        });
    }
    Ok((out, fail_on_errors))
}

/// Replaces every `bulkId:x` string with the id created for `x`. Returns the first reference not
/// yet resolved, if any.
fn resolve(v: &mut Value, ids: &HashMap<String, String>) -> Option<String> {
    match v {
        Value::String(s) => match s.strip_prefix("bulkId:") {
            Some(r) => match ids.get(r) {
                Some(id) => {
                    *s = id.clone();
                    None
                }
                None => Some(r.to_string()),
            },
            None => None,
        },
        Value::Array(a) => a.iter_mut().find_map(|x| resolve(x, ids)),
        Value::Object(m) => m.values_mut().find_map(|x| resolve(x, ids)),
        _ => None,
    }
}

fn resolve_path(path: &str, ids: &HashMap<String, String>) -> Result<String, String> {
    let mut parts: Vec<String> = Vec::new();
    for seg in path.split('/') {
        match seg.strip_prefix("bulkId:") {
            Some(r) => parts.push(ids.get(r).cloned().ok_or_else(|| r.to_string())?),
            None => parts.push(seg.to_string()),
        }
    }
    Ok(parts.join("/"))
}

/// Runs one operation; returns (location, version) on success.
async fn run(
    ctx: &Ctx<'_>,
    op: &Op,
    path: &str,
    data: &Value,
) -> ScimResult<(Option<String>, Option<String>, u16)> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (kind, id) = match segs.as_slice() {
        [k] => (*k, None),
        [k, id] => (*k, Some(*id)),
        _ => {
            return Err(ScimError::invalid_path(format!(
                "unsupported bulk path {path:?}"
            )));
        }
    };
    let Some(kind) = Kind::from_endpoint(kind) else {
        return Err(ScimError::invalid_path(format!(
            "unsupported bulk path {path:?}"
        )));
    };
    let need_id = || {
        id.ok_or_else(|| {
            ScimError::invalid_path(format!("{} needs /{{id}} in the path", op.method))
        })
    };
    let v = op.version.as_deref();
    let needs = Needs {
        groups: false,
        members: false,
    };
    let r = match op.method.as_str() {
        "POST" if id.is_some() => {
            return Err(ScimError::invalid_path("POST goes to the collection"));
        }
        "POST" => resources::create(ctx, kind, data).await?,
        "PUT" => resources::replace(ctx, kind, need_id()?, data, v, needs).await?,
        "PATCH" => resources::patch(ctx, kind, need_id()?, data, v, needs).await?,
        "DELETE" => {
            resources::delete(ctx, kind, need_id()?, v).await?;
            return Ok((None, None, 204));
        }
        m => {
            return Err(ScimError::invalid_syntax(format!(
                "unsupported bulk method {m:?}"
            )));
        }
    };
    let status = if op.method == "POST" { 201 } else { 200 };
    Ok((Some(r.location.clone()), Some(r.etag()), status))
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %ctx.scope.org_id(), directory_id = %ctx.scope.directory_id()))]
pub async fn bulk(ctx: &Ctx<'_>, body: &Value) -> ScimResult<Value> {
    let (ops, fail_on_errors) = parse(body, ctx.sizes.bulk_operations)?;
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut results: Vec<Option<Value>> = vec![None; ops.len()];
    let mut errors = 0usize;
    let mut pending: Vec<usize> = (0..ops.len()).collect();
    // Operations whose bulkId references are not yet known wait for a later pass; a pass that makes
    // no progress leaves only circular or dangling references, which fail (RFC 7644 §3.7.1).
    'passes: loop {
        let mut deferred = Vec::new();
        let mut progressed = false;
        for i in pending {
            let op = &ops[i];
            let mut data = op.data.clone().unwrap_or(Value::Null);
            let path = resolve_path(&op.path, &ids);
            let unresolved = match &path {
                Err(r) => Some(r.clone()),
                Ok(_) => resolve(&mut data, &ids),
            };
            if unresolved.is_some() {
                deferred.push(i);
                continue;
            }
            progressed = true;
            let path = path.unwrap_or_default();
            let mut entry = json!({"method": op.method});
            if let Some(b) = &op.bulk_id {
                entry["bulkId"] = json!(b);
            }
            match run(ctx, op, &path, &data).await {
                Ok((location, version, status)) => {
                    if let (Some(b), Some(loc)) = (&op.bulk_id, &location)
                        && let Some(id) = loc.rsplit('/').next()
                    {
                        ids.insert(b.clone(), id.to_string());
                    }
                    if let Some(l) = location {
                        entry["location"] = json!(l);
                    }
                    if let Some(v) = version {
                        entry["version"] = json!(v);
                    }
                    entry["status"] = json!(status.to_string());
                }
                Err(e) => {
                    errors += 1;
                    entry["status"] = json!(e.status.to_string());
                    entry["response"] = e.body();
                }
            }
            results[i] = Some(entry);
            if fail_on_errors.is_some_and(|n| errors >= n) {
                break 'passes;
            }
        }
        if deferred.is_empty() {
            break;
        }
        if !progressed {
            for i in deferred {
                let op = &ops[i];
                let e = ScimError::new(
                    409,
                    Some(crate::scim::error::ScimType::InvalidValue),
                    "the operation refers to a bulkId that no successful operation defines",
                );
                let mut entry = json!({"method": op.method, "status": "409", "response": e.body()});
                if let Some(b) = &op.bulk_id {
                    entry["bulkId"] = json!(b);
                }
                results[i] = Some(entry);
            }
            break;
        }
        pending = deferred;
    }
    Ok(json!({
        "schemas": [BULK_RESPONSE],
        "Operations": results.into_iter().flatten().collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_ids_resolve_in_nested_data_and_paths() {
        let ids = HashMap::from([("qwerty".to_string(), "abc".to_string())]);
        let mut v = json!({"members": [{"type": "User", "value": "bulkId:qwerty"}]});
        assert_eq!(resolve(&mut v, &ids), None);
        assert_eq!(v["members"][0]["value"], "abc");
        let mut w = json!({"members": [{"value": "bulkId:other"}]});
        assert_eq!(resolve(&mut w, &ids), Some("other".into()));
        assert_eq!(
            resolve_path("/Groups/bulkId:qwerty", &ids),
            Ok("/Groups/abc".into())
        );
        assert_eq!(
            resolve_path("/Groups/bulkId:nope", &ids),
            Err("nope".into())
        );
    }
}
