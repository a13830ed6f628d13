//! RFC 7644 §3.5.2 PATCH: parsing a PatchOp message, applying it to a stored-form document all or
//! nothing, and splitting Group membership changes out for the membership table.
//!
//! `apply` works on a private copy and re-validates the result through `resource::normalize`, so
//! an error at any operation leaves nothing half-applied and the stored form stays canonical.

use serde_json::{Map, Value};

use crate::scim::error::{ScimError, ScimResult};
use crate::scim::filter::{CompOp, CompValue, Filter, PatchPath, matches_element, parse_path};
use crate::scim::resource::{
    MemberRef, coerce_scalar, is_urn, key_ci, label_of, normalize, normalize_attr, normalize_single,
};
use crate::scim::schema::{
    AttrDef, AttrPath, GROUP, Mutability, Resolved, ResourceType, get_ci, group_members_def,
    split_attr_ref,
};

pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Upper bound on `Operations`, so one request cannot pin a worker.
pub const MAX_PATCH_OPS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub op: PatchOpKind,
    pub path: Option<PatchPath>,
    /// `Some(Value::Null)` when the client sent an explicit null (treated as unassigning).
    pub value: Option<Value>,
}

/// One membership change, in request order: `replace members []` followed by `add` must clear
/// and then add, and Okta sends a remove and an add in one request.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    ClearAll,
    Add(Vec<MemberRef>),
    /// Member ids.
    Remove(Vec<String>),
}

/// Parse a PatchOp message body (RFC 7644 §3.5.2): `schemas` must contain
/// urn:ietf:params:scim:api:messages:2.0:PatchOp, `Operations` a non-empty array (max 1000 ops);
/// op names case-insensitive (Entra sends "Replace", "Add", "Remove").
pub fn parse_patch(body: &Value, rt: &ResourceType) -> ScimResult<Vec<PatchOp>> {
    if !body.is_object() {
        return Err(ScimError::invalid_syntax(
            "the request body must be a JSON object",
        ));
    }
    let listed = get_ci(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .any(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
        });
    if !listed {
        return Err(ScimError::invalid_syntax(format!(
            "'schemas' must contain \"{PATCH_OP_SCHEMA}\""
        )));
    }
    let ops = match get_ci(body, "Operations") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(ScimError::invalid_syntax("'Operations' must not be empty"));
        }
        Some(_) => return Err(ScimError::invalid_syntax("'Operations' must be an array")),
        None => return Err(ScimError::invalid_syntax("'Operations' is missing")),
    };
    if ops.len() > MAX_PATCH_OPS {
        return Err(ScimError::invalid_syntax(format!(
            "{} operations in one request; the maximum is {MAX_PATCH_OPS}",
            ops.len()
        )));
    }
    let mut out = Vec::with_capacity(ops.len());
    for (i, o) in ops.iter().enumerate() {
        match whole_extension(i, o, rt)? {
            Some(expanded) => out.extend(expanded),
            None => out.push(parse_op(i, o, rt)?),
        }
    }
    Ok(out)
}

/// A path naming a whole extension schema (`"path": "urn:...:enterprise:2.0:User"`) targets the
/// extension object itself. It is rewritten into operations on its attributes: add and replace
/// become a path-less operation on `{URN: value}`, remove becomes a remove of each attribute. The
/// value may carry the extension's own `schemas` key, which says nothing and is dropped.
fn whole_extension(i: usize, o: &Value, rt: &ResourceType) -> ScimResult<Option<Vec<PatchOp>>> {
    let Some(Value::String(path)) = get_ci(o, "path") else {
        return Ok(None);
    };
    let Some(ext) = rt.extension(path.trim()) else {
        return Ok(None);
    };
    let op = match get_ci(o, "op").and_then(Value::as_str) {
        Some(s) if s.eq_ignore_ascii_case("add") => PatchOpKind::Add,
        Some(s) if s.eq_ignore_ascii_case("remove") => PatchOpKind::Remove,
        Some(s) if s.eq_ignore_ascii_case("replace") => PatchOpKind::Replace,
        _ => return Ok(None),
    };
    if op == PatchOpKind::Remove {
        return Ok(Some(
            ext.attributes
                .iter()
                .filter(|a| a.mutability != crate::scim::schema::Mutability::ReadOnly)
                .map(|a| PatchOp {
                    op,
                    path: Some(PatchPath {
                        attr: AttrPath::new(Some(ext.id), a.name, None),
                        filter: None,
                        sub_after_filter: None,
                    }),
                    value: None,
                })
                .collect(),
        ));
    }
    let mut value = match get_ci(o, "value") {
        Some(Value::Object(m)) => m.clone(),
        _ => {
            return Err(ScimError::invalid_value(format!(
                "Operations[{i}]: the value for the extension {} must be an object",
                ext.id
            )));
        }
    };
    value.retain(|k, _| !k.eq_ignore_ascii_case("schemas"));
    Ok(Some(vec![PatchOp {
        op,
        path: None,
        value: Some(serde_json::json!({ ext.id: Value::Object(value) })),
    }]))
}

fn parse_op(i: usize, o: &Value, rt: &ResourceType) -> ScimResult<PatchOp> {
    if !o.is_object() {
        return Err(ScimError::invalid_syntax(format!(
            "Operations[{i}] must be an object"
        )));
    }
    let op = match get_ci(o, "op").and_then(Value::as_str) {
        Some(s) if s.eq_ignore_ascii_case("add") => PatchOpKind::Add,
        Some(s) if s.eq_ignore_ascii_case("remove") => PatchOpKind::Remove,
        Some(s) if s.eq_ignore_ascii_case("replace") => PatchOpKind::Replace,
        Some(s) => {
            return Err(ScimError::invalid_syntax(format!(
                "Operations[{i}].op {s:?} is not one of add, remove, replace"
            )));
        }
        None => {
            return Err(ScimError::invalid_syntax(format!(
                "Operations[{i}].op is missing"
            )));
        }
    };
    let path = match get_ci(o, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(parse_path(s, rt).map_err(|e| {
            ScimError::new(
                e.status,
                e.scim_type,
                format!("Operations[{i}].path: {}", e.detail),
            )
        })?),
        Some(_) => {
            return Err(ScimError::invalid_path(format!(
                "Operations[{i}].path must be a string"
            )));
        }
    };
    let value = get_ci(o, "value").cloned();
    match op {
        // RFC 7644 §3.5.2.2: "If "path" is unspecified, the operation fails with ... noTarget".
        PatchOpKind::Remove if path.is_none() => {
            return Err(ScimError::no_target(format!(
                "Operations[{i}]: remove requires a path"
            )));
        }
        // RFC 7644 §3.5.2.1, §3.5.2.3: add and replace carry a "value".
        PatchOpKind::Add | PatchOpKind::Replace if value.is_none() => {
            return Err(ScimError::invalid_value(format!(
                "Operations[{i}]: {op:?} requires a value"
            )));
        }
        _ => {}
    }
    Ok(PatchOp { op, path, value })
}

// ---------------------------------------------------------------------------------------------
// Membership split
// ---------------------------------------------------------------------------------------------

/// Members listed in an operation value: an array, one object, or bare ids.
fn member_refs(v: &Value) -> ScimResult<Vec<MemberRef>> {
    let def = group_members_def();
    let elems: Vec<&Value> = match v {
        Value::Null => Vec::new(),
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) | Value::String(_) => vec![v],
        _ => {
            return Err(ScimError::invalid_value(
                "'members' must be an array of {\"value\": id} objects",
            ));
        }
    };
    let mut out = Vec::with_capacity(elems.len());
    for (i, e) in elems.into_iter().enumerate() {
        let wrapped;
        let e = match e {
            Value::String(s) => {
                wrapped = serde_json::json!({ "value": s });
                &wrapped
            }
            e => e,
        };
        let label = format!("members[{i}]");
        let n = normalize_single(def, e, &label)?;
        match n.as_ref().and_then(MemberRef::from_normalized) {
            Some(m) => out.push(m),
            None => {
                return Err(ScimError::invalid_value(format!(
                    "'{label}' must have a member id in 'value'"
                )));
            }
        }
    }
    Ok(out)
}

/// Ids of a `members[value eq "a" or value eq "b"]` filter.
fn member_filter_ids(f: &Filter, out: &mut Vec<String>) -> bool {
    match f {
        Filter::Compare(p, CompOp::Eq, CompValue::Str(s)) if p.sub.as_deref() == Some("value") => {
            out.push(s.clone());
            true
        }
        Filter::Or(a, b) => member_filter_ids(a, out) && member_filter_ids(b, out),
        _ => false,
    }
}

