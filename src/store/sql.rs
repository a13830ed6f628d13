//! SCIM filter AST -> SQL, for both backends. Values are always bound (`$N`), never spliced: the only
//! text that reaches the SQL is fixed fragments and column names from the static schema.
//!
//! Hot attributes (id, userName, externalId, active, displayName of groups, meta dates, membership)
//! are indexed columns or the membership table; any other attribute is read from the stored JSON
//! document with the backend's JSON functions, still inside the directory's index range.

use time::format_description::well_known::Rfc3339;

use super::Backend;
use crate::scim::error::{ScimError, ScimResult};
use crate::scim::filter::{AttrPath, CompOp, CompValue, Filter};
use crate::scim::schema::{AttrDef, AttrType, ResourceType};

/// A value to bind. Only the first four types ever reach the database from a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A missing text value.
    NullText,
}

/// SQL text with `$N` placeholders numbered in push order, and their values.
#[derive(Debug, Clone, Default)]
pub struct SqlBuilder {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl SqlBuilder {
    pub fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_string(),
            binds: Vec::new(),
        }
    }
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.sql.push_str(s);
        self
    }
    pub fn bind(&mut self, b: Bind) -> &mut Self {
        self.binds.push(b);
        self.sql.push('$');
        self.sql.push_str(&self.binds.len().to_string());
        self
    }
    /// The end of a log's page (events, audit): before `before` if given, in order or newest
    /// first, at most `limit`.
    pub fn seq_page(&mut self, before: Option<i64>, newest_first: bool, limit: i64) -> &mut Self {
        if let Some(seq) = before {
            self.push(" AND seq < ").bind(Bind::Int(seq));
        }
        self.push(if newest_first {
            " ORDER BY seq DESC LIMIT "
        } else {
            " ORDER BY seq LIMIT "
        })
        .bind(Bind::Int(limit))
    }

    pub fn bind_text(&mut self, s: impl Into<String>) -> &mut Self {
        self.bind(Bind::Text(s.into()))
    }

    pub fn bind_opt_text(&mut self, s: Option<&str>) -> &mut Self {
        self.bind(s.map_or(Bind::NullText, |s| Bind::Text(s.to_owned())))
    }
}

/// How many values one `IN (...)` list binds: well under SQLite's 32,766 parameters and
/// PostgreSQL's 65,535, and short enough for the planner to use an index.
pub(crate) const CHUNK: usize = 500;

/// How many rows one multi-row write (`VALUES (...), (...)`) carries. Each row binds several
/// values, and SQLite looks every `$N` up in a list as it binds it, so binding a statement costs
/// the square of its parameters: 100 rows of six keep that small and still spare 99 round trips.
pub(crate) const ROWS_CHUNK: usize = 100;

/// Up to this many ids are bound one by one (`IN ($1, $2)`): PostgreSQL plans such a short list
/// with the index, where it guesses 100 rows for a JSON array and may scan the table instead.
const ID_LIST_MAX: usize = 50;

/// Appends a non-empty set of ids, usable as `id IN <it>`. A long one is bound as one JSON array:
/// an `IN ($1, ..., $500)` list costs SQLite the square of its length to bind (it looks each
/// `$N` up in a list), and one parameter reads 10,000 ids in one statement.
pub(crate) fn push_id_set<S: AsRef<str>>(b: &mut SqlBuilder, backend: Backend, ids: &[S]) {
    if ids.len() <= ID_LIST_MAX {
        b.push("(");
        push_list(b, ids);
        b.push(")");
        return;
    }
    let json =
        serde_json::Value::from(ids.iter().map(AsRef::as_ref).collect::<Vec<&str>>()).to_string();
    match backend {
        Backend::Sqlite => b.push("(SELECT value FROM json_each(").bind_text(json),
        Backend::Postgres => b
            .push("(SELECT value FROM json_array_elements_text(CAST(")
            .bind_text(json)
            .push(" AS JSON)"),
    };
    b.push("))");
}

/// Appends `$a, $b, ...` binding each id.
pub(crate) fn push_list<S: AsRef<str>>(b: &mut SqlBuilder, ids: &[S]) {
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.bind_text(id.as_ref());
    }
}

