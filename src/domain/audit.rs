//! The names of the audit log: what was done (`operation`) to what kind of thing
//! (`resource_type`).
//!
//! Admins filter the audit log by these names (`GET …/audit?operation=…&resource_type=…`, the
//! console's Activity page) and tools read them from the API, so they are a published interface
//! like the event types: add names, never rename one. Every row the service writes takes its names
//! from here; what is stored is exactly `as_str()`.

use super::access::string_enum;

string_enum! {
    /// What an audit row records was done.
    AuditOp, "audit operation" {
        Create = "create",
        Update = "update",
        /// A SCIM PUT.
        Replace = "replace",
        /// A SCIM PATCH.
        Patch = "patch",
        Delete = "delete",
        /// A new directory token; the old one stays valid until revoked.
        Rotate = "rotate",
        Revoke = "revoke",
        /// Every session of a person signed out (the detail says how many).
        RevokeSessions = "revoke_sessions",
        /// A domain's TXT record found.
        Verify = "verify",
        /// A domain routed to another connection.
        Move = "move",
        TransferOwner = "transfer_owner",
        /// A SCIM userName change renamed the person (event `user.renamed`).
        Renamed = "renamed",
        /// A SCIM userName change made two people one (event `user.merged`).
        Merged = "merged",
        /// A SCIM user moved to another person (event `user.moved`).
        Moved = "moved",
        /// A person lost all access; the detail says why and how many sessions went.
        Deprovision = "deprovision",
        /// A change would have deprovisioned the owner and was refused.
        DeprovisionRefused = "deprovision_refused",
        /// A portal link opened into a console session.
        Open = "open",
        /// A console session signed out.
        End = "end",
        /// Someone signed in to the console through the organization's SSO.
        ConsoleSignIn = "console.sign_in",
        /// A sign-in through a connection succeeded.
        SsoSignIn = "sso.sign_in",
        /// A sign-in through a connection failed; the detail is `{"reason": CODE, "detail": ...}`
        /// (`service::explain` says each code in words).
        SsoSignInFailed = "sso.sign_in_failed",
    }
}

string_enum! {
    /// The kind of thing an audit row is about; `resource_id` names the one.
    AuditResource, "audit resource type" {
        /// A directory's SCIM user.
        User = "User",
        /// A directory's SCIM group.
        Group = "Group",
        /// A person of the organization (who may have SCIM users in several directories).
        OrgUser = "OrgUser",
        Grant = "Grant",
        SubAccount = "SubAccount",
        Project = "Project",
        Organization = "Organization",
        Directory = "Directory",
        /// A directory's SCIM bearer token.
        Token = "Token",
        AdminToken = "AdminToken",
        MappingRule = "MappingRule",
        Webhook = "Webhook",
        SsoConnection = "SsoConnection",
        Domain = "Domain",
        /// A sign-in session.
        Session = "Session",
        /// An OAuth client of the OpenID provider.
        Client = "Client",
        PortalLink = "PortalLink",
        ConsoleSession = "ConsoleSession",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spellings are the contract with every stored row and every reader that filters on
    /// them: a variant renamed, or a name missing from the README, fails here.
    #[test]
    fn every_audit_name_is_documented_with_its_spelling() {
        crate::domain::assert_published(
            AuditOp::ALL,
            &[
                "create",
                "update",
                "replace",
                "patch",
                "delete",
                "rotate",
                "revoke",
                "revoke_sessions",
                "verify",
                "move",
                "transfer_owner",
                "renamed",
                "merged",
                "moved",
                "deprovision",
                "deprovision_refused",
                "open",
                "end",
                "console.sign_in",
                "sso.sign_in",
                "sso.sign_in_failed",
            ],
        );
        crate::domain::assert_published(
            AuditResource::ALL,
            &[
                "User",
                "Group",
                "OrgUser",
                "Grant",
                "SubAccount",
                "Project",
                "Organization",
                "Directory",
                "Token",
                "AdminToken",
                "MappingRule",
                "Webhook",
                "SsoConnection",
                "Domain",
                "Session",
                "Client",
                "PortalLink",
                "ConsoleSession",
            ],
        );
    }
}
