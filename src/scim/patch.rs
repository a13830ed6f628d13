// TEMPORARY STUB (to be replaced by the real module).
use crate::scim::error::ScimResult;
use crate::scim::filter::PatchPath;
use crate::scim::schema::ResourceType;
use serde_json::Value;
#[derive(Debug, Clone, Copy, PartialEq, Eq)] pub enum PatchOpKind { Add, Remove, Replace }
#[derive(Debug, Clone, PartialEq)] pub struct PatchOp { pub op: PatchOpKind, pub path: Option<PatchPath>, pub value: Option<Value> }
#[derive(Debug, Clone, PartialEq)] pub struct MemberRef { pub value: String, pub r#type: Option<String>, pub display: Option<String> }
pub enum MemberChange { ClearAll, Add(Vec<MemberRef>), Remove(Vec<String>) }
pub fn parse_patch(_b: &Value, _rt: &ResourceType) -> ScimResult<Vec<PatchOp>> { todo!() }
pub fn apply(_r: &Value, _o: &[PatchOp], _rt: &ResourceType) -> ScimResult<Value> { todo!() }
pub fn split_member_ops(_o: Vec<PatchOp>) -> ScimResult<(Vec<PatchOp>, Vec<MemberChange>)> { todo!() }
