// Several frontdoor processes sharing one real redis-server behave as one Pusher server for
// unchanged pusher-js clients and the pusher SDK (issue: scale out over Redis).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startFrontdoor, client, server, connected, subscribed, once, freePort, sleep } from '../helpers.mjs';

let redis, redisURL;
const nodes = [];

async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start:\n' + out)), 15000);
    child.stdout.on('data', (d) => { out += d; if (out.includes('Ready to accept connections')) { clearTimeout(timer); resolve(); } });
    child.on('error', (e) => { clearTimeout(timer); reject(new Error('redis-server: ' + e.message + ' (apt-get install redis-server)')); });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`redis-server exited ${code}:\n${out}`)); });
  });
  child.removeAllListeners('exit');
  return { url: `redis://127.0.0.1:${port}/0`, stop: () => child.kill('SIGKILL') };
}

async function node() {
  const n = await startFrontdoor({ args: ['--redis', redisURL, '--redis-prefix', 'e2e'] });
  nodes.push(n);
  return n;
}

before(async () => {
  redis = await startRedis();
  redisURL = redis.url;
});
after(async () => {
  for (const n of nodes) await n.stop();
  redis.stop();
});

// Resolves with the next event of that name on the channel.
const next = (ch, event) => new Promise((resolve) => ch.bind(event, function h(d) { ch.unbind(event, h); resolve(d); }));

test('a publish on one node reaches pusher-js clients on every node, socket_id exclusion included', async () => {
  const [n1, n2] = [await node(), await node()];
  const a = client(n1.port), b = client(n2.port);
  try {
    const [aID] = await Promise.all([connected(a), connected(b)]);
    const [ca, cb] = [a.subscribe('orders'), b.subscribe('orders')];
    await Promise.all([subscribed(ca), subscribed(cb)]);

    const got = Promise.all([next(ca, 'OrderShipped'), next(cb, 'OrderShipped')]);
    await server(n1.port).trigger('orders', 'OrderShipped', { id: 42 });
    assert.deepEqual(await got, [{ id: 42 }, { id: 42 }]);

    // Published through node 2, excluding a's socket on node 1 (Laravel's toOthers()).
    const seenByA = [];
    ca.bind('OrderUpdated', (d) => seenByA.push(d.step));
    const bGot = [];
    cb.bind('OrderUpdated', (d) => bGot.push(d.step));
    await server(n2.port).trigger('orders', 'OrderUpdated', { step: 1 }, { socket_id: aID });
    await server(n2.port).trigger('orders', 'OrderUpdated', { step: 2 });
    while (bGot.length < 2 || seenByA.length < 1) await sleep(20);
    assert.deepEqual(bGot, [1, 2]);
    assert.deepEqual(seenByA, [2], 'the excluded socket got only the second event');

    // Answers are cluster-wide whichever node is asked.
    const res = await server(n2.port).get({ path: '/channels', params: { info: 'subscription_count' } });
    const body = await res.json();
    assert.equal(body.channels.orders.subscription_count, 2);
  } finally {
    a.disconnect(); b.disconnect();
  }
});

test('presence counts each user once across nodes, and a killed node\'s members leave', async () => {
  const [n1, n2] = [await node(), await node()];
  const alice = client(n1.port, { user: { id: 1, info: { name: 'Alice' } } });
  const bob = client(n2.port, { user: { id: 2, info: { name: 'Bob' } } });
  const bob2 = client(n1.port, { user: { id: 2, info: { name: 'Bob' } } }); // Bob's second tab, other node
  const carol = client(n2.port, { user: { id: 3, info: { name: 'Carol' } } });
  try {
    const pa = alice.subscribe('presence-room');
    await subscribed(pa);
    const added = [];
    pa.bind('pusher:member_added', (m) => added.push(m.id));
    const removed = [];
    pa.bind('pusher:member_removed', (m) => removed.push(m.id));

    const pb = bob.subscribe('presence-room');
    const members = await subscribed(pb);
    assert.equal(members.count, 2, 'Bob on node 2 sees Alice on node 1 and himself');
    await subscribed(bob2.subscribe('presence-room'));
    const pc = carol.subscribe('presence-room');
    assert.equal((await subscribed(pc)).count, 3);
    while (added.length < 2) await sleep(20);
    assert.deepEqual(added, ['2', '3'], 'Bob announced once although he joined on two nodes');
    assert.equal(pa.members.count, 3);

    // Bob closes the tab on node 2: still here through node 1.
    bob.disconnect();
    await sleep(300);
    assert.deepEqual(removed, []);

    // Node 2 dies without a word: Carol (only there) leaves once its heartbeat expires.
    await n2.kill();
    carol.disconnect();
    while (removed.length < 1) await sleep(50);
    assert.deepEqual(removed, ['3']);
    assert.equal(pa.members.count, 2);

    const res = await server(n1.port).get({ path: '/channels/presence-room/users' });
    const ids = (await res.json()).users.map((u) => u.id).sort();
    assert.deepEqual(ids, ['1', '2']);
  } finally {
    alice.disconnect(); bob.disconnect(); bob2.disconnect(); carol.disconnect();
  }
});
