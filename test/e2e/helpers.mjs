// Harness: start the built frontdoor binary on a free loopback port, and build real clients.
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';
import Pusher from 'pusher-js';
import PusherServer from 'pusher';

export const APP = { id: 'app1', key: 'key1', secret: 'secret1' };
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

let bin = process.env.FRONTDOOR_BIN;
function binary() {
  if (!bin) {
    bin = join(mkdtempSync(join(tmpdir(), 'fd-e2e-')), 'frontdoor');
    execFileSync('go', ['build', '-o', bin, './cmd/frontdoor'], { cwd: repo, stdio: 'inherit' });
  }
  return bin;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

// startFrontdoor runs `frontdoor serve` and resolves once it logs "listening".
export async function startFrontdoor({ yaml, args = [], port } = {}) {
  port ??= await freePort();
  const argv = ['serve', '--listen', `127.0.0.1:${port}`, '--admin', 'off', '--log-format', 'json', '--env-file', ''];
  let configFile;
  if (yaml) {
    configFile = join(mkdtempSync(join(tmpdir(), 'fd-cfg-')), 'frontdoor.yaml');
    writeFileSync(configFile, yaml);
    argv.push('--config', configFile);
  } else {
    argv.push('--app-id', APP.id, '--app-key', APP.key, '--app-secret', APP.secret);
  }
  argv.push(...args);
  const child = spawn(binary(), argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('frontdoor did not start:\n' + log)), 15000);
    child.stderr.on('data', (d) => {
      log += d;
      if (log.includes('"message":"listening"')) { clearTimeout(timer); resolve(); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`frontdoor exited ${code}:\n${log}`)); });
  });
  child.removeAllListeners('exit');
  const exited = new Promise((r) => child.once('exit', r));
  return {
    port,
    stop: () => { child.kill('SIGTERM'); return exited; },
    kill: () => { child.kill('SIGKILL'); return exited; }, // a crash: no goodbye to anyone
    log: () => log,
    // reload writes a new YAML config and sends SIGHUP; it resolves once the reload is logged.
    reload: (newYaml) => new Promise((resolve, reject) => {
      const seen = (log.match(/"configuration reloaded"/g) || []).length;
      writeFileSync(configFile, newYaml);
      const timer = setTimeout(() => reject(new Error('no reload logged:\n' + log)), 10000);
      const check = () => {
        if ((log.match(/"configuration reloaded"/g) || []).length > seen) {
          clearTimeout(timer); child.stderr.off('data', check); resolve();
        }
      };
      child.stderr.on('data', check);
      child.kill('SIGHUP');
    }),
  };
}

// signChannel is what Laravel's /broadcasting/auth answers (HMAC-SHA256, protocol spec §5.3).
export function signChannel(socketId, channel, channelData) {
  const msg = channelData ? `${socketId}:${channel}:${channelData}` : `${socketId}:${channel}`;
  const sig = crypto.createHmac('sha256', APP.secret).update(msg).digest('hex');
  const out = { auth: `${APP.key}:${sig}` };
  if (channelData) out.channel_data = channelData;
  return out;
}

export const users = new Map(); // socket id → presence user for the authorizer below

// client is an unchanged pusher-js as Echo's reverb broadcaster configures it, with the
// authorization a Laravel app would do done locally.
export function client(port, { user } = {}) {
  return new Pusher(APP.key, {
    cluster: '', wsHost: '127.0.0.1', wsPort: port, wssPort: port, forceTLS: false,
    enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => {
        const data = channelName.startsWith('presence-') ? JSON.stringify({ user_id: user.id, user_info: user.info }) : undefined;
        cb(null, signChannel(socketId, channelName, data));
      },
    },
    userAuthentication: {
      customHandler: ({ socketId }, cb) => {
        const userData = JSON.stringify({ id: String(user.id), user_info: user.info });
        const sig = crypto.createHmac('sha256', APP.secret).update(`${socketId}::user::${userData}`).digest('hex');
        cb(null, { auth: `${APP.key}:${sig}`, user_data: userData });
      },
    },
  });
}

// server is the pusher Node SDK pointed at frontdoor, as Laravel's broadcaster is.
export function server(port, overrides = {}) {
  return new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(port), useTLS: false, ...overrides });
}

export function connected(p) {
  return new Promise((resolve, reject) => {
    if (p.connection.state === 'connected') return resolve(p.connection.socket_id);
    p.connection.bind('connected', () => resolve(p.connection.socket_id));
    p.connection.bind('failed', () => reject(new Error('connection failed')));
  });
}

export function once(target, event) {
  return new Promise((resolve) => target.bind(event, function handler(data) { target.unbind(event, handler); resolve(data); }));
}

export function subscribed(channel) {
  return new Promise((resolve, reject) => {
    channel.bind('pusher:subscription_succeeded', resolve);
    channel.bind('pusher:subscription_error', reject);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// startFPM runs php-fpm 8.2 in the foreground from a config written here, one pool on a unix
// socket (its path is returned as sock).
export async function startFPM() {
  const dir = mkdtempSync(join(tmpdir(), 'fpm')); // short: unix socket paths stay under 108 bytes
  const sock = join(dir, 'php.sock');
  const conf = join(dir, 'php-fpm.conf');
  writeFileSync(conf, `[global]
pid = ${dir}/php-fpm.pid
error_log = ${dir}/php-fpm.log
[www]
listen = ${sock}
listen.mode = 0666
pm = static
pm.max_children = 4
clear_env = no
php_admin_value[output_buffering] = 0
`);
  const args = ['-F', '-O', '-y', conf, '-p', dir];
  if (process.getuid() === 0) args.push('-R');
  const bin = existsSync('/usr/sbin/php-fpm8.2') ? '/usr/sbin/php-fpm8.2' : 'php-fpm8.2';
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('php-fpm did not start:\n' + out)), 20000);
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`php-fpm: ${e.message} (apt-get install php8.2-fpm)`)); });
    const poll = setInterval(() => { if (existsSync(sock)) { clearInterval(poll); clearTimeout(timer); resolve(); } }, 50);
  });
  // SIGTERM: the master stops its workers too (SIGKILL would orphan them, holding our pipes).
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    sock,
    stop: () => {
      child.kill('SIGTERM');
      child.stdout.destroy(); child.stderr.destroy();
      return exited;
    },
  };
}

