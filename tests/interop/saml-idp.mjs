// Test SAML 2.0 Identity Provider for idbridge integration tests (samlify 2.x).
//
// Environment:
//   PORT           listen on 127.0.0.1:PORT (required)
//   IDP_ENTITY_ID  IdP entity ID / Issuer (default http://127.0.0.1:PORT/metadata)
//   KEY_FILE       PEM private key used to sign assertions (required)
//   CERT_FILE      PEM certificate published in the metadata (required)
//   SP_ENTITY_ID   the service provider (idbridge) entity ID = Audience (required)
//   SP_ACS_URL     the SP's assertion consumer service URL (HTTP-POST) (required)
//   USER           JSON: {"nameId":"alice@example.com","email":"alice@example.com",
//                         "name":"Alice A","groups":["Engineering","Admins"]}
//
// Endpoints:
//   GET /metadata   IdP metadata XML
//   GET /sso        HTTP-Redirect binding: SAMLRequest (deflated, base64,
//                   unsigned) [+ RelayState] -> 200 HTML with an auto-post
//                   form carrying a SAMLResponse that answers the request
//   GET /initiate   [?RelayState=...] -> the same form with an unsolicited
//                   response (IdP-initiated login, no InResponseTo)
//
// The Assertion is signed (RSA-SHA256, SHA-256 digest, exclusive c14n); the
// Response envelope is not signed.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import * as samlify from 'samlify';

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`saml-idp: missing environment variable ${name}`);
    process.exit(2);
  }
  return v;
}

const PORT = Number(required('PORT'));
const BASE = `http://127.0.0.1:${PORT}`;
const IDP_ENTITY_ID = process.env.IDP_ENTITY_ID || `${BASE}/metadata`;
const PRIVATE_KEY = fs.readFileSync(required('KEY_FILE'), 'utf8');
const CERT = fs.readFileSync(required('CERT_FILE'), 'utf8');
const SP_ENTITY_ID = required('SP_ENTITY_ID');
const SP_ACS_URL = required('SP_ACS_URL');
const USER = JSON.parse(required('USER'));
// idbridge's encryption certificate (PEM), from its SP metadata: when set, assertions are signed
// and then encrypted to it (RSA-OAEP, AES-256-CBC: what Okta and Entra send).
const SP_ENCRYPTION_CERT = process.env.SP_ENCRYPTION_CERT || '';

const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
const EMAIL_FORMAT = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';

// This is a test IdP: the SAMLRequest it receives comes from the system under
// test on 127.0.0.1, so an accept-everything schema validator is acceptable
// here (samlify refuses to parse anything without one). Basic structural
// checks on the AuthnRequest are done by hand in handleSso() instead.
samlify.setSchemaValidator({ validate: async () => 'skipped' });

// samlify warns on stderr that there is no SingleLogoutService; this test
// IdP has none on purpose, so that one warning is muted while constructing.
const consoleWarn = console.warn;
console.warn = () => {};
const idp = samlify.IdentityProvider({
  entityID: IDP_ENTITY_ID,
  signingCert: CERT,
  privateKey: PRIVATE_KEY,
  wantAuthnRequestsSigned: false,
  requestSignatureAlgorithm: RSA_SHA256, // also picks the SHA-256 digest
  isAssertionEncrypted: Boolean(SP_ENCRYPTION_CERT),
  dataEncryptionAlgorithm: 'http://www.w3.org/2001/04/xmlenc#aes256-cbc',
  keyEncryptionAlgorithm: 'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p',
  nameIDFormat: [EMAIL_FORMAT],
  singleSignOnService: [{
    Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
    Location: `${BASE}/sso`,
  }],
});
console.warn = consoleWarn;

const sp = samlify.ServiceProvider({
  entityID: SP_ENTITY_ID,
  assertionConsumerService: [{
    Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST',
    Location: SP_ACS_URL,
  }],
  authnRequestsSigned: false,
  ...(SP_ENCRYPTION_CERT ? { encryptCert: SP_ENCRYPTION_CERT, isAssertionEncrypted: true } : {}),
  wantAssertionsSigned: true, // samlify signs the Assertion ...
  wantMessageSigned: false, //   ... and leaves the Response unsigned
  transformationAlgorithms: [
    'http://www.w3.org/2000/09/xmldsig#enveloped-signature',
    'http://www.w3.org/2001/10/xml-exc-c14n#',
  ],
});

