// TLS front door: real clients over TLS terminated by frontdoor itself (--tls self-signed), trusting
// exactly the certificate frontdoor serves. pusher-js's Node transport (faye-websocket, bundled) takes
// no CA option, so the pusher clients run in a child Node whose NODE_EXTRA_CA_CERTS holds that
// certificate: verification stays on, as it would be in production.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:net';
import { mkdtempSync, writeFileSync, readFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFrontdoor, APP } from '../helpers.mjs';

const e2eDir = join(dirname(fileURLToPath(import.meta.url)), '..');

// Two long-lived self-signed fixtures (ECDSA P-256, localhost + 127.0.0.1, valid 2026–2126), test use only.
const FIXTURES = {
  a: {
    cert: `-----BEGIN CERTIFICATE-----
MIIBgDCCASWgAwIBAgIILCXJUZ6V8nowCgYIKoZIzj0EAwIwIjEgMB4GA1UEAxMX
ZnJvbnRkb29yIGUyZSBmaXh0dXJlIGEwIBcNMjYwMTAxMDAwMDAwWhgPMjEyNjAx
MDEwMDAwMDBaMCIxIDAeBgNVBAMTF2Zyb250ZG9vciBlMmUgZml4dHVyZSBhMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEwYiVGRqkBzGRVrOzaHhGKU1N2p5hp873
Dk4SOycOR+tGC0IRHLketnTVDeuU9YTtAPfh/bQwXMa+F6+gSmTwQaNDMEEwDgYD
VR0PAQH/BAQDAgeAMBMGA1UdJQQMMAoGCCsGAQUFBwMBMBoGA1UdEQQTMBGCCWxv
Y2FsaG9zdIcEfwAAATAKBggqhkjOPQQDAgNJADBGAiEAsdxL2JFVfoM4vTdjhTGj
SejpAExy2c52egDoCQQg0t4CIQDnGZC/B4DfQ70cjw+KnxqmqLSZrimp4I3g4WFh
88sAXw==
-----END CERTIFICATE-----
`,
    key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxBwNuQs/mBUdu58G
auxauWvdN0wC1wQtObG3L7bbYcihRANCAATBiJUZGqQHMZFWs7NoeEYpTU3anmGn
zvcOThI7Jw5H60YLQhEcuR62dNUN65T1hO0A9+H9tDBcxr4Xr6BKZPBB
-----END PRIVATE KEY-----
`,
  },
  b: {
    cert: `-----BEGIN CERTIFICATE-----
MIIBfzCCASSgAwIBAgIHOYGRAbaK5zAKBggqhkjOPQQDAjAiMSAwHgYDVQQDExdm
cm9udGRvb3IgZTJlIGZpeHR1cmUgYjAgFw0yNjAxMDEwMDAwMDBaGA8yMTI2MDEw
MTAwMDAwMFowIjEgMB4GA1UEAxMXZnJvbnRkb29yIGUyZSBmaXh0dXJlIGIwWTAT
BgcqhkjOPQIBBggqhkjOPQMBBwNCAATHQRTbJuO0bA6DhAegqGLFDSPPv/c7+Zlm
ZLlc7PSYHCffzN80XcMSjwCd9ODhXn9Vdt0cjJMiqlVdci+M1Na8o0MwQTAOBgNV
HQ8BAf8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwEwGgYDVR0RBBMwEYIJbG9j
YWxob3N0hwR/AAABMAoGCCqGSM49BAMCA0kAMEYCIQD7i/u7ljyiBLtAqB9JTn8S
J23N/OeRsLlweJN5F4JvOgIhAOYNAsY21zWmXB9KS6kc7b0IauQ9jZneo5Z4y+dC
osNN
-----END CERTIFICATE-----
`,
    key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgdD9QyJQq9SJVcXb1
ECKKaCk06CxphHVLrQ1uagSo2wChRANCAATHQRTbJuO0bA6DhAegqGLFDSPPv/c7
+ZlmZLlc7PSYHCffzN80XcMSjwCd9ODhXn9Vdt0cjJMiqlVdci+M1Na8
-----END PRIVATE KEY-----
`,
  },
};

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

