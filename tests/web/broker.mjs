// broker.mjs -- a real Mosquitto with the AimDB plugin (or without it, for
// aimdb-bridge: startBridge) for the dashboard
// test: one MQTT TCP listener (seeding with mosquitto_pub, checks with
// mosquitto_rr) and one websockets listener whose http_dir serves the built
// page, both on free 127.0.0.1 ports.  The broker can be stopped and started
// again on the same ports and database, which is the restart the dashboard
// must survive.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const START_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 20000; /* then SIGKILL, which stop() reports */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* SIGTERM, and once STOP_TIMEOUT_MS have passed, the stuck process's
 * threads as gdb sees them appended to its log, then SIGKILL: a stop that
 * hangs says where.  Resolves with [code, signal] of the exit. */
async function terminate(child, exited, logPath) {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  const timer = setTimeout(async () => {
    const { stdout } = await run('gdb', ['-p', String(child.pid), '-batch', '-ex',
                                         'thread apply all bt 25'], { timeout: 30000 })
      .catch((e) => ({ stdout: `gdb: ${e.message}` }));
    await appendFile(logPath, `--- test: no exit ${STOP_TIMEOUT_MS} ms after SIGTERM; its threads:\n${stdout}\n`);
    child.kill('SIGKILL');
  }, STOP_TIMEOUT_MS);
  const result = await exited;
  clearTimeout(timer);
  return result;
}

