// A real third-party OpenID Provider for Gatehouse's interop tests: panva's oidc-provider,
// configured the way a Kong user might run it, plus what it does not ship and the tests need (a
// resource owner password grant and a key-rotation knob).
//
//   node provider.mjs [PORT]     (PORT 0 or absent: a free port; PORT env works too)
//
// Prints exactly one line on stdout once listening:
//   interop provider ready: http://127.0.0.1:PORT
// Everything else (oidc-provider's notices included) goes to stderr.
//
// Users: john/doe, jane/roe, and short/lived, whose access tokens live 2 s.
//
// Clients (all may use the password, client_credentials and refresh_token grants):
// - `gatehouse`/`gatehouse-secret` (client_secret_basic or _post) and `assertion` (client_secret_jwt)
//   default to the resource `urn:gatehouse:api` (audience `api`), so every grant they make returns
//   a JWT access token signed RS256. `resource=urn:gatehouse:api:es256` gives the same audience
//   signed ES256.
// - `opaque`/`opaque-secret` has no default resource. In oidc-provider an access token without a
//   resource is opaque and is the only kind its userinfo endpoint accepts (a token with an
//   audience is "not for userinfo"); introspection and revocation refuse JWTs outright
//   ("structured tokens"), so opaque tokens are also what introspection needs. Only the client a
//   token was issued to may revoke it.
// - Open dynamic registration at `/reg`, for clients with their own keys (private_key_jwt), and
//   for the browser test's client: the gateway's callback and post-logout URLs carry a port the
//   gateway picks when it starts, after this provider, so that test registers them at `/reg`.
//
// Browser sign-in uses oidc-provider's own development pages (devInteractions, on by default):
// a login page, then a consent page. Their login field is taken as the account id as typed, with
// any password, so a browser types `u-1001` for john. Teaching findAccount usernames would not
// do: the session would hold `john` while the account says `u-1001`, and oidc-provider refuses
// the grant made at consent ("accountId mismatch").
//
// Access tokens for a user carry the profile claims (`extraTokenClaims`), so claim headers can
// come from the access token alone; introspection answers carry them too. ID tokens carry the
// claims of the scopes asked (`profile`, `email`); with Kong's default `openid` alone, only `sub`.
//
// Test-only endpoint: `POST /_test/rotate` makes new RSA and EC keys current (new kids sign from
// then on) and keeps the old ones published.

import * as http from 'node:http';
import { Provider, errors } from 'oidc-provider';
// Not part of the public API (the version is pinned): the quick-start memory adapter's factory,
// so that the Providers made by key rotation share one store (see build below).
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';
import { exportJWK, generateKeyPair } from 'jose';

// oidc-provider prints its "you SHOULD change this default" notices with console.info, on
// stdout; the ready line must be the only thing there.
console.info = console.warn;

const API = 'urn:gatehouse:api';
const API_ES256 = 'urn:gatehouse:api:es256';

const USERS = {
  // `sub` differs from the username on purpose: a claim header for `preferred_username` that
  // shows `john` was read from that claim, not from `sub`.
  john: {
    password: 'doe',
    sub: 'u-1001',
    profile: {
      preferred_username: 'john', given_name: 'John', family_name: 'Doe', email: 'john@example.com', email_verified: true,
    },
  },
  jane: {
    password: 'roe',
    sub: 'u-1002',
    profile: {
      preferred_username: 'jane', given_name: 'Jane', family_name: 'Roe', email: 'jane@example.com', email_verified: true,
    },
  },
  // Access tokens that live 2 s, so a test can watch a session refresh them.
  short: {
    password: 'lived',
    sub: 'u-1003',
    accessTokenTTL: 2,
    profile: { preferred_username: 'short' },
  },
};
const bySub = (sub) => Object.values(USERS).find((u) => u.sub === sub);

// The signing keys, newest first: oidc-provider signs with the first key that fits the alg and
// publishes them all at its jwks_uri.
const keys = [];
let generation = 0;