impl SqlBuilder {
    /// This statement on either backend, its values bound.
    pub(crate) fn query<'q, DB>(
        self,
    ) -> Result<sqlx::query::Query<'q, DB, DB::Arguments>, sqlx::Error>
    where
        DB: sqlx::Database,
        DB::Arguments: sqlx::IntoArguments<DB>,
        String: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
        Option<String>: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
        i64: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
        f64: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
        bool: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    {
        let args = arguments::<DB>(&self.binds)?;
        Ok(sqlx::query_with(sqlx::AssertSqlSafe(self.sql), args))
    }

    /// This query on either backend, its values bound, reading its one column as `O`.
    pub(crate) fn query_scalar<'q, DB, O>(
        self,
    ) -> Result<sqlx::query::QueryScalar<'q, DB, O, DB::Arguments>, sqlx::Error>
    where
        DB: sqlx::Database,
        DB::Arguments: sqlx::IntoArguments<DB>,
        (O,): for<'r> sqlx::FromRow<'r, DB::Row>,
        String: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
        Option<String>: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
        i64: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
        f64: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
        bool: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    {
        let args = arguments::<DB>(&self.binds)?;
        Ok(sqlx::query_scalar_with(sqlx::AssertSqlSafe(self.sql), args))
    }
}

fn arguments<DB>(binds: &[Bind]) -> Result<DB::Arguments, sqlx::Error>
where
    DB: sqlx::Database,
    String: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    Option<String>: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    i64: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    f64: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    bool: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
{
    use sqlx::Arguments as _;
    let mut args = DB::Arguments::default();
    for b in binds {
        match b {
            Bind::Text(s) => args.add(s.clone()),
            Bind::Int(i) => args.add(*i),
            Bind::Float(f) => args.add(*f),
            Bind::Bool(v) => args.add(*v),
            Bind::NullText => args.add(None::<String>),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

/// Which table a filter runs over, and the alias the outer query gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Users,
    Groups,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Users => "scim_users",
            Table::Groups => "scim_groups",
        }
    }

    pub fn alias(self) -> &'static str {
        match self {
            Table::Users => "u",
            Table::Groups => "g",
        }
    }
}

/// Where a compared attribute lives.
enum Target {
    /// A column holding the attribute; `lowered` when it stores the lower-cased value.
    Column { expr: &'static str, kind: ColKind },
    /// A value inside the stored JSON document, at these keys.
    Json(Vec<String>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ColKind {
    /// Text compared exactly.
    Exact,
    /// Text stored lower-cased for case-insensitive comparison.
    Lowered,
    /// A person's name stored as `domain::fold_key` (ASCII letters folded only).
    Key,
    /// Text compared with ASCII letters folded (`Backend::ascii_lower`).
    LowerFn,
    Bool,
    /// Microseconds since the epoch; compared with dateTime values.
    Micros,
}

pub struct Compiler<'a> {
    pub backend: Backend,
    pub table: Table,
    pub rt: &'a ResourceType,
}

/// How deep EXISTS sub-queries may nest: a value path cannot contain another one.
const ELEMENT_ALIAS: &str = "e";

impl Compiler<'_> {
    /// Appends `filter` as a boolean SQL expression (NULL counts as no match, as in WHERE).
    pub fn compile(&self, f: &Filter, out: &mut SqlBuilder) -> ScimResult<()> {
        match f {
            Filter::And(a, b) | Filter::Or(a, b) => {
                out.push("(");
                self.compile(a, out)?;
                out.push(if matches!(f, Filter::And(..)) {
                    " AND "
                } else {
                    " OR "
                });
                self.compile(b, out)?;
                out.push(")");
            }
            // `(x) IS NOT TRUE` rather than `NOT x`: a comparison with a missing attribute is NULL,
            // and `not (title eq "x")` must match users without a title.
            Filter::Not(inner) => {
                out.push("((");
                self.compile(inner, out)?;
                out.push(") IS NOT TRUE)");
            }
            Filter::Present(path) => self.leaf(path, None, out)?,
            Filter::Compare(path, op, value) => self.leaf(path, Some((*op, value)), out)?,
            Filter::ValuePath(path, inner) => self.value_path(path, inner, out)?,
        }
        Ok(())
    }

    fn def(&self, path: &AttrPath) -> ScimResult<&'static AttrDef> {
        self.rt.attr(path).ok_or_else(|| {
            ScimError::invalid_filter(format!("unknown attribute {}", display(path)))
        })
    }

