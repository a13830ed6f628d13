//! Static SCIM attribute definitions: core User and Group (RFC 7643 §4), the Enterprise User
//! extension (RFC 7643 §4.3) and the common attributes (RFC 7643 §3.1), plus their `/Schemas`
//! (RFC 7643 §7) and `/ResourceTypes` (RFC 7643 §6) representations.
//!
//! Everything here is `'static` so the filter parser, the normaliser and the PATCH engine can hand
//! out `&'static AttrDef` without lifetimes leaking into the store and HTTP layers.

use serde_json::{Map, Value, json};

/// A canonical attribute path: names in schema spelling, `urn` only for extension attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    pub fn new(urn: Option<&str>, name: &str, sub: Option<&str>) -> Self {
        AttrPath {
            urn: urn.map(str::to_owned),
            name: name.to_owned(),
            sub: sub.map(str::to_owned),
        }
    }

    /// The same attribute without its sub-attribute.
    pub fn parent(&self) -> AttrPath {
        AttrPath {
            urn: self.urn.clone(),
            name: self.name.clone(),
            sub: None,
        }
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.urn {
            write!(f, "{u}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

/// Case-insensitive object member lookup (RFC 7643 §2.1): exact spelling first, as stored
/// documents are canonical, so the scan only runs for foreign input.
pub(crate) fn get_ci<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// RFC 7643 §7: the schema of `/Schemas` entries themselves.
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
/// RFC 7643 §6: the schema of `/ResourceTypes` entries.
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Reference,
    Complex,
    Binary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl AttrType {
    /// RFC 7643 §7 `type` keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
            AttrType::Binary => "binary",
        }
    }
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

impl Uniqueness {
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

#[derive(Debug)]
pub struct AttrDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub_attributes: &'static [AttrDef],
    pub description: &'static str,
}

#[derive(Debug)]
pub struct SchemaDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [AttrDef],
}

#[derive(Debug)]
pub struct ResourceType {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub schema: &'static SchemaDef,
    pub extensions: &'static [&'static SchemaDef],
}

/// The outcome of resolving an attribute reference.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    /// Some only for extension attributes: the canonical extension URN (the key the attribute is
    /// stored under).
    pub urn: Option<&'static str>,
    pub attr: &'static AttrDef,
    pub sub: Option<&'static AttrDef>,
}

impl Resolved {
    /// The definition the reference designates: the sub-attribute when there is one.
    pub fn target(&self) -> &'static AttrDef {
        self.sub.unwrap_or(self.attr)
    }

    /// The canonical path, as the filter AST spells it.
    pub fn to_path(&self) -> AttrPath {
        AttrPath {
            urn: self.urn.map(str::to_owned),
            name: self.attr.name.to_owned(),
            sub: self.sub.map(|s| s.name.to_owned()),
        }
    }
}

// Builders so the tables below only spell out what differs from the RFC 7643 §2.2 defaults
// (readWrite, returned default, uniqueness none, caseExact false, single-valued, optional).
impl AttrDef {
    const fn new(name: &'static str, ty: AttrType, description: &'static str) -> Self {
        AttrDef {
            name,
            ty,
            multi_valued: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: &[],
            reference_types: &[],
            sub_attributes: &[],
            description,
        }
    }
    const fn string(name: &'static str, description: &'static str) -> Self {
        Self::new(name, AttrType::String, description)
    }
    const fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    const fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    const fn read_only(self) -> Self {
        self.mutability(Mutability::ReadOnly)
    }
    const fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    const fn uniqueness(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    const fn canonical(mut self, v: &'static [&'static str]) -> Self {
        self.canonical_values = v;
        self
    }
    const fn refs(mut self, v: &'static [&'static str]) -> Self {
        self.reference_types = v;
        self
    }
    const fn subs(mut self, v: &'static [AttrDef]) -> Self {
        self.sub_attributes = v;
        self
    }

    /// Case-insensitive sub-attribute lookup (RFC 7643 §2.1).
    pub fn sub_attr(&self, name: &str) -> Option<&'static AttrDef> {
        find_attr(self.sub_attributes, name)
    }

    pub fn is_complex(&self) -> bool {
        self.ty == AttrType::Complex
    }
}

