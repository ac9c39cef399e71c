import type { ExecutionContext } from 'ava';
import { join } from 'node:path';
import { LevelRegistry } from '../../server/src/registry/level/level-registry.ts';
import { PostgresRegistry, type PostgresRegistryOptions } from '../../server/src/registry/postgres/postgres-registry.ts';
import type { Registry } from '../../server/src/registry/types.ts';
import { sharedPostgres } from './postgres.ts';
import { tempDir } from './temp-dir.ts';

/** Options both engines take. */
export interface EngineOptions {
  readonly now?: () => Date;
}

/** A registry of one test: where it lives, and how to open another handle on the same store. */
interface TestRegistry {
  readonly registry: Registry;
  /** A LevelDB directory or a PostgreSQL URL. */
  readonly location: string;
  /**
   * Opens the same store again, closed when the test ends. LevelDB: close `registry` first (one
   * process holds the lock). PostgreSQL: as many as wanted at once, as separate processes would.
   */
  open(options?: EngineOptions & PostgresRegistryOptions): Promise<Registry>;
}

/** A registry engine the behaviour suite runs against. */
export interface RegistryEngine {
  readonly name: 'leveldb' | 'postgres';
  /** A fresh, empty registry for one test, closed at its end. */
  create(t: ExecutionContext, options?: EngineOptions): Promise<TestRegistry>;
}

function closeAtEnd<R extends Registry>(t: ExecutionContext, registry: R): R {
  t.teardown(() => registry.close());
  return registry;
}

export const LEVELDB: RegistryEngine = {
  name: 'leveldb',
  async create(t, options = {}) {
    const location = join(await tempDir(t), 'registry');
    const open = async (more: EngineOptions = {}): Promise<Registry> => closeAtEnd(t, await LevelRegistry.open(location, { ...options, ...more }));
    return { registry: await open(), location, open };
  },
};

/** PostgreSQL: a database of its own per test, on the test process's throwaway server (stopSharedPostgres after the file). */
export const POSTGRES: RegistryEngine = {
  name: 'postgres',
  async create(t, options = {}) {
    const location = await (await sharedPostgres()).createDatabase();
    const open = async (more: EngineOptions & PostgresRegistryOptions = {}): Promise<Registry> => closeAtEnd(t, await PostgresRegistry.open(location, { ...options, ...more }));
    return { registry: await open(), location, open };
  },
};

/** Both engines: a suite written once runs against each (`for (const engine of ENGINES)`). */
export const ENGINES: readonly RegistryEngine[] = [LEVELDB, POSTGRES];
