// TEMPORARY STUB (to be replaced by the real module).
use crate::scim::error::ScimResult;
use crate::scim::schema::ResourceType;
use serde_json::Value;
pub fn normalize(_body: &Value, _rt: &ResourceType) -> ScimResult<Value> { todo!() }
pub fn project(full: &Value, _rt: &ResourceType, _a: Option<&str>, _e: Option<&str>) -> Value { full.clone() }
