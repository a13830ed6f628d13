//! Single sign-on with an organization's identity provider.
//!
//! - [`saml`]: SAML 2.0 Web Browser SSO as a service provider, pure.
//! - [`connection`]: a connection's settings, checked, and IdP metadata read into them.

pub mod connection;
pub mod oidc;
pub mod saml;
