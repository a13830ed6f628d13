//! The product's vocabulary, parsed once at the edge: roles, features and permission levels. Values
//! of these types are valid by construction, so the layers above never re-check strings.

pub mod access;
