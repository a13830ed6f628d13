//! RFC 7644 §3.4.2.2 filters and RFC 7644 §3.5.2 PATCH paths: a depth-limited, hand-written
//! recursive-descent parser that resolves every attribute against the resource type's schema, and
//! an in-memory evaluator.
//!
//! Hand-written rather than generated so that hostile input is bounded explicitly (length and
//! nesting limits checked before any recursion) and so that IdP quirks (Entra's unquoted values)
//! can be accommodated without fighting a grammar tool.

use std::cmp::Ordering;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::scim::error::{ScimError, ScimResult, ScimType};
/// Re-exported: a filter names attributes by the schema's paths.
pub use crate::scim::schema::AttrPath;
use crate::scim::schema::{AttrDef, AttrType, Resolved, ResourceType, get_ci, split_attr_ref};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare(AttrPath, CompOp, CompValue),
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work" and value co "@"]`: the AttrPath names the multi-valued attribute (sub None);
    /// every AttrPath inside the inner filter is the FULL path (same urn/name, sub = the sub-attribute).
    ValuePath(AttrPath, Box<Filter>),
}

/// A PATCH path: `attr`, `attr.sub`, `urn:...:attr`, `attr[filter]`, `attr[filter].sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// `sub` = sub-attribute when written `attr.sub`.
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub_after_filter: Option<String>,
}

pub const MAX_FILTER_LEN: usize = 4096;
pub const MAX_FILTER_DEPTH: usize = 32;

impl CompOp {
    fn parse(word: &str) -> Option<CompOp> {
        const OPS: [(&str, CompOp); 9] = [
            ("eq", CompOp::Eq),
            ("ne", CompOp::Ne),
            ("co", CompOp::Co),
            ("sw", CompOp::Sw),
            ("ew", CompOp::Ew),
            ("gt", CompOp::Gt),
            ("ge", CompOp::Ge),
            ("lt", CompOp::Lt),
            ("le", CompOp::Le),
        ];
        OPS.iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(word))
            .map(|(_, op)| *op)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CompOp::Eq => "eq",
            CompOp::Ne => "ne",
            CompOp::Co => "co",
            CompOp::Sw => "sw",
            CompOp::Ew => "ew",
            CompOp::Gt => "gt",
            CompOp::Ge => "ge",
            CompOp::Lt => "lt",
            CompOp::Le => "le",
        }
    }

    fn is_ordering(self) -> bool {
        matches!(self, CompOp::Gt | CompOp::Ge | CompOp::Lt | CompOp::Le)
    }
}

impl std::fmt::Display for CompValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // RFC 7644 §3.4.2.2: a string compValue is a JSON string, escapes and all.
            CompValue::Str(s) => f.write_str(&Value::from(s.as_str()).to_string()),
            CompValue::Num(n) => write!(f, "{n}"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Null => f.write_str("null"),
        }
    }
}

/// The filter in RFC 7644 §3.4.2.2 syntax, canonical: schema spelling of names, lower-case
/// operators, quoted strings, and parentheses only where precedence needs them, so that
/// [`parse_filter`] reads back the same tree (a property test holds it to that).
impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_filter(self, false, f)
    }
}

/// `inner`: inside `attr[...]`, where names are the sub-attribute alone.
fn write_filter(filter: &Filter, inner: bool, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    let path = |p: &AttrPath, f: &mut std::fmt::Formatter<'_>| match (&p.sub, inner) {
        (Some(sub), true) => f.write_str(sub),
        _ => write!(f, "{p}"),
    };
    // `and` binds tighter than `or`, and both associate to the left (see `parse_or`): a left
    // operand needs parentheses only when it binds looser, a right one also when it is the same
    // operator.
    let operand = |x: &Filter, paren: bool, f: &mut std::fmt::Formatter<'_>| {
        if paren {
            f.write_str("(")?;
            write_filter(x, inner, f)?;
            f.write_str(")")
        } else {
            write_filter(x, inner, f)
        }
    };
    match filter {
        Filter::Compare(p, op, v) => {
            path(p, f)?;
            write!(f, " {} {v}", op.as_str())
        }
        Filter::Present(p) => {
            path(p, f)?;
            f.write_str(" pr")
        }
        Filter::And(a, b) => {
            operand(a, matches!(**a, Filter::Or(..)), f)?;
            f.write_str(" and ")?;
            operand(b, matches!(**b, Filter::Or(..) | Filter::And(..)), f)
        }
        Filter::Or(a, b) => {
            operand(a, false, f)?;
            f.write_str(" or ")?;
            operand(b, matches!(**b, Filter::Or(..)), f)
        }
        Filter::Not(x) => {
            f.write_str("not ")?;
            operand(x, true, f)
        }
        Filter::ValuePath(p, x) => {
            write!(f, "{p}[")?;
            write_filter(x, true, f)?;
            f.write_str("]")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Str(String),
    Word(&'a str),
}

#[derive(Debug)]
struct Token<'a> {
    tok: Tok<'a>,
    at: usize,
    /// Whether whitespace precedes the token; a PATCH path's `].sub` must be contiguous.
    spaced: bool,
}

fn describe(t: Option<&Token<'_>>) -> String {
    match t.map(|t| &t.tok) {
        None => "end of input".into(),
        Some(Tok::LParen) => "'('".into(),
        Some(Tok::RParen) => "')'".into(),
        Some(Tok::LBracket) => "'['".into(),
        Some(Tok::RBracket) => "']'".into(),
        Some(Tok::Str(s)) => format!("string {s:?}"),
        Some(Tok::Word(w)) => format!("'{w}'"),
    }
}

fn lex(input: &str, kind: ScimType) -> ScimResult<Vec<Token<'_>>> {
    let err = |d: String| ScimError::bad_request(kind, d);
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut spaced = false;
    while i < bytes.len() {
        let b = bytes[i];
        let tok = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                spaced = true;
                i += 1;
                continue;
            }
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b'[' => Tok::LBracket,
            b']' => Tok::RBracket,
            b'"' => {
                // RFC 7644 §3.4.2.2: compValue strings are JSON strings (RFC 7159 §7), so their
                // escapes are decoded by serde_json once the closing quote is found. '"' and '\'
                // are ASCII and never occur inside a multi-byte UTF-8 sequence, so a byte scan is safe.
                let start = i;
                let mut j = i + 1;
                let end = loop {
                    match bytes.get(j) {
                        None => {
                            return Err(err(format!(
                                "unterminated string starting at offset {start}"
                            )));
                        }
                        Some(b'\\') => j += 2,
                        Some(b'"') => break j,
                        Some(_) => j += 1,
                    }
                };
                let s: String = serde_json::from_str(&input[start..=end])
                    .map_err(|e| err(format!("invalid string at offset {start}: {e}")))?;
                out.push(Token {
                    tok: Tok::Str(s),
                    at: start,
                    spaced,
                });
                spaced = false;
                i = end + 1;
                continue;
            }
            _ => {
                let start = i;
                while i < bytes.len()
                    && !matches!(
                        bytes[i],
                        b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b'[' | b']' | b'"'
                    )
                {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Word(&input[start..i]),
                    at: start,
                    spaced,
                });
                spaced = false;
                continue;
            }
        };
        out.push(Token { tok, at: i, spaced });
        spaced = false;
        i += 1;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// Where an attribute name is being resolved.
#[derive(Clone, Copy)]
enum Scope<'s> {
    Top,
    /// Inside `attr[...]`: names are sub-attributes of `attr`.
    Inner(&'s Resolved),
    /// Inside `attr[...]` where `attr` is unknown (lenient mode only).
    UnknownInner,
}

/// Placeholder URN for attributes a lenient parse could not resolve; never escapes this module.
const UNKNOWN_URN: &str = "\u{0}unknown";

struct Parser<'a, 'r> {
    toks: Vec<Token<'a>>,
    /// Unknown attributes become placeholders instead of errors (root searches).
    lenient: bool,
    unknown: Vec<String>,
    pos: usize,
    depth: usize,
    rt: &'r ResourceType,
    /// invalidFilter for `filter=`, invalidPath for PATCH paths: the same grammar, different
    /// RFC 7644 §3.12 error keyword.
    kind: ScimType,
}

