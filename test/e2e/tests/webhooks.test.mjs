// Webhooks into a real Laravel-shaped PHP app behind real php-fpm, delivered by frontdoor through
// its own FastCGI upstream, triggered by real pusher-js clients (issue: webhooks into the app).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFrontdoor, startFPM, client, server, connected, subscribed, sleep } from '../helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
let fpm, fd, app;

function received() {
  const f = join(app, 'webhooks.log');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}
const names = () => received().flatMap((b) => b.events.map((e) => [e.name, e.channel, e.user_id].filter(Boolean).join(' ')));
async function waitFor(n) {
  for (let i = 0; i < 400 && names().length < n; i++) await sleep(25);
  return names();
}

before(async () => {
  app = mkdtempSync(join(tmpdir(), 'fd-hook-app-'));
  cpSync(join(here, '..', 'fixtures', 'webhook-app'), app, { recursive: true });
  fpm = await startFPM();
  const sock = fpm.sock;
  fd = await startFrontdoor({
    yaml: `apps:
  - id: app1
    key: key1
    secret: secret1
    webhook_delay: 700ms
    webhooks:
      - url: /pusher/webhook
proxy:
  root: ${join(app, 'public')}
  upstreams: ["fastcgi://${sock}"]
`,
  });
});
after(async () => {
  await fd?.stop();
  await fpm?.stop();
});

test('occupied, reload without vacate, presence once per user, client events, then vacated after the grace period', async () => {
  const alice = client(fd.port, { user: { id: 1, info: { name: 'Alice' } } });
  const bob = client(fd.port, { user: { id: 2, info: { name: 'Bob' } } });
  try {
    await Promise.all([connected(alice), connected(bob)]);
    await subscribed(alice.subscribe('orders'));
    assert.deepEqual(await waitFor(1), ['channel_occupied orders']);
    assert.equal(received()[0].remote, '127.0.0.1', 'delivered through the local upstream');

    // A page reload: the tab leaves and comes back within the grace period.
    alice.unsubscribe('orders');
    await subscribed(alice.subscribe('orders'));
    await sleep(1200);
    assert.deepEqual(names(), ['channel_occupied orders'], 'a reload is neither vacated nor occupied');

    const pa = alice.subscribe('presence-room');
    await subscribed(pa);
    const pb = bob.subscribe('presence-room');
    await subscribed(pb);
    const bob2 = client(fd.port, { user: { id: 2, info: { name: 'Bob' } } }); // Bob's second tab
    await subscribed(bob2.subscribe('presence-room'));
    pb.trigger('client-typing', { typing: true });
    assert.deepEqual(await waitFor(5), ['channel_occupied orders', 'channel_occupied presence-room',
      'member_added presence-room 1', 'member_added presence-room 2', 'client_event presence-room 2']);
    const ce = received().flatMap((b) => b.events).find((e) => e.name === 'client_event');
    assert.equal(ce.event, 'client-typing');
    assert.equal(ce.data, '{"typing":true}');
    assert.equal(ce.socket_id, bob.connection.socket_id);

    bob2.disconnect();
    bob.disconnect();
    assert.deepEqual((await waitFor(6)).slice(5), ['member_removed presence-room 2']);
    alice.unsubscribe('orders');
    assert.deepEqual((await waitFor(7)).slice(6), ['channel_vacated orders']);
    assert.ok(!existsSync(join(app, 'rejected.log')), 'every request passed the pusher-php-server signature check');
  } finally {
    alice.disconnect(); bob.disconnect();
  }
});

test('a failing app gets the batch again after it recovers; sockets never wait for it', async () => {
  const before = names().length;
  writeFileSync(join(app, 'fail'), '');
  const watcher = client(fd.port);
  try {
    await connected(watcher);
    const ch = watcher.subscribe('stock');
    await subscribed(ch);
    // While the app answers 500, publishes still reach the socket at once.
    const got = new Promise((resolve) => ch.bind('StockChanged', resolve));
    await server(fd.port).trigger('stock', 'StockChanged', { sku: 'A1', qty: 3 });
    assert.deepEqual(await got, { sku: 'A1', qty: 3 });
    const attempts = () => (existsSync(join(app, 'attempts.log')) ? readFileSync(join(app, 'attempts.log'), 'utf8').split('\n').length - 1 : 0);
    const seen = attempts();
    for (let i = 0; i < 200 && attempts() < seen + 2; i++) await sleep(25);
    assert.ok(attempts() >= seen + 2, 'retried at least once while failing');
    assert.equal(names().length, before, 'nothing recorded while the app fails');
    rmSync(join(app, 'fail'));
    const all = await waitFor(before + 1);
    assert.deepEqual(all.slice(before), ['channel_occupied stock']);
  } finally {
    watcher.disconnect();
  }
});
