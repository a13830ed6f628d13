//! Reading XML with libxml2, the parser xmlsec verifies with, so that the checks and the
//! signature see one and the same tree.

use std::sync::Once;

use libxml::parser::{Parser, ParserOptions};
use libxml::tree::{Document, Node, NodeType};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{SamlError, malformed};

/// Parses without libxml2's recover mode (which samael uses): a document that is not
/// well-formed is refused here rather than repaired into something else before verification.
pub(super) fn parse_strict(xml: &str) -> Result<Document, SamlError> {
    static INIT: Once = Once::new();
    // SAFETY: xmlInitParser takes no arguments and is documented as the call to make once before
    // using libxml2 from several threads; `Once` makes it once.
    INIT.call_once(|| unsafe { libxml::bindings::xmlInitParser() });
    // `encoding` stays None: libxml 0.3.3 frees the encoding name before libxml2 reads it
    // (a use-after-free that showed up as '@' decoded as '§' under parallel tests). decode()
    // has already made sure the bytes are UTF-8 and declared as such, libxml2's default.
    let options = ParserOptions {
        recover: false,
        no_def_dtd: true,
        no_error: true,
        no_warning: true,
        pedantic: false,
        no_blanks: false,
        no_net: true,
        no_implied: false,
        compact: false,
        ignore_enc: false,
        encoding: None,
    };
    let document = Parser::default()
        .parse_string_with_options(xml, options)
        .map_err(|_| malformed("not well-formed XML"))?;
    let has_dtd = document.as_node().get_child_nodes().iter().any(|n| {
        matches!(
            n.get_type(),
            Some(NodeType::DTDNode | NodeType::DocumentTypeNode)
        )
    });
    if has_dtd {
        return Err(malformed("DOCTYPE declaration"));
    }
    Ok(document)
}

pub(super) fn is(node: &Node, ns: &str, local: &str) -> bool {
    node.get_name() == local && node.get_namespace().is_some_and(|n| n.get_href() == ns)
}

pub(super) fn children(node: &Node, ns: &str, local: &str) -> Vec<Node> {
    node.get_child_elements()
        .into_iter()
        .filter(|child| is(child, ns, local))
        .collect()
}

/// The child that the schema allows at most once; a second one is refused rather than ignored,
/// so that two readers can never pick different ones.
pub(super) fn at_most_one(node: &Node, ns: &str, local: &str) -> Result<Option<Node>, SamlError> {
    let mut found = children(node, ns, local);
    if found.len() > 1 {
        return Err(malformed(format!(
            "more than one {local} in {}",
            node.get_name()
        )));
    }
    Ok(found.pop())
}

pub(super) fn exactly_one(node: &Node, ns: &str, local: &str) -> Result<Node, SamlError> {
    at_most_one(node, ns, local)?
        .ok_or_else(|| malformed(format!("no {local} in {}", node.get_name())))
}

pub(super) fn attribute(node: &Node, name: &str) -> Option<String> {
    node.get_attribute(name)
}

/// Text with canonicalization semantics: libxml2 concatenates the text and CDATA descendants and
/// skips comments, so `a<!---->b` reads as `ab`, exactly what was signed.
pub(super) fn text(node: &Node) -> String {
    node.get_content()
}

pub(super) fn instant(node: &Node, name: &str) -> Result<Option<OffsetDateTime>, SamlError> {
    // Core §1.3.3: xs:dateTime in UTC.
    attribute(node, name)
        .map(|value| {
            OffsetDateTime::parse(&value, &Rfc3339).map_err(|_| {
                malformed(format!(
                    "{}@{name} {value:?} is not a UTC dateTime",
                    node.get_name()
                ))
            })
        })
        .transpose()
}

pub(super) fn is_same(a: &Node, b: &Node) -> bool {
    a.node_ptr() == b.node_ptr()
}

pub(super) fn is_child_of(node: &Node, parent: &Node) -> bool {
    node.get_parent().is_some_and(|p| is_same(&p, parent))
}

/// Where an element is, for log messages: `Response/Extensions/Assertion`.
pub(super) fn path(node: &Node) -> String {
    let mut names = vec![node.get_name()];
    let mut current = node.get_parent();
    while let Some(parent) = current {
        if parent.is_element_node() {
            names.push(parent.get_name());
        }
        current = parent.get_parent();
    }
    names.reverse();
    names.join("/")
}