fn find_attr(list: &'static [AttrDef], name: &str) -> Option<&'static AttrDef> {
    list.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

// ---------------------------------------------------------------------------------------------
// RFC 7643 §3.1: common attributes, part of every resource but of no schema.
// ---------------------------------------------------------------------------------------------

const META_SUBS: &[AttrDef] = &[
    AttrDef::string("resourceType", "The name of the resource type of the resource.")
        .case_exact()
        .read_only(),
    AttrDef::new("created", AttrType::DateTime, "The DateTime that the resource was added to the service provider.")
        .read_only(),
    AttrDef::new(
        "lastModified",
        AttrType::DateTime,
        "The most recent DateTime that the details of this resource were updated at the service provider.",
    )
    .read_only(),
    AttrDef::new("location", AttrType::Reference, "The URI of the resource being returned.")
        .case_exact()
        .read_only()
        .refs(&["uri"]),
    AttrDef::string("version", "The version of the resource being returned.")
        .case_exact()
        .read_only(),
];

/// RFC 7643 §3.1. Resolved for every resource type, never listed under `/Schemas`.
pub static COMMON_ATTRIBUTES: &[AttrDef] = &[
    AttrDef::string(
        "id",
        "Unique identifier for the SCIM resource as defined by the service provider.",
    )
    .case_exact()
    .read_only()
    .returned(Returned::Always)
    .uniqueness(Uniqueness::Server),
    AttrDef::string(
        "externalId",
        "A String that is an identifier for the resource as defined by the provisioning client.",
    )
    .case_exact(),
    AttrDef::new(
        "meta",
        AttrType::Complex,
        "A complex attribute containing resource metadata.",
    )
    .read_only()
    .subs(META_SUBS),
];

// ---------------------------------------------------------------------------------------------
// RFC 7643 §4.1 / §8.7.1: core User.
// ---------------------------------------------------------------------------------------------

const NAME_SUBS: &[AttrDef] = &[
    AttrDef::string(
        "formatted",
        "The full name, including all middle names, titles, and suffixes as appropriate, formatted for display.",
    ),
    AttrDef::string(
        "familyName",
        "The family name of the User, or last name in most Western languages.",
    ),
    AttrDef::string(
        "givenName",
        "The given name of the User, or first name in most Western languages.",
    ),
    AttrDef::string("middleName", "The middle name(s) of the User."),
    AttrDef::string(
        "honorificPrefix",
        "The honorific prefix(es) of the User, or title in most Western languages.",
    ),
    AttrDef::string(
        "honorificSuffix",
        "The honorific suffix(es) of the User, or suffix in most Western languages.",
    ),
];

const EMAIL_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "Email addresses for the user."),
    AttrDef::string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    AttrDef::string(
        "type",
        "A label indicating the attribute's function, e.g., 'work' or 'home'.",
    )
    .canonical(&["work", "home", "other"]),
    AttrDef::new(
        "primary",
        AttrType::Boolean,
        "A Boolean value indicating the 'primary' or preferred attribute value for this attribute.",
    ),
];

const PHONE_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "Phone number of the User."),
    AttrDef::string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    AttrDef::string(
        "type",
        "A label indicating the attribute's function, e.g., 'work', 'home', 'mobile'.",
    )
    .canonical(&["work", "home", "mobile", "fax", "pager", "other"]),
    AttrDef::new(
        "primary",
        AttrType::Boolean,
        "A Boolean value indicating the 'primary' or preferred attribute value for this attribute.",
    ),
];

