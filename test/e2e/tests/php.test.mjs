// The front door and the socket server in one process: a PHP page through real php-fpm, and
// when php-fpm is slow (504) or gone (502), /app WebSockets keep working (issue: front door for PHP).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request as httpsRequest } from 'node:https';
import { startFrontdoor, startFPM, client, server, connected, subscribed, once, freePort } from '../helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
let fpm, fd;

before(async () => {
  const app = mkdtempSync(join(tmpdir(), 'fd-php-app-'));
  cpSync(join(here, '..', 'fixtures', 'webhook-app'), app, { recursive: true });
  fpm = await startFPM();
  fd = await startFrontdoor({
    args: ['--root', join(app, 'public'), '--upstream', `fastcgi://${fpm.sock}`, '--upstream-read-timeout', '1s'],
  });
});
after(async () => {
  await fd?.stop();
  await fpm?.stop();
});

async function publishAndReceive(p) {
  const ch = p.subscribe('orders');
  await subscribed(ch);
  const got = once(ch, 'OrderShipped');
  await server(fd.port).trigger('orders', 'OrderShipped', { id: 7 });
  assert.deepEqual(await got, { id: 7 });
  p.unsubscribe('orders');
}

test('a PHP page, a slow one (504) and a dead php-fpm (502), while WebSockets keep working', async () => {
  const base = `http://127.0.0.1:${fd.port}`;
  const ok = await fetch(`${base}/hello`);
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), 'hello from php, HTTPS=');

  const p = client(fd.port);
  try {
    await connected(p);
    // A slow page: 504 after --upstream-read-timeout, with a request id; the socket is unaffected.
    const [slow] = await Promise.all([fetch(`${base}/slow`, { headers: { Accept: 'application/json' } }), publishAndReceive(p)]);
    assert.equal(slow.status, 504);
    const body = await slow.json();
    assert.match(body.request_id, /\S+/, 'the error names a request id');
    assert.equal(slow.headers.get('x-request-id'), body.request_id);

    await fpm.stop();
    const dead = await fetch(`${base}/hello`);
    assert.equal(dead.status, 502);
    await publishAndReceive(p);
    assert.equal(p.connection.state, 'connected');
  } finally {
    p.disconnect();
  }
});

test('over TLS, PHP behind php-fpm sees HTTPS=on', async () => {
  const app = mkdtempSync(join(tmpdir(), 'fd-php-tls-'));
  cpSync(join(here, '..', 'fixtures', 'webhook-app'), app, { recursive: true });
  const php = await startFPM();
  const [httpsPort, httpPort] = [await freePort(), await freePort()];
  const tlsFd = await startFrontdoor({ args: ['--tls', 'self-signed', '--https-addr', `127.0.0.1:${httpsPort}`, '--http-addr', `127.0.0.1:${httpPort}`,
    '--cert-cache', mkdtempSync(join(tmpdir(), 'fd-cache-')),
    '--root', join(app, 'public'), '--upstream', `fastcgi://${php.sock}`] });
  try {
    const body = await new Promise((resolve, reject) => {
      // The self-signed certificate is this test's own: not verified here (the TLS tests verify).
      const req = httpsRequest({ host: '127.0.0.1', port: httpsPort, path: '/hello', rejectUnauthorized: false, servername: 'localhost' }, (r) => {
        let b = '';
        r.on('data', (d) => { b += d; });
        r.on('end', () => resolve(`${r.statusCode} ${b}`));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(body, '200 hello from php, HTTPS=on');
  } finally {
    await tlsFd.stop();
    await php.stop();
  }
});
