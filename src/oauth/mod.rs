//! idbridge as an OpenID provider for the SaaS applications registered with it (OpenID Connect
//! Core 1.0, authorization code flow with PKCE): the signed-in user and their effective access go
//! to the application as a standard id_token, which any OIDC client library verifies.
//!
//! - [`token`]: signing keys, JWS, JWKS, PKCE and client authentication, pure.

pub mod token;