const IM_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "Instant messaging address for the User."),
    AttrDef::string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    AttrDef::string(
        "type",
        "A label indicating the attribute's function, e.g., 'aim', 'gtalk', 'xmpp'.",
    )
    .canonical(&["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
    AttrDef::new(
        "primary",
        AttrType::Boolean,
        "A Boolean value indicating the 'primary' or preferred attribute value for this attribute.",
    ),
];

const PHOTO_SUBS: &[AttrDef] = &[
    AttrDef::new("value", AttrType::Reference, "URL of a photo of the User.").refs(&["external"]),
    AttrDef::string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    AttrDef::string(
        "type",
        "A label indicating the attribute's function, i.e., 'photo' or 'thumbnail'.",
    )
    .canonical(&["photo", "thumbnail"]),
    AttrDef::new(
        "primary",
        AttrType::Boolean,
        "A Boolean value indicating the 'primary' or preferred attribute value for this attribute.",
    ),
];

const ADDRESS_SUBS: &[AttrDef] = &[
    AttrDef::string(
        "formatted",
        "The full mailing address, formatted for display or use with a mailing label.",
    ),
    AttrDef::string("streetAddress", "The full street address component."),
    AttrDef::string("locality", "The city or locality component."),
    AttrDef::string("region", "The state or region component."),
    AttrDef::string("postalCode", "The zip code or postal code component."),
    AttrDef::string("country", "The country name component."),
    AttrDef::string(
        "type",
        "A label indicating the attribute's function, e.g., 'work' or 'home'.",
    )
    .canonical(&["work", "home", "other"]),
    AttrDef::new(
        "primary",
        AttrType::Boolean,
        "A Boolean value indicating the 'primary' or preferred attribute value for this attribute.",
    ),
];

const USER_GROUP_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "The identifier of the User's group.").read_only(),
    AttrDef::new(
        "$ref",
        AttrType::Reference,
        "The URI of the corresponding 'Group' resource to which the user belongs.",
    )
    .read_only()
    .refs(&["User", "Group"]),
    AttrDef::string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    )
    .read_only(),
    AttrDef::string(
        "type",
        "A label indicating the attribute's function, e.g., 'direct' or 'indirect'.",
    )
    .read_only()
    .canonical(&["direct", "indirect"]),
];

const GENERIC_MV_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "The value of the attribute."),
    AttrDef::string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    AttrDef::string("type", "A label indicating the attribute's function."),
    AttrDef::new(
        "primary",
        AttrType::Boolean,
        "A Boolean value indicating the 'primary' or preferred attribute value for this attribute.",
    ),
];

const CERT_SUBS: &[AttrDef] = &[
    AttrDef::new(
        "value",
        AttrType::Binary,
        "The value of an X.509 certificate.",
    )
    .case_exact(),
    AttrDef::string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    AttrDef::string("type", "A label indicating the attribute's function."),
    AttrDef::new(
        "primary",
        AttrType::Boolean,
        "A Boolean value indicating the 'primary' or preferred attribute value for this attribute.",
    ),
];

const USER_ATTRS: &[AttrDef] = &[
    AttrDef::string("userName", "Unique identifier for the User, typically used by the user to directly authenticate to the service provider.")
        .required()
        .uniqueness(Uniqueness::Server),
    AttrDef::new("name", AttrType::Complex, "The components of the user's real name.").subs(NAME_SUBS),
    AttrDef::string("displayName", "The name of the User, suitable for display to end-users."),
    AttrDef::string("nickName", "The casual way to address the user in real life."),
    AttrDef::new("profileUrl", AttrType::Reference, "A fully qualified URL pointing to a page representing the User's online profile.")
        .refs(&["external"]),
    AttrDef::string("title", "The user's title, such as \"Vice President\"."),
    AttrDef::string("userType", "Used to identify the relationship between the organization and the user."),
    AttrDef::string("preferredLanguage", "Indicates the User's preferred written or spoken language."),
    AttrDef::string("locale", "Used to indicate the User's default location for purposes of localizing items."),
    AttrDef::string("timezone", "The User's time zone in the 'Olson' time zone database format."),
    AttrDef::new("active", AttrType::Boolean, "A Boolean value indicating the User's administrative status."),
    AttrDef::string("password", "The User's cleartext password.")
        .mutability(Mutability::WriteOnly)
        .returned(Returned::Never),
    AttrDef::new("emails", AttrType::Complex, "Email addresses for the user.")
        .multi()
        .subs(EMAIL_SUBS),
    AttrDef::new("phoneNumbers", AttrType::Complex, "Phone numbers for the User.")
        .multi()
        .subs(PHONE_SUBS),
    AttrDef::new("ims", AttrType::Complex, "Instant messaging addresses for the User.")
        .multi()
        .subs(IM_SUBS),
    AttrDef::new("photos", AttrType::Complex, "URLs of photos of the User.")
        .multi()
        .subs(PHOTO_SUBS),
    AttrDef::new("addresses", AttrType::Complex, "A physical mailing address for this User.")
        .multi()
        .subs(ADDRESS_SUBS),
    AttrDef::new("groups", AttrType::Complex, "A list of groups to which the user belongs.")
        .multi()
        .read_only()
        .subs(USER_GROUP_SUBS),
    AttrDef::new("entitlements", AttrType::Complex, "A list of entitlements for the User.")
        .multi()
        .subs(GENERIC_MV_SUBS),
    AttrDef::new("roles", AttrType::Complex, "A list of roles for the User.")
        .multi()
        .subs(GENERIC_MV_SUBS),
    AttrDef::new("x509Certificates", AttrType::Complex, "A list of certificates issued to the User.")
        .multi()
        .subs(CERT_SUBS),
];