impl<'a> Parser<'a, '_> {
    fn err(&self, detail: impl Into<String>) -> ScimError {
        ScimError::bad_request(self.kind, detail)
    }

    fn peek(&self) -> Option<&Token<'a>> {
        self.toks.get(self.pos)
    }

    fn peek_word(&self) -> Option<&'a str> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Word(w)) => Some(*w),
            _ => None,
        }
    }

    fn unexpected(&self, expected: &str) -> ScimError {
        let t = self.peek();
        let at = t.map(|t| t.at.to_string()).unwrap_or_else(|| "end".into());
        self.err(format!(
            "expected {expected} but found {} at offset {at}",
            describe(t)
        ))
    }

    fn expect(&mut self, tok: Tok<'_>, what: &str) -> ScimResult<()> {
        if self.peek().map(|t| &t.tok) == Some(&tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn enter(&mut self) -> ScimResult<()> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(self.err(format!(
                "filter nesting is deeper than the maximum of {MAX_FILTER_DEPTH}"
            )));
        }
        Ok(())
    }

    /// `and` binds tighter than `or` (RFC 7644 §3.4.2.2, Table 4 precedence note).
    fn parse_or(&mut self, ctx: Scope<'_>) -> ScimResult<Filter> {
        let mut left = self.parse_and(ctx)?;
        while self
            .peek_word()
            .is_some_and(|w| w.eq_ignore_ascii_case("or"))
        {
            self.pos += 1;
            let right = self.parse_and(ctx)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self, ctx: Scope<'_>) -> ScimResult<Filter> {
        let mut left = self.parse_unary(ctx)?;
        while self
            .peek_word()
            .is_some_and(|w| w.eq_ignore_ascii_case("and"))
        {
            self.pos += 1;
            let right = self.parse_unary(ctx)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_group(&mut self, ctx: Scope<'_>) -> ScimResult<Filter> {
        self.enter()?;
        let f = self.parse_or(ctx)?;
        self.expect(Tok::RParen, "')'")?;
        self.depth -= 1;
        Ok(f)
    }

    // RFC 7644 §3.4.2.2: FILTER = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
    fn parse_unary(&mut self, ctx: Scope<'_>) -> ScimResult<Filter> {
        let Some(tok) = self.peek() else {
            return Err(self.unexpected("an attribute expression"));
        };
        match tok.tok {
            Tok::LParen => {
                self.pos += 1;
                self.parse_group(ctx)
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("not") => {
                self.pos += 1;
                self.expect(Tok::LParen, "'(' after 'not'")?;
                Ok(Filter::Not(Box::new(self.parse_group(ctx)?)))
            }
            Tok::Word(w) => {
                let at = tok.at;
                self.pos += 1;
                self.parse_attr_exp(w, at, ctx)
            }
            _ => Err(self.unexpected("an attribute expression")),
        }
    }

    /// The `.subAttr` written right after a value filter's `]` (no space between), consumed.
    /// RFC 7644 §3.4.2.2's filter grammar stops at `valuePath`, but its PATCH grammar (§3.5.2)
    /// allows `valuePath [subAttr]` and IdPs send the same form in filters.
    fn sub_after_bracket(&mut self) -> Option<(&'a str, usize)> {
        let t = self.peek()?;
        let Tok::Word(w) = t.tok else { return None };
        if t.spaced {
            return None;
        }
        let sub = w.strip_prefix('.')?;
        let at = t.at + 1;
        self.pos += 1;
        Some((sub, at))
    }

    /// None only in lenient mode, for an attribute this resource type does not define.
    fn resolve(&mut self, word: &str, at: usize, ctx: Scope<'_>) -> ScimResult<Option<Resolved>> {
        let found = match ctx {
            // Inside `attr[...]`, names are sub-attributes of `attr` (RFC 7644 §3.4.2.2 valFilter).
            Scope::Inner(outer) => outer.attr.sub_attr(word).map(|sub| Resolved {
                urn: outer.urn,
                attr: outer.attr,
                sub: Some(sub),
            }),
            Scope::UnknownInner => None,
            Scope::Top => {
                let (urn, name, sub) = split_attr_ref(word);
                self.rt.resolve(urn, name, sub)
            }
        };
        match found {
            Some(r) => Ok(Some(r)),
            None if self.lenient => {
                self.unknown.push(word.to_ascii_lowercase());
                Ok(None)
            }
            None => Err(self.err(format!("unknown attribute '{word}' at offset {at}"))),
        }
    }

    /// The rest of an expression on an attribute this resource type does not define, parsed for
    /// syntax only; the result is a placeholder that [`fold`] turns into "matches nothing".
    fn parse_unknown_exp(&mut self, word: &str, ctx: Scope<'_>) -> ScimResult<Filter> {
        let path = AttrPath::new(Some(UNKNOWN_URN), word, None);
        if self.peek().map(|t| &t.tok) == Some(&Tok::LBracket) && matches!(ctx, Scope::Top) {
            self.pos += 1;
            self.enter()?;
            let mut inner = self.parse_or(Scope::UnknownInner)?;
            self.expect(Tok::RBracket, "']'")?;
            if let Some((sub, _)) = self.sub_after_bracket() {
                let cmp = self.parse_unknown_exp(sub, Scope::UnknownInner)?;
                inner = Filter::And(Box::new(inner), Box::new(cmp));
            }
            self.depth -= 1;
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        let Some(op_word) = self.peek_word() else {
            return Err(self.unexpected(&format!("an operator after '{word}'")));
        };
        let op_at = self.peek().map_or(0, |t| t.at);
        self.pos += 1;
        if op_word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = CompOp::parse(op_word)
            .ok_or_else(|| self.err(format!("unknown operator '{op_word}' at offset {op_at}")))?;
        let value = self.parse_value(op_word)?;
        Ok(Filter::Compare(path, op, value))
    }

    fn parse_attr_exp(&mut self, word: &'a str, at: usize, ctx: Scope<'_>) -> ScimResult<Filter> {
        let Some(r) = self.resolve(word, at, ctx)? else {
            return self.parse_unknown_exp(word, ctx);
        };
        let path = r.to_path();
        if self.peek().map(|t| &t.tok) == Some(&Tok::LBracket) {
            // RFC 7644 §3.4.2.2: valuePath = attrPath "[" valFilter "]"
            if !matches!(ctx, Scope::Top) {
                return Err(self.err(format!("value filters cannot be nested (offset {at})")));
            }
            if r.sub.is_some() || !r.attr.is_complex() {
                return Err(self.err(format!(
                    "'{word}' is not a complex attribute and cannot take a value filter"
                )));
            }
            self.pos += 1;
            self.enter()?;
            let mut inner = self.parse_or(Scope::Inner(&r))?;
            self.expect(Tok::RBracket, "']'")?;
            if let Some((sub, sub_at)) = self.sub_after_bracket() {
                // `emails[type eq "work"].value eq "x"` (Entra's matching filter): the same element
                // must satisfy both, so it is exactly `emails[type eq "work" and value eq "x"]`.
                let cmp = self.parse_attr_exp(sub, sub_at, Scope::Inner(&r))?;
                inner = Filter::And(Box::new(inner), Box::new(cmp));
            }
            self.depth -= 1;
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        let Some(op_word) = self.peek_word() else {
            return Err(self.unexpected(&format!("an operator after '{word}'")));
        };
        let op_at = self.peek().map_or(0, |t| t.at);
        self.pos += 1;
        if op_word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = CompOp::parse(op_word)
            .ok_or_else(|| self.err(format!("unknown operator '{op_word}' at offset {op_at}")))?;
        // A complex attribute without a sub-attribute compares its `value` (RFC 7644 §3.4.2.2:
        // `emails co "example.com"`); one without `value` (`name`, `meta`) has nothing to compare.
        let target = match r.sub {
            Some(s) => s,
            None if r.attr.is_complex() => r.attr.sub_attr("value").ok_or_else(|| {
                self.err(format!(
                    "'{word}' is complex; compare one of its sub-attributes"
                ))
            })?,
            None => r.attr,
        };
        let value = self.parse_value(op_word)?;
        let value = coerce_value(value, target);
        // RFC 7644 §3.4.2.2: ordering and substring operators are undefined for booleans and
        // binary values and "SHALL cause a failed response ... invalidFilter".
        let bad = match target.ty {
            AttrType::Boolean | AttrType::Binary => {
                op.is_ordering() || matches!(op, CompOp::Co | CompOp::Sw | CompOp::Ew)
            }
            _ => false,
        };
        if bad {
            return Err(self.err(format!(
                "operator '{}' is not supported for {} attribute '{word}'",
                op.as_str(),
                target.ty.as_str()
            )));
        }
        // RFC 7643 §2.3.5: a dateTime literal must be one, or the comparison has no meaning.
        if target.ty == AttrType::DateTime
            && !matches!(op, CompOp::Co | CompOp::Sw | CompOp::Ew)
            && let CompValue::Str(s) = &value
            && parse_datetime(s).is_none()
        {
            return Err(self.err(format!(
                "'{word}' is a dateTime and {s:?} is not an RFC 3339 timestamp"
            )));
        }
        if value == CompValue::Null && !matches!(op, CompOp::Eq | CompOp::Ne) {
            return Err(self.err(format!(
                "operator '{}' cannot compare with null",
                op.as_str()
            )));
        }
        Ok(Filter::Compare(path, op, value))
    }

    fn parse_value(&mut self, op_word: &str) -> ScimResult<CompValue> {
        let missing = |p: &Self| p.unexpected(&format!("a comparison value after '{op_word}'"));
        let Some(t) = self.peek() else {
            return Err(missing(self));
        };
        let v = match &t.tok {
            Tok::Str(s) => CompValue::Str(s.clone()),
            Tok::Word(w) => {
                if w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or") {
                    return Err(missing(self));
                }
                word_value(w)
            }
            _ => return Err(missing(self)),
        };
        self.pos += 1;
        Ok(v)
    }
}

/// RFC 7644 §3.4.2.2 compValue = false / null / true / number / string. Anything else unquoted is
/// taken as a string because Entra ID sends `externalId eq abc-123` and `userName eq a@b.c`.
fn word_value(w: &str) -> CompValue {
    if w.eq_ignore_ascii_case("true") {
        CompValue::Bool(true)
    } else if w.eq_ignore_ascii_case("false") {
        CompValue::Bool(false)
    } else if w.eq_ignore_ascii_case("null") {
        CompValue::Null
    } else if let Ok(n) = serde_json::from_str::<serde_json::Number>(w) {
        CompValue::Num(n)
    } else {
        CompValue::Str(w.to_owned())
    }
}

/// Make the literal's JSON type agree with the attribute's: an unquoted `externalId eq 123` or a
/// quoted `active eq "true"` means what the client obviously intended.
fn coerce_value(v: CompValue, def: &AttrDef) -> CompValue {
    match (def.ty, v) {
        (
            AttrType::String | AttrType::Reference | AttrType::DateTime | AttrType::Binary,
            CompValue::Num(n),
        ) => CompValue::Str(n.to_string()),
        (
            AttrType::String | AttrType::Reference | AttrType::DateTime | AttrType::Binary,
            CompValue::Bool(b),
        ) => CompValue::Str(b.to_string()),
        (AttrType::Boolean, CompValue::Str(s)) if s.eq_ignore_ascii_case("true") => {
            CompValue::Bool(true)
        }
        (AttrType::Boolean, CompValue::Str(s)) if s.eq_ignore_ascii_case("false") => {
            CompValue::Bool(false)
        }
        (_, v) => v,
    }
}

fn check_len(input: &str, kind: ScimType) -> ScimResult<()> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::bad_request(
            kind,
            format!(
                "filter is {} bytes long; the maximum is {MAX_FILTER_LEN}",
                input.len()
            ),
        ));
    }
    Ok(())
}

fn parse_filter_impl(
    input: &str,
    rt: &ResourceType,
    lenient: bool,
) -> ScimResult<(Filter, Vec<String>)> {
    let kind = ScimType::InvalidFilter;
    check_len(input, kind)?;
    let toks = lex(input, kind)?;
    let mut p = Parser {
        toks,
        lenient,
        unknown: Vec::new(),
        pos: 0,
        depth: 0,
        rt,
        kind,
    };
    if p.toks.is_empty() {
        return Err(p.err("filter is empty"));
    }
    let f = p.parse_or(Scope::Top)?;
    if p.pos < p.toks.len() {
        return Err(p.unexpected("'and', 'or' or the end of the filter"));
    }
    Ok((f, p.unknown))
}

/// Parse a `filter` query parameter (RFC 7644 §3.4.2.2). Errors are 400 invalidFilter.
pub fn parse_filter(input: &str, rt: &ResourceType) -> ScimResult<Filter> {
    parse_filter_impl(input, rt, false).map(|(f, _)| f)
}

/// RFC 7644 §3.4.3: a search at the server root spans every resource type, so a filter may name
/// attributes only some of them define (`displayName sw "Sa" or userName sw "ann"`). Returns one
/// entry per `rts`, in order: the filter for that type with the comparisons on attributes it
/// lacks folded to "false", or None when nothing of that type can match. A filter that is always
/// true for a type comes back as `id pr`. An attribute that no type defines is still 400
/// invalidFilter.
pub fn parse_filter_multi(input: &str, rts: &[&ResourceType]) -> ScimResult<Vec<Option<Filter>>> {
    let mut parsed = Vec::with_capacity(rts.len());
    for rt in rts {
        parsed.push(parse_filter_impl(input, rt, true)?);
    }
    if let Some((_, first)) = parsed.first()
        && let Some(word) = first
            .iter()
            .find(|w| parsed.iter().all(|(_, u)| u.contains(w)))
    {
        return Err(ScimError::invalid_filter(format!(
            "unknown attribute '{word}'"
        )));
    }
    Ok(parsed
        .into_iter()
        .map(|(f, _)| match fold(f) {
            Tri::True => Some(Filter::Present(AttrPath::new(None, "id", None))),
            Tri::False => None,
            Tri::Filter(f) => Some(f),
        })
        .collect())
}

enum Tri {
    True,
    False,
    Filter(Filter),
}

fn is_unknown(p: &AttrPath) -> bool {
    p.urn.as_deref() == Some(UNKNOWN_URN)
}

/// Constant-fold the placeholders of a lenient parse: a comparison on an attribute the type does
/// not define matches no resource of that type.
fn fold(f: Filter) -> Tri {
    match f {
        Filter::Compare(p, ..) | Filter::Present(p) | Filter::ValuePath(p, _) if is_unknown(&p) => {
            Tri::False
        }
        // Sub-attributes of an unknown attribute inside a value path never reach here: the whole
        // value path is the placeholder.
        Filter::And(a, b) => match (fold(*a), fold(*b)) {
            (Tri::False, _) | (_, Tri::False) => Tri::False,
            (Tri::True, x) | (x, Tri::True) => x,
            (Tri::Filter(a), Tri::Filter(b)) => Tri::Filter(Filter::And(Box::new(a), Box::new(b))),
        },
        Filter::Or(a, b) => match (fold(*a), fold(*b)) {
            (Tri::True, _) | (_, Tri::True) => Tri::True,
            (Tri::False, x) | (x, Tri::False) => x,
            (Tri::Filter(a), Tri::Filter(b)) => Tri::Filter(Filter::Or(Box::new(a), Box::new(b))),
        },
        Filter::Not(a) => match fold(*a) {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Filter(a) => Tri::Filter(Filter::Not(Box::new(a))),
        },
        Filter::ValuePath(p, inner) => match fold(*inner) {
            Tri::True => Tri::Filter(Filter::Present(p)),
            Tri::False => Tri::False,
            Tri::Filter(inner) => Tri::Filter(Filter::ValuePath(p, Box::new(inner))),
        },
        f => Tri::Filter(f),
    }
}

/// Parse a PATCH operation `path` (RFC 7644 §3.5.2: PATH = attrPath / valuePath [subAttr]).
/// Errors are 400 invalidPath.
///
/// Attributes of extension schemas we do not define (`urn:...:CustomExtension:2.0:User:attr`,
/// Entra's custom extension attributes) are accepted as opaque paths with `urn` set verbatim, in
/// line with `resource::normalize` keeping unknown extensions; `ResourceType::attr` returns None
/// for them and no filter may follow.
pub fn parse_path(input: &str, rt: &ResourceType) -> ScimResult<PatchPath> {
    let kind = ScimType::InvalidPath;
    check_len(input, kind)?;
    let toks = lex(input.trim(), kind)?;
    let mut p = Parser {
        toks,
        lenient: false,
        unknown: Vec::new(),
        pos: 0,
        depth: 0,
        rt,
        kind,
    };
    let Some(word) = p.peek_word() else {
        return Err(p.unexpected("an attribute path"));
    };
    p.pos += 1;
    let (urn, name, sub) = split_attr_ref(word);
    let resolved = rt.resolve(urn, name, sub);
    let Some(r) = resolved else {
        let opaque = urn.filter(|u| {
            u.len() > 4
                && u.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
                && !rt.is_core_urn(u)
                && rt.extension(u).is_none()
                && rt.extension(word).is_none()
                && valid_name(name)
                && sub.is_none_or(valid_name)
        });
        return match opaque {
            Some(u) if p.pos == p.toks.len() => Ok(PatchPath {
                attr: AttrPath::new(Some(u), name, sub),
                filter: None,
                sub_after_filter: None,
            }),
            _ if rt.extension(word).is_some() || rt.is_core_urn(word) => {
                Err(p.err(format!("path '{word}' names a schema, not an attribute")))
            }
            _ => Err(p.err(format!("unknown attribute '{word}' in path"))),
        };
    };
    let mut out = PatchPath {
        attr: r.to_path(),
        filter: None,
        sub_after_filter: None,
    };
    if p.peek().map(|t| &t.tok) == Some(&Tok::LBracket) {
        if r.sub.is_some() || !r.attr.is_complex() {
            return Err(p.err(format!(
                "'{word}' cannot take a value filter; only complex attributes can"
            )));
        }
        p.pos += 1;
        p.enter()?;
        out.filter = Some(p.parse_or(Scope::Inner(&r))?);
        p.expect(Tok::RBracket, "']'")?;
        if let Some(t) = p.peek()
            && let Tok::Word(w) = t.tok
            && !t.spaced
            && let Some(s) = w.strip_prefix('.')
        {
            let sub = r
                .attr
                .sub_attr(s)
                .ok_or_else(|| p.err(format!("'{}' has no sub-attribute '{s}'", r.attr.name)))?;
            out.sub_after_filter = Some(sub.name.to_owned());
            p.pos += 1;
        }
    }
    if p.pos < p.toks.len() {
        return Err(p.unexpected("the end of the path"));
    }
    Ok(out)
}

/// RFC 7643 §2.1: ATTRNAME = ALPHA *(nameChar), nameChar = "-" / "_" / DIGIT / ALPHA; plus `$ref`.
fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '$' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Ctx<'v> {
    Resource(&'v Value),
    /// One element of a multi-valued attribute, for a ValuePath's inner filter.
    Element(&'v Value),
}

/// Evaluate a filter against a resource (or, for the inner filter of a ValuePath, against one
/// element) in memory, with the RFC 7644 §3.4.2.2 semantics.
///
/// A value is treated as an element rather than a resource when it has no `schemas` member, lacks
/// the attribute, and every path in the filter is a sub-attribute of that one attribute, which is
/// exactly the shape of a ValuePath's inner filter. [`matches_element`] says so explicitly.
pub fn matches(filter: &Filter, resource: &Value, rt: &ResourceType) -> bool {
    if resource.get("schemas").is_none()
        && let Some(p) = element_filter_attr(filter)
    {
        let container = match &p.urn {
            Some(u) => get_ci(resource, u),
            None => Some(resource),
        };
        if container.and_then(|c| get_ci(c, &p.name)).is_none() {
            return eval(filter, Ctx::Element(resource), rt);
        }
    }
    eval(filter, Ctx::Resource(resource), rt)
}

/// Evaluate a ValuePath's inner filter against one element of the multi-valued attribute.
pub fn matches_element(inner: &Filter, element: &Value, rt: &ResourceType) -> bool {
    eval(inner, Ctx::Element(element), rt)
}

/// The attribute every path in `f` is a sub-attribute of, if there is exactly one.
fn element_filter_attr(f: &Filter) -> Option<AttrPath> {
    fn walk(f: &Filter, acc: &mut Option<AttrPath>) -> bool {
        match f {
            Filter::Compare(p, _, _) | Filter::Present(p) => {
                if p.sub.is_none() {
                    return false;
                }
                let parent = p.parent();
                match acc {
                    Some(a) => *a == parent,
                    None => {
                        *acc = Some(parent);
                        true
                    }
                }
            }
            Filter::And(a, b) | Filter::Or(a, b) => walk(a, acc) && walk(b, acc),
            Filter::Not(a) => walk(a, acc),
            Filter::ValuePath(..) => false,
        }
    }
    let mut acc = None;
    if walk(f, &mut acc) { acc } else { None }
}

fn eval(f: &Filter, ctx: Ctx<'_>, rt: &ResourceType) -> bool {
    match f {
        Filter::And(a, b) => eval(a, ctx, rt) && eval(b, ctx, rt),
        Filter::Or(a, b) => eval(a, ctx, rt) || eval(b, ctx, rt),
        Filter::Not(a) => !eval(a, ctx, rt),
        // RFC 7644 §3.4.2.2 "pr": present and not null/empty.
        Filter::Present(p) => collect(p, ctx, rt, true).into_iter().any(|v| !is_empty(v)),
        Filter::Compare(p, op, val) => {
            let Some(def) = target_def(p, rt) else {
                return false;
            };
            let values = collect(p, ctx, rt, false);
            match (op, val) {
                (CompOp::Eq, CompValue::Null) => values.is_empty(),
                (CompOp::Ne, CompValue::Null) => !values.is_empty(),
                // An absent attribute is "not equal" to anything; otherwise any differing value
                // matches, per the multi-valued rule.
                (CompOp::Ne, _) => {
                    values.is_empty() || values.iter().any(|v| !compare(v, CompOp::Eq, val, def))
                }
                _ => values.iter().any(|v| compare(v, *op, val, def)),
            }
        }
        Filter::ValuePath(p, inner) => {
            let Ctx::Resource(res) = ctx else {
                return false;
            };
            attr_value(p, res)
                .map(items)
                .unwrap_or_default()
                .into_iter()
                .any(|e| eval(inner, Ctx::Element(e), rt))
        }
    }
}

/// The definition values are compared under: the sub-attribute, or `value` of a complex attribute.
fn target_def(p: &AttrPath, rt: &ResourceType) -> Option<&'static AttrDef> {
    let d = rt.attr(p)?;
    if d.is_complex() {
        d.sub_attr("value")
    } else {
        Some(d)
    }
}

fn attr_value<'v>(p: &AttrPath, res: &'v Value) -> Option<&'v Value> {
    let container = match &p.urn {
        Some(u) => get_ci(res, u)?,
        None => res,
    };
    get_ci(container, &p.name)
}

