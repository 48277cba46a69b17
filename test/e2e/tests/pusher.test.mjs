import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';
import { startFrontdoor, client, server, connected, once, subscribed, sleep, APP } from '../helpers.mjs';

let fd;
before(async () => { fd = await startFrontdoor(); });
after(async () => { await fd.stop(); });

test('pusher-js connects with a socket id Laravel accepts and receives an SDK publish', async () => {
  const p = client(fd.port);
  const socketId = await connected(p);
  assert.match(socketId, /^\d+\.\d+$/);
  const ch = p.subscribe('orders');
  await subscribed(ch);
  const got = once(ch, 'OrderShipped');
  await server(fd.port).trigger('orders', 'OrderShipped', { order: { id: 1 } });
  assert.deepEqual(await got, { order: { id: 1 } });
  p.disconnect();
});

test('socket_id exclusion (toOthers) and info in the trigger response', async () => {
  const a = client(fd.port), b = client(fd.port);
  const aid = await connected(a); await connected(b);
  const ca = a.subscribe('chat'), cb = b.subscribe('chat');
  await Promise.all([subscribed(ca), subscribed(cb)]);
  let aGot = false;
  ca.bind('msg', () => { aGot = true; });
  const bGot = once(cb, 'msg');
  const res = await server(fd.port).trigger('chat', 'msg', { t: 1 }, { socket_id: aid, info: 'subscription_count' });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { channels: { chat: { subscription_count: 2 } } });
  await bGot;
  await sleep(200);
  assert.equal(aGot, false, 'the excluded socket received the event');
  a.disconnect(); b.disconnect();
});

test('private channels: authorized subscribe works, a wrong signature is refused with 401', async () => {
  const p = client(fd.port);
  await connected(p);
  await subscribed(p.subscribe('private-orders.1'));
  const bad = new Pusher(APP.key, { cluster: '', wsHost: '127.0.0.1', wsPort: fd.port, forceTLS: false, enabledTransports: ['ws'],
    channelAuthorization: { customHandler: (_, cb) => cb(null, { auth: `${APP.key}:${'0'.repeat(64)}` }) } });
  await connected(bad);
  const err = await subscribed(bad.subscribe('private-orders.1')).then(() => null, (e) => e);
  assert.equal(err?.status, 401);
  p.disconnect(); bad.disconnect();
});

test('laravel-echo presence: here, joining, leaving, one user on two sockets counts once', async () => {
  const echo = (id, name) => new Echo({ broadcaster: 'reverb', key: APP.key, wsHost: '127.0.0.1', wsPort: fd.port, wssPort: fd.port,
    forceTLS: false, enabledTransports: ['ws'], Pusher: class extends Pusher {}, client: client(fd.port, { user: { id, info: { name } } }) });
  const ann = echo(1, 'Ann');
  const here = await new Promise((r) => ann.join('room.7').here(r));
  assert.deepEqual(here, [{ name: 'Ann' }]);
  const joined = new Promise((r) => ann.join('room.7').joining(r));
  const left = new Promise((r) => ann.join('room.7').leaving(r));
  const bob1 = echo(2, 'Bob');
  await new Promise((r) => bob1.join('room.7').here(r));
  assert.deepEqual(await joined, { name: 'Bob' });
  let joinedAgain = false;
  ann.join('room.7').joining(() => { joinedAgain = true; });
  const bob2 = echo(2, 'Bob');
  const here2 = await new Promise((r) => bob2.join('room.7').here(r));
  assert.equal(here2.length, 2, 'Bob on two sockets is one member');
  bob1.disconnect();
  await sleep(300);
  assert.equal(joinedAgain, false);
  bob2.disconnect();
  assert.deepEqual(await left, { name: 'Bob' });
  const users = await (await server(fd.port).get({ path: '/channels/presence-room.7/users' })).json();
  assert.deepEqual(users, { users: [{ id: '1' }] });
  ann.disconnect();
});