// servedCertificate fetches the certificate frontdoor presents, as PEM, without trusting it yet.
function servedCertificate(port) {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const der = s.getPeerCertificate().raw;
      const alpn = s.alpnProtocol;
      s.end();
      const b64 = der.toString('base64').match(/.{1,64}/g).join('\n');
      resolve({ pem: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`, alpn });
    });
    s.on('error', reject);
  });
}

// startTLSFrontdoor runs frontdoor with a TLS listener and its :80 companion, plus the given args.
// Each gets its own --cert-cache (the self-signed certificate is kept there) unless args name one.
async function startTLSFrontdoor(args = []) {
  const httpsPort = await freePort();
  const httpPort = await freePort();
  const cache = args.includes('--cert-cache') ? [] : ['--cert-cache', mkdtempSync(join(tmpdir(), 'fd-cache-'))];
  const fd = await startFrontdoor({ args: ['--tls', 'self-signed', '--https-addr', `127.0.0.1:${httpsPort}`, '--http-addr', `127.0.0.1:${httpPort}`, ...cache, ...args] });
  const { pem, alpn } = await servedCertificate(httpsPort);
  const caFile = join(mkdtempSync(join(tmpdir(), 'fd-tls-')), 'frontdoor.pem');
  writeFileSync(caFile, pem);
  return { fd, httpsPort, httpPort, pem, caFile, alpn };
}

// The child: pusher-js subscribes over wss://, the pusher SDK publishes over https://, and every
// step is printed as a JSON line for the parent to check.
const clientScript = `
import Pusher from 'pusher-js';
import PusherServer from 'pusher';
import { connect } from 'node:tls';
const [port, id, key, secret, unavailableTimeout] = process.argv.slice(1);
const say = (o) => console.log(JSON.stringify(o));
Pusher.log = (msg) => say({ log: String(msg) });
// What this process's trust store says about the served certificate, independent of pusher-js.
await new Promise((resolve) => {
  const s = connect({ host: '127.0.0.1', port: +port, servername: 'localhost' }, () => { say({ probe: 'trusted' }); s.end(); resolve(); });
  s.on('error', (e) => { say({ probe: e.code }); resolve(); });
});
const p = new Pusher(key, { cluster: '', wsHost: '127.0.0.1', wsPort: +port, wssPort: +port, forceTLS: true,
  enabledTransports: ['ws', 'wss'], disableStats: true, unavailableTimeout: +unavailableTimeout });
p.connection.bind('state_change', (s) => { say({ state: s.current }); if (s.current === 'unavailable') process.exit(4); });
// Any connection error ends the run: over TLS it is a refused certificate, never a retry.
p.connection.bind('error', (e) => { say({ error: String(e?.error?.data?.message ?? e?.error?.message ?? e?.type ?? e) }); process.exit(3); });
// The event can arrive before the publisher's HTTP response does: the run ends only when both
// happened, or exiting on the event would cut off the 'published' line.
const done = { published: false, received: false };
const finish = (step) => { done[step] = true; if (done.published && done.received) { p.disconnect(); process.exit(0); } };
p.connection.bind('connected', () => {
  say({ connected: p.connection.socket_id, tls: p.config.useTLS });
  const ch = p.subscribe('orders');
  ch.bind('pusher:subscription_succeeded', async () => {
    say({ subscribed: true });
    const api = new PusherServer({ appId: id, key, secret, host: '127.0.0.1', port, useTLS: true });
    const res = await api.trigger('orders', 'shipped', { order: 7, via: 'https API' });
    say({ published: res.status });
    finish('published');
  });
  ch.bind('shipped', (data) => { say({ received: data }); finish('received'); });
});
setTimeout(() => { say({ timeout: true }); process.exit(2); }, 20000);
`;

function runClient(caFile, port, unavailableTimeout = 10000) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', clientScript, String(port), APP.id, APP.key, APP.secret, String(unavailableTimeout)], {
      cwd: e2eDir, env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, lines: out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)), stderr: err }));
  });
}

test('pusher-js subscribes over wss:// and receives an event published over https://', async () => {
  const { fd, httpsPort, caFile, alpn } = await startTLSFrontdoor();
  try {
    assert.equal(alpn, 'http/1.1', 'ALPN must offer only what fasthttp serves');
    const { code, lines, stderr } = await runClient(caFile, httpsPort);
    assert.equal(code, 0, `client failed: ${JSON.stringify(lines)}\n${stderr}\n${fd.log()}`);
    assert.deepEqual(lines.find((l) => 'probe' in l), { probe: 'trusted' });
    const conn = lines.find((l) => 'connected' in l);
    assert.equal(conn.tls, true);
    assert.match(conn.connected, /^\d+\.\d+$/);
    assert.ok(lines.some((l) => l.log?.includes(`"url":"wss://127.0.0.1:${httpsPort}/app/${APP.key}?`)), 'the socket URL is wss://');
    assert.deepEqual(lines.find((l) => 'published' in l), { published: 200 });
    assert.deepEqual(lines.find((l) => 'received' in l), { received: { order: 7, via: 'https API' } });
  } finally { await fd.stop(); }
});

test('the same client refuses the connection when it does not trust the certificate', async () => {
  const { fd, httpsPort } = await startTLSFrontdoor();
  const other = await startTLSFrontdoor(); // a different self-signed certificate
  try {
    // pusher-js reports no TLS error, it just never connects: a short unavailableTimeout ends the run.
    const { code, lines } = await runClient(other.caFile, httpsPort, 2000);
    assert.notEqual(lines.find((l) => 'probe' in l)?.probe, 'trusted');
    assert.equal(code, 4, `want pusher-js to give up (unavailable) while trusting another certificate: ${JSON.stringify(lines)}`);
    assert.equal(lines.some((l) => 'connected' in l), false);
  } finally { await fd.stop(); await other.fd.stop(); }
});

