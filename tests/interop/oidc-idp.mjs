// Test OpenID Provider for idbridge integration tests (oidc-provider 9.x).
//
// Environment:
//   PORT           listen on 127.0.0.1:PORT (required)
//   ISSUER         issuer identifier (default http://127.0.0.1:PORT)
//   CLIENT_ID      the single registered client (default idbridge)
//   CLIENT_SECRET  its secret (default idbridge-secret)
//   REDIRECT_URI   the relying party's callback, matched exactly (required)
//   ACCOUNTS       JSON object accountId -> claims, e.g.
//                  {"alice":{"email":"alice@example.com","name":"Alice A","groups":["Engineering","Admins"]}}
//
// Login is non-interactive enough for plain HTTP: the built-in dev
// interactions are replaced by two routes of our own (see README.md):
//   GET  /interaction/:uid        a minimal HTML login form
//   POST /interaction/:uid/login  form field login=<accountId>; any password.
//                                 Finishes login AND grants consent for all
//                                 requested scopes/claims (no consent step).
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`oidc-idp: missing environment variable ${name}`);
    process.exit(2);
  }
  return v;
}

const PORT = Number(required('PORT'));
const ISSUER = process.env.ISSUER || `http://127.0.0.1:${PORT}`;
const CLIENT_ID = process.env.CLIENT_ID || 'idbridge';
const CLIENT_SECRET = process.env.CLIENT_SECRET || 'idbridge-secret';
const REDIRECT_URI = required('REDIRECT_URI');
const ACCOUNTS = JSON.parse(process.env.ACCOUNTS || '{}');

// Fresh RS256 signing key for every run (no reliance on the dev keys).
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: crypto.randomBytes(8).toString('hex'),
  use: 'sig',
  alg: 'RS256',
};

const configuration = {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [REDIRECT_URI],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    // client_secret_basic is the registered method; client_secret_post is
    // accepted too through the provider-wide allow list below.
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
    // 'web' + http loopback redirect URI is fine for the code flow.
    application_type: 'web',
  }],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  jwks: { keys: [signingJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  // Every custom key here also becomes a scope ("groups").
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  // Without this, oidc-provider (default true) puts scope-requested claims
  // only in the userinfo response when an access token is also issued; with
  // false they are ALSO in the ID token, which is what idbridge reads.
  conformIdTokenClaims: false,
  // PKCE (S256, the only method oidc-provider 9 supports) for every client,
  // not just public ones (the 9.x default only requires it for public clients).
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
  },
  interactions: {
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  async findAccount(ctx, sub) {
    const claims = ACCOUNTS[sub];
    if (!claims) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          email_verified: claims.email ? true : undefined,
          ...claims,
          sub,
        };
      },
    };
  },
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 120,
    IdToken: 600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
};

const provider = new Provider(ISSUER, configuration);
// Plain http on 127.0.0.1 only; no reverse proxy in front.
provider.proxy = false;
// Keep stderr quiet unless something goes wrong.
provider.on('server_error', (ctx, err) => console.error('oidc-idp server_error:', err));

const htmlEscape = (s) => String(s)
  .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
  .replace(/"/g, '&quot;').replace(/'/g, '&#39;');

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { body += c; if (body.length > 65536) req.destroy(); });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

async function interactionRoutes(req, res, url) {
  const m = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!m) return false;
  const [, uid, login] = m;

  if (req.method === 'GET' && !login) {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) return send(res, 400, 'text/plain', 'interaction mismatch\n'), true;
    send(res, 200, 'text/html; charset=utf-8', `<!DOCTYPE html>
<html><head><title>Sign-in</title></head><body>
<form method="post" action="/interaction/${htmlEscape(uid)}/login">
<input name="login" placeholder="account id" autofocus/>
<input name="password" type="password" placeholder="any password"/>
<button type="submit">Sign in</button>
</form></body></html>
`);
    return true;
  }

  if (req.method === 'POST' && login) {
    const form = await readForm(req);
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) return send(res, 400, 'text/plain', 'interaction mismatch\n'), true;
    const accountId = form.get('login') || '';
    if (!Object.hasOwn(ACCOUNTS, accountId)) {
      await provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'unknown account',
      }, { mergeWithLastSubmission: false });
      return true;
    }
    // Auto-consent: grant every requested scope and claim.
    const { params } = details;
    const grant = new provider.Grant({ accountId, clientId: params.client_id });
    if (params.scope) grant.addOIDCScope(params.scope);
    if (params.claims) {
      const requested = JSON.parse(params.claims);
      const names = new Set();
      for (const part of ['id_token', 'userinfo']) {
        for (const name of Object.keys(requested[part] || {})) names.add(name);
      }
      if (names.size) grant.addOIDCClaims([...names]);
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, {
      login: { accountId },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
    return true;
  }
  return false;
}

const providerCallback = provider.callback();

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, ISSUER);
    if (url.pathname.startsWith('/interaction/')) {
      if (await interactionRoutes(req, res, url)) return;
      send(res, 404, 'text/plain', 'not found\n');
      return;
    }
    providerCallback(req, res);
  } catch (err) {
    console.error('oidc-idp error:', err);
    if (!res.headersSent) send(res, 400, 'text/plain', `${err.name || 'error'}: ${err.message}\n`);
    else res.end();
  }
});

server.listen(PORT, '127.0.0.1', () => {
  process.stdout.write(`ready http://127.0.0.1:${PORT}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
