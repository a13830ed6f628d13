-- Single sign-on: the organization's connections to its IdP, the email domains that find them,
-- sign-ins in flight, the SAML replay cache, and what idbridge needs as an OpenID provider for the
-- SaaS (registered clients, authorization codes, access tokens, signing keys). Everything a login
-- needs between two requests is here, so any replica can finish what another started.

CREATE TABLE sso_connections (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,              -- 'oidc' or 'saml'
    name        TEXT NOT NULL,
    -- The connection's settings as JSON, without secrets.
    config      TEXT NOT NULL,
    -- The OIDC client secret, sealed with the configured secrets key (never in clear).
    secret      TEXT,
    -- Just-in-time provisioning: a first sign-in creates the organization user.
    jit         BOOLEAN NOT NULL,
    enabled     BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX sso_connections_org ON sso_connections(org_id, id);

-- Email domains an organization has verified, for home-realm discovery. A domain belongs to one
-- organization at most.
CREATE TABLE org_domains (
    domain         TEXT COLLATE "C" PRIMARY KEY,     -- lower case
    org_id         TEXT COLLATE "C" NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    connection_id  TEXT COLLATE "C" REFERENCES sso_connections(id) ON DELETE SET NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX org_domains_org ON org_domains(org_id);

-- A sign-in between our redirect to the IdP and its answer, keyed by the hash of the state
-- (OIDC) or RelayState (SAML) we sent; taken once.
CREATE TABLE sso_flows (
    state_hash     TEXT COLLATE "C" PRIMARY KEY,
    connection_id  TEXT COLLATE "C" NOT NULL REFERENCES sso_connections(id) ON DELETE CASCADE,
    -- nonce, PKCE verifier, SAML request id, and the SaaS's authorization request if any (JSON).
    data           TEXT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX sso_flows_expiry ON sso_flows(expires_at);

-- Assertion ids seen, until they would expire anyway (SAML Profiles 4.1.4.5).
CREATE TABLE saml_replay (
    connection_id  TEXT COLLATE "C" NOT NULL,
    assertion_id   TEXT COLLATE "C" NOT NULL,
    expires_at     BIGINT NOT NULL,
    PRIMARY KEY (connection_id, assertion_id)
);
CREATE INDEX saml_replay_expiry ON saml_replay(expires_at);

ALTER TABLE sessions ADD COLUMN connection_id TEXT COLLATE "C";

-- Applications that sign users in through idbridge. A client of one organization signs in only
-- that organization's users; a client without one (registered by the operator) any.
CREATE TABLE oauth_clients (
    id             TEXT COLLATE "C" PRIMARY KEY,
    org_id         TEXT COLLATE "C" REFERENCES organizations(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    redirect_uris  TEXT NOT NULL,           -- JSON array, compared exactly
    secret_hash    TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);
CREATE INDEX oauth_clients_org ON oauth_clients(org_id);

CREATE TABLE oauth_codes (
    code_hash   TEXT COLLATE "C" PRIMARY KEY,
    client_id   TEXT COLLATE "C" NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    -- redirect_uri, nonce, PKCE challenge, scope (JSON).
    data        TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE oauth_tokens (
    token_hash  TEXT COLLATE "C" PRIMARY KEY,
    client_id   TEXT COLLATE "C" NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX oauth_tokens_session ON oauth_tokens(session_id);

-- Our id_token signing keys. The newest unretired key signs; a retired key stays published in
-- the JWKS until the tokens it signed have expired.
CREATE TABLE signing_keys (
    kid          TEXT COLLATE "C" PRIMARY KEY,
    private_key  TEXT NOT NULL,             -- PKCS#8 PEM, sealed with the secrets key
    public_jwk   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    retired_at   BIGINT
);