test('client events (whisper) reach others, not the sender; refused on public channels', async () => {
  const a = client(fd.port, { user: { id: 'a' } }), b = client(fd.port, { user: { id: 'b' } });
  await connected(a); await connected(b);
  const ca = a.subscribe('private-chat.1'), cb = b.subscribe('private-chat.1');
  await Promise.all([subscribed(ca), subscribed(cb)]);
  let echoed = false;
  ca.bind('client-typing', () => { echoed = true; });
  const got = once(cb, 'client-typing');
  ca.trigger('client-typing', { typing: true });
  assert.deepEqual(await got, { typing: true });
  await sleep(200);
  assert.equal(echoed, false);
  const pub = a.subscribe('lobby');
  await subscribed(pub);
  const err = once(a.connection, 'error');
  pub.trigger('client-x', {});
  const e = await err;
  assert.equal(e.type, 'PusherError');
  assert.equal(a.connection.state, 'connected', 'a refused client event must not drop the socket');
  a.disconnect(); b.disconnect();
});

test('cache channel replays the last event; an empty one sends cache_miss', async () => {
  const p = client(fd.port);
  await connected(p);
  const miss = p.subscribe('cache-stock');
  const gotMiss = once(miss, 'pusher:cache_miss');
  await subscribed(miss);
  await gotMiss;
  await server(fd.port).trigger('cache-stock', 'level', { sku: 'A', qty: 3 });
  const q = client(fd.port);
  await connected(q);
  const ch = q.subscribe('cache-stock');
  assert.deepEqual(await once(ch, 'level'), { sku: 'A', qty: 3 });
  p.disconnect(); q.disconnect();
});

test('user sign-in, sendToUser and terminateUserConnections', async () => {
  const p = client(fd.port, { user: { id: 42, info: { name: 'Ann' } } });
  await connected(p);
  p.signin();
  for (let i = 0; !p.user.user_data && i < 100; i++) await sleep(20);
  assert.equal(p.user.user_data?.id, '42', 'pusher:signin_success not received');
  await sleep(100); // pusher-js subscribes to #server-to-user-42 after signin_success
  const got = new Promise((r) => p.user.bind('note', r));
  await server(fd.port).sendToUser('42', 'note', { hi: true });
  assert.deepEqual(await got, { hi: true });
  const closed = new Promise((r) => p.connection.bind('state_change', (s) => { if (s.current !== 'connected') r(s.current); }));
  const res = await server(fd.port).terminateUserConnections('42');
  assert.equal(res.status, 200);
  assert.notEqual(await closed, 'connected');
});

test('HTTP API queries through the SDK: channels, channel, connections, batch', async () => {
  const p = client(fd.port, { user: { id: 9 } });
  await connected(p);
  await subscribed(p.subscribe('presence-lobby'));
  const sdk = server(fd.port);
  assert.deepEqual(await (await sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })).json(),
    { channels: { 'presence-lobby': { user_count: 1 } } });
  assert.deepEqual(await (await sdk.get({ path: '/channels/presence-lobby', params: { info: 'user_count' } })).json(),
    { occupied: true, user_count: 1 });
  const conns = await (await sdk.get({ path: '/connections' })).json();
  assert.ok(conns.connections >= 1);
  const res = await sdk.triggerBatch([{ channel: 'a', name: 'e', data: '1' }, { channel: 'b', name: 'e', data: '2' }]);
  assert.equal(res.status, 200);
  p.disconnect();
});

test('HTTP API refusals carry a status and a JSON error', async () => {
  const expectError = async (promise, status) => {
    const err = await promise.then(() => null, (e) => e);
    assert.ok(err, `expected HTTP ${status}`);
    assert.equal(err.status, status);
    assert.equal(typeof JSON.parse(err.body).error, 'string');
  };
  await expectError(server(fd.port, { secret: 'wrong' }).trigger('c', 'e', {}), 401);
  await expectError(server(fd.port, { appId: 'nope' }).trigger('c', 'e', {}), 404);
  await expectError(server(fd.port).trigger('c', 'e', 'x'.repeat(10241)), 413);
  const many = Array.from({ length: 11 }, (_, i) => ({ channel: 'c', name: 'e', data: String(i) }));
  await expectError(server(fd.port).triggerBatch(many), 400);
});