pub static USER_SCHEMA_DEF: SchemaDef = SchemaDef {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: USER_ATTRS,
};

// ---------------------------------------------------------------------------------------------
// RFC 7643 §4.3: Enterprise User extension.
// ---------------------------------------------------------------------------------------------

const MANAGER_SUBS: &[AttrDef] = &[
    AttrDef::string(
        "value",
        "The id of the SCIM resource representing the User's manager.",
    ),
    AttrDef::new(
        "$ref",
        AttrType::Reference,
        "The URI of the SCIM resource representing the User's manager.",
    )
    .refs(&["User"]),
    AttrDef::string("displayName", "The displayName of the User's manager.").read_only(),
];

const ENTERPRISE_ATTRS: &[AttrDef] = &[
    AttrDef::string(
        "employeeNumber",
        "Numeric or alphanumeric identifier assigned to a person.",
    ),
    AttrDef::string("costCenter", "Identifies the name of a cost center."),
    AttrDef::string("organization", "Identifies the name of an organization."),
    AttrDef::string("division", "Identifies the name of a division."),
    AttrDef::string("department", "Identifies the name of a department."),
    AttrDef::new("manager", AttrType::Complex, "The User's manager.").subs(MANAGER_SUBS),
];

pub static ENTERPRISE_USER_SCHEMA_DEF: SchemaDef = SchemaDef {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: ENTERPRISE_ATTRS,
};

// ---------------------------------------------------------------------------------------------
// RFC 7643 §4.2 / §8.7.1: core Group.
// ---------------------------------------------------------------------------------------------

const MEMBER_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "Identifier of the member of this Group.")
        .case_exact()
        .mutability(Mutability::Immutable),
    AttrDef::new(
        "$ref",
        AttrType::Reference,
        "The URI corresponding to a SCIM resource that is a member of this Group.",
    )
    .mutability(Mutability::Immutable)
    .refs(&["User", "Group"]),
    AttrDef::string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    AttrDef::string(
        "type",
        "A label indicating the type of resource, e.g., 'User' or 'Group'.",
    )
    .mutability(Mutability::Immutable)
    .canonical(&["User", "Group"]),
];

const GROUP_ATTRS: &[AttrDef] = &[
    AttrDef::string("displayName", "A human-readable name for the Group.").required(),
    AttrDef::new(
        "members",
        AttrType::Complex,
        "A list of members of the Group.",
    )
    .multi()
    .subs(MEMBER_SUBS),
];

pub static GROUP_SCHEMA_DEF: SchemaDef = SchemaDef {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attributes: GROUP_ATTRS,
};

/// The Group `members` definition, which the membership code needs without a lookup.
pub fn group_members_def() -> &'static AttrDef {
    &GROUP_ATTRS[1]
}

pub static USER: ResourceType = ResourceType {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    schema: &USER_SCHEMA_DEF,
    extensions: &[&ENTERPRISE_USER_SCHEMA_DEF],
};

pub static GROUP: ResourceType = ResourceType {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    schema: &GROUP_SCHEMA_DEF,
    extensions: &[],
};

