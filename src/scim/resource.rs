//! Normalising what IdPs send into the stored form of a resource (RFC 7643 §2, §3), and projecting
//! a full representation for a response (RFC 7644 §3.4.2.5, §3.9).
//!
//! Stored form: keys in schema spelling, core and common attributes at top level, extension
//! attributes under their canonical URN key, unknown extensions verbatim under their own URN key,
//! no readOnly or writeOnly attributes, `schemas` rebuilt. Unassigned values (null, empty arrays,
//! empty complex values) are absent (RFC 7643 §2.5).

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::scim::error::{ScimError, ScimResult};
use crate::scim::schema::{
    AttrDef, AttrType, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, Mutability, Resolved, ResourceType,
    Returned, SchemaDef, USER_SCHEMA, get_ci, split_attr_ref,
};

pub(crate) fn is_urn(s: &str) -> bool {
    // `get` rather than slicing: byte 4 need not be a char boundary in client input.
    s.len() > 4 && s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}

/// A schema URN defined by this service; never treated as a foreign extension even when it does
/// not apply to the resource type at hand.
fn is_known_schema(s: &str) -> bool {
    [USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_USER_SCHEMA]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(s))
}

pub(crate) fn label_of(urn: Option<&str>, name: &str) -> String {
    match urn {
        Some(u) => format!("{u}:{name}"),
        None => name.to_owned(),
    }
}