async function newKeys() {
  generation += 1;
  const made = [];
  for (const [alg, opts] of [['RS256', { modulusLength: 2048 }], ['ES256', {}]]) {
    const { privateKey } = await generateKeyPair(alg, { ...opts, extractable: true });
    const jwk = await exportJWK(privateKey);
    made.push({ ...jwk, alg, use: 'sig', kid: `${alg.toLowerCase()}-${generation}` });
  }
  keys.unshift(...made);
  return made.map((k) => k.kid);
}

async function findAccount(ctx, sub) {
  const user = bySub(sub);
  if (!user) return undefined;
  return {
    accountId: sub,
    // oidc-provider filters these by the token's scopes (the `claims` config below).
    async claims() {
      return { sub, ...user.profile };
    },
  };
}

async function getResourceServerInfo(ctx, resource) {
  if (resource !== API && resource !== API_ES256) throw new errors.InvalidTarget();
  return {
    scope: 'api:read api:write',
    audience: 'api',
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: resource === API_ES256 ? 'ES256' : 'RS256' } },
  };
}

// oidc-provider has no resource owner password grant: this one issues what its own grants do
// (a Grant, a JWT access token for the resource, an ID token when `openid` is asked, a refresh
// token) so the built-in refresh_token grant, userinfo and introspection work with its tokens.
async function passwordGrant(ctx) {
  const { provider, client, params } = ctx.oidc;
  const user = Object.hasOwn(USERS, params.username) ? USERS[params.username] : undefined;
  if (!user || user.password !== params.password) {
    throw new errors.InvalidGrant('invalid username or password');
  }
  const requested = new Set((params.scope || 'openid').split(' ').filter(Boolean));
  const oidcScope = ['openid', 'offline_access', 'profile', 'email'].filter((s) => requested.has(s)).join(' ');

  if (Array.isArray(params.resource)) {
    throw new errors.InvalidTarget('only a single resource indicator value is supported for this grant type');
  }
  const resource = params.resource ?? defaultResource(ctx, client);
  const resourceServer = resource
    ? new provider.ResourceServer(resource, await getResourceServerInfo(ctx, resource))
    : undefined;
  const resourceScope = resourceServer ? [...requested].filter((s) => resourceServer.scopes.has(s)).join(' ') : '';

  const account = await findAccount(ctx, user.sub);
  ctx.oidc.entity('Account', account);

  const grant = new provider.Grant({ accountId: user.sub, clientId: client.clientId });
  if (oidcScope) grant.addOIDCScope(oidcScope);
  if (resource) grant.addResourceScope(resource, resourceScope);
  const grantId = await grant.save();
  ctx.oidc.entity('Grant', grant);

  const at = new provider.AccessToken({ accountId: user.sub, client, grantId, gty: 'password' });
  if (resourceServer) {
    at.resourceServer = resourceServer;
    at.scope = resourceScope || undefined;
  } else {
    at.scope = oidcScope || undefined;
  }
  ctx.oidc.entity('AccessToken', at);
  const accessToken = await at.save();

  let refreshToken;
  if (client.grantTypeAllowed('refresh_token')) {
    const rt = new provider.RefreshToken({
      accountId: user.sub,
      client,
      grantId,
      gty: 'password',
      resource,
      rotations: 0,
      scope: [oidcScope, resourceScope].filter(Boolean).join(' '),
      expiresWithSession: false, // there is no browser session behind this grant
    });
    ctx.oidc.entity('RefreshToken', rt);
    refreshToken = await rt.save();
  }

  let idToken;
  if (requested.has('openid')) {
    const token = new provider.IdToken({ ...(await account.claims()), sub: user.sub }, { ctx });
    token.scope = oidcScope;
    idToken = await token.issue({ use: 'idtoken' });
  }

  ctx.body = {
    access_token: accessToken,
    token_type: at.tokenType,
    expires_in: at.expiration,
    id_token: idToken,
    refresh_token: refreshToken,
    scope: at.scope,
  };
}