/// Split an attribute reference `[urn ":"] name ["." sub]` (RFC 7644 §3.10) into its parts.
/// Attribute names never contain ':' (RFC 7643 §2.1 ATTRNAME), so the last ':' separates the URN
/// even though URNs themselves contain '.' (`...:2.0:User`).
pub fn split_attr_ref(s: &str) -> (Option<&str>, &str, Option<&str>) {
    let (urn, rest) = match s.rfind(':') {
        Some(i) => (Some(&s[..i]), &s[i + 1..]),
        None => (None, s),
    };
    match rest.split_once('.') {
        Some((name, sub)) => (urn, name, Some(sub)),
        None => (urn, rest, None),
    }
}

impl ResourceType {
    /// Resolve a (possibly URN-qualified, any-case) attribute reference to its definition.
    /// RFC 7643 §2.1: names and URNs are case-insensitive. A core attribute qualified with the
    /// core URN resolves with `urn: None`, as does a common attribute (RFC 7643 §3.1).
    pub fn resolve(&self, urn: Option<&str>, name: &str, sub: Option<&str>) -> Option<Resolved> {
        let (urn, attr) = match urn {
            None => (None, self.core_attr(name)?),
            Some(u) if u.eq_ignore_ascii_case(self.schema.id) => (None, self.core_attr(name)?),
            Some(u) => {
                let ext = self.extension(u)?;
                (Some(ext.id), find_attr(ext.attributes, name)?)
            }
        };
        let sub = match sub {
            None => None,
            Some(s) => Some(attr.sub_attr(s)?),
        };
        Some(Resolved { urn, attr, sub })
    }

    /// Resolve a reference written as one string: `name`, `name.sub`, `urn:...:name[.sub]`.
    pub fn resolve_str(&self, s: &str) -> Option<Resolved> {
        let (urn, name, sub) = split_attr_ref(s);
        self.resolve(urn, name, sub)
    }

    /// Definition for a canonical path; the sub-attribute's definition when `path.sub` is set.
    pub fn attr(&self, path: &AttrPath) -> Option<&'static AttrDef> {
        self.resolve(path.urn.as_deref(), &path.name, path.sub.as_deref())
            .map(|r| r.target())
    }

    /// The extension schema with this URN (case-insensitive).
    pub fn extension(&self, urn: &str) -> Option<&'static SchemaDef> {
        self.extensions
            .iter()
            .copied()
            .find(|e| e.id.eq_ignore_ascii_case(urn))
    }

    pub fn is_core_urn(&self, urn: &str) -> bool {
        urn.eq_ignore_ascii_case(self.schema.id)
    }

    /// Core attribute or common attribute.
    fn core_attr(&self, name: &str) -> Option<&'static AttrDef> {
        find_attr(COMMON_ATTRIBUTES, name).or_else(|| find_attr(self.schema.attributes, name))
    }

    /// Core-schema attributes followed by the common ones, for whole-document walks.
    pub fn core_attributes(&self) -> impl Iterator<Item = &'static AttrDef> {
        COMMON_ATTRIBUTES
            .iter()
            .chain(self.schema.attributes.iter())
    }
}

fn base(base_url: &str) -> &str {
    base_url.trim_end_matches('/')
}

fn attr_json(a: &AttrDef) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(a.name));
    m.insert("type".into(), json!(a.ty.as_str()));
    m.insert("multiValued".into(), json!(a.multi_valued));
    m.insert("description".into(), json!(a.description));
    m.insert("required".into(), json!(a.required));
    if !a.canonical_values.is_empty() {
        m.insert("canonicalValues".into(), json!(a.canonical_values));
    }
    m.insert("caseExact".into(), json!(a.case_exact));
    m.insert("mutability".into(), json!(a.mutability.as_str()));
    m.insert("returned".into(), json!(a.returned.as_str()));
    m.insert("uniqueness".into(), json!(a.uniqueness.as_str()));
    if a.ty == AttrType::Reference {
        m.insert("referenceTypes".into(), json!(a.reference_types));
    }
    if a.ty == AttrType::Complex {
        let subs: Vec<Value> = a.sub_attributes.iter().map(attr_json).collect();
        m.insert("subAttributes".into(), Value::Array(subs));
    }
    Value::Object(m)
}