/// A single scalar value of a simple attribute or sub-attribute. Ok(None) = unassigned.
pub(crate) fn coerce_scalar(def: &AttrDef, v: &Value, label: &str) -> ScimResult<Option<Value>> {
    let bad = |what: &str| ScimError::invalid_value(format!("attribute '{label}' must be {what}"));
    let out = match (def.ty, v) {
        (_, Value::Null) => return Ok(None),
        (AttrType::String | AttrType::Reference | AttrType::Binary, Value::String(_)) => v.clone(),
        (AttrType::String | AttrType::Reference | AttrType::Binary, _) => {
            return Err(bad("a string"));
        }
        // RFC 7643 §2.3.5: xsd:dateTime, which SCIM profiles as RFC 3339.
        (AttrType::DateTime, Value::String(s)) if OffsetDateTime::parse(s, &Rfc3339).is_ok() => {
            v.clone()
        }
        (AttrType::DateTime, _) => return Err(bad("an RFC 3339 dateTime string")),
        (AttrType::Boolean, Value::Bool(_)) => v.clone(),
        // Entra ID sends booleans as the strings "True"/"False".
        (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => {
            Value::Bool(true)
        }
        (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => {
            Value::Bool(false)
        }
        (AttrType::Boolean, _) => return Err(bad("a boolean")),
        (AttrType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => v.clone(),
        (AttrType::Integer, _) => return Err(bad("an integer")),
        (AttrType::Decimal, Value::Number(_)) => v.clone(),
        (AttrType::Decimal, _) => return Err(bad("a number")),
        (AttrType::Complex, _) => return Err(bad("a complex value")),
    };
    Ok(Some(out))
}

/// One value of `def`: the whole value when single-valued, one element when multi-valued.
/// Ok(None) = unassigned.
pub(crate) fn normalize_single(
    def: &'static AttrDef,
    v: &Value,
    label: &str,
) -> ScimResult<Option<Value>> {
    if v.is_null() {
        return Ok(None);
    }
    if !def.is_complex() {
        if v.is_array() || v.is_object() {
            return Err(ScimError::invalid_value(format!(
                "attribute '{label}' must be a single value"
            )));
        }
        return coerce_scalar(def, v, label);
    }
    let obj = match v {
        Value::Object(o) => o.clone(),
        // Entra ID sends the enterprise `manager` as the bare manager id.
        Value::String(s) if !def.multi_valued && def.sub_attr("value").is_some() => {
            let mut m = Map::new();
            m.insert("value".into(), Value::String(s.clone()));
            m
        }
        _ => {
            return Err(ScimError::invalid_value(format!(
                "attribute '{label}' must be a complex object"
            )));
        }
    };
    let is_members = def.name == "members";
    let mut out = Map::new();
    for (k, sv) in &obj {
        // Unknown sub-attributes are dropped for the same reason as unknown attributes.
        let Some(sd) = def.sub_attr(k) else { continue };
        // RFC 7643 §2.2: readOnly values sent by a client are ignored. `members.$ref` is
        // derived from `value` when rendering, so it is not stored either.
        if sd.mutability == Mutability::ReadOnly || (is_members && sd.name == "$ref") {
            continue;
        }
        if let Some(n) = coerce_scalar(sd, sv, &format!("{label}.{}", sd.name))? {
            out.insert(sd.name.to_owned(), n);
        }
    }
    if is_members {
        normalize_member(&mut out, label)?;
    }
    if out.is_empty() {
        return Ok(None);
    }
    Ok(Some(Value::Object(out)))
}

/// RFC 7643 §4.2: a member is identified by its `value`; `type` is "User" or "Group".
fn normalize_member(m: &mut Map<String, Value>, label: &str) -> ScimResult<()> {
    match m.get("value").and_then(Value::as_str) {
        Some(s) if !s.trim().is_empty() => {}
        _ => {
            return Err(ScimError::invalid_value(format!(
                "'{label}.value' must be a non-empty member id"
            )));
        }
    }
    if let Some(t) = m.get("type").and_then(Value::as_str) {
        let canon = ["User", "Group"]
            .into_iter()
            .find(|c| c.eq_ignore_ascii_case(t));
        match canon {
            Some(c) => {
                m.insert("type".into(), Value::String(c.into()));
            }
            None => {
                return Err(ScimError::invalid_value(format!(
                    "'{label}.type' must be \"User\" or \"Group\", not {t:?}"
                )));
            }
        }
    }
    Ok(())
}

/// The whole value of `def`, multi-valued ones always as an array. Ok(None) = unassigned.
pub(crate) fn normalize_attr(
    def: &'static AttrDef,
    v: &Value,
    label: &str,
) -> ScimResult<Option<Value>> {
    if !def.multi_valued {
        return normalize_single(def, v, label);
    }
    let elems: Vec<&Value> = match v {
        Value::Null => return Ok(None),
        Value::Array(a) => a.iter().collect(),
        // IdPs send one object where an array belongs; it can only mean a one-element array.
        Value::Object(_) if def.is_complex() => vec![v],
        _ if !def.is_complex() => vec![v],
        _ => {
            return Err(ScimError::invalid_value(format!(
                "attribute '{label}' must be an array of objects"
            )));
        }
    };
    let mut out = Vec::with_capacity(elems.len());
    for (i, e) in elems.into_iter().enumerate() {
        if let Some(n) = normalize_single(def, e, &format!("{label}[{i}]"))? {
            out.push(n);
        }
    }
    Ok(if out.is_empty() {
        None
    } else {
        Some(Value::Array(out))
    })
}

/// Whether a client may write this attribute at all. RFC 7643 §2.2: readOnly values in requests
/// are ignored; `password` (writeOnly) is never stored because this service authenticates nobody.
fn storable(def: &AttrDef) -> bool {
    !matches!(def.mutability, Mutability::ReadOnly | Mutability::WriteOnly)
}

struct Doc {
    core: Map<String, Value>,
    exts: Vec<(&'static SchemaDef, Map<String, Value>)>,
    foreign: Map<String, Value>,
    foreign_schemas: Vec<String>,
}

impl Doc {
    fn container(&mut self, urn: Option<&'static str>) -> &mut Map<String, Value> {
        match urn {
            None => &mut self.core,
            Some(u) => match self.exts.iter().position(|(s, _)| s.id == u) {
                Some(i) => &mut self.exts[i].1,
                // Resolved URNs always come from rt.extensions, so this arm is unreachable in
                // practice; falling back to core would be wrong, so use the foreign map.
                None => &mut self.foreign,
            },
        }
    }

    fn add_foreign_schema(&mut self, s: &str) {
        if !is_known_schema(s)
            && !self
                .foreign_schemas
                .iter()
                .any(|x| x.eq_ignore_ascii_case(s))
        {
            self.foreign_schemas.push(s.to_owned());
        }
    }

    fn set(&mut self, r: Resolved, v: &Value) -> ScimResult<()> {
        if !storable(r.attr) {
            return Ok(());
        }
        let label = label_of(r.urn, r.attr.name);
        let map = self.container(r.urn);
        match r.sub {
            None => match normalize_attr(r.attr, v, &label)? {
                Some(n) => {
                    map.insert(r.attr.name.to_owned(), n);
                }
                None => {
                    map.remove(r.attr.name);
                }
            },
            // A dotted key (`"name.givenName": "x"`) addresses one sub-attribute of a
            // single-valued complex attribute; for a multi-valued one it names no single element,
            // so it is dropped like any other attribute we cannot place.
            Some(sd) if !r.attr.multi_valued && storable(sd) => {
                let n = coerce_scalar(sd, v, &format!("{label}.{}", sd.name))?;
                let entry = map
                    .entry(r.attr.name.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Some(o) = entry.as_object_mut() {
                    match n {
                        Some(n) => {
                            o.insert(sd.name.to_owned(), n);
                        }
                        None => {
                            o.remove(sd.name);
                        }
                    }
                    if o.is_empty() {
                        map.remove(r.attr.name);
                    }
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn place(&mut self, rt: &ResourceType, key: &str, v: &Value) -> ScimResult<()> {
        if rt.is_core_urn(key) {
            // `{"urn:...:core:2.0:User": {...}}`: core attributes wrapped in their schema URN.
            let obj = v
                .as_object()
                .ok_or_else(|| ScimError::invalid_value(format!("'{key}' must be an object")))?;
            for (k, sv) in obj {
                if let Some(r) = resolve_key(rt, None, k) {
                    self.set(r, sv)?;
                }
            }
            return Ok(());
        }
        if let Some(ext) = rt.extension(key) {
            if v.is_null() {
                return Ok(());
            }
            let obj = v.as_object().ok_or_else(|| {
                ScimError::invalid_value(format!("extension '{}' must be an object", ext.id))
            })?;
            for (k, sv) in obj {
                if let Some(r) = resolve_key(rt, Some(ext.id), k) {
                    self.set(r, sv)?;
                }
            }
            return Ok(());
        }
        if let Some(r) = resolve_key(rt, None, key) {
            return self.set(r, v);
        }
        // RFC 7643 §3.3: extensions are namespaced by URN. Ones we do not define (Entra's
        // `urn:ietf:params:scim:schemas:extension:Microsoft:2.0:...`, Okta custom extensions) are
        // kept verbatim so that they round-trip, rather than failing provisioning.
        if is_urn(key) && !is_known_schema(key) {
            let (urn, _, _) = split_attr_ref(key);
            let ours = urn.is_some_and(|u| rt.is_core_urn(u) || rt.extension(u).is_some());
            if !ours && !v.is_null() {
                if v.is_object() {
                    self.add_foreign_schema(key);
                }
                self.foreign.insert(key.to_owned(), v.clone());
            }
        }
        // Anything else (unknown plain attribute, unknown attribute of one of our schemas) is
        // dropped silently: Okta and Entra send custom attributes through extension URNs only,
        // and a stray attribute failing a whole provisioning run is worse than ignoring it.
        Ok(())
    }

    fn finish(self, rt: &ResourceType) -> Value {
        let mut out = self.core;
        let mut schemas = vec![Value::String(rt.schema.id.to_owned())];
        for (ext, m) in self.exts {
            if !m.is_empty() {
                schemas.push(Value::String(ext.id.to_owned()));
                out.insert(ext.id.to_owned(), Value::Object(m));
            }
        }
        for s in self.foreign_schemas {
            schemas.push(Value::String(s));
        }
        for (k, v) in self.foreign {
            out.insert(k, v);
        }
        out.insert("schemas".into(), Value::Array(schemas));
        Value::Object(out)
    }
}

/// Resolve a body key within a container: `name`, `name.sub`, or URN-qualified.
fn resolve_key(rt: &ResourceType, container: Option<&'static str>, key: &str) -> Option<Resolved> {
    let (urn, name, sub) = split_attr_ref(key);
    match (container, urn) {
        (Some(c), None) => rt.resolve(Some(c), name, sub),
        (_, urn) => rt.resolve(urn, name, sub),
    }
}

/// Validate and canonicalise a POST/PUT body for `rt` into the stored form: keys renamed to schema
/// spelling (case-insensitive match), core attributes at top level, extension attributes under their
/// canonical URN key, readOnly attributes (id, meta, groups, ...) dropped, writeOnly `password` dropped
/// (we are not an authenticator; never stored), `schemas` rebuilt (core URN + the extension URNs present).
/// A group member as the membership table needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRef {
    pub value: String,
    pub r#type: Option<String>,
    pub display: Option<String>,
}

impl MemberRef {
    /// From one element of a normalised `members` array.
    pub(crate) fn from_normalized(v: &Value) -> Option<MemberRef> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(MemberRef {
            value: s("value")?,
            r#type: s("type"),
            display: s("display"),
        })
    }
}

pub fn normalize(body: &Value, rt: &ResourceType) -> ScimResult<Value> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the request body must be a JSON object"))?;
    let mut doc = Doc {
        core: Map::new(),
        exts: rt.extensions.iter().map(|e| (*e, Map::new())).collect(),
        foreign: Map::new(),
        foreign_schemas: Vec::new(),
    };
    if let Some(Value::Array(listed)) = get_ci(body, "schemas") {
        for s in listed.iter().filter_map(Value::as_str) {
            doc.add_foreign_schema(s);
        }
    }
    for (k, v) in obj {
        if k.eq_ignore_ascii_case("schemas") {
            continue;
        }
        doc.place(rt, k, v)?;
    }
    // RFC 7643 §2.2 "required": checked after placement so that any spelling counts.
    for def in rt.schema.attributes.iter().filter(|d| d.required) {
        match doc.core.get(def.name) {
            None => {
                return Err(ScimError::invalid_value(format!(
                    "required attribute '{}' is missing",
                    def.name
                )));
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                return Err(ScimError::invalid_value(format!(
                    "required attribute '{}' is empty",
                    def.name
                )));
            }
            Some(_) => {}
        }
    }
    Ok(doc.finish(rt))
}

/// Remove `members` from a normalised Group document: membership lives in its own table.
pub fn take_members(doc: &mut Value) -> Vec<MemberRef> {
    let Some(Value::Array(ms)) = doc.as_object_mut().and_then(|o| o.remove("members")) else {
        return Vec::new();
    };
    ms.iter().filter_map(MemberRef::from_normalized).collect()
}

// ---------------------------------------------------------------------------------------------
// Projection
// ---------------------------------------------------------------------------------------------

/// One entry of an `attributes` / `excludedAttributes` list, located in the full document.
#[derive(Debug)]
enum Sel {
    /// A whole top-level member: an extension object, a foreign URN key.
    Key(String),
    Attr {
        urn: Option<&'static str>,
        def: &'static AttrDef,
        sub: Option<&'static AttrDef>,
    },
}

fn parse_selection(list: &str, rt: &ResourceType, full: &Value) -> Vec<Sel> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(ext) = rt.extension(item) {
            out.push(Sel::Key(ext.id.to_owned()));
        } else if let Some(r) = rt.resolve_str(item) {
            out.push(Sel::Attr {
                urn: r.urn,
                def: r.attr,
                sub: r.sub,
            });
        } else if is_urn(item)
            && let Some((k, _)) = full
                .as_object()
                .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(item)))
        {
            out.push(Sel::Key(k.clone()));
        }
        // Names that resolve to nothing select nothing; RFC 7644 §3.9 does not make them an error.
    }
    out
}

/// The key of `m` matching `key` case-insensitively (RFC 7643 §2.1), exact spelling first.
pub(crate) fn key_ci(m: &Map<String, Value>, key: &str) -> Option<String> {
    if m.contains_key(key) {
        return Some(key.to_owned());
    }
    m.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned()
}

fn container_mut<'m>(
    out: &'m mut Map<String, Value>,
    urn: Option<&str>,
) -> Option<&'m mut Map<String, Value>> {
    match urn {
        None => Some(out),
        Some(u) => {
            let k = key_ci(out, u)?;
            out.get_mut(&k)?.as_object_mut()
        }
    }
}