function defaultResource(ctx, client, oneOf) {
  if (oneOf) return oneOf;
  return client.clientId === 'opaque' ? undefined : API;
}

const adapter = createMemoryAdapter();

function configuration() {
  return {
    adapter,
    jwks: { keys },
    clients: [
      {
        client_id: 'gatehouse',
        client_secret: 'gatehouse-secret',
        // oidc-provider accepts client_secret_post for a client registered with
        // client_secret_basic (and the other way round): both are "the secret".
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code', 'refresh_token', 'client_credentials', 'password'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/callback'],
      },
      {
        // The client secret is the HMAC key of its client assertions (HS256).
        client_id: 'assertion',
        client_secret: 'assertion-secret-at-least-32-bytes-long',
        token_endpoint_auth_method: 'client_secret_jwt',
        grant_types: ['refresh_token', 'client_credentials', 'password'],
        response_types: [],
        redirect_uris: [],
      },
      {
        client_id: 'opaque',
        client_secret: 'opaque-secret',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['refresh_token', 'client_credentials', 'password'],
        response_types: [],
        redirect_uris: [],
      },
    ],
    findAccount,
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'given_name', 'family_name'],
      email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    // By default an ID token issued together with an access token usable at userinfo holds only
    // `sub`; Kong users expect the profile claims in the ID token.
    conformIdTokenClaims: false,
    extraTokenClaims(ctx, token) {
      const user = token.accountId && bySub(token.accountId);
      return user ? { ...user.profile } : undefined;
    },
    // Refresh tokens for any client allowed the grant, not only with `offline_access`.
    issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Every refresh returns a new refresh token and consumes the old one (reuse is refused).
    rotateRefreshToken: true,
    features: {
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      clientCredentials: { enabled: true },
      // Open dynamic client registration (RFC 7591), so a test can register a client with its own
      // keys (private_key_jwt).
      registration: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource,
        getResourceServerInfo,
        // A refresh keeps the refresh token's resource: without this, a refresh with `openid`
        // in scope and no `resource` parameter would return an opaque userinfo token.
        useGrantedResource: () => true,
      },
    },
    ttl: {
      AccessToken: (ctx, token) => bySub(token.accountId)?.accessTokenTTL ?? 300,
      ClientCredentials: 300,
      IdToken: 300,
      RefreshToken: 3600,
      Grant: 3600,
      Session: 3600,
      Interaction: 600,
    },
    cookies: { keys: ['interop-tests-only-not-a-secret'] },
    clientBasedCORS: () => false,
  };
}

// oidc-provider reads its keys once, when the Provider is made. Rotating makes a new Provider
// and swaps the request handler. oidc-provider 9 gives each Provider its own in-memory store
// when `adapter` is left unset; passing one shared memory adapter factory keeps grants and
// tokens issued before a rotation valid after it.
function build(issuer) {
  const provider = new Provider(issuer, configuration());
  provider.registerGrantType('password', passwordGrant, ['username', 'password', 'scope', 'resource'], ['resource']);
  // Why a grant was refused (oidc-provider answers only "grant request is invalid"), for the
  // log the Rust side prints when a test fails.
  provider.on('grant.error', (ctx, err) => console.error('grant.error:', err.message, err.error_detail ?? ''));
  provider.on('server_error', (ctx, err) => console.error('server_error:', err));
  return provider.callback();
}

await newKeys();
let handler;
const server = http.createServer(async (req, res) => {
  if (req.method === 'POST' && req.url === '/_test/rotate') {
    const kids = await newKeys();
    handler = build(issuer);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kids, published: keys.map((k) => k.kid) }));
    return;
  }
  handler(req, res);
});

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
await new Promise((resolve) => { server.listen(port, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${server.address().port}`;
handler = build(issuer);
process.stdout.write(`interop provider ready: ${issuer}\n`);
