import { test } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import { startFrontdoor, server, connected, once, subscribed } from '../helpers.mjs';

// Two sites on one listener, told apart by Host: the shop answers to 127.0.0.1, the admin to
// localhost (both loopback, so pusher-js reaches them by name). A reload that removes the admin
// site tells its sockets the app is gone (4001) while the shop's sockets stay connected and keep
// receiving.
const site = (name, host, app, extra = '') => `  - name: ${name}
    hosts: ["${host}"]${extra}
    tls: {mode: "off"}
    apps: [{id: ${app}, key: key-${app}, secret: secret-${app}}]
`;
const yaml = (...sites) => 'sites:\n' + sites.join('');

const pusherFor = (host, port, app) => new Pusher(`key-${app}`, {
  cluster: '', wsHost: host, wsPort: port, forceTLS: false, enabledTransports: ['ws'], disableStats: true,
});

test('sites: a reload removes one site while the other site\'s pusher-js clients stay connected', async () => {
  const fd = await startFrontdoor({ yaml: yaml(site('shop', '127.0.0.1', 'shop', '\n    default: true'), site('admin', 'localhost', 'admin')) });
  const shop = pusherFor('127.0.0.1', fd.port, 'shop');
  const admin = pusherFor('localhost', fd.port, 'admin');
  try {
    await connected(shop);
    await connected(admin);
    await subscribed(shop.subscribe('orders'));
    await subscribed(admin.subscribe('users'));
    let shopStates = 0;
    shop.connection.bind('state_change', () => { shopStates++; });
    const adminGone = new Promise((resolve) => admin.connection.bind('error', (e) => {
      if ((e?.data?.code ?? e?.error?.data?.code) === 4001) resolve(true);
    }));

    await fd.reload(yaml(site('shop', '127.0.0.1', 'shop', '\n    default: true')));
    assert.equal(await adminGone, true, 'the removed site\'s socket is told its app is gone');

    const got = once(shop.channel('orders'), 'after-reload');
    await server(fd.port, { appId: 'shop', key: 'key-shop', secret: 'secret-shop' }).trigger('orders', 'after-reload', { ok: true });
    assert.deepEqual(await got, { ok: true });
    assert.equal(shopStates, 0, 'the shop\'s socket never changed state');
    assert.equal(shop.connection.state, 'connected');
  } finally {
    shop.disconnect();
    admin.disconnect();
    await fd.stop();
  }
});