    fn parent_def(&self, path: &AttrPath) -> ScimResult<&'static AttrDef> {
        let parent = AttrPath {
            urn: path.urn.clone(),
            name: path.name.clone(),
            sub: None,
        };
        self.def(&parent)
    }

    /// A comparison or presence test on one attribute of the resource.
    fn leaf(
        &self,
        path: &AttrPath,
        cmp: Option<(CompOp, &CompValue)>,
        out: &mut SqlBuilder,
    ) -> ScimResult<()> {
        // Membership lives in its own table, not in the document.
        if self.is_membership(path) {
            let inner = match cmp {
                Some((op, v)) => Filter::Compare(membership_value_path(path), op, v.clone()),
                None => Filter::Present(membership_value_path(path)),
            };
            let parent = AttrPath {
                urn: None,
                name: path.name.clone(),
                sub: None,
            };
            return self.membership_exists(&parent, &inner, out);
        }
        let parent = self.parent_def(path)?;
        if parent.multi_valued {
            // `emails co "x"` and `emails.type eq "work"` mean "some element matches"; a complex
            // attribute without a sub-attribute compares its `value` (RFC 7644 §3.4.2.2).
            let elem_path = AttrPath {
                urn: path.urn.clone(),
                name: path.name.clone(),
                sub: path
                    .sub
                    .clone()
                    .or_else(|| (parent.ty == AttrType::Complex).then(|| "value".to_string())),
            };
            let inner = match cmp {
                Some((op, v)) => Filter::Compare(elem_path, op, v.clone()),
                None => Filter::Present(elem_path),
            };
            let base = AttrPath {
                urn: path.urn.clone(),
                name: path.name.clone(),
                sub: None,
            };
            return self.value_path(&base, &inner, out);
        }
        let def = self.def(path)?;
        let target = self.target(path);
        self.emit(&target, def, None, cmp, out)
    }

    fn is_membership(&self, path: &AttrPath) -> bool {
        path.urn.is_none()
            && matches!(
                (self.table, path.name.as_str()),
                (Table::Groups, "members") | (Table::Users, "groups")
            )
    }

    /// `emails[type eq "work" and value co "@"]`: some element of the array satisfies the inner
    /// filter.
    fn value_path(&self, path: &AttrPath, inner: &Filter, out: &mut SqlBuilder) -> ScimResult<()> {
        if self.is_membership(path) {
            return self.membership_exists(path, inner, out);
        }
        let def = self.def(path)?;
        if !def.multi_valued {
            // A value filter on a single complex attribute (`name[givenName eq "x"]`) is the
            // same as the inner filter on the resource itself.
            return self.compile_in_element(inner, None, out);
        }
        let keys = json_keys(path);
        out.push("EXISTS (SELECT 1 FROM ");
        match self.backend {
            Backend::Sqlite => {
                out.push("json_each(")
                    .push(self.table.alias())
                    .push(".data, ");
                out.bind_text(sqlite_json_path(&keys));
                out.push(") AS e WHERE ");
            }
            Backend::Postgres => {
                let doc = format!("({}.data::jsonb #> ", self.table.alias());
                out.push("jsonb_array_elements(CASE jsonb_typeof(")
                    .push(&doc);
                out.bind_text(pg_text_array(&keys));
                out.push("::text[])) WHEN 'array' THEN ").push(&doc);
                out.bind_text(pg_text_array(&keys));
                out.push("::text[]) ELSE '[]'::jsonb END) AS e(value) WHERE ");
            }
        }
        self.compile_in_element(inner, Some(def), out)?;
        out.push(")");
        Ok(())
    }

    /// Compiles the inner filter of a value path, where attribute paths name sub-attributes of the
    /// current array element (`e.value`).
    fn compile_in_element(
        &self,
        f: &Filter,
        multi: Option<&'static AttrDef>,
        out: &mut SqlBuilder,
    ) -> ScimResult<()> {
        match f {
            Filter::And(a, b) | Filter::Or(a, b) => {
                out.push("(");
                self.compile_in_element(a, multi, out)?;
                out.push(if matches!(f, Filter::And(..)) {
                    " AND "
                } else {
                    " OR "
                });
                self.compile_in_element(b, multi, out)?;
                out.push(")");
                Ok(())
            }
            Filter::Not(inner) => {
                out.push("((");
                self.compile_in_element(inner, multi, out)?;
                out.push(") IS NOT TRUE)");
                Ok(())
            }
            Filter::ValuePath(..) => Err(ScimError::invalid_filter(
                "a value filter cannot contain another value filter",
            )),
            Filter::Present(p) | Filter::Compare(p, _, _) => {
                let cmp = match f {
                    Filter::Compare(_, op, v) => Some((*op, v)),
                    _ => None,
                };
                match multi {
                    None => self.leaf(p, cmp, out),
                    Some(parent) => {
                        let def = if p.sub.is_some() {
                            self.def(p)?
                        } else {
                            parent
                        };
                        let elem_keys: Vec<String> = p.sub.iter().cloned().collect();
                        self.emit(&Target::Json(elem_keys), def, Some(ELEMENT_ALIAS), cmp, out)
                    }
                }
            }
        }
    }

    /// Group `members` and User `groups` filters, against the membership table.
    fn membership_exists(
        &self,
        path: &AttrPath,
        inner: &Filter,
        out: &mut SqlBuilder,
    ) -> ScimResult<()> {
        out.push("EXISTS (SELECT 1 FROM scim_group_members m");
        match self.table {
            Table::Groups => out.push(" WHERE m.group_id = g.id AND "),
            Table::Users => {
                out.push(" JOIN scim_groups mg ON mg.id = m.group_id WHERE m.member_id = u.id AND ")
            }
        };
        self.membership_inner(path, inner, out)?;
        out.push(")");
        Ok(())
    }

    fn membership_inner(
        &self,
        path: &AttrPath,
        f: &Filter,
        out: &mut SqlBuilder,
    ) -> ScimResult<()> {
        match f {
            Filter::And(a, b) | Filter::Or(a, b) => {
                out.push("(");
                self.membership_inner(path, a, out)?;
                out.push(if matches!(f, Filter::And(..)) {
                    " AND "
                } else {
                    " OR "
                });
                self.membership_inner(path, b, out)?;
                out.push(")");
                Ok(())
            }
            Filter::Not(inner) => {
                out.push("((");
                self.membership_inner(path, inner, out)?;
                out.push(") IS NOT TRUE)");
                Ok(())
            }
            Filter::ValuePath(..) => Err(ScimError::invalid_filter(
                "a value filter cannot contain another value filter",
            )),
            Filter::Present(p) | Filter::Compare(p, _, _) => {
                let sub = p.sub.as_deref().unwrap_or("value");
                let (expr, kind) = match (self.table, sub) {
                    (Table::Groups, "value") => ("m.member_id", ColKind::Exact),
                    (Table::Groups, "type") => ("m.member_type", ColKind::Exact),
                    (Table::Users, "value") => ("m.group_id", ColKind::Exact),
                    (Table::Users, "display") => ("mg.display_name", ColKind::LowerFn),
                    _ => {
                        return Err(ScimError::invalid_filter(format!(
                            "{}.{} cannot be filtered on",
                            path.name, sub
                        )));
                    }
                };
                let def = self.def(&AttrPath {
                    urn: None,
                    name: path.name.clone(),
                    sub: Some(sub.to_string()),
                })?;
                let cmp = match f {
                    Filter::Compare(_, op, v) => Some((*op, v)),
                    _ => None,
                };
                self.emit(&Target::Column { expr, kind }, def, None, cmp, out)
            }
        }
    }

    fn target(&self, path: &AttrPath) -> Target {
        let col = |expr, kind| Target::Column { expr, kind };
        if path.urn.is_none() {
            let users = self.table == Table::Users;
            match (path.name.as_str(), path.sub.as_deref()) {
                ("id", None) => return col(if users { "u.id" } else { "g.id" }, ColKind::Exact),
                ("externalId", None) => {
                    return col(
                        if users {
                            "u.external_id"
                        } else {
                            "g.external_id"
                        },
                        ColKind::Exact,
                    );
                }
                ("userName", None) if users => return col("u.user_name_ci", ColKind::Key),
                ("active", None) if users => return col("u.active", ColKind::Bool),
                ("displayName", None) if !users => {
                    return col("g.display_name_ci", ColKind::Lowered);
                }
                ("meta", Some("created")) => {
                    return col(
                        if users {
                            "u.created_at"
                        } else {
                            "g.created_at"
                        },
                        ColKind::Micros,
                    );
                }
                ("meta", Some("lastModified")) => {
                    return col(
                        if users {
                            "u.updated_at"
                        } else {
                            "g.updated_at"
                        },
                        ColKind::Micros,
                    );
                }
                _ => {}
            }
        }
        Target::Json(json_keys(path))
    }

    /// Emits one comparison (or presence test, when `cmp` is None). It may be NULL when the
    /// attribute is missing; `not` handles that. Left bare so that indexed columns use their index.
    fn emit(
        &self,
        target: &Target,
        def: &AttrDef,
        element: Option<&str>,
        cmp: Option<(CompOp, &CompValue)>,
        out: &mut SqlBuilder,
    ) -> ScimResult<()> {
        out.push("(");
        match target {
            Target::Column { expr, kind } => self.emit_column(expr, *kind, def, cmp, out)?,
            Target::Json(keys) => self.emit_json(keys, def, element, cmp, out)?,
        }
        out.push(")");
        Ok(())
    }

    fn emit_column(
        &self,
        expr: &str,
        kind: ColKind,
        def: &AttrDef,
        cmp: Option<(CompOp, &CompValue)>,
        out: &mut SqlBuilder,
    ) -> ScimResult<()> {
        let Some((op, value)) = cmp else {
            out.push(expr).push(" IS NOT NULL");
            return Ok(());
        };
        match kind {
            ColKind::Bool => {
                let b = bool_value(value, def)?;
                match op {
                    CompOp::Eq => out.push(expr).push(" = ").bind(Bind::Bool(b)),
                    CompOp::Ne => out.push(expr).push(" <> ").bind(Bind::Bool(b)),
                    _ => return Err(op_not_allowed(op, def)),
                };
            }
            ColKind::Micros => {
                let us = datetime_value(value)?;
                let sym = ordering_symbol(op).ok_or_else(|| op_not_allowed(op, def))?;
                out.push(expr).push(sym).bind(Bind::Int(us));
            }
            ColKind::Exact | ColKind::Lowered | ColKind::Key | ColKind::LowerFn => {
                if matches!(value, CompValue::Null) {
                    return null_comparison(expr, op, out);
                }
                let text = text_value(value);
                let (lhs, text, ci) = match kind {
                    ColKind::Exact => (expr.to_string(), text, false),
                    ColKind::Lowered => (expr.to_string(), text.to_lowercase(), true),
                    ColKind::Key => (expr.to_string(), crate::domain::fold_key(&text), true),
                    _ => (
                        self.backend.ascii_lower(expr),
                        crate::domain::fold_key(&text),
                        true,
                    ),
                };
                self.string_op(&lhs, op, text, ci, out);
            }
        }
        Ok(())
    }

    fn emit_json(
        &self,
        keys: &[String],
        def: &AttrDef,
        element: Option<&str>,
        cmp: Option<(CompOp, &CompValue)>,
        out: &mut SqlBuilder,
    ) -> ScimResult<()> {
        let (text_expr, typeof_expr) = self.json_expr(keys, element, out);
        let Some((op, value)) = cmp else {
            // RFC 7644 §3.4.2.2 `pr`: present, not null, not empty.
            out.push(&typeof_expr)
                .push(" NOT IN ('null', 'array_empty') AND coalesce(");
            out.push(&text_expr).push(", 'x') <> ''");
            return Ok(());
        };
        if matches!(value, CompValue::Null) {
            return null_comparison(&text_expr, op, out);
        }
        match def.ty {
            AttrType::Boolean => {
                let b = bool_value(value, def)?;
                let sym = match op {
                    CompOp::Eq => " = ",
                    CompOp::Ne => " <> ",
                    _ => return Err(op_not_allowed(op, def)),
                };
                // Both backends give the text 'true'/'false' for a JSON boolean (see json_expr).
                if op == CompOp::Ne {
                    out.push(&text_expr).push(" IS NULL OR ");
                }
                out.push(&text_expr)
                    .push(sym)
                    .bind_text(if b { "true" } else { "false" });
            }
            AttrType::Integer | AttrType::Decimal => {
                let n = match value {
                    CompValue::Num(n) => n.as_f64().unwrap_or(0.0),
                    _ => {
                        return Err(ScimError::invalid_filter(format!(
                            "{} takes a number",
                            def.name
                        )));
                    }
                };
                let sym = ordering_symbol(op).ok_or_else(|| op_not_allowed(op, def))?;
                let num = match self.backend {
                    Backend::Sqlite => format!("CAST({text_expr} AS REAL)"),
                    Backend::Postgres => format!(
                        "(CASE WHEN {typeof_expr} = 'number' THEN ({text_expr})::double precision END)"
                    ),
                };
                if op == CompOp::Ne {
                    out.push(&text_expr).push(" IS NULL OR ");
                }
                out.push(&num).push(sym).bind(Bind::Float(n));
            }
            _ => {
                let ci = !def.case_exact;
                let lhs = if ci {
                    self.backend.ascii_lower(&text_expr)
                } else {
                    text_expr.clone()
                };
                let text = text_value(value);
                let text = if ci {
                    crate::domain::fold_key(&text)
                } else {
                    text
                };
                if op == CompOp::Ne {
                    out.push(&text_expr).push(" IS NULL OR ");
                }
                self.string_op(&lhs, op, text, ci, out);
            }
        }
        Ok(())
    }

    /// SQL for the text of a JSON value, and for its JSON type name. On SQLite json_extract turns
    /// booleans into 1/0, so the text comes from the ->> operator's JSON-typed sibling instead.
    fn json_expr(
        &self,
        keys: &[String],
        element: Option<&str>,
        out: &mut SqlBuilder,
    ) -> (String, String) {
        let doc = match element {
            Some(e) => format!("{e}.value"),
            None => format!("{}.data", self.table.alias()),
        };
        match self.backend {
            Backend::Sqlite => {
                out.binds.push(Bind::Text(sqlite_json_path(keys)));
                let p = format!("${}", out.binds.len());
                // json_each exposes the element's JSON text in `value` for objects; for scalars
                // `e.value` is already the SQL value.
                let text = if element.is_some() && keys.is_empty() {
                    "(CASE e.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE e.value END)"
                        .to_string()
                } else {
                    format!(
                        "(CASE json_type({doc}, {p}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                         WHEN 'object' THEN NULL ELSE json_extract({doc}, {p}) END)"
                    )
                };
                let ty = if element.is_some() && keys.is_empty() {
                    "e.type".to_string()
                } else {
                    format!(
                        "(CASE WHEN json_type({doc}, {p}) = 'array' AND json_array_length({doc}, {p}) = 0 \
                         THEN 'array_empty' ELSE json_type({doc}, {p}) END)"
                    )
                };
                (text, ty)
            }
            Backend::Postgres => {
                out.binds.push(Bind::Text(pg_text_array(keys)));
                let p = format!("${}::text[]", out.binds.len());
                let j = match element {
                    Some(e) => format!("({e}.value #> {p})"),
                    None => format!("({doc}::jsonb #> {p})"),
                };
                let text = format!(
                    "(CASE jsonb_typeof({j}) WHEN 'object' THEN NULL WHEN 'array' THEN NULL ELSE {j} #>> '{{}}' END)"
                );
                let ty = format!(
                    "(CASE WHEN {j} = '[]'::jsonb THEN 'array_empty' ELSE coalesce(jsonb_typeof({j}), 'null') END)"
                );
                (text, ty)
            }
        }
    }

    /// String comparisons. `co`/`sw`/`ew` become LIKE with escaped wildcards; on SQLite, whose LIKE
    /// ignores ASCII case, a case-exact match uses GLOB instead.
    fn string_op(&self, lhs: &str, op: CompOp, text: String, ci: bool, out: &mut SqlBuilder) {
        let pattern = |prefix: bool, suffix: bool| -> (String, bool) {
            let glob = self.backend == Backend::Sqlite && !ci;
            let body = if glob {
                escape_glob(&text)
            } else {
                escape_like(&text)
            };
            let any = if glob { "*" } else { "%" };
            let mut p = String::new();
            if prefix {
                p.push_str(any);
            }
            p.push_str(&body);
            if suffix {
                p.push_str(any);
            }
            (p, glob)
        };
        let like = |out: &mut SqlBuilder, (p, glob): (String, bool)| {
            if glob {
                out.push(lhs).push(" GLOB ").bind_text(p);
            } else {
                out.push(lhs)
                    .push(" LIKE ")
                    .bind_text(p)
                    .push(" ESCAPE '\\'");
            }
        };
        match op {
            CompOp::Co => like(out, pattern(true, true)),
            CompOp::Sw => like(out, pattern(false, true)),
            CompOp::Ew => like(out, pattern(true, false)),
            _ => {
                let sym = ordering_symbol(op).unwrap_or(" = ");
                out.push(lhs).push(sym).bind_text(text);
            }
        }
    }
}