fn items(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        v => vec![v],
    }
}

/// The non-null leaf values a path designates. Without a sub-attribute a complex attribute yields
/// its `value`s for comparisons and the elements themselves for `pr`.
fn collect<'v>(p: &AttrPath, ctx: Ctx<'v>, rt: &ResourceType, present: bool) -> Vec<&'v Value> {
    let mut out = Vec::new();
    let mut push = |v: &'v Value| {
        for x in items(v) {
            out.push(x);
        }
    };
    match ctx {
        Ctx::Element(e) => match &p.sub {
            Some(s) => {
                if let Some(v) = get_ci(e, s) {
                    push(v);
                }
            }
            None => push(e),
        },
        Ctx::Resource(res) => {
            let Some(v) = attr_value(p, res) else {
                return out;
            };
            let complex = rt.attr(&p.parent()).is_some_and(|d| d.is_complex());
            match (&p.sub, complex, present) {
                (Some(s), _, _) => {
                    for item in items(v) {
                        if let Some(x) = get_ci(item, s) {
                            push(x);
                        }
                    }
                }
                (None, true, false) => {
                    for item in items(v) {
                        if let Some(x) = get_ci(item, "value") {
                            push(x);
                        }
                    }
                }
                (None, _, _) => push(v),
            }
        }
    }
    out
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty() || o.values().all(is_empty),
        _ => false,
    }
}

