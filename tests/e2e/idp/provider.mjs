// OpenID provider for the browser end-to-end tests: panva's oidc-provider (OpenID Certified) on loopback.
//
// Usage: node provider.mjs [--port N] [--host 127.0.0.1] [--client JSON]
//   or the environment: E2E_IDP_PORT, E2E_IDP_HOST, E2E_IDP_CLIENT.
// Port 0 picks a free port; the issuer it ends up on is printed as "ready <issuer>" once listening.
// The client JSON (one object, or an array of them for several relying parties) holds client_id,
// client_secret, redirect_uris, post_logout_redirect_uris and backchannel_logout_uri, so the tests
// decide where each relying party listens.
// Test-only: dev interactions accept any password, keys are made fresh in memory on every start.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

// Three people: staff, an admin, and someone outside the allowed groups.
const ACCOUNTS = {
  alice: { name: 'Alice Staff', email: 'alice@example.test', groups: ['staff'] },
  carol: { name: 'Carol Admin', email: 'carol@example.test', groups: ['staff', 'chat-admins'] },
  mallory: { name: 'Mallory Outside', email: 'mallory@example.test', groups: ['contractors'] },
};

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/;

function readOptions() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.E2E_IDP_PORT ?? '0' },
      host: { type: 'string', default: process.env.E2E_IDP_HOST ?? '127.0.0.1' },
      client: { type: 'string', default: process.env.E2E_IDP_CLIENT },
    },
  });
  if (!LOOPBACK.test(values.host)) throw new Error(`refusing to listen on non-loopback ${values.host}`);
  if (!values.client) throw new Error('client configuration missing: pass --client JSON or E2E_IDP_CLIENT');
  const clients = [].concat(JSON.parse(values.client));
  for (const client of clients) {
    for (const key of ['client_id', 'client_secret', 'redirect_uris']) {
      if (!client[key]) throw new Error(`client configuration lacks ${key}`);
    }
  }
  return { port: Number(values.port), host: values.host, clients };
}

async function findAccount(ctx, id) {
  const person = ACCOUNTS[id];
  // Unknown login names get no account, so the IdP refuses them instead of inventing a user.
  if (!person) return undefined;
  return {
    accountId: id,
    async claims() {
      return { sub: id, email: person.email, email_verified: true, name: person.name, groups: person.groups };
    },
  };
}

// oidc-provider's SSRF guard refuses loopback, where the test RPs listen; allow loopback and nothing else.
async function loopbackFetch(url, options) {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  if (!LOOPBACK.test(host)) throw new Error(`refusing to fetch non-loopback ${host}`);
  const { dispatcher, ...rest } = options;
  return fetch(url, rest);
}

function configuration(clients) {
  const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  return {
    clients: clients.map((client) => ({
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      post_logout_redirect_uris: [],
      ...client,
    })),
    pkce: { required: () => true },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    // Put the scope's claims in the ID token itself, where the app reads them.
    conformIdTokenClaims: false,
    findAccount,
    fetch: loopbackFetch,
    jwks: { keys: [{ ...signingKey, kid: 'e2e', use: 'sig', alg: 'RS256' }] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: true },
    },
  };
}

// The stock pages import a web font from the internet; the tests run offline, so drop it.
async function offlinePages(ctx, next) {
  await next();
  if (typeof ctx.body === 'string' && ctx.response.is('html')) {
    ctx.body = ctx.body.replace(/@import url\(https?:[^)]*\);?/g, '');
  }
}

function main() {
  const { port, host, clients } = readOptions();
  const server = createServer();
  server.listen(port, host, () => {
    const issuer = `http://${host.includes(':') ? `[${host}]` : host}:${server.address().port}`;
    const provider = new Provider(issuer, configuration(clients));
    provider.use(offlinePages);
    provider.on('server_error', (ctx, err) => console.error('server_error', err));
    provider.on('backchannel.error', (ctx, err) => console.error('backchannel.error', err.message, err.cause?.message ?? ''));
    server.on('request', provider.callback());
    console.log(`ready ${issuer}`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