fn is_members_key(k: &str) -> bool {
    let (urn, name, sub) = split_attr_ref(k);
    sub.is_none()
        && name.eq_ignore_ascii_case("members")
        && urn.is_none_or(|u| GROUP.is_core_urn(u))
}

/// Split member operations out of a Group patch: returns (ops for the JSON document, ordered
/// member changes). Only `members[value eq "id"]` filters (optionally or-ed) are supported; any
/// other members filter is 400 invalidFilter at this layer, because membership lives in its own
/// table and is matched by id only.
pub fn split_member_ops(ops: Vec<PatchOp>) -> ScimResult<(Vec<PatchOp>, Vec<MemberChange>)> {
    let mut doc_ops = Vec::with_capacity(ops.len());
    let mut changes = Vec::new();
    let push_add = |changes: &mut Vec<MemberChange>, refs: Vec<MemberRef>| {
        if !refs.is_empty() {
            changes.push(MemberChange::Add(refs));
        }
    };
    for op in ops {
        let is_members = op
            .path
            .as_ref()
            .is_some_and(|p| p.attr.urn.is_none() && p.attr.name == "members");
        if let (true, Some(path)) = (is_members, &op.path) {
            if path.attr.sub.is_some() || path.sub_after_filter.is_some() {
                return Err(ScimError::invalid_path(
                    "member sub-attributes cannot be patched; remove the member and add it again",
                ));
            }
            let value = op.value.as_ref().filter(|v| !v.is_null());
            match (op.op, &path.filter) {
                (PatchOpKind::Remove, Some(f)) => {
                    let mut ids = Vec::new();
                    if !member_filter_ids(f, &mut ids) {
                        return Err(ScimError::invalid_filter(
                            "only members[value eq \"id\"] filters are supported for members",
                        ));
                    }
                    changes.push(MemberChange::Remove(ids));
                }
                (_, Some(_)) => {
                    return Err(ScimError::invalid_path(
                        "a members filter is only supported with remove",
                    ));
                }
                // RFC 7644 §3.5.2.2: remove without a value selects every member.
                (PatchOpKind::Remove, None) => match value {
                    None => changes.push(MemberChange::ClearAll),
                    // Entra: `{"op":"Remove","path":"members","value":[{"value":"id"}]}` removes
                    // only the listed members.
                    Some(v) => {
                        let ids: Vec<String> =
                            member_refs(v)?.into_iter().map(|m| m.value).collect();
                        if !ids.is_empty() {
                            changes.push(MemberChange::Remove(ids));
                        }
                    }
                },
                (PatchOpKind::Add, None) => {
                    push_add(&mut changes, member_refs(value.unwrap_or(&Value::Null))?)
                }
                // RFC 7644 §3.5.2.3: replacing a multi-valued attribute replaces all its values.
                (PatchOpKind::Replace, None) => {
                    let refs = member_refs(value.unwrap_or(&Value::Null))?;
                    changes.push(MemberChange::ClearAll);
                    push_add(&mut changes, refs);
                }
            }
            continue;
        }
        // No path: the value object may carry `members` next to other attributes.
        if op.path.is_none()
            && op.op != PatchOpKind::Remove
            && let Some(Value::Object(obj)) = &op.value
            && obj.keys().any(|k| is_members_key(k))
        {
            let mut rest = Map::new();
            for (k, v) in obj {
                if !is_members_key(k) {
                    rest.insert(k.clone(), v.clone());
                    continue;
                }
                let refs = member_refs(v)?;
                if op.op == PatchOpKind::Replace {
                    changes.push(MemberChange::ClearAll);
                }
                push_add(&mut changes, refs);
            }
            if !rest.is_empty() {
                doc_ops.push(PatchOp {
                    op: op.op,
                    path: None,
                    value: Some(Value::Object(rest)),
                });
            }
            continue;
        }
        doc_ops.push(op);
    }
    Ok((doc_ops, changes))
}

// ---------------------------------------------------------------------------------------------
// Apply
// ---------------------------------------------------------------------------------------------

struct Cx<'a> {
    rt: &'a ResourceType,
    current_id: Option<String>,
}

/// Apply ops in order to a stored-form resource (output of `normalize`, WITHOUT members for groups,
/// see [`split_member_ops`]). All or nothing: on any error the caller discards the result. Returns
/// the new resource.
///
/// Pass the resource with its `id` if an `id` sent in a no-path value (Okta's group rename sends
/// `{"id": ..., "displayName": ...}`) should be checked: equal is ignored, different is 400
/// mutability; without a stored `id` it is ignored. `id` and `meta` in `resource` pass through.
pub fn apply(resource: &Value, ops: &[PatchOp], rt: &ResourceType) -> ScimResult<Value> {
    let Some(orig) = resource.as_object() else {
        return Err(ScimError::invalid_syntax(
            "the resource to patch must be a JSON object",
        ));
    };
    let mut doc = orig.clone();
    let id = doc.remove("id");
    let meta = doc.remove("meta");
    let cx = Cx {
        rt,
        current_id: id.as_ref().and_then(Value::as_str).map(str::to_owned),
    };
    for (i, op) in ops.iter().enumerate() {
        apply_op(&mut doc, op, &cx).map_err(|e| {
            let detail = if ops.len() > 1 {
                format!("Operations[{i}]: {}", e.detail)
            } else {
                e.detail
            };
            ScimError::new(e.status, e.scim_type, detail)
        })?;
    }
    let mut out = normalize(&Value::Object(doc), rt)?;
    if let Some(o) = out.as_object_mut() {
        if let Some(id) = id {
            o.insert("id".into(), id);
        }
        if let Some(meta) = meta {
            o.insert("meta".into(), meta);
        }
    }
    Ok(out)
}

fn apply_op(doc: &mut Map<String, Value>, op: &PatchOp, cx: &Cx<'_>) -> ScimResult<()> {
    match &op.path {
        Some(p) => apply_path(doc, op.op, p, op.value.as_ref(), cx),
        None => apply_no_path(doc, op.op, op.value.as_ref(), cx),
    }
}

/// RFC 7644 §3.5.2.1 / §3.5.2.3 without "path": the value's members are each added or replaced
/// as if addressed individually. Keys may be plain, dotted (`name.givenName`), URN-qualified, a
/// whole extension object, or even a filtered path: Entra sends all of these.
fn apply_no_path(
    doc: &mut Map<String, Value>,
    kind: PatchOpKind,
    value: Option<&Value>,
    cx: &Cx<'_>,
) -> ScimResult<()> {
    if kind == PatchOpKind::Remove {
        return Err(ScimError::no_target("remove requires a path"));
    }
    let Some(Value::Object(obj)) = value else {
        return Err(ScimError::invalid_value(format!(
            "{kind:?} without a path needs an object value"
        )));
    };
    let rt = cx.rt;
    for (k, v) in obj {
        if k.eq_ignore_ascii_case("schemas") {
            continue;
        }
        // Okta's group rename repeats the read-only id next to displayName: the same id (or one
        // we cannot compare against) is ignored; a different one is an attempted change.
        if rt
            .resolve_str(k)
            .is_some_and(|r| r.attr.name == "id" && r.sub.is_none())
        {
            match (&cx.current_id, v) {
                (Some(cur), Value::String(s)) if cur != s => {
                    return Err(ScimError::mutability("attribute 'id' is readOnly"));
                }
                (Some(_), Value::String(_)) | (None, _) => continue,
                (Some(_), _) => return Err(ScimError::mutability("attribute 'id' is readOnly")),
            }
        }
        if rt.is_core_urn(k) {
            let inner = v
                .as_object()
                .ok_or_else(|| ScimError::invalid_value(format!("'{k}' must be an object")))?;
            for (k2, v2) in inner {
                apply_key(doc, kind, None, k2, v2, cx)?;
            }
        } else if let Some(ext) = rt.extension(k) {
            match v {
                Value::Null if kind == PatchOpKind::Replace => {
                    if let Some(key) = key_ci(doc, ext.id) {
                        doc.remove(&key);
                    }
                }
                Value::Null => {}
                Value::Object(inner) => {
                    for (k2, v2) in inner {
                        apply_key(doc, kind, Some(ext.id), k2, v2, cx)?;
                    }
                }
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "extension '{}' must be an object",
                        ext.id
                    )));
                }
            }
        } else if is_urn(k) && v.is_object() && is_foreign(rt, k) {
            // A whole extension we do not define: merged verbatim (see resource::normalize).
            let key = key_ci(doc, k).unwrap_or_else(|| k.clone());
            match (doc.get_mut(&key), v) {
                (Some(Value::Object(cur)), Value::Object(new)) => {
                    for (k2, v2) in new {
                        cur.insert(k2.clone(), v2.clone());
                    }
                }
                _ => {
                    doc.insert(key, v.clone());
                }
            }
        } else {
            apply_key(doc, kind, None, k, v, cx)?;
        }
    }
    Ok(())
}