fn ordering_matches(op: CompOp, ord: Ordering) -> bool {
    match op {
        CompOp::Eq => ord == Ordering::Equal,
        CompOp::Ne => ord != Ordering::Equal,
        CompOp::Gt => ord == Ordering::Greater,
        CompOp::Ge => ord != Ordering::Less,
        CompOp::Lt => ord == Ordering::Less,
        CompOp::Le => ord != Ordering::Greater,
        CompOp::Co | CompOp::Sw | CompOp::Ew => false,
    }
}

fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// One attribute value against one literal (RFC 7644 §3.4.2.2, Table 3).
fn compare(v: &Value, op: CompOp, lit: &CompValue, def: &AttrDef) -> bool {
    match (v, lit) {
        (Value::String(a), CompValue::Str(b)) => {
            // dateTime values order chronologically, not lexically: offsets differ.
            if def.ty == AttrType::DateTime
                && !matches!(op, CompOp::Co | CompOp::Sw | CompOp::Ew)
                && let (Some(x), Some(y)) = (parse_datetime(a), parse_datetime(b))
            {
                return ordering_matches(op, x.cmp(&y));
            }
            let (a, b) = if def.case_exact {
                (a.clone(), b.clone())
            } else {
                (a.to_lowercase(), b.to_lowercase())
            };
            match op {
                CompOp::Co => a.contains(&b),
                CompOp::Sw => a.starts_with(&b),
                CompOp::Ew => a.ends_with(&b),
                _ => ordering_matches(op, a.cmp(&b)),
            }
        }
        (Value::Number(a), CompValue::Num(b)) => {
            let ord = match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                _ => a
                    .as_f64()
                    .zip(b.as_f64())
                    .and_then(|(x, y)| x.partial_cmp(&y)),
            };
            ord.is_some_and(|o| ordering_matches(op, o))
        }
        // Booleans only support equality; gt/ge/lt/le on them never match.
        (Value::Bool(a), CompValue::Bool(b)) => match op {
            CompOp::Eq => a == b,
            CompOp::Ne => a != b,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, GROUP, USER};
    use serde_json::json;

    const ENT: &str = ENTERPRISE_USER_SCHEMA;

    fn p(name: &str) -> AttrPath {
        AttrPath::new(None, name, None)
    }
    fn ps(name: &str, sub: &str) -> AttrPath {
        AttrPath::new(None, name, Some(sub))
    }
    fn s(v: &str) -> CompValue {
        CompValue::Str(v.into())
    }
    fn cmp(path: AttrPath, op: CompOp, v: CompValue) -> Filter {
        Filter::Compare(path, op, v)
    }
    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }
    fn or(a: Filter, b: Filter) -> Filter {
        Filter::Or(Box::new(a), Box::new(b))
    }
    fn vp(path: AttrPath, f: Filter) -> Filter {
        Filter::ValuePath(path, Box::new(f))
    }

    /// Every example of RFC 7644 §3.4.2.2 (those against Users), plus the canonical AST for some.
    #[test]
    fn rfc7644_examples_parse() {
        let cases: Vec<(&str, Option<Filter>)> = vec![
            (
                r#"userName Eq "john""#,
                Some(cmp(p("userName"), CompOp::Eq, s("john"))),
            ),
            (
                r#"Username eq "john""#,
                Some(cmp(p("userName"), CompOp::Eq, s("john"))),
            ),
            (
                r#"userName eq "bjensen""#,
                Some(cmp(p("userName"), CompOp::Eq, s("bjensen"))),
            ),
            (
                r#"name.familyName co "O'Malley""#,
                Some(cmp(ps("name", "familyName"), CompOp::Co, s("O'Malley"))),
            ),
            (
                r#"userName sw "J""#,
                Some(cmp(p("userName"), CompOp::Sw, s("J"))),
            ),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
                Some(cmp(p("userName"), CompOp::Sw, s("J"))),
            ),
            ("title pr", Some(Filter::Present(p("title")))),
            (
                r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
                Some(cmp(
                    ps("meta", "lastModified"),
                    CompOp::Gt,
                    s("2011-05-13T04:42:34Z"),
                )),
            ),
            (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, None),
            (r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, None),
            (r#"meta.lastModified le "2011-05-13T04:42:34Z""#, None),
            (
                r#"title pr and userType eq "Employee""#,
                Some(and(
                    Filter::Present(p("title")),
                    cmp(p("userType"), CompOp::Eq, s("Employee")),
                )),
            ),
            (
                r#"title pr or userType eq "Intern""#,
                Some(or(
                    Filter::Present(p("title")),
                    cmp(p("userType"), CompOp::Eq, s("Intern")),
                )),
            ),
            (
                r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
                None, // `schemas` is not an attribute we filter on: see the negative table
            ),
            (
                r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                Some(and(
                    cmp(p("userType"), CompOp::Eq, s("Employee")),
                    or(
                        cmp(p("emails"), CompOp::Co, s("example.com")),
                        cmp(ps("emails", "value"), CompOp::Co, s("example.org")),
                    ),
                )),
            ),
            (
                r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                Some(and(
                    cmp(p("userType"), CompOp::Ne, s("Employee")),
                    Filter::Not(Box::new(or(
                        cmp(p("emails"), CompOp::Co, s("example.com")),
                        cmp(ps("emails", "value"), CompOp::Co, s("example.org")),
                    ))),
                )),
            ),
            (
                r#"userType eq "Employee" and (emails.type eq "work")"#,
                Some(and(
                    cmp(p("userType"), CompOp::Eq, s("Employee")),
                    cmp(ps("emails", "type"), CompOp::Eq, s("work")),
                )),
            ),
            (
                r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
                Some(and(
                    cmp(p("userType"), CompOp::Eq, s("Employee")),
                    vp(
                        p("emails"),
                        and(
                            cmp(ps("emails", "type"), CompOp::Eq, s("work")),
                            cmp(ps("emails", "value"), CompOp::Co, s("@example.com")),
                        ),
                    ),
                )),
            ),
            (
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
                Some(or(
                    vp(
                        p("emails"),
                        and(
                            cmp(ps("emails", "type"), CompOp::Eq, s("work")),
                            cmp(ps("emails", "value"), CompOp::Co, s("@example.com")),
                        ),
                    ),
                    vp(
                        p("ims"),
                        and(
                            cmp(ps("ims", "type"), CompOp::Eq, s("xmpp")),
                            cmp(ps("ims", "value"), CompOp::Co, s("@foo.com")),
                        ),
                    ),
                )),
            ),
            (
                r#"not (userName eq "x")"#,
                Some(Filter::Not(Box::new(cmp(
                    p("userName"),
                    CompOp::Eq,
                    s("x"),
                )))),
            ),
            (
                r#"NOT(userName EQ "x")"#,
                Some(Filter::Not(Box::new(cmp(
                    p("userName"),
                    CompOp::Eq,
                    s("x"),
                )))),
            ),
        ];
        for (input, expected) in cases {
            let got = parse_filter(input, &USER);
            if input.starts_with("schemas") {
                assert!(got.is_err(), "{input}");
                continue;
            }
            let got = got.unwrap_or_else(|e| panic!("{input}: {e}"));
            if let Some(exp) = expected {
                assert_eq!(got, exp, "{input}");
            }
        }
    }

    #[test]
    fn parse_table() {
        let ent = |name: &str, sub: Option<&str>| AttrPath::new(Some(ENT), name, sub);
        let cases: Vec<(&str, &ResourceType, Filter)> = vec![
            // Precedence: `and` binds tighter than `or`, on either side.
            (
                r#"title pr or userType eq "a" and nickName pr"#,
                &USER,
                or(
                    Filter::Present(p("title")),
                    and(
                        cmp(p("userType"), CompOp::Eq, s("a")),
                        Filter::Present(p("nickName")),
                    ),
                ),
            ),
            (
                r#"title pr and userType eq "a" or nickName pr"#,
                &USER,
                or(
                    and(
                        Filter::Present(p("title")),
                        cmp(p("userType"), CompOp::Eq, s("a")),
                    ),
                    Filter::Present(p("nickName")),
                ),
            ),
            (
                r#"(title pr or nickName pr) and userType eq "a""#,
                &USER,
                and(
                    or(Filter::Present(p("title")), Filter::Present(p("nickName"))),
                    cmp(p("userType"), CompOp::Eq, s("a")),
                ),
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "7""#,
                &USER,
                cmp(ent("employeeNumber", None), CompOp::Eq, s("7")),
            ),
            (
                r#"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:MANAGER.VALUE eq "m1""#,
                &USER,
                cmp(ent("manager", Some("value")), CompOp::Eq, s("m1")),
            ),
            // Entra's unquoted values.
            (
                "externalId eq abc-123",
                &USER,
                cmp(p("externalId"), CompOp::Eq, s("abc-123")),
            ),
            (
                "userName eq user@contoso.com",
                &USER,
                cmp(p("userName"), CompOp::Eq, s("user@contoso.com")),
            ),
            (
                "externalId eq 123",
                &USER,
                cmp(p("externalId"), CompOp::Eq, s("123")),
            ),
            (
                "displayName eq Sales",
                &GROUP,
                cmp(p("displayName"), CompOp::Eq, s("Sales")),
            ),
            // Literals, case-insensitive keywords, JSON escapes.
            (
                "active eq TRUE",
                &USER,
                cmp(p("active"), CompOp::Eq, CompValue::Bool(true)),
            ),
            (
                "active eq false",
                &USER,
                cmp(p("active"), CompOp::Eq, CompValue::Bool(false)),
            ),
            (
                r#"active eq "False""#,
                &USER,
                cmp(p("active"), CompOp::Eq, CompValue::Bool(false)),
            ),
            (
                "title eq Null",
                &USER,
                cmp(p("title"), CompOp::Eq, CompValue::Null),
            ),
            (
                r#"title eq "a\"b\\c\u00e9\n""#,
                &USER,
                cmp(p("title"), CompOp::Eq, s("a\"b\\cé\n")),
            ),
            (
                r#"displayName eq "🦀 x""#,
                &USER,
                cmp(p("displayName"), CompOp::Eq, s("🦀 x")),
            ),
            (
                r#"title eq "a) or (b""#,
                &USER,
                cmp(p("title"), CompOp::Eq, s("a) or (b")),
            ),
            (
                "title pr AND nickName Pr",
                &USER,
                and(Filter::Present(p("title")), Filter::Present(p("nickName"))),
            ),
            (
                "  title   pr\tOR nickName pr  ",
                &USER,
                or(Filter::Present(p("title")), Filter::Present(p("nickName"))),
            ),
            // Group filters as Entra and Okta send them.
            (
                r#"displayName eq "Sales""#,
                &GROUP,
                cmp(p("displayName"), CompOp::Eq, s("Sales")),
            ),
            (
                r#"members[value eq "2819c223"]"#,
                &GROUP,
                vp(
                    p("members"),
                    cmp(ps("members", "value"), CompOp::Eq, s("2819c223")),
                ),
            ),
            (
                r#"id eq "g1" and members[value eq "u1" or value eq "u2"]"#,
                &GROUP,
                and(
                    cmp(p("id"), CompOp::Eq, s("g1")),
                    vp(
                        p("members"),
                        or(
                            cmp(ps("members", "value"), CompOp::Eq, s("u1")),
                            cmp(ps("members", "value"), CompOp::Eq, s("u2")),
                        ),
                    ),
                ),
            ),
            (
                r#"members.value eq "u1""#,
                &GROUP,
                cmp(ps("members", "value"), CompOp::Eq, s("u1")),
            ),
            (
                r#"emails[not (type eq "work")]"#,
                &USER,
                vp(
                    p("emails"),
                    Filter::Not(Box::new(cmp(ps("emails", "type"), CompOp::Eq, s("work")))),
                ),
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq "m"]"#,
                &USER,
                vp(
                    ent("manager", None),
                    cmp(ent("manager", Some("value")), CompOp::Eq, s("m")),
                ),
            ),
            (
                r#"meta.created lt "2020-01-01T00:00:00Z""#,
                &GROUP,
                cmp(ps("meta", "created"), CompOp::Lt, s("2020-01-01T00:00:00Z")),
            ),
            (
                "emails.primary eq true",
                &USER,
                cmp(ps("emails", "primary"), CompOp::Eq, CompValue::Bool(true)),
            ),
        ];
        for (input, rt, exp) in cases {
            let got = parse_filter(input, rt).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got, exp, "{input}");
        }
        // Numbers stay numbers where nothing says otherwise (no numeric attribute exists in the
        // core schemas, so check the literal parser directly).
        assert_eq!(
            word_value("1.5e3"),
            CompValue::Num(serde_json::Number::from_f64(1500.0).expect("n"))
        );
        assert_eq!(word_value("-7"), CompValue::Num((-7).into()));
        assert_eq!(word_value("0123"), s("0123"));
    }

    #[test]
    fn parse_errors() {
        let deep_ok = format!(
            "{}title pr{}",
            "(".repeat(MAX_FILTER_DEPTH),
            ")".repeat(MAX_FILTER_DEPTH)
        );
        assert!(parse_filter(&deep_ok, &USER).is_ok());
        let too_deep = format!(
            "{}title pr{}",
            "(".repeat(MAX_FILTER_DEPTH + 1),
            ")".repeat(MAX_FILTER_DEPTH + 1)
        );
        let nots = format!("{}title pr{}", "not (".repeat(40), ")".repeat(40));
        let hostile = "(".repeat(100_000);
        let long = format!("title eq \"{}\"", "x".repeat(MAX_FILTER_LEN));
        let cases: Vec<(String, &str)> = vec![
            ("nope eq \"x\"".into(), "unknown attribute"),
            ("userName eq \"x\" garbage".into(), "expected 'and', 'or'"),
            ("(userName eq \"x\"".into(), "expected ')'"),
            ("userName eq \"x\")".into(), "expected 'and', 'or'"),
            ("userName eq".into(), "comparison value"),
            ("userName eq and title pr".into(), "comparison value"),
            ("userName eq )".into(), "comparison value"),
            ("userName xx \"x\"".into(), "unknown operator"),
            ("userName".into(), "operator"),
            ("".into(), "empty"),
            ("   ".into(), "empty"),
            ("userName eq \"x".into(), "unterminated"),
            ("userName eq \"\\q\"".into(), "invalid string"),
            ("title pr and".into(), "attribute expression"),
            ("or title pr".into(), "unknown attribute"),
            ("not title pr".into(), "'(' after 'not'"),
            ("()".into(), "attribute expression"),
            ("emails[type eq \"work\"".into(), "expected ']'"),
            ("emails[nope eq \"work\"]".into(), "unknown attribute"),
            ("emails[type[value eq \"x\"]]".into(), "nested"),
            ("userName[value eq \"x\"]".into(), "not a complex"),
            (
                "emails[type eq \"work\"].nope eq \"x\"".into(),
                "unknown attribute",
            ),
            ("emails[type eq \"work\"].value".into(), "operator"),
            (
                "emails[type eq \"work\"] .value eq \"x\"".into(),
                "expected 'and', 'or'",
            ),
            (
                "emails[type eq \"work\"].value[type eq \"x\"]".into(),
                "nested",
            ),
            (
                "emails[type eq \"work\"].primary co \"x\"".into(),
                "not supported",
            ),
            ("name eq \"x\"".into(), "complex"),
            ("active gt true".into(), "not supported"),
            ("x509Certificates.value co \"x\"".into(), "not supported"),
            ("title gt null".into(), "null"),
            ("employeeNumber eq \"7\"".into(), "unknown attribute"),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nope eq 1".into(),
                "unknown attribute",
            ),
            ("name.nope eq \"x\"".into(), "unknown attribute"),
            (too_deep, "nesting"),
            (nots, "nesting"),
            (hostile, "maximum"),
            (long, "maximum"),
            ("schemas eq \"x\"".into(), "unknown attribute"),
            ("meta.created gt \"not a date\"".into(), "RFC 3339"),
            ("meta.lastModified eq 2011".into(), "RFC 3339"),
        ];
        for (input, needle) in cases {
            let e = parse_filter(&input, &USER).expect_err(&input);
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some(ScimType::InvalidFilter)),
                "{input}"
            );
            assert!(e.detail.contains(needle), "{input}: {}", e.detail);
        }
        let e = parse_filter("members pr", &USER).expect_err("members on users");
        assert!(e.detail.contains("unknown attribute"));
        let e = parse_filter("userName pr", &GROUP).expect_err("userName on groups");
        assert!(e.detail.contains("unknown attribute"));
    }

    // RFC 7644 §3.4.2.2 valuePath followed by a sub-attribute, as Entra's matching filter sends
    // it: the comparison joins the value filter, so one element must satisfy both.
    #[test]
    fn value_path_with_sub_attribute() {
        let work = cmp(ps("emails", "type"), CompOp::Eq, s("work"));
        let cases: Vec<(&ResourceType, &str, Filter)> = vec![
            (
                &USER,
                r#"emails[type eq "work"].value eq "x@y""#,
                vp(
                    p("emails"),
                    and(
                        work.clone(),
                        cmp(ps("emails", "value"), CompOp::Eq, s("x@y")),
                    ),
                ),
            ),
            // Entra's unquoted spelling of both literals.
            (
                &USER,
                "emails[type eq work].value eq x@y",
                vp(
                    p("emails"),
                    and(
                        work.clone(),
                        cmp(ps("emails", "value"), CompOp::Eq, s("x@y")),
                    ),
                ),
            ),
            (
                &USER,
                r#"emails[type eq "work" or primary eq true].value sw "a" and active eq true"#,
                and(
                    vp(
                        p("emails"),
                        and(
                            or(
                                work.clone(),
                                cmp(ps("emails", "primary"), CompOp::Eq, CompValue::Bool(true)),
                            ),
                            cmp(ps("emails", "value"), CompOp::Sw, s("a")),
                        ),
                    ),
                    cmp(p("active"), CompOp::Eq, CompValue::Bool(true)),
                ),
            ),
            (
                &USER,
                r#"not (emails[type eq "work"].value pr) or userName eq "a""#,
                or(
                    Filter::Not(Box::new(vp(
                        p("emails"),
                        and(work.clone(), Filter::Present(ps("emails", "value"))),
                    ))),
                    cmp(p("userName"), CompOp::Eq, s("a")),
                ),
            ),
            (
                &GROUP,
                r#"members[type eq "User"].value eq "u1""#,
                vp(
                    p("members"),
                    and(
                        cmp(ps("members", "type"), CompOp::Eq, s("User")),
                        cmp(ps("members", "value"), CompOp::Eq, s("u1")),
                    ),
                ),
            ),
            (
                &GROUP,
                r#"members[value eq "u1"].display co "Ann""#,
                vp(
                    p("members"),
                    and(
                        cmp(ps("members", "value"), CompOp::Eq, s("u1")),
                        cmp(ps("members", "display"), CompOp::Co, s("Ann")),
                    ),
                ),
            ),
        ];
        for (rt, input, exp) in cases {
            assert_eq!(parse_filter(input, rt).expect(input), exp, "{input}");
        }
        // Both conditions hold on one element: a work address that is not x@y next to a home
        // address that is does not match.
        let f = parse_filter(r#"emails[type eq "work"].value eq "x@y""#, &USER).expect("f");
        let user = |emails: Value| json!({"schemas": [crate::scim::schema::USER_SCHEMA], "emails": emails});
        assert!(matches(
            &f,
            &user(json!([{"type": "work", "value": "X@Y"}])),
            &USER
        ));
        assert!(!matches(
            &f,
            &user(json!([
                {"type": "work", "value": "a@y"},
                {"type": "home", "value": "x@y"}
            ])),
            &USER
        ));
        // A root search keeps the form for users and drops it for groups.
        let multi =
            parse_filter_multi(r#"emails[type eq "work"].value eq "x@y""#, &[&USER, &GROUP])
                .expect("multi");
        assert_eq!(multi, vec![Some(f), None]);
    }

    #[test]
    fn root_search_filters() {
        let rts: [&ResourceType; 2] = [&USER, &GROUP];
        let id_pr = Filter::Present(p("id"));
        let cases: Vec<(&str, Vec<Option<Filter>>)> = vec![
            (
                r#"displayName sw "Sa" or userName sw "ann""#,
                vec![
                    Some(or(
                        cmp(p("displayName"), CompOp::Sw, s("Sa")),
                        cmp(p("userName"), CompOp::Sw, s("ann")),
                    )),
                    Some(cmp(p("displayName"), CompOp::Sw, s("Sa"))),
                ],
            ),
            (
                r#"userName eq "x""#,
                vec![Some(cmp(p("userName"), CompOp::Eq, s("x"))), None],
            ),
            (
                r#"members pr and displayName pr"#,
                vec![
                    None,
                    Some(and(
                        Filter::Present(p("members")),
                        Filter::Present(p("displayName")),
                    )),
                ],
            ),
            (
                r#"not (userName eq "x")"#,
                vec![
                    Some(Filter::Not(Box::new(cmp(
                        p("userName"),
                        CompOp::Eq,
                        s("x"),
                    )))),
                    Some(id_pr.clone()),
                ],
            ),
            (
                r#"emails[type eq "work"] or externalId eq "e""#,
                vec![
                    Some(or(
                        vp(
                            p("emails"),
                            cmp(ps("emails", "type"), CompOp::Eq, s("work")),
                        ),
                        cmp(p("externalId"), CompOp::Eq, s("e")),
                    )),
                    Some(cmp(p("externalId"), CompOp::Eq, s("e"))),
                ],
            ),
            (
                r#"members[not (value eq "x")]"#,
                vec![
                    None,
                    Some(vp(
                        p("members"),
                        Filter::Not(Box::new(cmp(ps("members", "value"), CompOp::Eq, s("x")))),
                    )),
                ],
            ),
        ];
        for (input, exp) in cases {
            let got = parse_filter_multi(input, &rts).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got, exp, "{input}");
        }
        for bad in [
            r#"nope eq "x""#,
            r#"userName eq "x" or nope pr"#,
            r#"emails[nope eq "x"]"#,
            r#"userName eq"#,
            "((userName pr)",
        ] {
            let e = parse_filter_multi(bad, &rts).expect_err(bad);
            assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{bad}");
        }
    }

    /// Deterministic garbage: nothing may panic, and whatever parses must evaluate.
    #[test]
    fn garbage_never_panics() {
        let pieces = [
            "userName",
            "emails",
            "name.givenName",
            "[",
            "]",
            "(",
            ")",
            "\"",
            "\\",
            " ",
            "eq",
            "pr",
            "and",
            "or",
            "not",
            "€",
            "ü",
            ".",
            ":",
            "urn:",
            "type",
            "value",
            "\"x\"",
            "12",
            "true",
            "null",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "\u{0}",
            "\\u12",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let user =
            json!({"schemas": [], "userName": "a", "emails": [{"value": "x", "type": "work"}]});
        for _ in 0..20_000 {
            let mut input = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                input.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            if let Ok(f) = parse_filter(&input, &USER) {
                let _ = matches(&f, &user, &USER);
            }
            let _ = parse_path(&input, &USER);
            let _ = parse_filter_multi(&input, &[&USER, &GROUP]);
        }
    }

    #[test]
    fn deep_hostile_input_within_length_limit() {
        // 2,000 opening parens fit under MAX_FILTER_LEN; the depth limit must stop them before
        // the recursion does.
        let e = parse_filter(&"(".repeat(2000), &USER).expect_err("deep");
        assert!(e.detail.contains("nesting"));
        let e = parse_filter(&"not(".repeat(800), &USER).expect_err("deep not");
        assert!(e.detail.contains("nesting"));
        let e = parse_path(&format!("emails[{}", "(".repeat(2000)), &USER).expect_err("deep path");
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
    }

    #[test]
    fn patch_paths() {
        let ent = |name: &str, sub: Option<&str>| AttrPath::new(Some(ENT), name, sub);
        let pp = |attr: AttrPath, filter: Option<Filter>, sub: Option<&str>| PatchPath {
            attr,
            filter,
            sub_after_filter: sub.map(str::to_owned),
        };
        let cases: Vec<(&str, &ResourceType, PatchPath)> = vec![
            ("members", &GROUP, pp(p("members"), None, None)),
            (
                r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
                &GROUP,
                pp(
                    p("members"),
                    Some(cmp(
                        ps("members", "value"),
                        CompOp::Eq,
                        s("2819c223-7f76-453a-919d-413861904646"),
                    )),
                    None,
                ),
            ),
            (
                r#"emails[type eq "work"].value"#,
                &USER,
                pp(
                    p("emails"),
                    Some(cmp(ps("emails", "type"), CompOp::Eq, s("work"))),
                    Some("value"),
                ),
            ),
            (
                "name.givenName",
                &USER,
                pp(ps("name", "givenName"), None, None),
            ),
            (
                "NAME.GIVENNAME",
                &USER,
                pp(ps("name", "givenName"), None, None),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
                &USER,
                pp(ent("employeeNumber", None), None, None),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                &USER,
                pp(ent("manager", None), None, None),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                &USER,
                pp(ent("manager", Some("value")), None, None),
            ),
            (
                r#"addresses[type eq "work"].streetAddress"#,
                &USER,
                pp(
                    p("addresses"),
                    Some(cmp(ps("addresses", "type"), CompOp::Eq, s("work"))),
                    Some("streetAddress"),
                ),
            ),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:active",
                &USER,
                pp(p("active"), None, None),
            ),
            (
                r#"members[value eq "a" or value eq "b"]"#,
                &GROUP,
                pp(
                    p("members"),
                    Some(or(
                        cmp(ps("members", "value"), CompOp::Eq, s("a")),
                        cmp(ps("members", "value"), CompOp::Eq, s("b")),
                    )),
                    None,
                ),
            ),
            (
                r#"emails[type eq "work" and primary eq "True"].display"#,
                &USER,
                pp(
                    p("emails"),
                    Some(and(
                        cmp(ps("emails", "type"), CompOp::Eq, s("work")),
                        cmp(ps("emails", "primary"), CompOp::Eq, CompValue::Bool(true)),
                    )),
                    Some("display"),
                ),
            ),
            // Unknown extension (Entra custom extension attribute): opaque, URN kept verbatim.
            (
                "urn:ietf:params:scim:schemas:extension:Custom:2.0:User:badge",
                &USER,
                pp(
                    AttrPath::new(
                        Some("urn:ietf:params:scim:schemas:extension:Custom:2.0:User"),
                        "badge",
                        None,
                    ),
                    None,
                    None,
                ),
            ),
        ];
        for (input, rt, exp) in cases {
            let got = parse_path(input, rt).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got, exp, "{input}");
        }
    }

    #[test]
    fn patch_path_errors() {
        let cases: &[(&ResourceType, &str)] = &[
            (&USER, ""),
            (&USER, "nope"),
            (&USER, "name.nope"),
            (&USER, "emails[type eq \"work\"].nope"),
            (&USER, "emails[type eq \"work\"] .value"),
            (&USER, "emails[type eq \"work\"]value"),
            (&USER, "emails[type eq \"work\""),
            (&USER, "emails[type eq]"),
            (&USER, "emails[]"),
            (&USER, "name.givenName[value eq \"x\"]"),
            (&USER, "userName[value eq \"x\"]"),
            (&USER, "userName extra"),
            (
                &USER,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            ),
            (
                &USER,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nope",
            ),
            (
                &USER,
                "urn:ietf:params:scim:schemas:extension:Custom:2.0:User:badge[value eq \"x\"]",
            ),
            (&USER, "urn:x:y:1bad"),
            (&GROUP, "userName"),
            (&GROUP, "members[nope eq \"x\"]"),
        ];
        for (rt, input) in cases {
            let e = parse_path(input, rt).expect_err(input);
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some(ScimType::InvalidPath)),
                "{input}: {e}"
            );
        }
    }

    fn bjensen() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "bjensen",
            "userName": "bjensen@example.com",
            "name": {"familyName": "Jensen", "givenName": "Barbara", "formatted": "Ms. Barbara J Jensen III"},
            "displayName": "Babs Jensen",
            "title": "",
            "userType": "Employee",
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "ims": [{"value": "someaimhandle", "type": "aim"}],
            "meta": {"created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"},
            ENT: {"employeeNumber": "701984", "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}}
        })
    }

    #[test]
    fn matches_table() {
        let u = bjensen();
        let cases: &[(&str, bool)] = &[
            (r#"userName eq "BJENSEN@example.com""#, true), // caseExact false
            (r#"id eq "2819C223-7F76-453A-919D-413861904646""#, false), // caseExact true
            (r#"id eq "2819c223-7f76-453a-919d-413861904646""#, true),
            (r#"externalId eq "BJENSEN""#, false),
            (r#"externalId eq bjensen"#, true),
            (r#"name.familyName co "ens""#, true),
            (r#"name.familyName sw "jen""#, true),
            (r#"name.familyName ew "SEN""#, true),
            (r#"name.familyName ew "x""#, false),
            (r#"userName ne "someone""#, true),
            (r#"userName ne "bjensen@example.com""#, false),
            (r#"nickName ne "x""#, true), // missing attribute
            (r#"nickName eq "x""#, false),
            (r#"nickName eq null"#, true),
            (r#"userName ne null"#, true),
            ("nickName pr", false),
            ("title pr", false), // empty string is not present
            ("userName pr", true),
            ("emails pr", true),
            ("name pr", true),
            ("phoneNumbers pr", false),
            (r#"emails co "jensen.org""#, true), // complex without sub compares `value`
            (r#"emails.value co "example.org""#, false),
            (r#"emails.type eq "home""#, true), // any value matches
            (r#"emails.type ne "home""#, true), // the work address differs
            (
                r#"emails[type eq "work" and value co "@example.com"]"#,
                true,
            ),
            (
                r#"emails[type eq "home" and value co "@example.com"]"#,
                false,
            ),
            (
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
                true,
            ),
            (r#"emails[primary eq true]"#, true),
            (r#"emails[primary eq false]"#, false), // an absent primary is not false
            (r#"emails[not (primary pr)]"#, true),
            ("active eq true", true),
            (r#"active eq "True""#, true),
            ("active eq false", false),
            ("active ne false", true),
            (r#"meta.lastModified gt "2011-05-13T04:42:33Z""#, true),
            (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
            (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
            (r#"meta.lastModified lt "2011-05-13T06:42:34+02:00""#, false), // same instant
            (r#"meta.lastModified le "2011-05-13T06:42:34+02:00""#, true),
            (r#"meta.lastModified gt "2011-05-13T05:00:00+02:00""#, true), // 03:00Z: chronological, not lexical
            (r#"meta.created lt "2011-01-01T00:00:00Z""#, true),
            (r#"userName gt "a""#, true),
            (r#"userName lt "a""#, false),
            (r#"userName ge "BJENSEN@EXAMPLE.COM""#, true),
            (
                r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                true,
            ),
            (
                r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                false,
            ),
            (r#"not (userName eq "x")"#, true),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 701984"#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value sw "2611""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department pr"#,
                false,
            ),
            (r#"title pr or userType eq "Intern""#, false),
            (
                r#"title pr or userType eq "Employee" and active eq true"#,
                true,
            ),
        ];
        for (input, exp) in cases {
            let f = parse_filter(input, &USER).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(matches(&f, &u, &USER), *exp, "{input}");
        }
    }

    #[test]
    fn matches_hand_built_and_elements() {
        let u = bjensen();
        // Hand-built ASTs the parser would reject still evaluate safely.
        let gt_bool = cmp(p("active"), CompOp::Gt, CompValue::Bool(false));
        assert!(!matches(&gt_bool, &u, &USER));
        let unknown = cmp(p("nope"), CompOp::Eq, s("x"));
        assert!(!matches(&unknown, &u, &USER));
        // The inner filter of a value path, against single elements.
        let inner = and(
            cmp(ps("emails", "type"), CompOp::Eq, s("work")),
            Filter::Present(ps("emails", "value")),
        );
        assert!(matches(
            &inner,
            &json!({"type": "Work", "value": "a@b.c"}),
            &USER
        ));
        assert!(!matches(
            &inner,
            &json!({"type": "home", "value": "a@b.c"}),
            &USER
        ));
        assert!(matches_element(
            &inner,
            &json!({"type": "work", "value": "x"}),
            &USER
        ));
        let member = cmp(ps("members", "value"), CompOp::Eq, s("u1"));
        assert!(matches(
            &member,
            &json!({"value": "u1", "type": "User"}),
            &GROUP
        ));
        assert!(!matches(&member, &json!({"value": "U1"}), &GROUP)); // members.value is caseExact
        let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G",
            "members": [{"value": "u1"}, {"value": "u2"}]});
        let f =
            parse_filter(r#"members[value eq "u2"] and displayName eq "g""#, &GROUP).expect("f");
        assert!(matches(&f, &group, &GROUP));
        let f = parse_filter(r#"members.value eq "u3""#, &GROUP).expect("f");
        assert!(!matches(&f, &group, &GROUP));
    }
}
