//! Single sign-on with an organization's identity provider.
//!
//! - [`saml`]: SAML 2.0 Web Browser SSO as a service provider, pure.

pub mod saml;