/// A URN that is neither one of our schemas nor qualified by one of them.
fn is_foreign(rt: &ResourceType, k: &str) -> bool {
    let (urn, _, _) = split_attr_ref(k);
    let ours = |u: &str| rt.is_core_urn(u) || rt.extension(u).is_some();
    !ours(k) && !urn.is_some_and(ours)
}

fn apply_key(
    doc: &mut Map<String, Value>,
    kind: PatchOpKind,
    container: Option<&'static str>,
    k: &str,
    v: &Value,
    cx: &Cx<'_>,
) -> ScimResult<()> {
    let full = match container {
        Some(c) => format!("{c}:{k}"),
        None => k.to_owned(),
    };
    match parse_path(&full, cx.rt) {
        Ok(p) => apply_path(doc, kind, &p, Some(v), cx),
        // Unknown plain attributes are dropped as in resource::normalize (lenient towards IdP
        // attribute mappings we do not model); a malformed filtered key is a real error.
        Err(_) if !full.contains('[') => Ok(()),
        Err(e) => Err(e),
    }
}

fn apply_path(
    doc: &mut Map<String, Value>,
    kind: PatchOpKind,
    p: &PatchPath,
    value: Option<&Value>,
    cx: &Cx<'_>,
) -> ScimResult<()> {
    let Some(r) = cx
        .rt
        .resolve(p.attr.urn.as_deref(), &p.attr.name, p.attr.sub.as_deref())
    else {
        return apply_opaque(doc, kind, p, value);
    };
    let sub_after = match &p.sub_after_filter {
        None => None,
        Some(s) => Some(r.attr.sub_attr(s).ok_or_else(|| {
            ScimError::invalid_path(format!("'{}' has no sub-attribute '{s}'", r.attr.name))
        })?),
    };
    apply_resolved(doc, kind, r, p.filter.as_ref(), sub_after, value, cx)
}