/// Drop what the schema says is never returned, and `request`-only attributes not asked for.
fn strip_unreturnable(doc: &mut Map<String, Value>, rt: &ResourceType, requested: &[Sel]) {
    let is_requested = |d: &AttrDef| {
        requested.iter().any(|s| matches!(s, Sel::Attr { def, sub, .. } if std::ptr::eq(*def, d) || sub.is_some_and(|x| std::ptr::eq(x, d))))
    };
    let strip = |m: &mut Map<String, Value>, defs: &mut dyn Iterator<Item = &'static AttrDef>| {
        for d in defs {
            let gone = d.returned == Returned::Never
                || (d.returned == Returned::Request && !is_requested(d));
            if gone {
                if let Some(k) = key_ci(m, d.name) {
                    m.remove(&k);
                }
                continue;
            }
            for sd in d.sub_attributes {
                let sub_gone = sd.returned == Returned::Never
                    || (sd.returned == Returned::Request && !is_requested(sd));
                if !sub_gone {
                    continue;
                }
                if let Some(k) = key_ci(m, d.name)
                    && let Some(v) = m.get_mut(&k)
                {
                    for item in items_mut(v) {
                        if let Some(sk) = key_ci(item, sd.name) {
                            item.remove(&sk);
                        }
                    }
                }
            }
        }
    };
    strip(doc, &mut rt.core_attributes());
    for ext in rt.extensions {
        if let Some(m) = container_mut(doc, Some(ext.id)) {
            strip(m, &mut ext.attributes.iter());
        }
    }
}

