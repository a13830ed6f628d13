//! Single sign-on with an organization's identity provider.
//!
//! - [`saml`]: SAML 2.0 Web Browser SSO as a service provider, pure.
//! - [`connection`]: a connection's settings, checked, and IdP metadata read into them.
//! - [`identity`]: SAML attributes or OIDC claims -> one identity, Entra's groups overage.
//! - [`dns`]: TXT lookups that prove an organization controls an email domain.

pub mod connection;
pub mod dns;
pub mod identity;
pub mod oidc;
pub mod saml;
