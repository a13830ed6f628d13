//! The protocol checks of Profiles §4.1.4.2 and §4.1.4.3, on the assertion as signed.

use std::collections::BTreeMap;

use libxml::tree::Node;
use time::{Duration, OffsetDateTime};

use super::signature::Envelope;
use super::xml::{at_most_one, attribute, children, exactly_one, instant, text};
use super::{
    CM_BEARER, NAMEID_ENTITY, NS_SAML, SamlConnection, SamlError, SamlIdentity, malformed,
};

/// Profiles §4.1.4.2 and §4.1.4.3 on what was verified, plus the envelope's own fields.
pub(super) fn check(
    envelope: &Envelope,
    assertion: &Node,
    conn: &SamlConnection,
    expected: Option<&str>,
    now: OffsetDateTime,
) -> Result<SamlIdentity, SamlError> {
    let skew = conn.clock_skew;

    // Bindings §3.5.5.2: a signed message must name where it was sent, and we must check it;
    // Core §3.2.2: if present at all, it must be us.
    if envelope.destination.as_deref() != Some(conn.acs_url.as_str())
        && (envelope.destination.is_some() || envelope.response_signed)
    {
        return Err(SamlError::WrongDestination {
            expected: conn.acs_url.clone(),
            found: envelope.destination.clone(),
        });
    }
    // Profiles §4.1.4.2: a Response Issuer, if any, is the IdP's entity id.
    if let Some((issuer, format)) = &envelope.issuer {
        check_issuer("Response", issuer, format.as_deref(), conn)?;
    }
    if attribute(assertion, "Version").as_deref() != Some("2.0") {
        return Err(malformed("Assertion Version is not 2.0"));
    }
    let issuer = exactly_one(assertion, NS_SAML, "Issuer")?;
    check_issuer(
        "Assertion",
        &text(&issuer),
        attribute(&issuer, "Format").as_deref(),
        conn,
    )?;

    // Core §2.5.1.2 (validity window, NotOnOrAfter exclusive) and §2.5.1.4 (audiences);
    // Profiles §4.1.4.2 requires an AudienceRestriction naming us.
    let conditions = exactly_one(assertion, NS_SAML, "Conditions")?;
    let conditions_expiry = check_window("Conditions", &conditions, now, skew)?;
    let restrictions = children(&conditions, NS_SAML, "AudienceRestriction");
    let audiences: Vec<String> = restrictions
        .iter()
        .flat_map(|r| children(r, NS_SAML, "Audience"))
        .map(|a| text(&a).trim().to_owned())
        .collect();
    // Several AudienceRestriction elements must all be met (Core §2.5.1.4); within one, any
    // Audience will do.
    let names_us = |r: &Node| {
        children(r, NS_SAML, "Audience")
            .iter()
            .any(|a| text(a).trim() == conn.sp_entity_id)
    };
    if restrictions.is_empty() || !restrictions.iter().all(names_us) {
        return Err(SamlError::WrongAudience {
            expected: conn.sp_entity_id.clone(),
            found: audiences,
        });
    }

    let subject = exactly_one(assertion, NS_SAML, "Subject")?;
    if at_most_one(&subject, NS_SAML, "EncryptedID")?.is_some() {
        return Err(SamlError::EncryptedAssertionUnsupported);
    }
    let name_id = exactly_one(&subject, NS_SAML, "NameID")?;
    if text(&name_id).trim().is_empty() {
        return Err(malformed("empty NameID"));
    }
    let confirmation_expiry = check_bearer_confirmations(&subject, conn, expected, now)?;

    // Core §3.2.2: the Response's own InResponseTo, when present, must agree too.
    check_in_response_to("Response", envelope.in_response_to.as_deref(), expected)?;

    // Profiles §4.1.4.2: at least one AuthnStatement.
    let authn = children(assertion, NS_SAML, "AuthnStatement");
    let first_authn = authn
        .first()
        .ok_or_else(|| malformed("no AuthnStatement"))?;

    let not_on_or_after =
        conditions_expiry.map_or(confirmation_expiry, |c| c.min(confirmation_expiry));

    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for statement in children(assertion, NS_SAML, "AttributeStatement") {
        for attr in children(&statement, NS_SAML, "Attribute") {
            let name =
                attribute(&attr, "Name").ok_or_else(|| malformed("Attribute without Name"))?;
            let values = attributes.entry(name).or_default();
            values.extend(children(&attr, NS_SAML, "AttributeValue").iter().map(text));
        }
    }

    Ok(SamlIdentity {
        name_id: text(&name_id),
        name_id_format: attribute(&name_id, "Format"),
        session_index: attribute(first_authn, "SessionIndex"),
        assertion_id: envelope.assertion_id.clone(),
        not_on_or_after,
        replay_cache_until: not_on_or_after + skew,
        attributes,
    })
}

