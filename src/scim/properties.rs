//! Property tests of the filter grammar: whatever tree the parser can produce, the printer
//! (`Display for Filter`) writes it so that the parser reads back the very same tree.

use proptest::prelude::*;

use super::filter::{AttrPath, CompOp, CompValue, Filter, MAX_FILTER_LEN, parse_filter};
use super::schema::{ENTERPRISE_USER_SCHEMA, USER};

const ORDERED: [CompOp; 9] = [
    CompOp::Eq,
    CompOp::Ne,
    CompOp::Co,
    CompOp::Sw,
    CompOp::Ew,
    CompOp::Gt,
    CompOp::Ge,
    CompOp::Lt,
    CompOp::Le,
];

/// Any string: quotes, backslashes, control characters, non-ASCII, words like `and` or `true`.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            "and", "or", "not", "true", "null", "1e3", "a\"b\\c", " "
        ])
        .prop_map(str::to_owned),
    ]
}

/// A comparison on a string attribute, as the parser leaves it (`null` only with eq and ne).
fn string_compare(path: AttrPath) -> impl Strategy<Value = Filter> {
    prop_oneof![
        (prop::sample::select(&ORDERED[..]), text())
            .prop_map(move |(op, s)| (op, CompValue::Str(s))),
        prop::sample::select(vec![CompOp::Eq, CompOp::Ne]).prop_map(|op| (op, CompValue::Null)),
    ]
    .prop_map(move |(op, v)| Filter::Compare(path.clone(), op, v))
}

fn leaf(inner: Option<&'static str>) -> BoxedStrategy<Filter> {
    let path = |name: &str, sub: Option<&str>| match inner {
        Some(parent) => AttrPath::new(None, parent, Some(name)),
        None => AttrPath::new(None, name, sub),
    };
    let strings: Vec<AttrPath> = match inner {
        Some(_) => vec![
            path("value", None),
            path("type", None),
            path("display", None),
        ],
        None => vec![
            path("userName", None),
            path("title", None),
            path("emails", None),
            path("name", Some("givenName")),
            AttrPath::new(Some(ENTERPRISE_USER_SCHEMA), "employeeNumber", None),
            AttrPath::new(Some(ENTERPRISE_USER_SCHEMA), "manager", Some("value")),
        ],
    };
    let boolean = match inner {
        Some(_) => path("primary", None),
        None => path("active", None),
    };
    let present = prop::sample::select(strings.clone()).prop_map(Filter::Present);
    let compared = prop::sample::select(strings).prop_flat_map(string_compare);
    let flag = (
        prop::sample::select(vec![CompOp::Eq, CompOp::Ne]),
        any::<bool>(),
    )
        .prop_map(move |(op, b)| Filter::Compare(boolean.clone(), op, CompValue::Bool(b)));
    let when = (prop::sample::select(&ORDERED[..]), 0i64..4_000_000_000).prop_map(|(op, secs)| {
        let at = time::OffsetDateTime::from_unix_timestamp(secs).expect("in range");
        let at = at.format(&time::format_description::well_known::Rfc3339);
        Filter::Compare(
            AttrPath::new(None, "meta", Some("lastModified")),
            op,
            CompValue::Str(at.expect("formats")),
        )
    });
    if inner.is_some() {
        prop_oneof![present, compared, flag].boxed()
    } else {
        prop_oneof![present, compared, flag, when].boxed()
    }
}

/// And, or and not over `leaves`, nested a few levels.
fn combined(leaves: BoxedStrategy<Filter>) -> impl Strategy<Value = Filter> {
    leaves.prop_recursive(4, 24, 2, |f| {
        prop_oneof![
            (f.clone(), f.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (f.clone(), f.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            f.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

fn filter() -> impl Strategy<Value = Filter> {
    let value_path =
        prop::sample::select(vec!["emails", "phoneNumbers", "ims"]).prop_flat_map(|attr| {
            combined(leaf(Some(attr))).prop_map(move |inner| {
                Filter::ValuePath(AttrPath::new(None, attr, None), Box::new(inner))
            })
        });
    combined(prop_oneof![3 => leaf(None), 1 => value_path].boxed())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_printed_filter_parses_back_to_itself(f in filter()) {
        let printed = f.to_string();
        prop_assume!(printed.len() <= MAX_FILTER_LEN);
        let back = parse_filter(&printed, &USER);
        prop_assert_eq!(back, Ok(f), "printed as {}", printed);
    }
}
