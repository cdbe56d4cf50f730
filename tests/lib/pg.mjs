// Fresh PostgreSQL databases for the appliances under test, on the server of DATABASE_URL.
import crypto from 'node:crypto';
import pg from 'pg';
import { databaseUrl } from './config.mjs';

function admin() {
  if (!databaseUrl) {
    throw new Error('PostgreSQL tests need DATABASE_URL (start/test exports it)');
  }
  return new pg.Client({ connectionString: databaseUrl });
}

async function withAdmin(fn) {
  const client = admin();
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Creates a uniquely named database with the given collation and ctype (Synapse requires 'C';
 * 'C.UTF-8' makes one it must refuse) and returns its name.
 */
export async function createDatabase({ locale = 'C' } = {}) {
  const name = `e2e_${Date.now().toString(36)}_${crypto.randomBytes(4).toString('hex')}`;
  await withAdmin((c) =>
    c.query(
      `CREATE DATABASE "${name}" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE '${locale}' LC_CTYPE '${locale}'`,
    ),
  );
  return name;
}

/** Drops a database made by createDatabase, disconnecting whatever still uses it. */
export async function dropDatabase(name) {
  await withAdmin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
}

/** A postgres:// URL for database `name` on the test server, with the admin's credentials. */
export function databaseUrlFor(name) {
  const url = new URL(databaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Runs one query against database `name` and returns its rows. */
export async function queryDatabase(name, sql, params = []) {
  const client = new pg.Client({ connectionString: databaseUrlFor(name) });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows;
  } finally {
    await client.end();
  }
}
