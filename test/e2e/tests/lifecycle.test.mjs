import { test } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import { startFrontdoor, client, server, connected, once, subscribed, sleep } from '../helpers.mjs';

// During the handshake pusher-js wraps the pusher:error frame in a WebSocketError.
const errCode = (e) => e?.data?.code ?? e?.error?.data?.code;

test('unknown app key: pusher-js gets 4001 and stops', async () => {
  const fd = await startFrontdoor();
  try {
    const p = new Pusher('no-such-key', { cluster: '', wsHost: '127.0.0.1', wsPort: fd.port, forceTLS: false, enabledTransports: ['ws'] });
    const err = await once(p.connection, 'error');
    assert.equal(errCode(err), 4001);
    p.disconnect();
  } finally { await fd.stop(); }
});

// A restart (SIGTERM) tells clients 4200; they reconnect at once to the next process, which is
// already listening on the same port (SO_REUSEPORT).
test('SIGTERM: clients receive 4200 and reconnect to the next process', async () => {
  const first = await startFrontdoor();
  const p = client(first.port);
  const before = await connected(p);
  await subscribed(p.subscribe('orders'));
  const second = await startFrontdoor({ port: first.port });
  try {
    const reconnected = new Promise((resolve) => p.connection.bind('connected', () => resolve(p.connection.socket_id)));
    const got4200 = new Promise((resolve) => p.connection.bind('error', (e) => { if (e.data?.code === 4200) resolve(true); }));
    await first.stop();
    assert.equal(await got4200, true);
    const after = await reconnected;
    assert.notEqual(after, before);
    await sleep(200); // pusher-js re-subscribes its channels after reconnecting
    const ch = p.channel('orders');
    const got = once(ch, 'after-restart');
    await server(second.port).trigger('orders', 'after-restart', { ok: true });
    assert.deepEqual(await got, { ok: true });
    p.disconnect();
  } finally { await second.stop(); }
});

test('per-app limits from YAML: disabled app 4003, over quota 4004', async () => {
  const fd = await startFrontdoor({ yaml: `apps:
  - {id: app1, key: key1, secret: secret1, max_connections: 1}
  - {id: off, key: offkey, secret: s, disabled: true}
` });
  try {
    const off = new Pusher('offkey', { cluster: '', wsHost: '127.0.0.1', wsPort: fd.port, forceTLS: false, enabledTransports: ['ws'] });
    assert.equal(errCode(await once(off.connection, 'error')), 4003);
    off.disconnect();
    const a = client(fd.port);
    await connected(a);
    const b = client(fd.port);
    assert.equal(errCode(await once(b.connection, 'error')), 4004);
    b.disconnect(); a.disconnect();
  } finally { await fd.stop(); }
});

test('origin not allowed: pusher-js gets 4009 and does not retry', async () => {
  // pusher-js in Node sends no Origin header; with an allow-list, a missing Origin is refused.
  const fd = await startFrontdoor({ args: ['--allowed-origins', 'app.example.com'] });
  try {
    const p = client(fd.port);
    assert.equal(errCode(await once(p.connection, 'error')), 4009);
    p.disconnect();
  } finally { await fd.stop(); }
});

test('client-event rate limit: 4301 as a pusher:error, the socket stays and keeps receiving', async () => {
  const fd = await startFrontdoor({ yaml: `apps:
  - {id: app1, key: key1, secret: secret1, client_event_rate: 2}
` });
  const a = client(fd.port), b = client(fd.port);
  try {
    await Promise.all([connected(a), connected(b)]);
    const [ca, cb] = [a.subscribe('private-chat'), b.subscribe('private-chat')];
    await Promise.all([subscribed(ca), subscribed(cb)]);
    const refused = new Promise((resolve) => a.connection.bind('error', (e) => { if (errCode(e) === 4301) resolve(e.data.message); }));
    for (let i = 0; i < 5; i++) ca.trigger('client-burst', { i });
    assert.match(await refused, /rate limit/);
    assert.equal(a.connection.state, 'connected');
    const got = once(ca, 'after');
    await server(fd.port).trigger('private-chat', 'after', { ok: 1 });
    assert.deepEqual(await got, { ok: 1 });
  } finally { a.disconnect(); b.disconnect(); await fd.stop(); }
});

// The close code (1009) is asserted in the Go tests (pusher/server_test.go); pusher-js does not
// surface it, so here: the server drops the socket and pusher-js comes back on a new one.
test('a message over max_message_size closes the socket; pusher-js reconnects', async () => {
  const fd = await startFrontdoor({ yaml: `apps:
  - {id: app1, key: key1, secret: secret1, max_message_size: 2000}
` });
  const a = client(fd.port);
  try {
    const first = await connected(a);
    const ch = a.subscribe('private-big');
    await subscribed(ch);
    const dropped = new Promise((resolve) => a.connection.bind('state_change', (s) => { if (s.previous === 'connected') resolve(s.current); }));
    const back = new Promise((resolve) => a.connection.bind('connected', () => resolve(a.connection.socket_id)));
    ch.trigger('client-big', { blob: 'x'.repeat(5000) });
    assert.notEqual(await dropped, 'connected');
    assert.notEqual(await back, first, 'a new socket after the server closed the old one');
  } finally { a.disconnect(); await fd.stop(); }
});

test('watchlist through pusher-js: online/offline events for watched users', async () => {
  const fd = await startFrontdoor();
  const bob = client(fd.port, { user: { id: 2, info: {} } });
  const ann = new Pusher('key1', { cluster: '', wsHost: '127.0.0.1', wsPort: fd.port, forceTLS: false, enabledTransports: ['ws'], disableStats: true,
    userAuthentication: { customHandler: async ({ socketId }, cb) => {
      const { createHmac } = await import('node:crypto');
      const userData = JSON.stringify({ id: '1', watchlist: ['2', '3'] });
      cb(null, { auth: 'key1:' + createHmac('sha256', 'secret1').update(`${socketId}::user::${userData}`).digest('hex'), user_data: userData });
    } } });
  try {
    const initial = [];
    ann.user.watchlist.bind('online', (e) => initial.push(['online', e.user_ids]));
    ann.user.watchlist.bind('offline', (e) => initial.push(['offline', e.user_ids]));
    ann.signin();
    await connected(ann);
    for (let i = 0; i < 100 && initial.length < 1; i++) await sleep(20);
    assert.deepEqual(initial, [['offline', ['2', '3']]]);
    bob.signin();
    await connected(bob);
    for (let i = 0; i < 100 && initial.length < 2; i++) await sleep(20);
    assert.deepEqual(initial[1], ['online', ['2']]);
    bob.disconnect();
    for (let i = 0; i < 100 && initial.length < 3; i++) await sleep(20);
    assert.deepEqual(initial[2], ['offline', ['2']]);
  } finally { ann.disconnect(); bob.disconnect(); await fd.stop(); }
});
