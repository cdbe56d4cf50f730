// Where the things under test are, and which database backends the suite runs on.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The supervisor binary (`APPLIANCE_BIN` overrides the debug build). */
export const applianceBin = process.env.APPLIANCE_BIN || path.join(repoRoot, 'target', 'debug', 'appliance');

/** The Python that has matrix-synapse installed (the venv made by start/). */
export const synapsePython =
  process.env.APPLIANCE_SYNAPSE_PYTHON || path.join(repoRoot, '.venv', 'bin', 'python');

/** Superuser URL of the test PostgreSQL server (start/lib/postgres.sh exports it). */
export const databaseUrl = process.env.DATABASE_URL || '';

/** Where logs of failed tests and kept data dirs are written. */
export const stateDir = path.join(repoRoot, 'tests', '.state');

/** The backends every database-related test runs on. */
export const backends = ['sqlite', 'postgres'];

let announced = false;

/**
 * Why a backend's tests are skipped, or false to run them. Without DATABASE_URL the PostgreSQL
 * tests are skipped locally (with a message), but run and fail in CI (env CI set).
 */
export function skipReason(backend) {
  if (backend !== 'postgres' || databaseUrl || process.env.CI) return false;
  if (!announced) {
    announced = true;
    process.stderr.write('skipping PostgreSQL: DATABASE_URL not set\n');
  }
  return 'skipping PostgreSQL: DATABASE_URL not set';
}