test('--tls self-signed serves the same certificate after a restart with the same --cert-cache', async () => {
  const cache = mkdtempSync(join(tmpdir(), 'fd-cache-'));
  const first = await startTLSFrontdoor(['--cert-cache', cache]);
  await first.fd.stop();
  const second = await startTLSFrontdoor(['--cert-cache', cache]);
  try {
    assert.equal(second.pem, first.pem, 'a restart made a new self-signed certificate: every start would need trusting again');
    assert.match(second.fd.log(), /reusing the one kept/);
  } finally { await second.fd.stop(); }
});

test('a proxied request over TLS reaches the upstream with X-Forwarded-Proto https and gets HSTS; :80 redirects with 308', async () => {
  let seen;
  const upstream = createHttpServer((req, res) => {
    seen = { url: req.url, method: req.method, headers: req.headers };
    res.setHeader('Content-Type', 'text/plain');
    res.end('from upstream');
  });
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  const { fd, httpsPort, httpPort, pem } = await startTLSFrontdoor(['--upstream', `http://127.0.0.1:${upstream.address().port}`, '--hsts', '24h']);
  try {
    const res = await new Promise((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: httpsPort, path: '/dashboard?tab=orders', method: 'GET', ca: pem, servername: 'localhost',
        headers: { Host: `localhost:${httpsPort}` } }, (r) => {
        let body = '';
        r.on('data', (d) => { body += d; });
        r.on('end', () => resolve({ status: r.statusCode, body, hsts: r.headers['strict-transport-security'] }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(res.status, 200, fd.log());
    assert.equal(res.body, 'from upstream');
    assert.equal(res.hsts, 'max-age=86400', '--hsts adds Strict-Transport-Security over TLS');
    assert.equal(seen.url, '/dashboard?tab=orders');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');

    // Plain HTTP on the :80 listener: 308 to https://, path and query kept, method preserved.
    const redirect = await new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: httpPort, path: '/login?next=%2Fhome', method: 'POST', headers: { Host: 'localhost' } }, (r) => {
        r.resume();
        r.on('end', () => resolve({ status: r.statusCode, location: r.headers.location, hsts: r.headers['strict-transport-security'] }));
      });
      req.on('error', reject);
      req.end('a=1');
    });
    assert.equal(redirect.status, 308);
    assert.equal(redirect.location, `https://localhost:${httpsPort}/login?next=%2Fhome`);
    assert.equal(redirect.hsts, undefined, 'HSTS is never sent over plain HTTP (RFC 6797 §7.2)');
  } finally {
    await fd.stop();
    upstream.close();
  }
});

// Certificate files: SIGHUP loads replaced files at once, a replacement alone is noticed within
// seconds, and a connection opened before either keeps working (issue #6, item 4).
test('--tls-cert/--tls-key reload on SIGHUP and on change without dropping an open connection', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fd-certs-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  const pidFile = join(dir, 'frontdoor.pid');
  const install = (f) => { writeFileSync(keyFile, f.key); writeFileSync(certFile, f.cert); };
  // The file watch compares modification times: files replaced under the same times are invisible
  // to it, so only SIGHUP can load them.
  const stamp = new Date('2026-01-02T03:04:05.678Z');
  const hideFromWatch = () => { utimesSync(keyFile, stamp, stamp); utimesSync(certFile, stamp, stamp); };
  install(FIXTURES.a);
  hideFromWatch();
  const httpsPort = await freePort();
  const fd = await startFrontdoor({ args: ['--tls', 'files', '--tls-cert', certFile, '--tls-key', keyFile, '--pid-file', pidFile,
    '--https-addr', `127.0.0.1:${httpsPort}`, '--http-addr', `127.0.0.1:${await freePort()}`] });
  const served = async () => new X509Certificate((await servedCertificate(httpsPort)).pem).subject;
  const waitServed = async (want, ms) => {
    const until = Date.now() + ms;
    for (;;) {
      const got = await served();
      if (got.includes(want) || Date.now() > until) return got;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  // A keep-alive connection, trusting fixture a only, opened before any reload.
  const open = tlsConnect({ host: '127.0.0.1', port: httpsPort, servername: 'localhost', ca: FIXTURES.a.cert });
  await new Promise((resolve, reject) => { open.once('secureConnect', resolve); open.once('error', reject); });
  const ask = () => new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d) => {
      buf += d;
      if (/\r\n\r\n/.test(buf)) { open.off('data', onData); resolve(buf.split('\r\n')[0]); }
    };
    open.on('data', onData);
    open.once('error', reject);
    open.write(`GET /apps/${APP.id}/channels HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  });
  try {
    assert.match(await served(), /fixture a/);
    assert.match(await ask(), /^HTTP\/1\.1 \d{3}/);

    install(FIXTURES.b);
    hideFromWatch();
    process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGHUP');
    assert.match(await waitServed('fixture b', 10000), /fixture b/, 'SIGHUP did not load the new files');
    assert.match(await ask(), /^HTTP\/1\.1 \d{3}/, 'the connection opened before the reload was dropped');

    install(FIXTURES.a); // no signal: the file watch notices
    assert.match(await waitServed('fixture a', 20000), /fixture a/, 'replaced files were not noticed');
    assert.match(await ask(), /^HTTP\/1\.1 \d{3}/);
  } finally {
    open.destroy();
    await fd.stop();
  }
});
