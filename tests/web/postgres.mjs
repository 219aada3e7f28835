// postgres.mjs -- a real PostgreSQL server for the dashboard test, made the
// way tests/postgres/pg_server.c makes one: Debian's `postgresql` package
// (initdb and pg_ctl from /usr/lib/postgresql/N/bin, the highest N), a
// cluster in a temporary directory, trust authentication on 127.0.0.1 only,
// a free port, run as the `postgres` user when the test runs as root
// (PostgreSQL refuses to run as root).  Every tool has a deadline.
import { execFile } from 'node:child_process';
import { chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { freePort } from './broker.mjs';

const run = promisify(execFile);
const TOOL_TIMEOUT_MS = 60000;
const USER = 'postgres';

/* The package's bin directory, or null when the server is not installed. */
async function findBin() {
  let versions;
  try {
    versions = await readdir('/usr/lib/postgresql');
  } catch {
    return null;
  }
  versions.sort((a, b) => Number(a) - Number(b));
  for (const v of versions.reverse()) {
    const bin = join('/usr/lib/postgresql', v, 'bin');
    if ((await readdir(bin).catch(() => [])).includes('pg_ctl')) return bin;
  }
  return null;
}

/* {uid, gid} of the postgres user when we are root; {} otherwise; null if
 * root and there is no such user. */
async function serverUser() {
  if (process.getuid() !== 0) return {};
  try {
    const uid = Number((await run('id', ['-u', USER])).stdout);
    const gid = Number((await run('id', ['-g', USER])).stdout);
    return { uid, gid };
  } catch {
    return null;
  }
}

/*
 * Start a server; null (nothing started) when the package or, as root, its
 * user is missing: the caller says the test is skipped.  The result has
 * `uri` (postgresql://postgres@127.0.0.1:PORT/postgres), `uriOf(database)`,
 * `sql(text, database = 'postgres')` (psql, its output, rows as a|b) and
 * `stop()` (immediate shutdown, directory removed).
 */
export async function startPostgres() {
  const bin = await findBin();
  const user = bin ? await serverUser() : null;
  if (!bin || !user) return null;
  const dir = await mkdtemp(join(tmpdir(), 'aimdb-pg-web-'));
  if (user.uid !== undefined) await chown(dir, user.uid, user.gid);
  const data = join(dir, 'data');
  const port = await freePort();
  const tool = (name, args) => run(join(bin, name), args, { ...user, timeout: TOOL_TIMEOUT_MS });
  let running = false;
  const server = {
    uri: `postgresql://${USER}@127.0.0.1:${port}/postgres`,

    /* The URI of another database on this server. */
    uriOf(database) {
      return server.uri.replace(/\/postgres$/, `/${database}`);
    },

    async sql(text, database = 'postgres') {
      const { stdout } = await run('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', server.uriOf(database),
                                            '-c', text], { timeout: TOOL_TIMEOUT_MS });
      return stdout;
    },

    async stop() {
      if (running) await tool('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop']);
      running = false;
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await tool('initdb', ['-D', data, '-A', 'trust', '-U', USER, '-E', 'UTF8', '--locale=C', '--no-sync']);
    /* fsync off: a test cluster need not survive power loss, and the machine is shared. */
    await tool('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '30', '-o',
                          `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c fsync=off ` +
                          '-c synchronous_commit=off -c full_page_writes=off', 'start']);
    running = true;
  } catch (err) {
    await server.stop();
    throw new Error(`PostgreSQL did not start: ${err.message}`);
  }
  return server;
}