/* A port nobody listens on right now (the kernel's pick, then released). */
export async function freePort() {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

async function portAccepts(port) {
  const socket = createConnection({ host: '127.0.0.1', port });
  try {
    await once(socket, 'connect');
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

/*
 * opts: plugin (path of aimdb_mosquitto.so; none: a plain broker), httpDir (the built page),
 * dir (where config, database and log go), records (aimdb.conf record lines),
 * database (the `database` setting; default a SQLite file in dir),
 * env (extra environment for mosquitto, e.g. LD_PRELOAD for an ASan plugin),
 * login ({username, password}, optional: no anonymous clients, that one user
 * in the broker's password_file, and publish/request log in as it).
 */
export async function createBroker(opts) {
  const tcpPort = await freePort();
  const wsPort = await freePort();
  const aimdbConf = join(opts.dir, 'aimdb.conf');
  const mosquittoConf = join(opts.dir, 'mosquitto.conf');
  const logPath = join(opts.dir, 'mosquitto.log');
  const log = createWriteStream(logPath, { flags: 'a' });
  const database = opts.database ?? join(opts.dir, 'history.db');
  if (opts.plugin) await writeFile(aimdbConf, [`database ${database}`, ...opts.records, ''].join('\n'));
  const passwordFile = join(opts.dir, 'passwd');
  if (opts.login)
    await run('mosquitto_passwd', ['-b', '-c', passwordFile, opts.login.username, opts.login.password]);
  const auth = opts.login ? ['-u', opts.login.username, '-P', opts.login.password] : [];
  await writeFile(mosquittoConf, [
    ...(opts.login ? ['allow_anonymous false', `password_file ${passwordFile}`] : ['allow_anonymous true']),
    /* Started as root, Mosquitto would become user "mosquitto", who cannot
     * write our folder: stay the current user. */
    `user ${userInfo().username}`,
    'persistence false',
    /* stderr, which is unbuffered: a broker killed after a hung stop
     * leaves its log whole. */
    'log_dest stderr',
    'log_type all',
    ...(opts.plugin ? [`plugin ${opts.plugin}`, `plugin_opt_config ${aimdbConf}`] : []),
    `listener ${tcpPort} 127.0.0.1`,
    `listener ${wsPort} 127.0.0.1`,
    'protocol websockets',
    /* Without it Mosquitto 2.0.11 binds this listener to every interface
     * (see conf/mosquitto.conf); the tests stay on loopback. */
    'socket_domain ipv4',
    `http_dir ${opts.httpDir}`,
    '',
  ].join('\n'));

  let child = null;
  let exited = null;

  const broker = {
    tcpPort,
    wsPort,
    pageUrl: `http://127.0.0.1:${wsPort}/`,

    async start() {
      log.write(`--- test: starting mosquitto ${new Date().toISOString()}\n`);
      child = spawn('mosquitto', ['-c', mosquittoConf], {
        env: { ...process.env, ...opts.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.pipe(log, { end: false });
      child.stderr.pipe(log, { end: false });
      exited = once(child, 'exit');
      /* Generous: an ASan plugin on a loaded 2-core CI machine starts slowly. */
      for (const deadline = Date.now() + START_TIMEOUT_MS; Date.now() < deadline;) {
        if (child.exitCode !== null) break;
        if ((await portAccepts(tcpPort)) && (await portAccepts(wsPort))) return;
        await sleep(50);
      }
      child.kill('SIGKILL');
      await exited;
      child = null;
      throw new Error(`mosquitto did not open ports ${tcpPort} and ${wsPort}; see ${logPath}`);
    },

    /* SIGTERM: a clean stop, so the plugin commits what it holds.  Throws
     * unless the broker exits 0 with no sanitizer report in its log. */
    async stop() {
      if (!child) return;
      const [code, signal] = await terminate(child, exited, logPath);
      child = null;
      const text = await readFile(logPath, 'utf8');
      if (code !== 0 || /ERROR: (Address|Leak)Sanitizer|runtime error:/.test(text))
        throw new Error(`mosquitto stopped with ${signal ?? `exit ${code}`} or a sanitizer report; see ${logPath}`);
    },

    async publish(topic, payload) {
      await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(tcpPort), '-q', '1', ...auth,
                                  '-t', topic, '-m', payload]);
    },

    /* One AimX request over MQTT v5 request/response; the parsed reply. */
    async request(method, params) {
      const { stdout } = await run('mosquitto_rr', [
        '-h', '127.0.0.1', '-p', String(tcpPort), '-V', '5', '-W', '5', '-N', ...auth,
        '-t', '$CONTROL/aimdb/v1', '-e', 'aimdb/test/reply',
        '-m', JSON.stringify({ id: 1, method, params }),
      ]);
      return JSON.parse(stdout);
    },
  };
  return broker;
}

/*
 * aimdb-bridge (path `program`) on `broker` (one made without a plugin),
 * with the aimdb.conf `lines` in dir/bridge.conf and its log in
 * dir/bridge.log; resolves once its subscriptions are active.  The result's
 * stop() sends SIGTERM and throws unless it exits 0 with no sanitizer
 * report in its log.
 */
export async function startBridge(program, broker, dir, lines) {
  const conf = join(dir, 'bridge.conf');
  const logPath = join(dir, 'bridge.log');
  await writeFile(conf, [`broker mqtt://127.0.0.1:${broker.tcpPort}`, ...lines, ''].join('\n'));
  const log = createWriteStream(logPath, { flags: 'a' });
  // In dir, where whatever it keeps beside a database that is no file
  // (./data/CLIENT-ID.session) goes with the test's other files.
  const child = spawn(program, ['-c', conf], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const exited = once(child, 'exit');
  for (const deadline = Date.now() + START_TIMEOUT_MS; ; await sleep(50)) {
    if ((await readFile(logPath, 'utf8').catch(() => '')).includes('subscription(s) active')) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`aimdb-bridge did not come up; see ${logPath}`);
    }
  }
  return {
    async stop() {
      const [code, signal] = await terminate(child, exited, logPath);
      const text = await readFile(logPath, 'utf8');
      if (code !== 0 || /ERROR: (Address|Leak)Sanitizer|runtime error:/.test(text))
        throw new Error(`aimdb-bridge stopped with ${signal ?? `exit ${code}`} or a sanitizer report; see ${logPath}`);
    },
  };
}