fn schema_json(s: &SchemaDef, base_url: &str) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "attributes": s.attributes.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{}/Schemas/{}", base(base_url), s.id),
        },
    })
}

/// RFC 7643 §7: the /Schemas representation of every schema, with meta.location under base_url.
/// Common attributes are not listed: RFC 7643 §3.1 defines them outside any schema.
pub fn schemas_json(base_url: &str) -> Vec<Value> {
    [
        &USER_SCHEMA_DEF,
        &ENTERPRISE_USER_SCHEMA_DEF,
        &GROUP_SCHEMA_DEF,
    ]
    .into_iter()
    .map(|s| schema_json(s, base_url))
    .collect()
}

/// The /Schemas/{id} entry, URN matched case-insensitively.
pub fn schema_json_by_id(id: &str, base_url: &str) -> Option<Value> {
    [
        &USER_SCHEMA_DEF,
        &ENTERPRISE_USER_SCHEMA_DEF,
        &GROUP_SCHEMA_DEF,
    ]
    .into_iter()
    .find(|s| s.id.eq_ignore_ascii_case(id))
    .map(|s| schema_json(s, base_url))
}

fn resource_type_json(rt: &ResourceType, base_url: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": rt.name,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.schema.id,
        "schemaExtensions": rt.extensions.iter()
            .map(|e| json!({"schema": e.id, "required": false}))
            .collect::<Vec<_>>(),
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{}/ResourceTypes/{}", base(base_url), rt.name),
        },
    })
}

/// RFC 7643 §6: /ResourceTypes representations.
pub fn resource_types_json(base_url: &str) -> Vec<Value> {
    [&USER, &GROUP]
        .into_iter()
        .map(|rt| resource_type_json(rt, base_url))
        .collect()
}

