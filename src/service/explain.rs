//! Failed sign-ins in plain words. A failure is audited with a short code (`sso.sign_in_failed`,
//! detail `{"reason": CODE, "detail": ...}`) made for logs and metrics; the admin reading the
//! activity of their organization is rarely an identity expert, so each code is also said as what
//! happened and what usually fixes it.

/// A sentence for the failure `code` (and, for the protocol failures, what `detail` says went
/// wrong) that someone who is not an identity expert understands.
pub fn explain_failure(code: &str, detail: &str) -> String {
    let said = match code {
        "connection_disabled" => {
            "The sign-in connection is switched off, so nobody can sign in through it. An \
             administrator can switch it on again."
        }
        "connection_incomplete" => {
            "The sign-in connection is not set up yet: the identity provider's details \
             (its metadata, or its address and certificate) have not been given."
        }
        "connection_invalid" => {
            "The sign-in connection's settings cannot be used to check a sign-in (a certificate \
             or address is missing or unusable). Compare them with the identity provider's."
        }
        "no_email" => {
            "The identity provider did not send the person's email address, which is how people \
             are recognized. Make it send the email address to this application."
        }
        "email_not_verified" => {
            "The identity provider said the person's email address is not verified, so it cannot \
             be trusted to say who they are."
        }
        "not_provisioned" if detail.contains("SCIM") => {
            "This person is not a user of the organization: the directory (SCIM) has not sent \
             them. Assign them to the application in the identity provider, and wait for it to \
             push them."
        }
        "not_provisioned" => {
            "This person is not a user of the organization, and this connection does not create \
             users at their first sign-in. Add them through the directory, or let the connection \
             create users."
        }
        "deprovisioned" => {
            "This person was deactivated or removed by the directory (SCIM), and signing in does \
             not bring them back. Reactivate them, or assign them again, in the identity provider."
        }
        "inactive" => "This person's account in the organization is deactivated.",
        "owner_connection" => {
            "This person is the organization's owner, who signs in only through a connection the \
             owner has approved for that."
        }
        "domain_not_routed" => {
            "This person's email domain is routed to another of the organization's connections, \
             and signs in only through that one. Sign in through that connection, or route the \
             domain to this one on the Domains page."
        }
        "domain_not_verified" => {
            "This person's email domain is not one the organization has verified, and this \
             connection signs in only people of verified domains. Verify the domain on the \
             Domains page, or let the connection sign in people of other domains."
        }
        "seat_limit" => {
            "Every seat of the organization is taken, so no one new can sign in. Free a seat or \
             raise the seat limit."
        }
        "idp_unreachable" => {
            "The identity provider could not be reached to check the sign-in: it may be down, or \
             the connection's address may be wrong. Try again later."
        }
        "idp_error" => {
            "The identity provider refused or cancelled the sign-in, for example because the \
             person is not assigned to the application there, or cancelled it."
        }
        "saml_invalid" => return saml_invalid(detail),
        "saml_replay" => {
            "The same answer from the identity provider was used twice; the second use is refused \
             so that nobody can replay it. Signing in again works."
        }
        "oidc_invalid" => {
            "The identity provider's answer could not be verified: its token was not valid, or \
             the sign-in had expired or was already used. Signing in again usually works; if not, \
             check the connection's client id and secret."
        }
        "flow_unbound" => {
            "The sign-in was finished in another browser than the one that started it (or the \
             browser blocks cookies), so it was refused to keep anyone from finishing someone \
             else's sign-in."
        }
        "unavailable" => "The service was briefly unavailable. Trying again in a moment works.",
        "store" | "internal" => {
            "Something went wrong on our side while signing in. Try again; the reference in the \
             detail helps support find what happened."
        }
        _ => return format!("The sign-in failed ({code})."),
    };
    said.to_string()
}

/// SAML Core §2.5.1 (conditions), §2.4.1.2 (subject confirmation), XML-DSig: which check refused
/// the answer, read from the validator's message.
fn saml_invalid(detail: &str) -> String {
    let why = if detail.contains("NotOnOrAfter") || detail.contains("NotBefore") {
        "it has expired or is not valid yet, which usually means the clocks of the two systems \
         disagree or the person took too long"
    } else if detail.contains("Audience") {
        "it was meant for another application: the identity provider's setting for our entity id \
         does not match ours"
    } else if detail.contains("Recipient") || detail.contains("Destination") {
        "it was addressed elsewhere: the identity provider's setting for our ACS URL does not \
         match ours"
    } else if detail.contains("Issuer") {
        "it came from another identity provider than the one this connection is for"
    } else if detail.contains("unsolicited") {
        "it was started from the identity provider's own portal, which this connection does not \
         allow"
    } else if detail.contains("InResponseTo") {
        "it answers another sign-in attempt than this one"
    } else if detail.contains("status") {
        "the identity provider reported an error instead of signing the person in"
    } else if detail.contains("sign") || detail.contains("algorithm") {
        "its signature does not match the identity provider's certificate we have; the identity \
         provider may have a new certificate"
    } else {
        "it is malformed or incomplete"
    };
    format!("The identity provider's answer could not be verified: {why}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code a sign-in failure is audited with, read from the code that writes them, has a
    /// sentence of its own: a code added later without one fails here.
    #[test]
    fn every_audited_failure_code_is_explained() {
        let sources = [include_str!("sign_in.rs"), include_str!("../http/sso.rs")];
        let mut codes = Vec::new();
        for line in sources.iter().flat_map(|s| s.lines()) {
            let at = ["fail(\"", "Failure::new(", "=> \""]
                .iter()
                .filter_map(|m| line.find(m))
                .min();
            let Some(at) = at else { continue };
            let rest = &line[at..];
            let Some(start) = rest.find('"') else {
                continue;
            };
            let literal: String = rest[start + 1..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !literal.is_empty() && rest[start + 1 + literal.len()..].starts_with('"') {
                codes.push(literal);
            }
        }
        for expected in [
            "saml_invalid",
            "not_provisioned",
            "seat_limit",
            "flow_unbound",
        ] {
            assert!(codes.iter().any(|c| c == expected), "{codes:?}");
        }
        for code in &codes {
            // The one code never audited: there is no connection to audit it under.
            if code == "unknown_connection" || code == "unknown_client" {
                continue;
            }
            let said = explain_failure(code, "");
            assert!(
                !said.contains(code.as_str()),
                "{code} has no sentence: {said}"
            );
        }
    }

    #[test]
    fn a_saml_answer_is_explained_by_the_check_that_refused_it() {
        let said = |detail| explain_failure("saml_invalid", detail);
        assert!(said("Assertion NotOnOrAfter 2026-01-01T00:00:00Z has passed").contains("clocks"));
        assert!(said("Audience is \"x\", expected \"y\"").contains("entity id"));
        assert!(said("SubjectConfirmationData Recipient is \"x\"").contains("ACS URL"));
        assert!(said("neither the Assertion nor the Response is signed").contains("certificate"));
        assert!(
            explain_failure(
                "not_provisioned",
                "a SCIM directory manages the organization"
            )
            .contains("directory")
        );
        assert_eq!(
            explain_failure("something_new", ""),
            "The sign-in failed (something_new)."
        );
    }
}