fn null_comparison(expr: &str, op: CompOp, out: &mut SqlBuilder) -> ScimResult<()> {
    match op {
        CompOp::Eq => out.push(expr).push(" IS NULL"),
        CompOp::Ne => out.push(expr).push(" IS NOT NULL"),
        _ => {
            return Err(ScimError::invalid_filter(
                "null can only be compared with eq or ne",
            ));
        }
    };
    Ok(())
}

fn ordering_symbol(op: CompOp) -> Option<&'static str> {
    Some(match op {
        CompOp::Eq => " = ",
        CompOp::Ne => " <> ",
        CompOp::Gt => " > ",
        CompOp::Ge => " >= ",
        CompOp::Lt => " < ",
        CompOp::Le => " <= ",
        CompOp::Co | CompOp::Sw | CompOp::Ew => return None,
    })
}

fn op_not_allowed(op: CompOp, def: &AttrDef) -> ScimError {
    ScimError::invalid_filter(format!("operator {op:?} cannot be used with {}", def.name))
}

fn bool_value(v: &CompValue, def: &AttrDef) -> ScimResult<bool> {
    match v {
        CompValue::Bool(b) => Ok(*b),
        // Entra and others sometimes quote booleans.
        CompValue::Str(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        CompValue::Str(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::invalid_filter(format!(
            "{} takes true or false",
            def.name
        ))),
    }
}

fn datetime_value(v: &CompValue) -> ScimResult<i64> {
    match v {
        CompValue::Str(s) => time::OffsetDateTime::parse(s, &Rfc3339)
            .map(super::micros)
            .map_err(|_| ScimError::invalid_filter(format!("{s:?} is not an RFC 3339 dateTime"))),
        _ => Err(ScimError::invalid_filter(
            "a dateTime value must be a string",
        )),
    }
}

fn text_value(v: &CompValue) -> String {
    match v {
        CompValue::Str(s) => s.clone(),
        CompValue::Num(n) => n.to_string(),
        CompValue::Bool(b) => b.to_string(),
        CompValue::Null => String::new(),
    }
}

fn membership_value_path(path: &AttrPath) -> AttrPath {
    AttrPath {
        urn: None,
        name: path.name.clone(),
        sub: path.sub.clone().or(Some("value".into())),
    }
}

/// The keys of an attribute inside the stored document: extension attributes sit under their URN.
fn json_keys(path: &AttrPath) -> Vec<String> {
    let mut keys = Vec::with_capacity(3);
    if let Some(urn) = &path.urn {
        keys.push(urn.clone());
    }
    keys.push(path.name.clone());
    if let Some(sub) = &path.sub {
        keys.push(sub.clone());
    }
    keys
}

/// `$."name"."givenName"`: quoted labels, so URN keys with dots and colons are single labels.
pub fn sqlite_json_path(keys: &[String]) -> String {
    let mut p = String::from("$");
    for k in keys {
        p.push_str(".\"");
        p.push_str(&k.replace('"', "\\\""));
        p.push('"');
    }
    p
}

/// `{"name","givenName"}`: a PostgreSQL text[] literal, each element quoted.
pub fn pg_text_array(keys: &[String]) -> String {
    let items: Vec<String> = keys
        .iter()
        .map(|k| format!("\"{}\"", k.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", items.join(","))
}

pub(super) fn escape_like(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            o.push('\\');
        }
        o.push(ch);
    }
    o
}

fn escape_glob(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '*' => o.push_str("[*]"),
            '?' => o.push_str("[?]"),
            '[' => o.push_str("[[]"),
            c => o.push(c),
        }
    }
    o
}

