//! A group PATCH applied two ways must give the same members. The service applies member
//! operations in SQL, as inserts and deletes in the membership table (a request of member
//! operations only never reads the group's document); `scim::patch::apply` applies the same
//! request to the group's JSON in memory. Other attributes have no SQL application (they are
//! patched in memory and the document is stored), so membership is where the two can disagree.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use idbridge::scim::patch::{apply, parse_patch};
use idbridge::scim::schema::GROUP;

use crate::harness::*;

const USERS: usize = 5;

/// One operation of a request, on members named by their index in the test's users.
#[derive(Debug, Clone)]
enum MemberOp {
    Add(Vec<usize>),
    /// `remove` with a `members[value eq ...]` filter (Okta), or-ed when several.
    RemoveByFilter(Vec<usize>),
    /// `remove` of `members` with a value list (Entra).
    RemoveListed(Vec<usize>),
    RemoveAll,
    Replace(Vec<usize>),
    /// No path: `{"members": [...]}` as the value of an add or a replace.
    InValue {
        replace: bool,
        who: Vec<usize>,
    },
    /// A document change beside the member operations: the request leaves the fast path.
    Rename,
}

fn who() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..USERS, 0..4)
}

fn member_op() -> impl Strategy<Value = MemberOp> {
    prop_oneof![
        who().prop_map(MemberOp::Add),
        prop::collection::vec(0..USERS, 1..3).prop_map(MemberOp::RemoveByFilter),
        who().prop_map(MemberOp::RemoveListed),
        Just(MemberOp::RemoveAll),
        who().prop_map(MemberOp::Replace),
        (any::<bool>(), who()).prop_map(|(replace, who)| MemberOp::InValue { replace, who }),
        Just(MemberOp::Rename),
    ]
}

fn to_json(op: &MemberOp, users: &[String]) -> Value {
    let refs =
        |who: &[usize]| -> Vec<Value> { who.iter().map(|&i| json!({"value": users[i]})).collect() };
    match op {
        MemberOp::Add(w) => json!({"op": "add", "path": "members", "value": refs(w)}),
        MemberOp::RemoveByFilter(w) => {
            let terms: Vec<String> = w
                .iter()
                .map(|&i| format!("value eq \"{}\"", users[i]))
                .collect();
            json!({"op": "remove", "path": format!("members[{}]", terms.join(" or "))})
        }
        MemberOp::RemoveListed(w) => json!({"op": "Remove", "path": "members", "value": refs(w)}),
        MemberOp::RemoveAll => json!({"op": "remove", "path": "members"}),
        MemberOp::Replace(w) => json!({"op": "replace", "path": "members", "value": refs(w)}),
        MemberOp::InValue { replace, who } => json!({
            "op": if *replace { "replace" } else { "add" },
            "value": {"members": refs(who)}
        }),
        MemberOp::Rename => json!({"op": "replace", "path": "displayName", "value": "Renamed"}),
    }
}

/// The members `apply` leaves in the group's document, sorted; or the error status.
fn in_memory(initial: &[String], body: &Value) -> Result<Vec<String>, u16> {
    let members: Vec<Value> = initial.iter().map(|id| json!({"value": id})).collect();
    let doc = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Group", "members": members});
    let ops = parse_patch(body, &GROUP).map_err(|e| e.status)?;
    let out = apply(&doc, &ops, &GROUP).map_err(|e| e.status)?;
    let mut ids: Vec<String> = out["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["value"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

#[test]
fn a_member_patch_gives_the_same_group_in_sql_and_in_memory() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let app = rt.block_on(TestApp::new());
    let users: Vec<String> = rt.block_on(async {
        let mut ids = Vec::new();
        for i in 0..USERS {
            ids.push(app.user(&format!("member{i}@example.com")).await);
        }
        ids
    });
    let strategy = (
        prop::collection::btree_set(0..USERS, 0..USERS),
        prop::collection::vec(member_op(), 1..5),
    );
    let mut runner = TestRunner::new(Config::with_cases(48));
    let outcome = runner.run(&strategy, |(initial, ops)| {
        let initial: Vec<String> = initial.iter().map(|&i| users[i].clone()).collect();
        let body = patch(Value::Array(
            ops.iter().map(|o| to_json(o, &users)).collect(),
        ));
        let expected = in_memory(&initial, &body);
        let got = rt.block_on(async {
            let refs: Vec<&str> = initial.iter().map(String::as_str).collect();
            let gid = app.group("Group", &refs).await;
            let r = app.patch(&format!("/Groups/{gid}"), body.clone()).await;
            if r.status.is_success() {
                Ok(app.member_ids(&gid).await)
            } else {
                Err(r.status.as_u16())
            }
        });
        prop_assert_eq!(got, expected, "{}", body);
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