/// The resource type served at `name` ("User"/"Group", case-insensitive).
pub fn resource_type(name: &str) -> Option<&'static ResourceType> {
    [&USER, &GROUP]
        .into_iter()
        .find(|rt| rt.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENT: &str = ENTERPRISE_USER_SCHEMA;

    /// Expected resolution: (urn, attribute, sub-attribute), or None for unresolvable.
    type Exp = Option<(Option<&'static str>, &'static str, Option<&'static str>)>;

    #[test]
    fn resolve_table() {
        // (resource type, urn, name, sub, expected)
        type Case<'a> = (
            &'a ResourceType,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
            Exp,
        );
        let cases: &[Case] = &[
            (
                &USER,
                None,
                "userName",
                None,
                Some((None, "userName", None)),
            ),
            (
                &USER,
                None,
                "USERNAME",
                None,
                Some((None, "userName", None)),
            ),
            (
                &USER,
                None,
                "name",
                Some("GIVENNAME"),
                Some((None, "name", Some("givenName"))),
            ),
            (
                &USER,
                Some(USER_SCHEMA),
                "userName",
                None,
                Some((None, "userName", None)),
            ),
            (
                &USER,
                Some("URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER"),
                "username",
                None,
                Some((None, "userName", None)),
            ),
            (&USER, None, "id", None, Some((None, "id", None))),
            (&GROUP, None, "ID", None, Some((None, "id", None))),
            (
                &GROUP,
                None,
                "externalid",
                None,
                Some((None, "externalId", None)),
            ),
            (
                &USER,
                None,
                "meta",
                Some("lastmodified"),
                Some((None, "meta", Some("lastModified"))),
            ),
            (
                &GROUP,
                None,
                "meta",
                Some("created"),
                Some((None, "meta", Some("created"))),
            ),
            (
                &USER,
                Some(ENT),
                "employeeNumber",
                None,
                Some((Some(ENT), "employeeNumber", None)),
            ),
            (
                &USER,
                Some("urn:ietf:params:scim:schemas:extension:Enterprise:2.0:user"),
                "MANAGER",
                Some("value"),
                Some((Some(ENT), "manager", Some("value"))),
            ),
            (
                &USER,
                Some(ENT),
                "manager",
                None,
                Some((Some(ENT), "manager", None)),
            ),
            (
                &USER,
                None,
                "emails",
                Some("type"),
                Some((None, "emails", Some("type"))),
            ),
            (
                &USER,
                None,
                "groups",
                Some("$ref"),
                Some((None, "groups", Some("$ref"))),
            ),
            (
                &GROUP,
                None,
                "members",
                Some("VALUE"),
                Some((None, "members", Some("value"))),
            ),
            (
                &GROUP,
                Some(GROUP_SCHEMA),
                "displayName",
                None,
                Some((None, "displayName", None)),
            ),
            // Negative cases.
            (&USER, None, "employeeNumber", None, None), // extension attrs need their URN
            (&USER, None, "nope", None, None),
            (&USER, None, "userName", Some("x"), None), // simple attribute has no sub
            (&USER, None, "name", Some("nope"), None),
            (&GROUP, None, "userName", None, None),
            (&GROUP, Some(ENT), "employeeNumber", None, None), // not an extension of Group
            (&USER, Some(GROUP_SCHEMA), "displayName", None, None),
            (&USER, Some("urn:example:unknown"), "x", None, None),
        ];
        for (rt, urn, name, sub, exp) in cases {
            let got = rt
                .resolve(*urn, name, *sub)
                .map(|r| (r.urn, r.attr.name, r.sub.map(|s| s.name)));
            assert_eq!(
                got, *exp,
                "resolve({urn:?}, {name}, {sub:?}) on {}",
                rt.name
            );
        }
    }

    #[test]
    fn resolve_str_table() {
        let cases: &[(&str, Exp)] = &[
            ("userName", Some((None, "userName", None))),
            ("name.familyName", Some((None, "name", Some("familyName")))),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:userName",
                Some((None, "userName", None)),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                Some((Some(ENT), "manager", Some("value"))),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                None,
            ),
            ("name.givenName.x", None),
        ];
        for (s, exp) in cases {
            let got = USER
                .resolve_str(s)
                .map(|r| (r.urn, r.attr.name, r.sub.map(|x| x.name)));
            assert_eq!(got, *exp, "{s}");
        }
    }

    #[test]
    fn attr_by_path() {
        let p = AttrPath {
            urn: None,
            name: "name".into(),
            sub: Some("givenName".into()),
        };
        assert_eq!(USER.attr(&p).map(|a| a.name), Some("givenName"));
        let p = AttrPath {
            urn: Some(ENT.into()),
            name: "manager".into(),
            sub: None,
        };
        assert_eq!(USER.attr(&p).map(|a| a.ty), Some(AttrType::Complex));
    }

    #[test]
    fn definitions_follow_rfc() {
        let user_name = USER.resolve(None, "userName", None).map(|r| r.attr);
        let un = user_name.expect("userName");
        assert!(un.required && !un.case_exact && un.uniqueness == Uniqueness::Server);
        let pw = USER
            .resolve(None, "password", None)
            .map(|r| r.attr)
            .expect("password");
        assert_eq!(
            (pw.mutability, pw.returned),
            (Mutability::WriteOnly, Returned::Never)
        );
        let id = USER.resolve(None, "id", None).map(|r| r.attr).expect("id");
        assert!(
            id.case_exact
                && id.returned == Returned::Always
                && id.mutability == Mutability::ReadOnly
        );
        let groups = USER
            .resolve(None, "groups", None)
            .map(|r| r.attr)
            .expect("groups");
        assert!(groups.multi_valued && groups.mutability == Mutability::ReadOnly);
        let mv = GROUP
            .resolve(None, "members", Some("value"))
            .and_then(|r| r.sub)
            .expect("members.value");
        assert_eq!(mv.mutability, Mutability::Immutable);
        let mt = GROUP
            .resolve(None, "members", Some("type"))
            .and_then(|r| r.sub)
            .expect("members.type");
        assert_eq!(mt.canonical_values, &["User", "Group"]);
        let md = USER
            .resolve(Some(ENT), "manager", Some("displayName"))
            .and_then(|r| r.sub)
            .expect("m");
        assert_eq!(md.mutability, Mutability::ReadOnly);
        assert!(
            GROUP
                .resolve(None, "displayName", None)
                .expect("dn")
                .attr
                .required
        );
        let addr = USER
            .resolve(None, "addresses", Some("postalCode"))
            .expect("addr");
        assert!(addr.attr.multi_valued);
        for n in [
            "name",
            "displayName",
            "nickName",
            "profileUrl",
            "title",
            "userType",
            "preferredLanguage",
            "locale",
            "timezone",
            "active",
            "emails",
            "phoneNumbers",
            "ims",
            "photos",
            "addresses",
            "entitlements",
            "roles",
            "x509Certificates",
        ] {
            assert!(USER.resolve(None, n, None).is_some(), "{n}");
        }
        for n in [
            "employeeNumber",
            "costCenter",
            "organization",
            "division",
            "department",
        ] {
            assert!(USER.resolve(Some(ENT), n, None).is_some(), "{n}");
        }
    }

    #[test]
    fn schemas_representation() {
        let all = schemas_json("https://scim.example.com/v2/");
        assert_eq!(all.len(), 3);
        let ids: Vec<&str> = all.iter().filter_map(|s| s["id"].as_str()).collect();
        assert_eq!(ids, [USER_SCHEMA, ENT, GROUP_SCHEMA]);
        let user = &all[0];
        assert_eq!(user["schemas"][0], SCHEMA_SCHEMA);
        assert_eq!(
            user["meta"]["location"],
            "https://scim.example.com/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"
        );
        let attrs = user["attributes"].as_array().expect("attributes");
        let un = attrs
            .iter()
            .find(|a| a["name"] == "userName")
            .expect("userName");
        assert_eq!(un["type"], "string");
        assert_eq!(un["required"], true);
        assert_eq!(un["uniqueness"], "server");
        let emails = attrs
            .iter()
            .find(|a| a["name"] == "emails")
            .expect("emails");
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["subAttributes"].as_array().map(Vec::len), Some(4));
        let pw = attrs
            .iter()
            .find(|a| a["name"] == "password")
            .expect("password");
        assert_eq!(pw["returned"], "never");
        assert_eq!(pw["mutability"], "writeOnly");
        assert!(attrs.iter().all(|a| a["name"] != "id"));
        let group = &all[2];
        let members = group["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == "members"));
        let m = members.expect("members");
        let r = m["subAttributes"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == "$ref"));
        assert_eq!(r.expect("$ref")["referenceTypes"], json!(["User", "Group"]));
        assert!(
            schema_json_by_id("URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:GROUP", "http://x").is_some()
        );
    }

    #[test]
    fn resource_types_representation() {
        let rts = resource_types_json("https://h/scim/v2");
        assert_eq!(rts.len(), 2);
        assert_eq!(rts[0]["schemas"][0], RESOURCE_TYPE_SCHEMA);
        assert_eq!(rts[0]["endpoint"], "/Users");
        assert_eq!(rts[0]["schema"], USER_SCHEMA);
        assert_eq!(
            rts[0]["schemaExtensions"],
            json!([{"schema": ENT, "required": false}])
        );
        assert_eq!(
            rts[0]["meta"]["location"],
            "https://h/scim/v2/ResourceTypes/User"
        );
        assert_eq!(rts[1]["id"], "Group");
        assert_eq!(rts[1]["schemaExtensions"], json!([]));
        assert_eq!(resource_type("users").map(|r| r.name), None);
        assert_eq!(resource_type("group").map(|r| r.endpoint), Some("/Groups"));
    }

    #[test]
    fn split_table() {
        let cases = [
            ("a", (None, "a", None)),
            ("a.b", (None, "a", Some("b"))),
            ("urn:x:2.0:U:a.b", (Some("urn:x:2.0:U"), "a", Some("b"))),
            ("urn:x:2.0:U", (Some("urn:x:2.0"), "U", None)),
        ];
        for (s, exp) in cases {
            assert_eq!(split_attr_ref(s), exp, "{s}");
        }
    }
}