fn check_issuer(
    element: &'static str,
    issuer: &str,
    format: Option<&str>,
    conn: &SamlConnection,
) -> Result<(), SamlError> {
    // Profiles §4.1.4.2: the IdP's unique identifier, entity format if a format is given.
    if issuer.trim() != conn.idp_entity_id || format.is_some_and(|f| f != NAMEID_ENTITY) {
        return Err(SamlError::WrongIssuer {
            element,
            expected: conn.idp_entity_id.clone(),
            found: issuer.to_owned(),
            format: format.filter(|f| *f != NAMEID_ENTITY).map(str::to_owned),
        });
    }
    Ok(())
}

/// NotBefore and NotOnOrAfter of `node`, each only if present.
fn check_window(
    element: &'static str,
    node: &Node,
    now: OffsetDateTime,
    skew: Duration,
) -> Result<Option<OffsetDateTime>, SamlError> {
    if let Some(not_before) = instant(node, "NotBefore")?
        && now + skew < not_before
    {
        return Err(SamlError::NotYetValid {
            element,
            not_before,
            now,
            skew,
        });
    }
    let not_on_or_after = instant(node, "NotOnOrAfter")?;
    if let Some(not_on_or_after) = not_on_or_after
        && now - skew >= not_on_or_after
    {
        return Err(SamlError::Expired {
            element,
            not_on_or_after,
            now,
            skew,
        });
    }
    Ok(not_on_or_after)
}

/// Profiles §4.1.4.3: a bearer confirmation whose data names our ACS as Recipient, has not
/// expired and answers our request. One satisfying confirmation is enough; otherwise the first
/// one's failure is reported. Returns that confirmation's NotOnOrAfter.
fn check_bearer_confirmations(
    subject: &Node,
    conn: &SamlConnection,
    expected: Option<&str>,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, SamlError> {
    let bearers: Vec<Node> = children(subject, NS_SAML, "SubjectConfirmation")
        .into_iter()
        .filter(|c| attribute(c, "Method").as_deref() == Some(CM_BEARER))
        .collect();
    let mut first_error = None;
    for bearer in &bearers {
        match check_bearer(bearer, conn, expected, now) {
            Ok(expiry) => return Ok(expiry),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or(SamlError::NoBearerConfirmation))
}

fn check_bearer(
    confirmation: &Node,
    conn: &SamlConnection,
    expected: Option<&str>,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, SamlError> {
    let data = exactly_one(confirmation, NS_SAML, "SubjectConfirmationData")?;
    let recipient = attribute(&data, "Recipient");
    if recipient.as_deref() != Some(conn.acs_url.as_str()) {
        return Err(SamlError::WrongRecipient {
            expected: conn.acs_url.clone(),
            found: recipient,
        });
    }
    // Profiles §4.1.4.2 forbids NotBefore here; some IdPs send it anyway, so it is honoured
    // rather than refused.
    let not_on_or_after = check_window("SubjectConfirmationData", &data, now, conn.clock_skew)?
        .ok_or_else(|| malformed("bearer SubjectConfirmationData without NotOnOrAfter"))?;
    check_in_response_to(
        "SubjectConfirmationData",
        attribute(&data, "InResponseTo").as_deref(),
        expected,
    )?;
    // Profiles §4.1.4.2 requires it on the bearer data when answering a request (the Response's
    // is optional, Core §3.2.2): this one is signed, so its absence is not forgiven.
    if expected.is_some() && attribute(&data, "InResponseTo").is_none() {
        return Err(SamlError::UnknownInResponseTo {
            element: "SubjectConfirmationData",
            expected: expected.map(str::to_owned),
            found: None,
        });
    }
    Ok(not_on_or_after)
}

/// Core §3.2.2 and Profiles §4.1.5: an answer to our request carries its ID; an unsolicited one
/// carries none. A present value that is not ours is refused either way: it answers a request of
/// another browser or another SP.
fn check_in_response_to(
    element: &'static str,
    found: Option<&str>,
    expected: Option<&str>,
) -> Result<(), SamlError> {
    match found {
        Some(found) if Some(found) != expected => Err(SamlError::UnknownInResponseTo {
            element,
            expected: expected.map(str::to_owned),
            found: Some(found.to_owned()),
        }),
        _ => Ok(()),
    }
}