const xmlEscape = (s) => String(s)
  .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
  .replace(/"/g, '&quot;').replace(/'/g, '&apos;');
const htmlEscape = (s) => String(s)
  .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
  .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
const newId = () => `_${crypto.randomBytes(20).toString('hex')}`;

function attribute(name, values) {
  const vals = (Array.isArray(values) ? values : [values])
    .map((v) => `<saml:AttributeValue xsi:type="xs:string">${xmlEscape(v)}</saml:AttributeValue>`)
    .join('');
  return `<saml:Attribute Name="${xmlEscape(name)}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">${vals}</saml:Attribute>`;
}

// Full Response built by hand (samlify's default template has no SessionIndex
// and would always print an InResponseTo attribute); samlify then signs the
// Assertion through its customTagReplacement hook.
function buildResponseXml(inResponseTo) {
  const now = new Date();
  const issueInstant = now.toISOString();
  const notOnOrAfter = new Date(now.getTime() + 5 * 60 * 1000).toISOString();
  const irt = inResponseTo ? ` InResponseTo="${xmlEscape(inResponseTo)}"` : '';
  const attrs = [];
  if (USER.email !== undefined) attrs.push(attribute('email', USER.email));
  if (USER.name !== undefined) attrs.push(attribute('name', USER.name));
  if (USER.groups !== undefined) attrs.push(attribute('groups', USER.groups));
  return '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"'
    + ` ID="${newId()}" Version="2.0" IssueInstant="${issueInstant}" Destination="${xmlEscape(SP_ACS_URL)}"${irt}>`
    + `<saml:Issuer>${xmlEscape(IDP_ENTITY_ID)}</saml:Issuer>`
    + '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
    + '<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema"'
    + ` ID="${newId()}" Version="2.0" IssueInstant="${issueInstant}">`
    + `<saml:Issuer>${xmlEscape(IDP_ENTITY_ID)}</saml:Issuer>`
    + '<saml:Subject>'
    + `<saml:NameID Format="${EMAIL_FORMAT}">${xmlEscape(USER.nameId)}</saml:NameID>`
    + '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
    + `<saml:SubjectConfirmationData NotOnOrAfter="${notOnOrAfter}" Recipient="${xmlEscape(SP_ACS_URL)}"${irt}/>`
    + '</saml:SubjectConfirmation>'
    + '</saml:Subject>'
    + `<saml:Conditions NotBefore="${issueInstant}" NotOnOrAfter="${notOnOrAfter}">`
    + `<saml:AudienceRestriction><saml:Audience>${xmlEscape(SP_ENTITY_ID)}</saml:Audience></saml:AudienceRestriction>`
    + '</saml:Conditions>'
    + `<saml:AuthnStatement AuthnInstant="${issueInstant}" SessionIndex="${newId()}">`
    + '<saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext>'
    + '</saml:AuthnStatement>'
    + (attrs.length ? `<saml:AttributeStatement>${attrs.join('')}</saml:AttributeStatement>` : '')
    + '</saml:Assertion>'
    + '</samlp:Response>';
}

async function samlResponse(requestInfo, inResponseTo) {
  const { context } = await idp.createLoginResponse(sp, requestInfo, 'post', {}, {
    customTagReplacement: () => ({ id: '', context: buildResponseXml(inResponseTo) }),
  });
  return context; // base64 of the XML with the signed Assertion
}

function formPage(samlResponseB64, relayState) {
  const relay = relayState
    ? `<input type="hidden" name="RelayState" value="${htmlEscape(relayState)}"/>`
    : '';
  const form = `<form method="post" action="${htmlEscape(SP_ACS_URL)}">`
    + `<input type="hidden" name="SAMLResponse" value="${htmlEscape(samlResponseB64)}"/>`
    + `${relay}</form>`;
  return `<!DOCTYPE html>\n<html><head><title>SAML POST</title></head><body onload="document.forms[0].submit()">\n${form}\n</body></html>\n`;
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

async function handleSso(url, res) {
  const SAMLRequest = url.searchParams.get('SAMLRequest');
  const RelayState = url.searchParams.get('RelayState');
  if (!SAMLRequest) return send(res, 400, 'text/plain', 'missing SAMLRequest\n');
  let info;
  try {
    // samlify decodes and inflates the value itself.
    info = await idp.parseLoginRequest(sp, 'redirect', {
      query: { SAMLRequest },
      octetString: '',
    });
  } catch (err) {
    return send(res, 400, 'text/plain', `bad SAMLRequest: ${err.message || err}\n`);
  }
  const xml = info.samlContent || '';
  const req = info.extract?.request || {};
  const problems = [];
  if (!/^\s*(<\?xml[^>]*>\s*)?<([A-Za-z0-9_-]+:)?AuthnRequest[\s>]/.test(xml)) problems.push('root element is not AuthnRequest');
  if (!xml.includes('urn:oasis:names:tc:SAML:2.0:protocol')) problems.push('not in the SAML 2.0 protocol namespace');
  if (!req.id) problems.push('no ID');
  if (!/\sVersion="2\.0"/.test(xml)) problems.push('Version is not 2.0');
  if (!req.issueInstant) problems.push('no IssueInstant');
  if (info.extract?.issuer !== SP_ENTITY_ID) problems.push(`Issuer ${JSON.stringify(info.extract?.issuer)} is not ${SP_ENTITY_ID}`);
  if (req.assertionConsumerServiceUrl && req.assertionConsumerServiceUrl !== SP_ACS_URL) {
    problems.push(`AssertionConsumerServiceURL ${req.assertionConsumerServiceUrl} is not ${SP_ACS_URL}`);
  }
  if (problems.length) return send(res, 400, 'text/plain', `bad AuthnRequest: ${problems.join('; ')}\n`);

  const b64 = await samlResponse(info, req.id);
  return send(res, 200, 'text/html; charset=utf-8', formPage(b64, RelayState));
}

async function handleInitiate(url, res) {
  const b64 = await samlResponse({}, null);
  return send(res, 200, 'text/html; charset=utf-8', formPage(b64, url.searchParams.get('RelayState')));
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, BASE);
    if (req.method !== 'GET') return send(res, 405, 'text/plain', 'method not allowed\n');
    switch (url.pathname) {
      case '/metadata':
        return send(res, 200, 'application/samlmetadata+xml', idp.getMetadata());
      case '/sso':
        return await handleSso(url, res);
      case '/initiate':
        return await handleInitiate(url, res);
      default:
        return send(res, 404, 'text/plain', 'not found\n');
    }
  } catch (err) {
    console.error('saml-idp error:', err);
    if (!res.headersSent) send(res, 500, 'text/plain', `error: ${err.message}\n`);
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