fn display(p: &AttrPath) -> String {
    let mut s = String::new();
    if let Some(u) = &p.urn {
        s.push_str(u);
        s.push(':');
    }
    s.push_str(&p.name);
    if let Some(sub) = &p.sub {
        s.push('.');
        s.push_str(sub);
    }
    s
}

/// The expression to sort by for `sortBy` (RFC 7644 §3.4.2.3). Multi-valued attributes sort by their
/// first value, which normalisation puts first when it is primary.
pub fn sort_expr(
    backend: Backend,
    table: Table,
    rt: &ResourceType,
    path: &AttrPath,
    out: &mut SqlBuilder,
) -> ScimResult<String> {
    let c = Compiler { backend, table, rt };
    if c.is_membership(path) {
        return Err(ScimError::invalid_value(format!(
            "cannot sort by {}",
            display(path)
        )));
    }
    let parent = c.parent_def(path)?;
    if let Target::Column { expr, kind } = c.target(path) {
        return Ok(match kind {
            ColKind::LowerFn => backend.ascii_lower(expr),
            _ => expr.to_string(),
        });
    }
    let mut keys = Vec::new();
    if let Some(urn) = &path.urn {
        keys.push(urn.clone());
    }
    keys.push(path.name.clone());
    let mut idx_keys = keys.clone();
    if parent.multi_valued {
        idx_keys.push("0".into());
        if let Some(sub) = &path.sub {
            idx_keys.push(sub.clone());
        } else if parent.ty == AttrType::Complex {
            idx_keys.push("value".into());
        }
    } else if let Some(sub) = &path.sub {
        idx_keys.push(sub.clone());
    }
    let doc = format!("{}.data", table.alias());
    Ok(match backend {
        Backend::Sqlite => {
            let mut p = String::from("$");
            for k in &idx_keys {
                if k == "0" && parent.multi_valued {
                    p.push_str("[0]");
                } else {
                    p.push_str(&format!(".\"{}\"", k.replace('"', "\\\"")));
                }
            }
            out.binds.push(Bind::Text(p));
            backend.ascii_lower(&format!("json_extract({doc}, ${})", out.binds.len()))
        }
        Backend::Postgres => {
            out.binds.push(Bind::Text(pg_text_array(&idx_keys)));
            backend.ascii_lower(&format!("{doc}::jsonb #>> ${}::text[]", out.binds.len()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_and_glob_escape_wildcards() {
        assert_eq!(escape_like("50%_a\\b"), "50\\%\\_a\\\\b");
        assert_eq!(escape_glob("a*b?[c"), "a[*]b[?][[]c");
    }

    #[test]
    fn json_paths_quote_urn_keys() {
        let keys = vec![
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".to_string(),
            "employeeNumber".to_string(),
        ];
        assert_eq!(
            sqlite_json_path(&keys),
            "$.\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\".\"employeeNumber\""
        );
        assert_eq!(
            pg_text_array(&keys),
            "{\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\",\"employeeNumber\"}"
        );
    }
}
