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