fn items_mut(v: &mut Value) -> Vec<&mut Map<String, Value>> {
    match v {
        Value::Array(a) => a.iter_mut().filter_map(Value::as_object_mut).collect(),
        Value::Object(o) => vec![o],
        _ => Vec::new(),
    }
}

/// Only the `sub` members of a complex value (each element when multi-valued).
fn pick_subs(v: &Value, subs: &[&'static AttrDef]) -> Option<Value> {
    let pick = |o: &Map<String, Value>| {
        let mut m = Map::new();
        for sd in subs {
            if let Some(k) = key_ci(o, sd.name)
                && let Some(x) = o.get(&k)
            {
                m.insert(k, x.clone());
            }
        }
        m
    };
    match v {
        Value::Object(o) => {
            let m = pick(o);
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) => {
            let picked: Vec<Value> = a
                .iter()
                .filter_map(Value::as_object)
                .map(pick)
                .filter(|m| !m.is_empty())
                .map(Value::Object)
                .collect();
            (!picked.is_empty()).then_some(Value::Array(picked))
        }
        _ => None,
    }
}

fn drop_empty_extensions(out: &mut Map<String, Value>, rt: &ResourceType) {
    for ext in rt.extensions {
        if let Some(k) = key_ci(out, ext.id)
            && out
                .get(&k)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
        {
            out.remove(&k);
        }
    }
}

/// Apply `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5, comma-separated, URN-qualified or
/// dotted names) and `returned` rules to a full representation before it is sent.
/// [`project`] for a representation the caller owns: without `attributes`/`excludedAttributes`
/// it only strips what is never returned, in place, so a large group is not copied to be sent.
pub fn project_into(
    mut full: Value,
    rt: &ResourceType,
    attributes: Option<&str>,
    excluded: Option<&str>,
) -> Value {
    let blank = |s: Option<&str>| s.is_none_or(|s| s.trim().is_empty());
    if !(blank(attributes) && blank(excluded)) {
        return project(&full, rt, attributes, excluded);
    }
    if let Some(obj) = full.as_object_mut() {
        strip_unreturnable(obj, rt, &[]);
    }
    full
}

pub fn project(
    full: &Value,
    rt: &ResourceType,
    attributes: Option<&str>,
    excluded: Option<&str>,
) -> Value {
    let Some(full_obj) = full.as_object() else {
        return full.clone();
    };
    let attributes = attributes.map(str::trim).filter(|s| !s.is_empty());
    let excluded = excluded.map(str::trim).filter(|s| !s.is_empty());
    let requested = attributes
        .map(|a| parse_selection(a, rt, full))
        .unwrap_or_default();

    let mut out = match attributes {
        None => full_obj.clone(),
        Some(_) => select(full_obj, rt, &requested),
    };
    strip_unreturnable(&mut out, rt, &requested);

    if let Some(ex) = excluded {
        for sel in parse_selection(ex, rt, full) {
            exclude(&mut out, &sel);
        }
    }
    drop_empty_extensions(&mut out, rt);
    Value::Object(out)
}

/// RFC 7644 §3.4.2.5 `attributes`: the named attributes plus `schemas` and those `returned` always.
fn select(full: &Map<String, Value>, rt: &ResourceType, requested: &[Sel]) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(k) = key_ci(full, "schemas")
        && let Some(v) = full.get(&k)
    {
        out.insert(k, v.clone());
    }
    let copy_attr = |out: &mut Map<String, Value>, urn: Option<&'static str>, def: &AttrDef| {
        let src = match urn {
            None => Some(full),
            Some(u) => key_ci(full, u)
                .and_then(|k| full.get(&k))
                .and_then(Value::as_object),
        };
        let Some(src) = src else { return };
        let Some(k) = key_ci(src, def.name) else {
            return;
        };
        let Some(v) = src.get(&k) else { return };
        let dst = match urn {
            None => out,
            Some(u) => match out
                .entry(u.to_owned())
                .or_insert_with(|| Value::Object(Map::new()))
            {
                Value::Object(m) => m,
                _ => return,
            },
        };
        dst.insert(k, v.clone());
    };
    for def in rt
        .core_attributes()
        .filter(|d| d.returned == Returned::Always)
    {
        copy_attr(&mut out, None, def);
    }
    for ext in rt.extensions {
        for def in ext
            .attributes
            .iter()
            .filter(|d| d.returned == Returned::Always)
        {
            copy_attr(&mut out, Some(ext.id), def);
        }
    }
    // Whole attributes first, so that `name,name.givenName` yields all of `name`.
    for sel in requested {
        match sel {
            Sel::Key(k) => {
                if let Some(v) = full.get(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
            Sel::Attr {
                urn,
                def,
                sub: None,
            } => copy_attr(&mut out, *urn, def),
            Sel::Attr { sub: Some(_), .. } => {}
        }
    }
    // Then sub-attribute selections, grouped per attribute so `emails.value,emails.type` keeps
    // both members of each element.
    let mut groups: Vec<(
        Option<&'static str>,
        &'static AttrDef,
        Vec<&'static AttrDef>,
    )> = Vec::new();
    for sel in requested {
        if let Sel::Attr {
            urn,
            def,
            sub: Some(sd),
        } = sel
        {
            match groups
                .iter_mut()
                .find(|(u, d, _)| u == urn && std::ptr::eq(*d, *def))
            {
                Some((_, _, subs)) => subs.push(sd),
                None => groups.push((*urn, def, vec![sd])),
            }
        }
    }
    for (urn, def, subs) in groups {
        let src = match urn {
            None => Some(full),
            Some(u) => key_ci(full, u)
                .and_then(|k| full.get(&k))
                .and_then(Value::as_object),
        };
        let Some(src) = src else { continue };
        let Some(k) = key_ci(src, def.name) else {
            continue;
        };
        let Some(picked) = src.get(&k).and_then(|v| pick_subs(v, &subs)) else {
            continue;
        };
        let dst = match urn {
            None => &mut out,
            Some(u) => match out
                .entry(u.to_owned())
                .or_insert_with(|| Value::Object(Map::new()))
            {
                Value::Object(m) => m,
                _ => continue,
            },
        };
        // Already selected whole: keep the whole.
        if !dst.contains_key(&k) {
            dst.insert(k, picked);
        }
    }
    drop_empty_extensions(&mut out, rt);
    out
}

/// RFC 7644 §3.4.2.5 `excludedAttributes`; "SHALL have no effect on attributes whose schema
/// "returned" setting is "always"".
fn exclude(out: &mut Map<String, Value>, sel: &Sel) {
    match sel {
        Sel::Key(k) => {
            out.remove(k);
        }
        Sel::Attr { def, .. } if def.returned == Returned::Always => {}
        Sel::Attr { sub: Some(sd), .. } if sd.returned == Returned::Always => {}
        Sel::Attr { urn, def, sub } => {
            let Some(m) = container_mut(out, *urn) else {
                return;
            };
            let Some(k) = key_ci(m, def.name) else { return };
            match sub {
                None => {
                    m.remove(&k);
                }
                Some(sd) => {
                    let mut now_empty = false;
                    if let Some(v) = m.get_mut(&k) {
                        for item in items_mut(v) {
                            if let Some(sk) = key_ci(item, sd.name) {
                                item.remove(&sk);
                            }
                        }
                        if let Value::Array(a) = v {
                            a.retain(|e| e.as_object().is_none_or(|o| !o.is_empty()));
                        }
                        now_empty = match v {
                            Value::Array(a) => a.is_empty(),
                            Value::Object(o) => o.is_empty(),
                            _ => false,
                        };
                    }
                    if now_empty {
                        m.remove(&k);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn project_into_equals_project_for_every_selection() {
        let full = serde_json::json!({
            "schemas": [crate::scim::schema::USER_SCHEMA],
            "id": "u1", "userName": "bjensen", "password": "secret",
            "name": {"givenName": "B", "familyName": "J"},
            "emails": [{"value": "b@example.com", "type": "work"}]
        });
        for (a, e) in [
            (None, None),
            (Some(""), Some(" ")),
            (Some("userName"), None),
            (None, Some("emails")),
            (Some("name.givenName"), Some("name")),
        ] {
            let want = project(&full, &USER, a, e);
            assert_eq!(project_into(full.clone(), &USER, a, e), want, "{a:?} {e:?}");
            assert!(want.get("password").is_none());
        }
    }

    use super::*;
    use crate::scim::error::ScimType;
    use crate::scim::schema::{GROUP, USER};
    use serde_json::json;

    const ENT: &str = ENTERPRISE_USER_SCHEMA;

    fn del(v: &mut Value, k: &str) {
        if let Some(o) = v.as_object_mut() {
            o.remove(k);
        }
    }

    #[test]
    fn normalize_table() {
        let cases: Vec<(&str, &ResourceType, Value, Value)> = vec![
            (
                "RFC 7643 §8.1 minimal user",
                &USER,
                json!({"schemas": [USER_SCHEMA], "userName": "bjensen@example.com"}),
                json!({"schemas": [USER_SCHEMA], "userName": "bjensen@example.com"}),
            ),
            (
                "keys renamed, readOnly and writeOnly dropped, unknown plain attrs dropped",
                &USER,
                json!({"schemas": [USER_SCHEMA], "USERNAME": "a", "id": "x", "meta": {"created": "2020-01-01T00:00:00Z"},
                       "password": "t1meMa$heen", "groups": [{"value": "g"}], "nickname": "Babs", "custom": 1,
                       "NAME": {"GivenName": "Barbara", "familyname": "Jensen", "bogus": "x"}, "externalid": "e1"}),
                json!({"schemas": [USER_SCHEMA], "userName": "a", "nickName": "Babs", "externalId": "e1",
                       "name": {"givenName": "Barbara", "familyName": "Jensen"}}),
            ),
            (
                "Entra: string booleans, anywhere",
                &USER,
                json!({"userName": "a", "active": "True", "emails": [{"value": "a@b.c", "type": "work", "primary": "true"}]}),
                json!({"schemas": [USER_SCHEMA], "userName": "a", "active": true,
                       "emails": [{"value": "a@b.c", "type": "work", "primary": true}]}),
            ),
            (
                "single object for multi-valued is wrapped; nulls and empty arrays are unassigned",
                &USER,
                json!({"userName": "a", "emails": {"value": "a@b.c"}, "title": null, "phoneNumbers": [], "ims": [null]}),
                json!({"schemas": [USER_SCHEMA], "userName": "a", "emails": [{"value": "a@b.c"}]}),
            ),
            (
                "enterprise extension, manager as bare id, readOnly manager.displayName dropped",
                &USER,
                json!({"schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user"], "userName": "a",
                       "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"EmployeeNumber": "7", "manager": "m1"}}),
                json!({"schemas": [USER_SCHEMA, ENT], "userName": "a",
                       ENT: {"employeeNumber": "7", "manager": {"value": "m1"}}}),
            ),
            (
                "manager object with readOnly displayName",
                &USER,
                json!({"userName": "a", ENT: {"manager": {"value": "m1", "displayName": "Boss", "$ref": "../Users/m1"}}}),
                json!({"schemas": [USER_SCHEMA, ENT], "userName": "a",
                       ENT: {"manager": {"value": "m1", "$ref": "../Users/m1"}}}),
            ),
            (
                "URN-qualified keys at top level",
                &USER,
                json!({"urn:ietf:params:scim:schemas:core:2.0:User:userName": "a",
                       "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Sales"}),
                json!({"schemas": [USER_SCHEMA, ENT], "userName": "a", ENT: {"department": "Sales"}}),
            ),
            (
                "extension listed in schemas without data is not kept",
                &USER,
                json!({"schemas": [USER_SCHEMA, ENT], "userName": "a", ENT: {}}),
                json!({"schemas": [USER_SCHEMA], "userName": "a"}),
            ),
            (
                "unknown extension kept verbatim, under its key and in schemas",
                &USER,
                json!({"schemas": [USER_SCHEMA, "urn:okta:custom:2.0:User"], "userName": "a",
                       "urn:okta:custom:2.0:User": {"Badge": 7}}),
                json!({"schemas": [USER_SCHEMA, "urn:okta:custom:2.0:User"], "userName": "a",
                       "urn:okta:custom:2.0:User": {"Badge": 7}}),
            ),
            (
                "Entra group POST with the Microsoft group extension",
                &GROUP,
                json!({"schemas": [GROUP_SCHEMA, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/Group",
                                   "urn:ietf:params:scim:schemas:extension:Microsoft:2.0:Group"],
                       "externalId": "e", "displayName": "G", "members": [],
                       "urn:ietf:params:scim:schemas:extension:Microsoft:2.0:Group": {"mailNickname": "g"}}),
                json!({"schemas": [GROUP_SCHEMA, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/Group",
                                   "urn:ietf:params:scim:schemas:extension:Microsoft:2.0:Group"],
                       "externalId": "e", "displayName": "G",
                       "urn:ietf:params:scim:schemas:extension:Microsoft:2.0:Group": {"mailNickname": "g"}}),
            ),
            (
                "group members normalised",
                &GROUP,
                json!({"displayName": "G", "members": [
                    {"value": "u1", "$ref": "https://x/Users/u1", "display": "U One", "type": "user"},
                    {"VALUE": "g2", "Type": "Group"}, {"value": "u3"}]}),
                json!({"schemas": [GROUP_SCHEMA], "displayName": "G", "members": [
                    {"value": "u1", "display": "U One", "type": "User"}, {"value": "g2", "type": "Group"}, {"value": "u3"}]}),
            ),
            (
                "single member object wrapped",
                &GROUP,
                json!({"displayName": "G", "members": {"value": "u1"}}),
                json!({"schemas": [GROUP_SCHEMA], "displayName": "G", "members": [{"value": "u1"}]}),
            ),
            (
                "dotted key in a body",
                &USER,
                json!({"userName": "a", "name.givenName": "B", "emails.value": "ignored@x"}),
                json!({"schemas": [USER_SCHEMA], "userName": "a", "name": {"givenName": "B"}}),
            ),
            (
                "core attributes wrapped in the core URN, another resource type's URN is dropped",
                &USER,
                json!({"schemas": [USER_SCHEMA, GROUP_SCHEMA], USER_SCHEMA: {"userName": "a", "title": "T"}}),
                json!({"schemas": [USER_SCHEMA], "userName": "a", "title": "T"}),
            ),
            (
                "all RFC 7643 §8.2 attributes",
                &USER,
                json!({
                    "schemas": [USER_SCHEMA],
                    "id": "2819c223-7f76-453a-919d-413861904646", "externalId": "701984", "userName": "bjensen@example.com",
                    "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara",
                             "middleName": "Jane", "honorificPrefix": "Ms.", "honorificSuffix": "III"},
                    "displayName": "Babs Jensen", "nickName": "Babs", "profileUrl": "https://login.example.com/bjensen",
                    "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
                    "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
                                   "region": "CA", "postalCode": "91608", "country": "USA",
                                   "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA", "primary": true}],
                    "phoneNumbers": [{"value": "555-555-5555", "type": "work"}],
                    "ims": [{"value": "someaimhandle", "type": "aim"}],
                    "photos": [{"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"}],
                    "userType": "Employee", "title": "Tour Guide", "preferredLanguage": "en-US", "locale": "en-US",
                    "timezone": "America/Los_Angeles", "active": true, "password": "t1meMa$heen",
                    "groups": [{"value": "e9e30dba", "$ref": "https://example.com/v2/Groups/e9e30dba", "display": "Tour Guides"}],
                    "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"}],
                    "entitlements": [{"value": "e"}], "roles": [{"value": "r", "primary": "False"}],
                    "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z"}
                }),
                json!({
                    "schemas": [USER_SCHEMA],
                    "externalId": "701984", "userName": "bjensen@example.com",
                    "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara",
                             "middleName": "Jane", "honorificPrefix": "Ms.", "honorificSuffix": "III"},
                    "displayName": "Babs Jensen", "nickName": "Babs", "profileUrl": "https://login.example.com/bjensen",
                    "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
                    "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
                                   "region": "CA", "postalCode": "91608", "country": "USA",
                                   "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA", "primary": true}],
                    "phoneNumbers": [{"value": "555-555-5555", "type": "work"}],
                    "ims": [{"value": "someaimhandle", "type": "aim"}],
                    "photos": [{"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"}],
                    "userType": "Employee", "title": "Tour Guide", "preferredLanguage": "en-US", "locale": "en-US",
                    "timezone": "America/Los_Angeles", "active": true,
                    "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"}],
                    "entitlements": [{"value": "e"}], "roles": [{"value": "r", "primary": false}]
                }),
            ),
        ];
        for (name, rt, input, exp) in cases {
            let got = normalize(&input, rt).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, exp, "{name}");
        }
    }

    #[test]
    fn normalize_errors() {
        let cases: Vec<(&str, &ResourceType, Value, ScimType, &str)> = vec![
            (
                "not an object",
                &USER,
                json!([1]),
                ScimType::InvalidSyntax,
                "JSON object",
            ),
            (
                "string body",
                &USER,
                json!("x"),
                ScimType::InvalidSyntax,
                "JSON object",
            ),
            (
                "missing userName",
                &USER,
                json!({"displayName": "x"}),
                ScimType::InvalidValue,
                "'userName'",
            ),
            (
                "null userName",
                &USER,
                json!({"userName": null}),
                ScimType::InvalidValue,
                "'userName'",
            ),
            (
                "empty userName",
                &USER,
                json!({"userName": " "}),
                ScimType::InvalidValue,
                "'userName' is empty",
            ),
            (
                "userName only readOnly id",
                &USER,
                json!({"id": "x"}),
                ScimType::InvalidValue,
                "'userName'",
            ),
            (
                "missing displayName",
                &GROUP,
                json!({"members": []}),
                ScimType::InvalidValue,
                "'displayName'",
            ),
            (
                "userName a number",
                &USER,
                json!({"userName": 5}),
                ScimType::InvalidValue,
                "'userName' must be a string",
            ),
            (
                "emails a string",
                &USER,
                json!({"userName": "a", "emails": "a@b.c"}),
                ScimType::InvalidValue,
                "'emails'",
            ),
            (
                "emails of strings",
                &USER,
                json!({"userName": "a", "emails": ["a@b.c"]}),
                ScimType::InvalidValue,
                "'emails[0]'",
            ),
            (
                "active an object",
                &USER,
                json!({"userName": "a", "active": {}}),
                ScimType::InvalidValue,
                "'active'",
            ),
            (
                "active a word",
                &USER,
                json!({"userName": "a", "active": "yes"}),
                ScimType::InvalidValue,
                "'active' must be a boolean",
            ),
            (
                "primary a number",
                &USER,
                json!({"userName": "a", "emails": [{"value": "x", "primary": 1}]}),
                ScimType::InvalidValue,
                "'emails[0].primary'",
            ),
            (
                "name a string",
                &USER,
                json!({"userName": "a", "name": "B J"}),
                ScimType::InvalidValue,
                "'name'",
            ),
            (
                "title an array",
                &USER,
                json!({"userName": "a", "title": ["x"]}),
                ScimType::InvalidValue,
                "'title'",
            ),
            (
                "extension not object",
                &USER,
                json!({"userName": "a", ENT: "x"}),
                ScimType::InvalidValue,
                ENT,
            ),
            (
                "employeeNumber a number",
                &USER,
                json!({"userName": "a", ENT: {"employeeNumber": 7}}),
                ScimType::InvalidValue,
                "employeeNumber",
            ),
            (
                "member without value",
                &GROUP,
                json!({"displayName": "G", "members": [{"display": "x"}]}),
                ScimType::InvalidValue,
                "members[0].value",
            ),
            (
                "member empty value",
                &GROUP,
                json!({"displayName": "G", "members": [{"value": ""}]}),
                ScimType::InvalidValue,
                "members[0].value",
            ),
            (
                "member numeric value",
                &GROUP,
                json!({"displayName": "G", "members": [{"value": 5}]}),
                ScimType::InvalidValue,
                "members[0].value",
            ),
            (
                "member bad type",
                &GROUP,
                json!({"displayName": "G", "members": [{"value": "u", "type": "Device"}]}),
                ScimType::InvalidValue,
                "members[0].type",
            ),
            (
                "displayName a bool",
                &GROUP,
                json!({"displayName": true}),
                ScimType::InvalidValue,
                "'displayName'",
            ),
        ];
        for (name, rt, input, ty, needle) in cases {
            let e = normalize(&input, rt).expect_err(name);
            assert_eq!((e.status, e.scim_type), (400, Some(ty)), "{name}: {e}");
            assert!(e.detail.contains(needle), "{name}: {}", e.detail);
        }
    }

    #[test]
    fn members_taken_out() {
        let mut g = normalize(
            &json!({"displayName": "G", "members": [{"value": "u1", "type": "User", "display": "U"}, {"value": "g2"}]}),
            &GROUP,
        )
        .expect("normalize");
        let ms = take_members(&mut g);
        assert_eq!(
            ms,
            vec![
                MemberRef {
                    value: "u1".into(),
                    r#type: Some("User".into()),
                    display: Some("U".into())
                },
                MemberRef {
                    value: "g2".into(),
                    r#type: None,
                    display: None
                },
            ]
        );
        assert_eq!(g, json!({"schemas": [GROUP_SCHEMA], "displayName": "G"}));
        assert!(take_members(&mut g).is_empty());
    }

    fn full_user() -> Value {
        json!({
            "schemas": [USER_SCHEMA, ENT, "urn:okta:custom:2.0:User"],
            "id": "u1",
            "externalId": "e1",
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "displayName": "Babs",
            "password": "leaked",
            "emails": [{"value": "a@x", "type": "work", "primary": true}, {"value": "b@x", "type": "home"}],
            "groups": [{"value": "g1", "display": "G"}],
            "meta": {"resourceType": "User", "created": "2020-01-01T00:00:00Z", "location": "https://x/Users/u1"},
            ENT: {"employeeNumber": "7", "manager": {"value": "m1", "displayName": "Boss"}},
            "urn:okta:custom:2.0:User": {"badge": 1}
        })
    }

    #[test]
    fn project_table() {
        let u = full_user();
        let mut no_pw = u.clone();
        del(&mut no_pw, "password");
        let cases: Vec<(Option<&str>, Option<&str>, Value)> = vec![
            (None, None, no_pw.clone()),
            (Some(""), Some(" "), no_pw.clone()),
            (
                Some("userName"),
                None,
                json!({"schemas": u["schemas"], "id": "u1", "userName": "bjensen"}),
            ),
            (
                Some("USERNAME, password"),
                None,
                json!({"schemas": u["schemas"], "id": "u1", "userName": "bjensen"}),
            ),
            (
                Some("name.givenName,emails.value"),
                None,
                json!({"schemas": u["schemas"], "id": "u1", "name": {"givenName": "Barbara"},
                       "emails": [{"value": "a@x"}, {"value": "b@x"}]}),
            ),
            (
                Some("emails.value,emails.type"),
                None,
                json!({"schemas": u["schemas"], "id": "u1",
                       "emails": [{"value": "a@x", "type": "work"}, {"value": "b@x", "type": "home"}]}),
            ),
            (
                Some("name,name.givenName"),
                None,
                json!({"schemas": u["schemas"], "id": "u1", "name": {"givenName": "Barbara", "familyName": "Jensen"}}),
            ),
            (
                Some("urn:ietf:params:scim:schemas:core:2.0:User:displayName,meta.created"),
                None,
                json!({"schemas": u["schemas"], "id": "u1", "displayName": "Babs", "meta": {"created": "2020-01-01T00:00:00Z"}}),
            ),
            (
                Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"),
                None,
                json!({"schemas": u["schemas"], "id": "u1", ENT: {"manager": {"value": "m1", "displayName": "Boss"}}}),
            ),
            (
                Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
                None,
                json!({"schemas": u["schemas"], "id": "u1", ENT: {"manager": {"value": "m1"}}}),
            ),
            (
                Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
                None,
                json!({"schemas": u["schemas"], "id": "u1", ENT: u[ENT]}),
            ),
            (
                Some("urn:okta:custom:2.0:User,nickName,nope"),
                None,
                json!({"schemas": u["schemas"], "id": "u1", "urn:okta:custom:2.0:User": {"badge": 1}}),
            ),
            (
                Some("id"),
                None,
                json!({"schemas": u["schemas"], "id": "u1"}),
            ),
            (None, Some("id,emails,groups,meta,name.familyName"), {
                let mut v = no_pw.clone();
                let o = v.as_object_mut().expect("object");
                o.remove("emails");
                o.remove("groups");
                o.remove("meta");
                o.insert("name".into(), json!({"givenName": "Barbara"}));
                v
            }),
            (
                None,
                Some(
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                ),
                {
                    let mut v = no_pw.clone();
                    del(&mut v, ENT);
                    v
                },
            ),
            (None, Some("emails.type,emails.primary,emails.value"), {
                let mut v = no_pw.clone();
                del(&mut v, "emails");
                v
            }),
            (None, Some("urn:okta:custom:2.0:User"), {
                let mut v = no_pw.clone();
                del(&mut v, "urn:okta:custom:2.0:User");
                v
            }),
            (
                Some("userName,emails"),
                Some("emails"),
                json!({"schemas": u["schemas"], "id": "u1", "userName": "bjensen"}),
            ),
        ];
        for (attrs, ex, exp) in cases {
            let got = project(&u, &USER, attrs, ex);
            assert_eq!(got, exp, "attributes={attrs:?} excluded={ex:?}");
        }
    }

    #[test]
    fn project_group_members() {
        let g = json!({"schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "G",
                       "members": [{"value": "u1", "$ref": "https://x/Users/u1", "type": "User"}],
                       "meta": {"resourceType": "Group"}});
        assert_eq!(
            project(&g, &GROUP, None, Some("members")),
            json!({"schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "G", "meta": {"resourceType": "Group"}})
        );
        assert_eq!(
            project(&g, &GROUP, Some("displayName"), None),
            json!({"schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "G"})
        );
        assert_eq!(
            project(&g, &GROUP, Some("members.value"), None),
            json!({"schemas": [GROUP_SCHEMA], "id": "g1", "members": [{"value": "u1"}]})
        );
        assert_eq!(project(&json!("x"), &GROUP, Some("id"), None), json!("x"));
    }
}