/// An attribute of an extension we do not define (Entra custom extension attributes): stored
/// under the extension URN as sent, without schema checks.
fn apply_opaque(
    doc: &mut Map<String, Value>,
    kind: PatchOpKind,
    p: &PatchPath,
    value: Option<&Value>,
) -> ScimResult<()> {
    let Some(urn) = p.attr.urn.as_deref() else {
        return Err(ScimError::invalid_path(format!(
            "unknown attribute '{}'",
            p.attr
        )));
    };
    let key = key_ci(doc, urn).unwrap_or_else(|| urn.to_owned());
    let value = value.filter(|v| !v.is_null());
    match (kind, value) {
        (PatchOpKind::Remove, _) | (_, None) => {
            if let Some(Value::Object(ext)) = doc.get_mut(&key) {
                remove_path(ext, &p.attr.name, p.attr.sub.as_deref());
                if ext.is_empty() {
                    doc.remove(&key);
                }
            }
        }
        (_, Some(v)) => {
            let ext = doc.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !ext.is_object() {
                *ext = Value::Object(Map::new());
            }
            if let Value::Object(ext) = ext {
                let name = key_ci(ext, &p.attr.name).unwrap_or_else(|| p.attr.name.clone());
                match p.attr.sub.as_deref() {
                    None => {
                        ext.insert(name, v.clone());
                    }
                    Some(s) => {
                        let inner = ext.entry(name).or_insert_with(|| Value::Object(Map::new()));
                        if !inner.is_object() {
                            *inner = Value::Object(Map::new());
                        }
                        if let Value::Object(inner) = inner {
                            let sk = key_ci(inner, s).unwrap_or_else(|| s.to_owned());
                            inner.insert(sk, v.clone());
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn remove_path(m: &mut Map<String, Value>, name: &str, sub: Option<&str>) {
    let Some(k) = key_ci(m, name) else { return };
    match sub {
        None => {
            m.remove(&k);
        }
        Some(s) => {
            if let Some(Value::Object(inner)) = m.get_mut(&k) {
                if let Some(sk) = key_ci(inner, s) {
                    inner.remove(&sk);
                }
                if inner.is_empty() {
                    m.remove(&k);
                }
            }
        }
    }
}

/// The document member holding `urn`'s attributes; created on demand for add/replace.
fn container<'m>(
    doc: &'m mut Map<String, Value>,
    urn: Option<&str>,
    create: bool,
) -> Option<&'m mut Map<String, Value>> {
    let Some(u) = urn else { return Some(doc) };
    let key = match key_ci(doc, u) {
        Some(k) => k,
        None if create => {
            doc.insert(u.to_owned(), Value::Object(Map::new()));
            u.to_owned()
        }
        None => return None,
    };
    let slot = doc.get_mut(&key)?;
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

fn apply_resolved(
    doc: &mut Map<String, Value>,
    kind: PatchOpKind,
    r: Resolved,
    filter: Option<&Filter>,
    sub_after: Option<&'static AttrDef>,
    value: Option<&Value>,
    cx: &Cx<'_>,
) -> ScimResult<()> {
    let def = r.attr;
    let label = label_of(r.urn, def.name);
    let null = value.is_none_or(Value::is_null);
    // RFC 7644 §3.5.2: "Each operation against an attribute MUST be compatible with the
    // attribute's mutability"; RFC 7643 §2.2 readOnly "SHALL NOT be modified".
    if def.mutability == Mutability::ReadOnly {
        let whole_id = def.name == "id" && r.urn.is_none() && r.sub.is_none() && filter.is_none();
        if whole_id && kind != PatchOpKind::Remove {
            // Setting the id to the value it already has changes nothing.
            if let (Some(cur), Some(Value::String(v))) = (&cx.current_id, value)
                && cur == v
            {
                return Ok(());
            }
        }
        return Err(ScimError::mutability(format!(
            "attribute '{label}' is readOnly"
        )));
    }
    if let Some(sd) = sub_after.or(r.sub)
        && sd.mutability == Mutability::ReadOnly
    {
        return Err(ScimError::mutability(format!(
            "attribute '{label}.{}' is readOnly",
            sd.name
        )));
    }
    // `password` is writeOnly and this service authenticates nobody: accepted, never stored.
    if def.mutability == Mutability::WriteOnly {
        return Ok(());
    }
    // Removing a required attribute would leave an invalid resource. RFC 7644 §3.5.2.2 allows
    // either invalidValue or mutability; mutability tells the client the attribute itself, not
    // the value it sent, is the problem.
    if def.required && r.sub.is_none() && filter.is_none() && (kind == PatchOpKind::Remove || null)
    {
        return Err(ScimError::mutability(format!(
            "required attribute '{label}' cannot be removed"
        )));
    }
    let Some(map) = container(doc, r.urn, kind != PatchOpKind::Remove) else {
        return Ok(());
    };
    let null_v = Value::Null;
    let value = value.unwrap_or(&null_v);
    match (filter, r.sub) {
        (Some(f), _) => apply_filtered(map, kind, def, f, sub_after, value, &label, cx),
        (None, Some(sd)) => apply_sub(map, kind, def, sd, value, &label),
        (None, None) => apply_whole(map, kind, def, value, &label),
    }
}

/// RFC 7644 §3.5.2: setting `primary` true on one value sets it false on the others.
fn fix_primary(elems: &mut [Value], changed: &[usize]) {
    let is_primary = |v: &Value| v.get("primary") == Some(&Value::Bool(true));
    let Some(keep) = changed
        .iter()
        .rev()
        .copied()
        .find(|&i| elems.get(i).is_some_and(is_primary))
    else {
        return;
    };
    for (i, e) in elems.iter_mut().enumerate() {
        if i != keep
            && is_primary(e)
            && let Some(o) = e.as_object_mut()
        {
            o.insert("primary".into(), Value::Bool(false));
        }
    }
}

/// Whether stored element `e` is the one `t` designates for removal: by `value` when given.
fn same_element(def: &AttrDef, e: &Value, t: &Value) -> bool {
    match (t.get("value"), e.get("value")) {
        (Some(Value::String(a)), Some(Value::String(b))) => {
            let exact = def.sub_attr("value").is_some_and(|d| d.case_exact);
            if exact {
                a == b
            } else {
                a.to_lowercase() == b.to_lowercase()
            }
        }
        (Some(a), Some(b)) => a == b,
        _ => e == t,
    }
}

/// Merge a complex value into `cur`: sub-attributes in the value replace, others stay, and
/// explicit nulls unassign (RFC 7644 §3.5.2.1 and §3.5.2.3 for complex attributes).
fn merge_complex(
    def: &AttrDef,
    cur: &mut Map<String, Value>,
    raw: &Value,
    normalized: Option<&Value>,
) {
    if let Value::Object(raw) = raw {
        for (k, v) in raw {
            if v.is_null()
                && let Some(sd) = def.sub_attr(k)
            {
                cur.remove(sd.name);
            }
        }
    }
    if let Some(Value::Object(n)) = normalized {
        for (k, v) in n {
            cur.insert(k.clone(), v.clone());
        }
    }
}

fn apply_whole(
    map: &mut Map<String, Value>,
    kind: PatchOpKind,
    def: &'static AttrDef,
    value: &Value,
    label: &str,
) -> ScimResult<()> {
    if kind == PatchOpKind::Remove {
        if def.multi_valued && !value.is_null() {
            // Remove with a value removes just those values (Entra does this for members and
            // other multi-valued attributes).
            let Some(Value::Array(targets)) = normalize_attr(def, value, label)? else {
                return Ok(());
            };
            if let Some(Value::Array(cur)) = map.get_mut(def.name) {
                cur.retain(|e| !targets.iter().any(|t| same_element(def, e, t)));
                if cur.is_empty() {
                    map.remove(def.name);
                }
            }
        } else {
            // RFC 7644 §3.5.2.2: removing an absent attribute is not an error.
            map.remove(def.name);
        }
        return Ok(());
    }
    let new = normalize_attr(def, value, label)?;
    let Some(new) = new else {
        // Null (or an empty array) unassigns on replace; adding nothing changes nothing.
        if kind == PatchOpKind::Replace || value.is_null() {
            map.remove(def.name);
        }
        return Ok(());
    };
    if def.multi_valued {
        let Value::Array(new) = new else {
            return Ok(());
        };
        match kind {
            // RFC 7644 §3.5.2.1: values are added to a multi-valued attribute; an identical
            // value already present is not duplicated.
            PatchOpKind::Add => {
                let slot = map
                    .entry(def.name.to_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                if let Value::Array(cur) = slot {
                    let mut changed = Vec::new();
                    for n in new {
                        if !cur.contains(&n) {
                            cur.push(n);
                            changed.push(cur.len() - 1);
                        }
                    }
                    fix_primary(cur, &changed);
                }
            }
            // RFC 7644 §3.5.2.3: replaces all existing values.
            _ => {
                map.insert(def.name.to_owned(), Value::Array(new));
            }
        }
    } else if def.is_complex() {
        let slot = map
            .entry(def.name.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        if let Value::Object(cur) = slot {
            merge_complex(def, cur, value, Some(&new));
        }
    } else {
        map.insert(def.name.to_owned(), new);
    }
    Ok(())
}

/// `attr.sub` without a filter: the sub-attribute of a single complex value, or of every element
/// of a multi-valued one (creating the first element when there is none).
fn apply_sub(
    map: &mut Map<String, Value>,
    kind: PatchOpKind,
    def: &'static AttrDef,
    sd: &'static AttrDef,
    value: &Value,
    label: &str,
) -> ScimResult<()> {
    let nv = match kind {
        PatchOpKind::Remove => None,
        _ => coerce_scalar(sd, value, &format!("{label}.{}", sd.name))?,
    };
    let mut elems: Vec<Value> = match map.remove(def.name) {
        Some(Value::Array(a)) => a,
        Some(v) => vec![v],
        None => Vec::new(),
    };
    if elems.is_empty()
        && let Some(v) = &nv
    {
        let mut m = Map::new();
        m.insert(sd.name.to_owned(), v.clone());
        elems.push(Value::Object(m));
    } else {
        for e in elems.iter_mut().filter_map(Value::as_object_mut) {
            match &nv {
                Some(v) => {
                    e.insert(sd.name.to_owned(), v.clone());
                }
                None => {
                    e.remove(sd.name);
                }
            }
        }
    }
    put_back(map, def, elems);
    Ok(())
}

fn put_back(map: &mut Map<String, Value>, def: &AttrDef, mut elems: Vec<Value>) {
    // An element of a multi-valued attribute that has a `value` sub-attribute is meaningless
    // without it: Entra removes a phone number with `remove phoneNumbers[type eq "mobile"].value`
    // and expects the number gone, not a `{"type": "mobile"}` husk.
    let needs_value = def.multi_valued && def.sub_attr("value").is_some();
    elems.retain(|e| match e.as_object() {
        Some(o) => !o.is_empty() && (!needs_value || o.get("value").is_some_and(|v| !v.is_null())),
        None => true,
    });
    if elems.is_empty() {
        return;
    }
    if def.multi_valued {
        map.insert(def.name.to_owned(), Value::Array(elems));
    } else if let Some(e) = elems.into_iter().next() {
        map.insert(def.name.to_owned(), e);
    }
}

/// The element an `eq`-only filter describes (`type eq "work" and primary eq true`), used to
/// create the target when a filtered add/replace matches nothing.
fn eq_template(f: &Filter, out: &mut Map<String, Value>) -> bool {
    match f {
        Filter::Compare(p, CompOp::Eq, v) => {
            let Some(sub) = &p.sub else { return false };
            let v = match v {
                CompValue::Str(s) => Value::String(s.clone()),
                CompValue::Num(n) => Value::Number(n.clone()),
                CompValue::Bool(b) => Value::Bool(*b),
                CompValue::Null => return false,
            };
            match out.get(sub) {
                Some(existing) if *existing != v => false,
                _ => {
                    out.insert(sub.clone(), v);
                    true
                }
            }
        }
        Filter::And(a, b) => eq_template(a, out) && eq_template(b, out),
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
fn apply_filtered(
    map: &mut Map<String, Value>,
    kind: PatchOpKind,
    def: &'static AttrDef,
    f: &Filter,
    sub_after: Option<&'static AttrDef>,
    value: &Value,
    label: &str,
    cx: &Cx<'_>,
) -> ScimResult<()> {
    let mut elems: Vec<Value> = match map.remove(def.name) {
        Some(Value::Array(a)) => a,
        Some(v) => vec![v],
        None => Vec::new(),
    };
    let matched: Vec<usize> = elems
        .iter()
        .enumerate()
        .filter(|(_, e)| matches_element(f, e, cx.rt))
        .map(|(i, _)| i)
        .collect();
    match kind {
        // RFC 7644 §3.5.2.2: the matched values (or their sub-attribute) are removed; no match is
        // not an error.
        PatchOpKind::Remove => match sub_after {
            Some(sd) => {
                for &i in &matched {
                    if let Some(o) = elems[i].as_object_mut() {
                        o.remove(sd.name);
                    }
                }
            }
            None => {
                let mut i = 0;
                elems.retain(|_| {
                    let keep = !matched.contains(&i);
                    i += 1;
                    keep
                });
            }
        },
        PatchOpKind::Add | PatchOpKind::Replace if matched.is_empty() => {
            // RFC 7644 §3.5.2.3 answers noTarget here, but Entra ID sends
            // `emails[type eq "work"].value` to create the work email and relies on it being
            // created, which is also what RFC 7644 §3.5.2.1 "add" means. An eq-only filter
            // describes the element, so it is created; any other filter is noTarget.
            let mut tmpl = Map::new();
            if !eq_template(f, &mut tmpl) {
                return Err(ScimError::no_target(format!(
                    "no value of '{label}' matches the filter"
                )));
            }
            match sub_after {
                Some(sd) => {
                    tmpl.insert(sd.name.to_owned(), value.clone());
                }
                None => match value {
                    Value::Object(o) => {
                        for (k, v) in o {
                            tmpl.insert(k.clone(), v.clone());
                        }
                    }
                    Value::Null => tmpl.clear(),
                    _ => {
                        return Err(ScimError::invalid_value(format!(
                            "'{label}' needs an object value"
                        )));
                    }
                },
            }
            if !value.is_null()
                && let Some(n) = normalize_single(def, &Value::Object(tmpl), label)?
            {
                elems.push(n);
                let last = elems.len() - 1;
                fix_primary(&mut elems, &[last]);
            }
        }
        PatchOpKind::Add | PatchOpKind::Replace => {
            match sub_after {
                Some(sd) => {
                    let nv = coerce_scalar(sd, value, &format!("{label}.{}", sd.name))?;
                    for &i in &matched {
                        if let Some(o) = elems[i].as_object_mut() {
                            match &nv {
                                Some(v) => {
                                    o.insert(sd.name.to_owned(), v.clone());
                                }
                                None => {
                                    o.remove(sd.name);
                                }
                            }
                        }
                    }
                }
                None => {
                    let new = normalize_single(def, value, label)?;
                    for &i in &matched {
                        match kind {
                            // RFC 7644 §3.5.2.3: "all matching record values SHALL be replaced".
                            PatchOpKind::Replace => elems[i] = new.clone().unwrap_or(Value::Null),
                            _ => {
                                if let Some(o) = elems[i].as_object_mut() {
                                    merge_complex(def, o, value, new.as_ref());
                                }
                            }
                        }
                    }
                    elems.retain(|e| !e.is_null());
                }
            }
            fix_primary(&mut elems, &matched);
        }
    }
    put_back(map, def, elems);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::error::ScimType;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER, USER_SCHEMA};
    use serde_json::json;

    const ENT: &str = ENTERPRISE_USER_SCHEMA;

    fn push(v: &mut Value, k: &str, e: Value) {
        if let Some(a) = v[k].as_array_mut() {
            a.push(e);
        }
    }

    fn del(v: &mut Value, k: &str) {
        if let Some(o) = v.as_object_mut() {
            o.remove(k);
        }
    }

    fn msg(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
    }

    fn user() -> Value {
        json!({
            "schemas": [USER_SCHEMA, ENT],
            "id": "u1",
            "userName": "bjensen",
            "externalId": "e1",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood"}],
            "meta": {"resourceType": "User", "version": "W/\"1\""},
            ENT: {"employeeNumber": "701984", "manager": {"value": "m1"}}
        })
    }

    fn group() -> Value {
        json!({"schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "Tour Guides", "externalId": "x"})
    }

    fn run(resource: &Value, rt: &ResourceType, ops: Value) -> ScimResult<Value> {
        let ops = parse_patch(&msg(ops), rt)?;
        apply(resource, &ops, rt)
    }

    #[test]
    fn a_path_naming_a_whole_extension_targets_its_object() {
        let base = user();
        let got = run(
            &base,
            &USER,
            json!([{"op": "add", "path": ENT,
            "value": {"schemas": [ENT], "department": "Sales", "costCenter": "4130"}}]),
        )
        .unwrap();
        assert_eq!(got[ENT]["department"], "Sales");
        assert_eq!(got[ENT]["costCenter"], "4130");
        assert_eq!(got[ENT]["employeeNumber"], "701984", "add merges");
        assert!(got[ENT].get("schemas").is_none(), "{got}");

        let got = run(
            &base,
            &USER,
            json!([{"op": "replace", "path": ENT,
            "value": {"employeeNumber": "42", "division": "Theme Park"}}]),
        )
        .unwrap();
        assert_eq!(got[ENT]["employeeNumber"], "42");
        assert_eq!(got[ENT]["division"], "Theme Park");

        let got = run(&base, &USER, json!([{"op": "remove", "path": ENT}])).unwrap();
        let ext = got.get(ENT).cloned().unwrap_or(Value::Null);
        assert!(ext.is_null() || ext == json!({}), "{got}");

        let err = run(
            &base,
            &USER,
            json!([{"op": "add", "path": ENT, "value": "x"}]),
        )
        .unwrap_err();
        assert_eq!(err.scim_type, Some(ScimType::InvalidValue));
    }

    /// Apply `ops` to `base` and compare with `base` modified by `edit`.
    fn check(
        name: &str,
        base: &Value,
        rt: &ResourceType,
        ops: Value,
        edit: impl FnOnce(&mut Value),
    ) {
        let got = run(base, rt, ops).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut exp = base.clone();
        edit(&mut exp);
        assert_eq!(got, exp, "{name}");
    }

    #[test]
    fn parse_patch_ok() {
        let ops = parse_patch(
            &msg(json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "ADD", "path": "emails[type eq \"work\"].value", "value": "a@b.c"},
                {"op": "remove", "path": "name.givenName"},
                {"op": "add", "value": {"title": "x"}},
                {"op": "replace", "path": "", "value": {"title": "y"}}
            ])),
            &USER,
        )
        .expect("parse");
        assert_eq!(ops.len(), 5);
        assert_eq!(ops[0].op, PatchOpKind::Replace);
        assert_eq!(ops[0].value, Some(json!("False")));
        assert_eq!(
            ops[1]
                .path
                .as_ref()
                .and_then(|p| p.sub_after_filter.as_deref()),
            Some("value")
        );
        assert_eq!(ops[2].op, PatchOpKind::Remove);
        assert!(ops[3].path.is_none() && ops[4].path.is_none());
        // Case-insensitive member names.
        let ops = parse_patch(
            &json!({"SCHEMAS": ["URN:IETF:PARAMS:SCIM:API:MESSAGES:2.0:PATCHOP"], "operations": [{"OP": "add", "Path": "title", "Value": "t"}]}),
            &USER,
        )
        .expect("parse ci");
        assert_eq!(ops[0].value, Some(json!("t")));
    }

    #[test]
    fn parse_patch_errors() {
        let many: Vec<Value> = (0..=MAX_PATCH_OPS)
            .map(|_| json!({"op": "add", "path": "title", "value": "x"}))
            .collect();
        let cases: Vec<(&str, &ResourceType, Value, ScimType)> = vec![
            ("not object", &USER, json!([]), ScimType::InvalidSyntax),
            (
                "no schemas",
                &USER,
                json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]}),
                ScimType::InvalidSyntax,
            ),
            (
                "wrong schema",
                &USER,
                json!({"schemas": [USER_SCHEMA], "Operations": [{"op": "add", "path": "title", "value": "x"}]}),
                ScimType::InvalidSyntax,
            ),
            (
                "no operations",
                &USER,
                json!({"schemas": [PATCH_OP_SCHEMA]}),
                ScimType::InvalidSyntax,
            ),
            (
                "empty operations",
                &USER,
                msg(json!([])),
                ScimType::InvalidSyntax,
            ),
            (
                "operations object",
                &USER,
                msg(json!({"op": "add"})),
                ScimType::InvalidSyntax,
            ),
            (
                "too many",
                &USER,
                msg(Value::Array(many)),
                ScimType::InvalidSyntax,
            ),
            (
                "op not object",
                &USER,
                msg(json!(["add"])),
                ScimType::InvalidSyntax,
            ),
            (
                "bad op",
                &USER,
                msg(json!([{"op": "move", "path": "title", "value": "x"}])),
                ScimType::InvalidSyntax,
            ),
            (
                "missing op",
                &USER,
                msg(json!([{"path": "title", "value": "x"}])),
                ScimType::InvalidSyntax,
            ),
            (
                "bad path",
                &USER,
                msg(json!([{"op": "add", "path": "nope", "value": "x"}])),
                ScimType::InvalidPath,
            ),
            (
                "path not string",
                &USER,
                msg(json!([{"op": "add", "path": 5, "value": "x"}])),
                ScimType::InvalidPath,
            ),
            (
                "bad filter in path",
                &USER,
                msg(json!([{"op": "add", "path": "emails[type eq]", "value": "x"}])),
                ScimType::InvalidPath,
            ),
            (
                "remove without path",
                &USER,
                msg(json!([{"op": "remove"}])),
                ScimType::NoTarget,
            ),
            (
                "add without value",
                &USER,
                msg(json!([{"op": "add", "path": "title"}])),
                ScimType::InvalidValue,
            ),
            (
                "replace without value",
                &GROUP,
                msg(json!([{"op": "replace", "path": "displayName"}])),
                ScimType::InvalidValue,
            ),
        ];
        for (name, rt, body, ty) in cases {
            let e = parse_patch(&body, rt).expect_err(name);
            assert_eq!((e.status, e.scim_type), (400, Some(ty)), "{name}: {e}");
        }
    }

    #[test]
    fn apply_user_table() {
        let u = user();
        type Edit = Box<dyn FnOnce(&mut Value)>;
        let cases: Vec<(&str, Value, Edit)> = vec![
            // RFC 7644 §3.5.2.1 example: add with no path.
            (
                "RFC add no path",
                json!([{"op": "add", "value": {"emails": [{"value": "babs@jensen.org", "type": "home"}, {"value": "b@x.org", "type": "other"}], "nickName": "Babs"}}]),
                Box::new(|v| {
                    v["nickName"] = json!("Babs");
                    push(v, "emails", json!({"value": "b@x.org", "type": "other"}));
                }),
            ),
            // RFC 7644 §3.5.2.3 example: replace with a value filter.
            (
                "RFC replace addresses[type eq work]",
                json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": {"type": "work", "streetAddress": "911 Universal City Plaza", "locality": "Hollywood", "primary": true}}]),
                Box::new(
                    |v| v["addresses"] = json!([{"type": "work", "streetAddress": "911 Universal City Plaza", "locality": "Hollywood", "primary": true}]),
                ),
            ),
            (
                "RFC replace addresses[type eq work].streetAddress",
                json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave"}]),
                Box::new(|v| v["addresses"][0]["streetAddress"] = json!("1010 Broadway Ave")),
            ),
            // RFC 7644 §3.5.2.3 example: replace without path.
            (
                "RFC replace no path",
                json!([{"op": "replace", "value": {"emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}], "nickName": "Babs"}}]),
                Box::new(|v| {
                    v["nickName"] = json!("Babs");
                    v["emails"] =
                        json!([{"value": "bjensen@example.com", "type": "work", "primary": true}]);
                }),
            ),
            // RFC 7644 §3.5.2.2 examples.
            (
                "RFC remove emails[type eq work and value ew example.com]",
                json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}]),
                Box::new(|v| v["emails"] = json!([{"value": "babs@jensen.org", "type": "home"}])),
            ),
            (
                "remove all emails",
                json!([{"op": "remove", "path": "emails"}]),
                Box::new(|v| {
                    del(v, "emails");
                }),
            ),
            (
                "remove last matching element leaves the attribute unassigned",
                json!([{"op": "remove", "path": "addresses[type eq \"work\"]"}]),
                Box::new(|v| {
                    del(v, "addresses");
                }),
            ),
            (
                "remove sub-attribute of matched elements",
                json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]),
                Box::new(|v| {
                    v["emails"][0] = json!({"value": "bjensen@example.com", "type": "work"})
                }),
            ),
            (
                "remove missing attribute is a no-op",
                json!([{"op": "remove", "path": "title"}]),
                Box::new(|_| {}),
            ),
            (
                "remove with unmatched filter is a no-op",
                json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]),
                Box::new(|_| {}),
            ),
            (
                "remove name.givenName",
                json!([{"op": "remove", "path": "name.givenName"}]),
                Box::new(|v| v["name"] = json!({"familyName": "Jensen"})),
            ),
            (
                "remove last sub-attribute removes the complex attribute",
                json!([{"op": "remove", "path": "name.givenName"}, {"op": "remove", "path": "name.familyName"}]),
                Box::new(|v| {
                    del(v, "name");
                }),
            ),
            (
                "add single-valued sets",
                json!([{"op": "add", "path": "title", "value": "Tour Guide"}]),
                Box::new(|v| v["title"] = json!("Tour Guide")),
            ),
            (
                "add exact duplicate is skipped",
                json!([{"op": "add", "path": "emails", "value": [{"value": "babs@jensen.org", "type": "home"}]}]),
                Box::new(|_| {}),
            ),
            (
                "add single object to multi-valued",
                json!([{"op": "add", "path": "phoneNumbers", "value": {"value": "555", "type": "Work"}}]),
                Box::new(|v| v["phoneNumbers"] = json!([{"value": "555", "type": "Work"}])),
            ),
            (
                "add primary email clears the old primary",
                json!([{"op": "add", "path": "emails", "value": [{"value": "n@x", "type": "other", "primary": "True"}]}]),
                Box::new(|v| {
                    v["emails"][0]["primary"] = json!(false);
                    push(
                        v,
                        "emails",
                        json!({"value": "n@x", "type": "other", "primary": true}),
                    );
                }),
            ),
            (
                "add to complex merges",
                json!([{"op": "add", "path": "name", "value": {"middleName": "Jane", "familyName": "J"}}]),
                Box::new(|v| {
                    v["name"] =
                        json!({"givenName": "Barbara", "familyName": "J", "middleName": "Jane"})
                }),
            ),
            (
                "replace complex merges, null unassigns",
                json!([{"op": "replace", "path": "name", "value": {"givenName": "B", "familyName": null}}]),
                Box::new(|v| v["name"] = json!({"givenName": "B"})),
            ),
            (
                "replace name.givenName",
                json!([{"op": "replace", "path": "name.givenName", "value": "Babs"}]),
                Box::new(|v| v["name"]["givenName"] = json!("Babs")),
            ),
            (
                "add name.honorificPrefix with no name",
                json!([{"op": "remove", "path": "name"}, {"op": "add", "path": "name.honorificPrefix", "value": "Dr."}]),
                Box::new(|v| v["name"] = json!({"honorificPrefix": "Dr."})),
            ),
            (
                "replace with null unassigns",
                json!([{"op": "replace", "path": "externalId", "value": null}]),
                Box::new(|v| {
                    del(v, "externalId");
                }),
            ),
            (
                "replace emails.type sets every element",
                json!([{"op": "replace", "path": "emails.type", "value": "other"}]),
                Box::new(|v| {
                    v["emails"][0]["type"] = json!("other");
                    v["emails"][1]["type"] = json!("other");
                }),
            ),
            (
                "add with filter merges into matches",
                json!([{"op": "add", "path": "emails[type eq \"home\"]", "value": {"display": "Home"}}]),
                Box::new(|v| v["emails"][1]["display"] = json!("Home")),
            ),
            (
                "replace filter primary true clears other primaries",
                json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]),
                Box::new(|v| {
                    v["emails"][0]["primary"] = json!(false);
                    v["emails"][1]["primary"] = json!(true);
                }),
            ),
            (
                "remove with value removes just those values",
                json!([{"op": "remove", "path": "emails", "value": [{"value": "BABS@jensen.org"}]}]),
                Box::new(|v| {
                    v["emails"] =
                        json!([{"value": "bjensen@example.com", "type": "work", "primary": true}])
                }),
            ),
            (
                "case-insensitive paths",
                json!([{"op": "replace", "path": "NAME.GIVENNAME", "value": "X"}, {"op": "replace", "path": "Emails[Type EQ \"WORK\"].Value", "value": "w@x"}]),
                Box::new(|v| {
                    v["name"]["givenName"] = json!("X");
                    v["emails"][0]["value"] = json!("w@x");
                }),
            ),
            (
                "password accepted, never stored",
                json!([{"op": "replace", "path": "password", "value": "secret"}]),
                Box::new(|_| {}),
            ),
            (
                "enterprise manager.value",
                json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "value": "m2"}]),
                Box::new(|v| v[ENT]["manager"]["value"] = json!("m2")),
            ),
            (
                "remove enterprise attribute",
                json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"}]),
                Box::new(|v| v[ENT] = json!({"manager": {"value": "m1"}})),
            ),
            (
                "removing every enterprise attribute drops the extension from schemas",
                json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"},
                       {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]),
                Box::new(|v| {
                    del(v, ENT);
                    v["schemas"] = json!([USER_SCHEMA]);
                }),
            ),
            (
                "no-path value with the whole extension object merges (Okta)",
                json!([{"op": "replace", "value": {ENT: {"department": "Tours", "Manager": {"value": "m9"}}}}]),
                Box::new(
                    |v| v[ENT] = json!({"employeeNumber": "701984", "department": "Tours", "manager": {"value": "m9"}}),
                ),
            ),
            (
                "no-path null extension unassigns it",
                json!([{"op": "replace", "value": {ENT: null}}]),
                Box::new(|v| {
                    del(v, ENT);
                    v["schemas"] = json!([USER_SCHEMA]);
                }),
            ),
            (
                "no-path core attributes wrapped in the core URN",
                json!([{"op": "add", "value": {USER_SCHEMA: {"title": "T", "name.middleName": "J"}}}]),
                Box::new(|v| {
                    v["title"] = json!("T");
                    v["name"]["middleName"] = json!("J");
                }),
            ),
            (
                "foreign extension object merged; its attribute removed by path",
                json!([{"op": "add", "value": {"urn:acme:2.0:User": {"badge": "B", "floor": 3}}},
                       {"op": "remove", "path": "urn:acme:2.0:User:floor"}]),
                Box::new(|v| {
                    v["urn:acme:2.0:User"] = json!({"badge": "B"});
                    v["schemas"] = json!([USER_SCHEMA, ENT, "urn:acme:2.0:User"]);
                }),
            ),
        ];
        for (name, ops, edit) in cases {
            check(name, &u, &USER, ops, edit);
        }
    }

    /// Every Entra ID / Okta behaviour the brief lists, one case each.
    #[test]
    fn apply_idp_quirks() {
        let u = user();
        type Edit = Box<dyn FnOnce(&mut Value)>;
        let cases: Vec<(&str, Value, Edit)> = vec![
            (
                "Entra: Replace active \"False\"",
                json!([{"op": "Replace", "path": "active", "value": "False"}]),
                Box::new(|v| v["active"] = json!(false)),
            ),
            (
                "Okta: replace no path {active: false}",
                json!([{"op": "replace", "value": {"active": false}}]),
                Box::new(|v| v["active"] = json!(false)),
            ),
            (
                "Entra: no-path dotted and URN keys",
                json!([{"op": "Replace", "value": {
                    "name.givenName": "Babs",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "7",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value": "m3",
                    "emails[type eq \"work\"].value": "w@contoso.com",
                    "active": "True",
                    "someUnmappedAttribute": "dropped"
                }}]),
                Box::new(|v| {
                    v["name"]["givenName"] = json!("Babs");
                    v[ENT]["employeeNumber"] = json!("7");
                    v[ENT]["manager"]["value"] = json!("m3");
                    v["emails"][0]["value"] = json!("w@contoso.com");
                }),
            ),
            (
                "Entra: Add emails[type eq work].value when a work email exists",
                json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "a@b.c"}]),
                Box::new(|v| v["emails"][0]["value"] = json!("a@b.c")),
            ),
            (
                "Entra: Add phoneNumbers[type eq mobile].value creates the element",
                json!([{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"}]),
                Box::new(|v| v["phoneNumbers"] = json!([{"type": "mobile", "value": "+1 555"}])),
            ),
            (
                "Entra: Replace addresses[type eq home].locality creates the element",
                json!([{"op": "Replace", "path": "addresses[type eq \"home\"].locality", "value": "Paris"}]),
                Box::new(|v| push(v, "addresses", json!({"type": "home", "locality": "Paris"}))),
            ),
            (
                "Entra: Add manager as a bare id",
                json!([{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "m2"}]),
                Box::new(|v| v[ENT]["manager"] = json!({"value": "m2"})),
            ),
            (
                "Entra: Replace manager with {value}",
                json!([{"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": {"value": "m4"}}]),
                Box::new(|v| v[ENT]["manager"] = json!({"value": "m4"})),
            ),
            (
                "Entra: Remove manager",
                json!([{"op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": [{"value": "m1"}]}]),
                Box::new(|v| v[ENT] = json!({"employeeNumber": "701984"})),
            ),
            (
                "Entra: Add employeeNumber",
                json!([{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Tours"}]),
                Box::new(|v| v[ENT]["department"] = json!("Tours")),
            ),
            (
                "Entra: Remove phoneNumbers[type eq mobile].value removes the number",
                json!([{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"},
                       {"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 556"},
                       {"op": "Remove", "path": "phoneNumbers[type eq \"mobile\"].value"}]),
                Box::new(|v| v["phoneNumbers"] = json!([{"type": "work", "value": "+1 556"}])),
            ),
            (
                "Entra: Replace with null value on a filtered sub-attribute removes it",
                json!([{"op": "Replace", "path": "emails[type eq \"home\"].value", "value": null}]),
                Box::new(|v| {
                    v["emails"] =
                        json!([{"value": "bjensen@example.com", "type": "work", "primary": true}])
                }),
            ),
            (
                "Entra: emails[type eq work].primary as a string boolean",
                json!([{"op": "Replace", "path": "emails[type eq \"work\"].primary", "value": "false"}]),
                Box::new(|v| v["emails"][0]["primary"] = json!(false)),
            ),
            (
                "Okta: replace id equal to the current id is ignored",
                json!([{"op": "replace", "value": {"id": "u1", "userName": "babs"}}]),
                Box::new(|v| v["userName"] = json!("babs")),
            ),
            (
                "Entra: custom extension attribute path kept under its URN",
                json!([{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:CustomExt:2.0:User:badge", "value": "42"}]),
                Box::new(|v| {
                    v["urn:ietf:params:scim:schemas:extension:CustomExt:2.0:User"] =
                        json!({"badge": "42"});
                    v["schemas"] = json!([
                        USER_SCHEMA,
                        ENT,
                        "urn:ietf:params:scim:schemas:extension:CustomExt:2.0:User"
                    ]);
                }),
            ),
        ];
        for (name, ops, edit) in cases {
            check(name, &u, &USER, ops, edit);
        }
    }

    #[test]
    fn apply_group_rename_okta() {
        let g = group();
        check(
            "Okta: group rename with id",
            &g,
            &GROUP,
            json!([{"op": "replace", "value": {"id": "g1", "displayName": "Guides"}}]),
            |v| v["displayName"] = json!("Guides"),
        );
        // Without a stored id the repeated id cannot be checked and is ignored.
        let mut no_id = g.clone();
        del(&mut no_id, "id");
        check(
            "group rename, id unknown",
            &no_id,
            &GROUP,
            json!([{"op": "replace", "value": {"id": "other", "displayName": "Guides"}}]),
            |v| v["displayName"] = json!("Guides"),
        );
    }

    #[test]
    fn apply_errors() {
        let u = user();
        let mut no_id = user();
        del(&mut no_id, "id");
        let cases: Vec<(&str, &ResourceType, Value, Value, ScimType)> = vec![
            (
                "different id",
                &USER,
                u.clone(),
                json!([{"op": "replace", "value": {"id": "u2"}}]),
                ScimType::Mutability,
            ),
            (
                "id via path",
                &USER,
                u.clone(),
                json!([{"op": "replace", "path": "id", "value": "u2"}]),
                ScimType::Mutability,
            ),
            (
                "remove id",
                &USER,
                u.clone(),
                json!([{"op": "remove", "path": "id"}]),
                ScimType::Mutability,
            ),
            (
                "meta",
                &USER,
                u.clone(),
                json!([{"op": "replace", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z"}]),
                ScimType::Mutability,
            ),
            (
                "meta no path",
                &USER,
                u.clone(),
                json!([{"op": "add", "value": {"meta": {"version": "x"}}}]),
                ScimType::Mutability,
            ),
            (
                "groups",
                &USER,
                u.clone(),
                json!([{"op": "add", "path": "groups", "value": [{"value": "g1"}]}]),
                ScimType::Mutability,
            ),
            (
                "manager.displayName",
                &USER,
                u.clone(),
                json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName", "value": "x"}]),
                ScimType::Mutability,
            ),
            (
                "remove userName",
                &USER,
                u.clone(),
                json!([{"op": "remove", "path": "userName"}]),
                ScimType::Mutability,
            ),
            (
                "replace userName null",
                &USER,
                u.clone(),
                json!([{"op": "replace", "path": "userName", "value": null}]),
                ScimType::Mutability,
            ),
            (
                "remove displayName",
                &GROUP,
                group(),
                json!([{"op": "remove", "path": "displayName"}]),
                ScimType::Mutability,
            ),
            (
                "userName number",
                &USER,
                u.clone(),
                json!([{"op": "replace", "path": "userName", "value": 5}]),
                ScimType::InvalidValue,
            ),
            (
                "active object",
                &USER,
                u.clone(),
                json!([{"op": "replace", "path": "active", "value": {}}]),
                ScimType::InvalidValue,
            ),
            (
                "active word",
                &USER,
                u.clone(),
                json!([{"op": "replace", "value": {"active": "maybe"}}]),
                ScimType::InvalidValue,
            ),
            (
                "emails string",
                &USER,
                u.clone(),
                json!([{"op": "add", "path": "emails", "value": "a@b.c"}]),
                ScimType::InvalidValue,
            ),
            (
                "name string",
                &USER,
                u.clone(),
                json!([{"op": "replace", "path": "name", "value": "B J"}]),
                ScimType::InvalidValue,
            ),
            (
                "sub value array",
                &USER,
                u.clone(),
                json!([{"op": "replace", "path": "name.givenName", "value": ["x"]}]),
                ScimType::InvalidValue,
            ),
            (
                "no-path value not object",
                &USER,
                u.clone(),
                json!([{"op": "add", "value": "x"}]),
                ScimType::InvalidValue,
            ),
            (
                "replace filter without eq template matches nothing",
                &USER,
                u.clone(),
                json!([{"op": "replace", "path": "emails[value co \"nobody\"].type", "value": "x"}]),
                ScimType::NoTarget,
            ),
            (
                "contradictory eq filter cannot describe a new element",
                &USER,
                u.clone(),
                json!([{"op": "add", "path": "emails[type eq \"a\" and type eq \"b\"].value", "value": "x"}]),
                ScimType::NoTarget,
            ),
            (
                "malformed filtered key in no-path value",
                &USER,
                u.clone(),
                json!([{"op": "replace", "value": {"emails[type eq].value": "x"}}]),
                ScimType::InvalidPath,
            ),
        ];
        for (name, rt, res, ops, ty) in cases {
            let e = run(&res, rt, ops).expect_err(name);
            assert_eq!((e.status, e.scim_type), (400, Some(ty)), "{name}: {e}");
        }
    }

    #[test]
    fn all_or_nothing() {
        let u = user();
        let ops = parse_patch(
            &msg(json!([
                {"op": "replace", "path": "displayName", "value": "Changed"},
                {"op": "replace", "path": "userName", "value": 42}
            ])),
            &USER,
        )
        .expect("parse");
        let e = apply(&u, &ops, &USER).expect_err("second op fails");
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert!(e.detail.starts_with("Operations[1]"), "{}", e.detail);
        // The input is untouched; the caller keeps the stored version.
        assert_eq!(u, user());
        // The same first op alone succeeds.
        let ok = apply(&u, &ops[..1], &USER).expect("first op");
        assert_eq!(ok["displayName"], "Changed");
    }

    #[test]
    fn split_members_table() {
        fn m(v: &str) -> MemberRef {
            MemberRef {
                value: v.into(),
                r#type: None,
                display: None,
            }
        }
        type Exp = (Vec<PatchOp>, Vec<MemberChange>);
        type MakeExp = Box<dyn Fn(&[PatchOp]) -> Exp>;
        let cases: Vec<(&str, Value, MakeExp)> = vec![
            (
                "RFC 7644 §3.5.2.1 add members",
                json!([{"op": "add", "path": "members", "value": [{"display": "Babs Jensen", "$ref": "https://example.com/v2/Users/2819c223", "value": "2819c223-7f76-453a-919d-413861904646"}]}]),
                Box::new(|_| {
                    (
                        vec![],
                        vec![MemberChange::Add(vec![MemberRef {
                            value: "2819c223-7f76-453a-919d-413861904646".into(),
                            r#type: None,
                            display: Some("Babs Jensen".into()),
                        }])],
                    )
                }),
            ),
            (
                "RFC 7644 §3.5.2.2 remove one member",
                json!([{"op": "remove", "path": "members[value eq \"2819c223-7f76-453a-919d-413861904646\"]"}]),
                Box::new(|_| {
                    (
                        vec![],
                        vec![MemberChange::Remove(vec![
                            "2819c223-7f76-453a-919d-413861904646".into(),
                        ])],
                    )
                }),
            ),
            (
                "RFC 7644 §3.5.2.2 remove all members",
                json!([{"op": "remove", "path": "members"}]),
                Box::new(|_| (vec![], vec![MemberChange::ClearAll])),
            ),
            (
                "RFC 7644 §3.5.2.2 remove all then add (replace semantics)",
                json!([{"op": "remove", "path": "members"}, {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b", "type": "group"}]}]),
                Box::new(|_| {
                    (
                        vec![],
                        vec![
                            MemberChange::ClearAll,
                            MemberChange::Add(vec![
                                m("a"),
                                MemberRef {
                                    value: "b".into(),
                                    r#type: Some("Group".into()),
                                    display: None,
                                },
                            ]),
                        ],
                    )
                }),
            ),
            (
                "Entra: Remove members with value removes only those",
                json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}]),
                Box::new(|_| {
                    (
                        vec![],
                        vec![MemberChange::Remove(vec!["u1".into(), "u2".into()])],
                    )
                }),
            ),
            (
                "Entra: Add members",
                json!([{"op": "Add", "path": "members", "value": [{"value": "u1"}]}]),
                Box::new(move |_| (vec![], vec![MemberChange::Add(vec![m("u1")])])),
            ),
            (
                "replace members [] clears",
                json!([{"op": "replace", "path": "members", "value": []}]),
                Box::new(|_| (vec![], vec![MemberChange::ClearAll])),
            ),
            (
                "replace members [] then add: clear then add, in order",
                json!([{"op": "replace", "path": "members", "value": []}, {"op": "add", "path": "members", "value": [{"value": "u9"}]}]),
                Box::new(move |_| {
                    (
                        vec![],
                        vec![MemberChange::ClearAll, MemberChange::Add(vec![m("u9")])],
                    )
                }),
            ),
            (
                "replace members with a list = clear + add",
                json!([{"op": "replace", "path": "members", "value": [{"value": "u1"}]}]),
                Box::new(move |_| {
                    (
                        vec![],
                        vec![MemberChange::ClearAll, MemberChange::Add(vec![m("u1")])],
                    )
                }),
            ),
            (
                "Okta: remove + add in one request",
                json!([{"op": "remove", "path": "members[value eq \"u1\"]"}, {"op": "add", "path": "members", "value": [{"value": "u2", "display": "U2"}]}]),
                Box::new(|_| {
                    (
                        vec![],
                        vec![
                            MemberChange::Remove(vec!["u1".into()]),
                            MemberChange::Add(vec![MemberRef {
                                value: "u2".into(),
                                r#type: None,
                                display: Some("U2".into()),
                            }]),
                        ],
                    )
                }),
            ),
            (
                "or-ed value filter",
                json!([{"op": "remove", "path": "members[value eq \"a\" or value eq \"b\"]"}]),
                Box::new(|_| {
                    (
                        vec![],
                        vec![MemberChange::Remove(vec!["a".into(), "b".into()])],
                    )
                }),
            ),
            (
                "no-path add with members and displayName",
                json!([{"op": "add", "value": {"members": [{"value": "u1"}], "displayName": "New"}}]),
                Box::new(move |_| {
                    (
                        vec![PatchOp {
                            op: PatchOpKind::Add,
                            path: None,
                            value: Some(json!({"displayName": "New"})),
                        }],
                        vec![MemberChange::Add(vec![m("u1")])],
                    )
                }),
            ),
            (
                "no-path replace with members only",
                json!([{"op": "replace", "value": {"Members": [{"value": "u1"}]}}]),
                Box::new(move |_| {
                    (
                        vec![],
                        vec![MemberChange::ClearAll, MemberChange::Add(vec![m("u1")])],
                    )
                }),
            ),
            (
                "non-member ops pass through in order",
                json!([{"op": "replace", "path": "displayName", "value": "X"}, {"op": "add", "path": "members", "value": {"value": "u1"}}, {"op": "add", "path": "externalId", "value": "e"}]),
                Box::new(move |ops| {
                    (
                        vec![ops[0].clone(), ops[2].clone()],
                        vec![MemberChange::Add(vec![m("u1")])],
                    )
                }),
            ),
            (
                "add empty members is nothing",
                json!([{"op": "add", "path": "members", "value": []}]),
                Box::new(|_| (vec![], vec![])),
            ),
        ];
        for (name, ops, exp) in cases {
            let parsed = parse_patch(&msg(ops), &GROUP).unwrap_or_else(|e| panic!("{name}: {e}"));
            let expected = exp(&parsed);
            let got = split_member_ops(parsed).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn split_members_errors() {
        let cases: Vec<(&str, Value, ScimType)> = vec![
            (
                "filter other than value eq",
                json!([{"op": "remove", "path": "members[display eq \"x\"]"}]),
                ScimType::InvalidFilter,
            ),
            (
                "filter with and",
                json!([{"op": "remove", "path": "members[value eq \"x\" and type eq \"User\"]"}]),
                ScimType::InvalidFilter,
            ),
            (
                "add with filter",
                json!([{"op": "add", "path": "members[value eq \"x\"]", "value": {"value": "y"}}]),
                ScimType::InvalidPath,
            ),
            (
                "member sub-attribute",
                json!([{"op": "replace", "path": "members[value eq \"x\"].display", "value": "y"}]),
                ScimType::InvalidPath,
            ),
            (
                "members.value",
                json!([{"op": "remove", "path": "members.value"}]),
                ScimType::InvalidPath,
            ),
            (
                "member without value",
                json!([{"op": "add", "path": "members", "value": [{"display": "x"}]}]),
                ScimType::InvalidValue,
            ),
            (
                "member value empty",
                json!([{"op": "add", "path": "members", "value": [{"value": ""}]}]),
                ScimType::InvalidValue,
            ),
            (
                "members a number",
                json!([{"op": "add", "path": "members", "value": 5}]),
                ScimType::InvalidValue,
            ),
            (
                "bad member type",
                json!([{"op": "add", "value": {"members": [{"value": "x", "type": "Robot"}]}}]),
                ScimType::InvalidValue,
            ),
        ];
        for (name, ops, ty) in cases {
            let parsed = parse_patch(&msg(ops), &GROUP).unwrap_or_else(|e| panic!("{name}: {e}"));
            let e = split_member_ops(parsed).expect_err(name);
            assert_eq!((e.status, e.scim_type), (400, Some(ty)), "{name}: {e}");
        }
    }

    #[test]
    fn unsplit_member_ops_apply_to_the_document() {
        // If a caller applies member ops to a document that carries members, they still work.
        let g = json!({"schemas": [GROUP_SCHEMA], "displayName": "G", "members": [{"value": "u1"}, {"value": "u2"}]});
        let got = run(
            &g,
            &GROUP,
            json!([
                {"op": "remove", "path": "members[value eq \"u1\"]"},
                {"op": "add", "path": "members", "value": [{"value": "u3", "type": "User"}]}
            ]),
        )
        .expect("apply");
        assert_eq!(
            got["members"],
            json!([{"value": "u2"}, {"value": "u3", "type": "User"}])
        );
    }
}
